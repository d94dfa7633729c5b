"""`citepipe crawl` with the API as a source refreshes every due paper in batches (issue
21): two crawls of the local site, its data moved to the next epoch in between (tallies
move, a notice is issued), refresh intervals made short by settings; requests counted
from the site's own log, rows read from the real SQLite file."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from citesite.api import notices_of, tally_object
from citesite.server import CitationSite

from .conftest import crawl_input, fast_env, query, run_cli, summary_of

TOKEN = "t0ken-for-tests"
SHORT = {"refresh_interval": 0.001, "refresh_min": 0.001, "refresh_max": 0.001}
BATCH = 7


def posts(site: CitationSite, since: int) -> Counter[str]:
    return Counter(r.path_qs for r in site.requests[since:] if r.method == "POST")


def report_requests(site: CitationSite, since: int) -> list[str]:
    return [r.path_qs for r in site.requests[since:] if r.path_qs.startswith("/reports/")]


def history(db: Path) -> Counter[str]:
    return Counter(doi for (doi,) in query(db, "SELECT doi FROM tally_history"))


async def test_a_crawl_with_source_api_refreshes_due_papers_in_batches(tmp_path: Path) -> None:
    reps, dois, db = crawl_input(tmp_path, 20, seed=31)
    async with CitationSite(reps, api_token=TOKEN) as site:
        env = fast_env(
            site.base_url, db, api_url=site.base_url, api_token=TOKEN, api_batch=BATCH, **SHORT
        )
        first = await run_cli("crawl", "--seeds", str(dois), "--source", "api", env=env)
        assert first.code == 0, first.err
        assert posts(site, 0) == {"/tallies": 3, "/papers": 3, "/tallies/cited-by-sections": 3}
        before = history(db)
        assert before == Counter(list(reps))  # each paper's first tallies
        epoch = site.next_epoch()
        assert epoch.tallies_before and epoch.notices
        since = len(site.requests)
        second = await run_cli("crawl", "--source", "api", env=env)
        assert second.code == 0, second.err
        due = len(reps)  # every paper is due again (refresh intervals of a millisecond)
        # one request per `api_batch` due papers per endpoint: counts and notices only
        assert posts(site, since) == {"/tallies": math.ceil(due / BATCH), "/papers": 3}
        assert report_requests(site, 0) == []
        served = {doi: site.reports[doi] for doi in reps}
    # tallies are the site's new ones; history grew by one row where they moved, only
    for doi, report in served.items():
        t = tally_object(report)
        assert query(
            db,
            "SELECT supporting, mentioning, contrasting, citation_statements, source "
            "FROM tallies WHERE doi = ?",
            doi,
        ) == [(t["supporting"], t["mentioning"], t["contradicting"], t["total"], "api")]
    assert history(db) - before == Counter(list(epoch.tallies_before))
    # the epoch's notice is stored (and flags a retraction); no notice twice
    expected = sum(len(notices_of(d)) for d in reps) + len(epoch.notices)
    assert query(db, "SELECT count(*) FROM notices") == [(expected,)]
    for n in epoch.notices:
        assert query(
            db,
            "SELECT status, date FROM notices WHERE doi = ? AND notice_doi = ?",
            n.doi,
            n.notice_doi,
        ) == [(n.status, n.date)]
        assert query(db, "SELECT retracted FROM papers WHERE doi = ?", n.doi) == [(1,)]


async def test_a_crawl_with_source_both_refreshes_the_api_then_the_pages(
    tmp_path: Path,
) -> None:
    reps, dois, db = crawl_input(tmp_path, 12, seed=32)
    async with CitationSite(reps, api_token=TOKEN) as site:
        env = fast_env(
            site.base_url, db, api_url=site.base_url, api_token=TOKEN, api_batch=5, **SHORT
        )
        first = await run_cli("crawl", "--seeds", str(dois), "--source", "both", env=env)
        assert first.code == 0, first.err
        crawled = dict(query(db, "SELECT doi, last_crawled_at FROM papers"))
        epoch = site.next_epoch()
        since = len(site.requests)
        second = await run_cli("crawl", "--source", "both", env=env)
        assert second.code == 0, second.err
        assert posts(site, since) == {"/tallies": 3, "/papers": 3}
        assert report_requests(site, since)
    # the report pages refresh as without the API: every report is visited again
    again = dict(query(db, "SELECT doi, last_crawled_at FROM papers"))
    assert all(again[doi] > crawled[doi] for doi in reps)
    new = {(doi, s.citing_doi) for doi, ss in epoch.new_statements.items() for s in ss}
    stored = set(query(db, "SELECT cited_doi, citing_doi FROM statements"))
    assert new and new <= stored
    expected = sum(len(notices_of(d)) for d in reps) + len(epoch.notices)
    assert query(db, "SELECT count(*) FROM notices") == [(expected,)]


async def test_papers_with_fewer_statements_than_the_api_counts_are_incomplete(
    tmp_path: Path,
) -> None:
    reps, dois, db = crawl_input(tmp_path, 15, seed=33)
    async with CitationSite(reps, api_token=TOKEN) as site:
        env = fast_env(site.base_url, db, api_url=site.base_url, api_token=TOKEN, **SHORT)
        first = await run_cli("crawl", "--seeds", str(dois), "--source", "both", env=env)
        assert first.code == 0, first.err
        own = dict(query(db, "SELECT doi, incomplete_reason FROM papers WHERE incomplete = 1"))
        epoch = site.next_epoch()
        # the API alone: the moved papers' counts grow past the statements collected
        second = await run_cli("crawl", "--source", "api", env=env)
        assert second.code == 0, second.err
        collected = dict(query(db, "SELECT cited_doi, count(*) FROM statements GROUP BY 1"))
        counts = {
            doi: (collected.get(doi, 0), tally_object(r)["total"])
            for doi, r in site.reports.items()
            if doi in reps
        }
        expected = {
            doi: own.get(doi) or f"fewer statements than the API counts: {got} of {total}"
            for doi, (got, total) in counts.items()
            if doi in own or got < total
        }
        short = sorted(set(expected) - set(own))
        assert short, "no paper fell short of the API's count"
        assert set(epoch.new_statements) - set(own) <= set(short)
        assert dict(
            query(db, "SELECT doi, incomplete_reason FROM papers WHERE incomplete = 1")
        ) == (expected)
        # the run summary, status and show compare the statements with the API's count
        summary = summary_of(second.out)
        api = {
            "papers": len(reps),
            "counted": sum(total for _, total in counts.values()),
            "collected": sum(got for got, _ in counts.values()),
        }
        assert summary["api_statements"] == api
        by_reason = summary["incomplete_by_reason"]
        assert isinstance(by_reason, dict)
        assert by_reason["fewer statements than the API counts"] == len(short)
        line = (
            f"{api['collected']} of {api['counted']} statements the API counts, "
            f"over {len(reps)} reports read"
        )
        assert f"vs api:     {line}" in second.out + second.err
        status = await run_cli("status", env=env)
        assert status.code == 0, status.err
        assert f"statements vs the API: {line}" in status.out
        got, total = counts[short[0]]
        shown = await run_cli("show", short[0], env=env)
        assert shown.code == 0, shown.err
        assert f"{got} of {total} (the API's count)" in shown.out
        assert f"fewer statements than the API counts: {got} of {total}" in shown.out
        # the report pages read again: the new statements are collected, the marks go
        third = await run_cli("crawl", "--source", "both", env=env)
        assert third.code == 0, third.err
    after = dict(query(db, "SELECT doi, incomplete_reason FROM papers WHERE incomplete = 1"))
    assert not [r for r in after.values() if r.startswith("fewer statements than the API")]
    new = set(query(db, "SELECT cited_doi, citing_doi FROM statements"))
    assert {(d, s.citing_doi) for d, ss in epoch.new_statements.items() for s in ss} <= new
