"""`citepipe crawl` end to end: refresh, change detection, overlap, time budget."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sqlite3
from collections import Counter
from pathlib import Path

from citesite.dataset import SiteStatement
from citesite.server import CitationSite

from .conftest import fast_env, query, reports, run_cli, start_cli, write_dois

REFRESH = {"refresh_interval": 1, "refresh_min": 1, "refresh_max": 4}


def report_paths(site: CitationSite, since: int = 0) -> list[str]:
    return [r.path_qs for r in site.requests[since:] if r.path_qs.startswith("/reports/")]


async def test_second_crawl_records_changes_and_skips_unchanged_pages(tmp_path: Path) -> None:
    reps = reports(6, seed=21)
    grown, tallied, same = list(reps)[:3]
    async with CitationSite(reps) as site:
        db = tmp_path / "c.sqlite"
        env = fast_env(site.base_url, db, **REFRESH)
        seeds = write_dois(tmp_path / "seeds.txt", list(reps))
        first = await run_cli("crawl", "--seeds", str(seeds), env=env)
        assert first.code == 0, first.err[-2000:]
        history_before = dict(query(db, "select doi, count(*) from tally_history group by doi"))
        same_rows = query(
            db, "select id, last_seen_at from statements where cited_doi = ? order by id", same
        )
        n_statements = query(db, "select count(*) from statements")[0][0]

        new = SiteStatement(
            citing_doi="10.5555/brand-new",
            citing_title="A new citer",
            citing_year=2026,
            citing_journal=None,
            snippet="…a statement that appeared since the last crawl…",
            section="Results",
            type="supporting",
            confidence=0.81,
        )
        r = reps[grown]
        site.set_report(dataclasses.replace(r, statements=(*r.statements, new)))
        t = reps[tallied]
        mentioning = (t.tallies.mentioning or 0) + 7
        site.set_report(
            dataclasses.replace(t, tallies=dataclasses.replace(t.tallies, mentioning=mentioning))
        )
        await asyncio.sleep(1.2)  # every report is now due for a refresh
        mark = len(site.requests)
        second = await run_cli("crawl", env=env)
        assert second.code == 0, second.err[-2000:]
        log = site.requests[mark:]
        first_log = site.requests[:mark]

    # the new statement arrived, nothing vanished
    assert query(
        db,
        "select citing_doi, type, confidence from statements "
        "where cited_doi = ? and citing_doi = '10.5555/brand-new'",
        grown,
    ) == [("10.5555/brand-new", "supporting", 0.81)]
    assert query(db, "select count(*) from statements")[0][0] == n_statements + 1
    # tally_history grew by exactly one row, for the changed paper only
    history_after = dict(query(db, "select doi, count(*) from tally_history group by doi"))
    assert history_after[tallied] == history_before[tallied] + 1
    assert {d: c for d, c in history_after.items() if d != tallied} == {
        d: c for d, c in history_before.items() if d != tallied
    }
    assert query(db, "select mentioning from tallies where doi = ?", tallied) == [(mentioning,)]
    # the unchanged report was asked conditionally, answered 304, and wrote nothing
    slug_reqs = [x for x in log if x.path_qs.startswith(f"/reports/{reps[same].slug}")]
    doi_reqs = [x for x in log if x.path_qs == f"/reports/{same}"]
    assert slug_reqs and all(x.status == 304 and x.if_none_match for x in slug_reqs)
    assert all(x.status == 304 for x in doi_reqs)
    # the refresh goes straight to each report's canonical address: no redirects
    assert any(x.status in (301, 302) for x in first_log)
    assert not any(x.status in (301, 302) for x in log)
    assert (
        query(db, "select id, last_seen_at from statements where cited_doi = ? order by id", same)
        == same_rows
    )
    # every page of every report was visited again: the crawl refreshed all of them
    assert query(db, "select count(*) from jobs where state != 'done'") == [(0,)]


async def test_two_crawls_at_once_never_fetch_a_page_twice(tmp_path: Path) -> None:
    reps = reports(30, seed=22)
    async with CitationSite(reps) as site:
        db = tmp_path / "c.sqlite"
        env = fast_env(site.base_url, db, concurrency=3, per_host_concurrency=3, **REFRESH)
        seeds = write_dois(tmp_path / "seeds.txt", list(reps))
        assert (await run_cli("crawl", "--seeds", str(seeds), env=env)).code == 0
        site.faults = type(site.faults).parse("slow=1.0,delay=0.05")  # make the runs overlap
        await asyncio.sleep(1.2)
        # change every report so that each page is fetched in full (no 304s)
        for r in list(reps.values()):
            site.set_report(dataclasses.replace(r, title=r.title + " (revised)"))
        mark = len(site.requests)
        a = await start_cli("crawl", env=env)
        await asyncio.sleep(0.6)
        b = await start_cli("crawl", env=env)
        (out_a, err_a), (out_b, err_b) = await asyncio.wait_for(
            asyncio.gather(a.communicate(), b.communicate()), 120
        )
        paths = report_paths(site, mark)
    assert a.returncode == 0 and b.returncode == 0, (err_a[-1500:], err_b[-1500:])
    assert "another run is active" in err_b.decode()
    twice = {p: n for p, n in Counter(paths).items() if n > 1}
    assert twice == {}
    titles = [t for (t,) in query(db, "select title from papers where last_crawled_at is not null")]
    assert all(t.endswith("(revised)") for t in titles) and len(titles) == len(reps)
    # both processes did some of the work
    assert b"citepipe-summary" in out_a and b"citepipe-summary" in out_b


async def test_max_duration_ends_in_time_and_the_next_run_finishes(tmp_path: Path) -> None:
    reps = reports(30, seed=23)
    async with CitationSite(reps, faults="slow=1.0,delay=0.4") as site:
        db = tmp_path / "c.sqlite"
        env = fast_env(site.base_url, db, concurrency=2, per_host_concurrency=2)
        seeds = write_dois(tmp_path / "seeds.txt", list(reps))
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = await run_cli("crawl", "--seeds", str(seeds), "--max-duration", "2s", env=env)
        took = loop.time() - started
        assert first.code == 3, first.err[-2000:]
        assert took < 15
        assert "time budget spent" in first.out
        left = query(db, "select count(*) from jobs where state in ('queued', 'failed')")[0][0]
        assert left > 0
        assert query(db, "select count(*) from jobs where state = 'leased'") == [(0,)]
        site.faults = type(site.faults)()
        second = await run_cli("crawl", env=env)
    assert second.code == 0, second.err[-2000:]
    assert query(db, "select count(*) from jobs where state != 'done'") == [(0,)]
    expected = {(r.doi, s.citing_doi, s.snippet) for r in reps.values() for s in r.statements}
    assert set(query(db, "select cited_doi, citing_doi, snippet from statements")) == expected


async def test_schedule_runs_crawls_on_its_cron_expression_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    reps = reports(5, seed=24)
    async with CitationSite(reps) as site:
        db = tmp_path / "c.sqlite"
        # croniter's sixth field is seconds: a crawl every 2 seconds
        env = fast_env(site.base_url, db, schedule="* * * * * */2")
        seeds = write_dois(tmp_path / "seeds.txt", list(reps))
        proc = await start_cli("schedule", "--seeds", str(seeds), env=env)
        for _ in range(300):
            await asyncio.sleep(0.1)
            try:
                crawls = query(
                    db, "select count(*) from runs where kind = 'crawl' and finished_at is not null"
                )[0][0]
            except sqlite3.OperationalError:  # no file or no schema yet
                continue
            if crawls >= 2:
                break
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert out.decode().count("citepipe-summary") >= 2
    expected = {(r.doi, s.citing_doi, s.snippet) for r in reps.values() for s in r.statements}
    assert set(query(db, "select cited_doi, citing_doi, snippet from statements")) == expected


async def test_schedule_makes_its_store_at_start_and_waits(tmp_path: Path) -> None:
    """A nightly schedule: the store exists (for the container's healthcheck) long before
    the first crawl, and SIGTERM while waiting exits 0 without crawling."""
    db = tmp_path / "data" / "c.sqlite"
    env = fast_env("http://127.0.0.1:9", db, schedule="0 3 1 1 *")  # once a year
    proc = await start_cli("schedule", env=env)
    for _ in range(300):
        if db.exists():
            break
        await asyncio.sleep(0.1)
    health = await run_cli("status", "--json", env=env)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert health.code == 0, health.err
    assert query(db, "select count(*) from runs") == [(0,)]
