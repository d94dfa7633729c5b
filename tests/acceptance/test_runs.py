"""Backfill, crawl and schedule in-process: the app's run functions over real sockets (the
local site in this event loop), a real SQLite file, and an injected clock instead of
sleeps. The subprocess smoke tests in test_backfill.py / test_crawl.py keep the command
itself honest."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import socket
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from citesite.dataset import SiteStatement
from citesite.faults import FaultSpec
from citesite.server import CitationSite
from pipeline import app
from pipeline.clock import ManualClock
from pipeline.crawl.fetcher import AiohttpFetcher
from pipeline.models import NewJob, Page, ParseResult, Validators
from pipeline.runs import commands
from pipeline.runs.lifecycle import RunUI, Stop
from pipeline.runs.summary import RunSummary
from pipeline.sources.report import ReportSource

from .conftest import (
    FirstPage,
    OffsetClock,
    SteppedClock,
    expected_statements,
    fast_env,
    fast_settings,
    messy_input,
    query,
    quiet_ui,
    reports,
    run_cli,
    snapshot,
    stored_statements,
    ui_text,
)

TRANSIENT = (
    "500=0.05,502=0.04,503=0.04,429=0.05,429-date=0.03,503-date=0.03,"
    "reset=0.03,truncate=0.02,slow=0.01,first=1,delay=0.3,seed=11"
)
REFRESH = {"refresh_interval": 1.0, "refresh_min": 1.0, "refresh_max": 4.0}


def report_paths(site: CitationSite, since: int = 0) -> list[str]:
    return [r.path_qs for r in site.requests[since:] if r.path_qs.startswith("/reports/")]


async def run_backfill(
    settings: object, lines: list[str], ui: RunUI | None = None, **parts: object
) -> RunSummary:
    async with app.open_pipeline(settings, **parts) as p:  # type: ignore[arg-type]
        return await commands.backfill(p, lines, ui=ui or quiet_ui())


async def run_crawl(
    settings: object,
    seeds: list[str] | None = None,
    ui: RunUI | None = None,
    **kw: object,
) -> RunSummary:
    clock = kw.pop("clock", None)
    fetcher = kw.pop("fetcher", None)
    async with app.open_pipeline(settings, clock=clock, fetcher=fetcher) as p:  # type: ignore[arg-type]
        return await commands.crawl(p, seeds, ui=ui or quiet_ui(), **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- backfill


@pytest.mark.slow  # many seconds of real faults and waits: make test-all
async def test_faults_every_doi_ends_done_or_dead_and_data_is_exact(tmp_path: Path) -> None:
    reps = reports(40, seed=5)
    dois = list(reps)
    permanent = dict(
        zip(dois[:6], ("captcha", "login", "json", "image", "offsite", "loop"), strict=True)
    )
    elsewhere_hits: list[str] = []

    async def elsewhere(request: web.Request) -> web.Response:
        elsewhere_hits.append(request.path_qs)
        return web.Response(text="<html>elsewhere</html>", content_type="text/html")

    other_app = web.Application()
    other_app.router.add_get("/{tail:.*}", elsewhere)
    runner = web.AppRunner(other_app)
    await runner.setup()
    other = web.TCPSite(runner, "127.0.0.2", 0)
    await other.start()
    other_port = runner.addresses[0][1]
    faults = dataclasses.replace(FaultSpec.parse(TRANSIENT), permanent=permanent)
    db = tmp_path / "c.sqlite"
    try:
        async with CitationSite(
            reps, faults=faults, offsite_url=f"http://127.0.0.2:{other_port}/x"
        ) as site:
            unknown = "10.5555/not-on-the-site"
            summary = await run_backfill(fast_settings(site.base_url, db), [*dois, unknown])
            log = list(site.requests)
            must_die = site.dead()
    finally:
        await runner.cleanup()

    assert summary.exit_code == 1
    assert set(must_die) == set(permanent)
    states = dict(query(db, "select state, count(*) from jobs group by state"))
    assert set(states) <= {"done", "dead"}, states
    dead = dict(query(db, "select doi, last_error from jobs where state = 'dead'"))
    assert set(dead) == {*permanent, unknown}
    assert all(reason for reason in dead.values())
    assert "not found" in dead[unknown]
    assert "redirect" in dead[dois[4]] and "loop" in dead[dois[5]]
    assert "not html" in dead[dois[2]]
    # a wall is not layout drift: its own reason
    assert dead[dois[0]] == "blocked: captcha wall" and dead[dois[1]] == "blocked: login wall"
    rows = stored_statements(db)
    assert len(rows) == len(set(rows))
    assert set(rows) == expected_statements(reps, skip=set(permanent))
    faults_seen = Counter(r.fault for r in log if r.fault)
    assert {"500", "502", "503", "429", "429-date", "503-date", "reset", "truncate"} <= set(
        faults_seen
    )
    for i, rec in enumerate(log):
        if rec.retry_after_until is not None:
            later = [r for r in log[i + 1 :] if r.path_qs == rec.path_qs]
            assert all(r.time >= rec.retry_after_until - 0.01 for r in later), rec
    assert elsewhere_hits == []
    data = summary.as_dict()
    assert data["exit_code"] == 1 and data["statements_stored"] == len(rows)
    # the summary counts every job of the input by its final state
    assert summary.input_states == Counter(
        dict(query(db, "select state, count(*) from jobs group by state"))
    )
    assert summary.input_dead.total() == len(dead)


async def test_bad_lines_are_reported_with_numbers_and_the_rest_stored(tmp_path: Path) -> None:
    reps = reports(5, seed=8)
    text = messy_input(list(reps))
    db = tmp_path / "c.sqlite"
    ui = quiet_ui()
    async with CitationSite(reps) as site:
        summary = await run_backfill(
            fast_settings(site.base_url, db), text.splitlines(keepends=True), ui
        )
    err = ui_text(ui)
    assert summary.exit_code == 1
    assert "line 2: not a DOI: 'not-a-doi'" in err
    assert "line 5: not a DOI: '10.12/short'" in err
    assert set(stored_statements(db)) == expected_statements(reps)
    assert query(db, "select count(*) from jobs where state != 'done'") == [(0,)]
    assert summary.inputs.bad_lines == 2 and summary.inputs.dois == 6


async def test_rerun_of_a_finished_backfill_fetches_nothing(tmp_path: Path) -> None:
    reps = reports(8, seed=2)
    db = tmp_path / "c.sqlite"
    async with CitationSite(reps) as site:
        settings = fast_settings(site.base_url, db)
        first = await run_backfill(settings, list(reps))
        before = snapshot(db)
        n = len(report_paths(site))
        second = await run_backfill(settings, list(reps))
        after = len(report_paths(site))
    assert first.exit_code == 0 and second.exit_code == 0
    assert first.counters.reports_done == len(reps) and second.counters.reports_done == 0
    assert n > len(reps) and after == n
    assert snapshot(db) == before
    assert second.counters.pages_done == 0


async def test_exit_code_counts_dead_dois_of_this_input_only(tmp_path: Path) -> None:
    """A DOI that died earlier keeps its input's re-run at 1 (not retried, not done);
    another input on the same store is judged on its own DOIs."""
    reps = reports(6, seed=4)
    dois = list(reps)
    db = tmp_path / "c.sqlite"
    async with CitationSite(reps) as site:
        settings = fast_settings(site.base_url, db)
        bad = [*dois[:3], "10.5555/missing"]
        first = await run_backfill(settings, bad)
        ui = quiet_ui()
        again = await run_backfill(settings, bad, ui)
        other = await run_backfill(settings, dois[3:])
    assert first.exit_code == 1
    assert dict(first.counters.dead) == {"not found (404)": 1}
    assert again.exit_code == 1 and again.counters.pages_done == 0
    assert dict(again.inputs.already_dead) == {"not found (404)": 1}
    assert "died in an earlier run" in again.render()
    assert other.exit_code == 0, other.render()  # the store still holds the dead DOI of `bad`
    assert dict(other.inputs.already_dead) == {}
    assert other.as_dict()["dead_total"] == {"not found (404)": 1}


async def test_a_job_of_the_input_killed_by_another_process_counts(tmp_path: Path) -> None:
    """The input's job died in another process while this run was working: exit 1 even
    though this process killed nothing (the survey reads the store at the end)."""
    reps = reports(3, seed=12)
    dois = list(reps)
    db = tmp_path / "c.sqlite"
    async with CitationSite(reps) as site:
        settings = fast_settings(site.base_url, db)
        async with app.open_pipeline(settings) as p:
            await p.store.enqueue([NewJob(doi=dois[0], url=f"{site.base_url}/reports/{dois[0]}")])
            [job] = await p.store.claim("other-host:1", 1, 60)
            await p.store.fail(job, "killed elsewhere", None)  # another process's verdict
        summary = await run_backfill(settings, dois)
    assert summary.counters.dead.total() == 0
    assert dict(summary.input_dead) == {"killed elsewhere": 1}
    assert summary.exit_code == 1


async def test_a_crashing_job_is_counted_and_fails_the_run(tmp_path: Path) -> None:
    """A bug in our code kills the job; the run says so and exits 1, not 0."""
    reps = reports(3, seed=13)

    class Exploding(ReportSource):
        name = "exploding"

        def parse(self, page: Page) -> ParseResult:
            raise RuntimeError("a bug")

    db = tmp_path / "c.sqlite"
    async with CitationSite(reps) as site:
        summary = await run_backfill(
            fast_settings(site.base_url, db),
            list(reps),
            source=Exploding(base_url=site.base_url),
        )
    assert summary.counters.dead.total() == len(reps)
    assert summary.input_dead.total() == len(reps)
    assert summary.exit_code == 1


async def test_unwatched_runs_log_progress_lines(tmp_path: Path, json_logs: object) -> None:
    """No terminal (cron, containers): a `progress` log line every `progress_interval`."""
    reps = reports(12, seed=7)
    async with CitationSite(reps, faults="slow=1.0,delay=0.1") as site:
        settings = fast_settings(
            site.base_url, tmp_path / "c.sqlite", concurrency=2, progress_interval=0.3
        )
        summary = await run_backfill(settings, list(reps))
    assert summary.exit_code == 0
    events = [json.loads(x) for x in json_logs.getvalue().splitlines() if x.startswith("{")]  # type: ignore[attr-defined]
    progress = [e for e in events if e["event"] == "progress"]
    assert len(progress) >= 2
    assert {"pages", "pages_per_s", "statements", "retries", "dead", "pending"} <= set(progress[0])
    pages = [e["pages"] for e in progress]
    assert pages == sorted(pages) and pages[-1] > 0
    assert progress[0]["pending"] > 0  # there was work left when the first line was logged


async def test_depth_crawls_citing_papers_on_the_site(tmp_path: Path) -> None:
    reps = reports(60, seed=6)
    root = next(
        r
        for r in reps.values()
        if any(s.citing_doi in reps and s.citing_doi != r.doi for s in r.statements)
    )
    citers = {s.citing_doi for s in root.statements if s.citing_doi in reps} - {root.doi}
    db = tmp_path / "c.sqlite"
    async with CitationSite(reps) as site:
        summary = await run_backfill(fast_settings(site.base_url, db, depth=1), [root.doi])
    assert summary.exit_code in (0, 1)
    crawled = {d for (d,) in query(db, "select doi from papers where last_crawled_at is not null")}
    assert crawled >= {root.doi, *citers}
    assert query(db, "select max(depth) from jobs") == [(1,)]


async def test_depth_follows_the_citers_of_every_page_of_a_report(tmp_path: Path) -> None:
    """`--depth 1` queues every paper citing the listed one, from every page of its report
    (issue 25, point 4: only page 1's citers were followed)."""
    reps = reports(60, seed=6)
    root = max(reps.values(), key=lambda r: len({s.citing_doi for s in r.statements}))
    citers = {s.citing_doi for s in root.statements} - {root.doi}
    db = tmp_path / "c.sqlite"
    async with CitationSite(reps, per_page=5) as site:
        assert site.pages(root.doi) >= 3
        summary = await run_backfill(fast_settings(site.base_url, db, depth=1), [root.doi])
    assert summary.exit_code in (0, 1)  # citers the site does not hold are not found
    queued = {d for (d,) in query(db, "select doi from jobs where page = 1 and depth = 0")}
    assert queued == citers


async def test_summary_times_are_each_measured(tmp_path: Path) -> None:
    """Enqueue, crawl and total times come from the injected clock, phase by phase."""
    reps = reports(4, seed=14)
    clock = SteppedClock()
    fetched: list[str] = []

    class Slow(AiohttpFetcher):
        async def fetch(self, url: str, validators: Validators | None = None) -> Page:
            page = await super().fetch(url, validators)
            fetched.append(url)
            clock.advance(2.0)  # each fetch 'takes' two seconds
            return page

    db = tmp_path / "c.sqlite"
    async with CitationSite(reps) as site:
        settings = fast_settings(site.base_url, db, concurrency=1)
        fetcher = Slow(settings)
        try:
            summary = await run_backfill(settings, list(reps), clock=clock, fetcher=fetcher)
        finally:
            await fetcher.close()
    assert summary.times.enqueue == 0.0
    assert summary.times.crawl == 2.0 * len(fetched) > 0
    assert summary.times.total == summary.times.enqueue + summary.times.crawl
    assert "enqueue 0.0 s, crawl" in summary.render()


# ---------------------------------------------------------------- crawl


async def test_second_crawl_records_changes_and_skips_unchanged_pages(tmp_path: Path) -> None:
    reps = reports(6, seed=21)
    grown, tallied, same = list(reps)[:3]
    clock = OffsetClock()
    db = tmp_path / "c.sqlite"
    async with CitationSite(reps) as site:
        settings = fast_settings(site.base_url, db, **REFRESH)
        first = await run_crawl(settings, list(reps), clock=clock)
        assert first.exit_code == 0, first.render()
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
        clock.offset += 5.0  # past refresh_max: every report is now due for a refresh
        mark = len(site.requests)
        second = await run_crawl(settings, None, clock=clock)
        assert second.exit_code == 0, second.render()
        log = site.requests[mark:]
        first_log = site.requests[:mark]

    assert query(
        db,
        "select citing_doi, type, confidence from statements "
        "where cited_doi = ? and citing_doi = '10.5555/brand-new'",
        grown,
    ) == [("10.5555/brand-new", "supporting", 0.81)]
    assert query(db, "select count(*) from statements")[0][0] == n_statements + 1
    history_after = dict(query(db, "select doi, count(*) from tally_history group by doi"))
    assert history_after[tallied] == history_before[tallied] + 1
    assert {d: c for d, c in history_after.items() if d != tallied} == {
        d: c for d, c in history_before.items() if d != tallied
    }
    assert query(db, "select mentioning from tallies where doi = ?", tallied) == [(mentioning,)]
    slug_reqs = [x for x in log if x.path_qs.startswith(f"/reports/{reps[same].slug}")]
    doi_reqs = [x for x in log if x.path_qs == f"/reports/{same}"]
    assert slug_reqs and all(x.status == 304 and x.if_none_match for x in slug_reqs)
    assert all(x.status == 304 for x in doi_reqs)
    assert any(x.status in (301, 302) for x in first_log)
    assert not any(x.status in (301, 302) for x in log)
    assert (
        query(db, "select id, last_seen_at from statements where cited_doi = ? order by id", same)
        == same_rows
    )
    assert query(db, "select count(*) from jobs where state != 'done'") == [(0,)]


async def test_a_due_refresh_after_a_change_of_base_url_goes_to_the_new_site(
    tmp_path: Path,
) -> None:
    """The site moved (a new `base_url`): due refreshes are fetched from the new site,
    each stored address rebuilt on it, instead of dying as `off-site redirect` without a
    request (issue 25, point 5)."""
    reps = reports(5, seed=25)
    clock = OffsetClock()
    db = tmp_path / "c.sqlite"
    async with CitationSite(reps, per_page=5) as old:
        first = await run_crawl(fast_settings(old.base_url, db, **REFRESH), list(reps), clock=clock)
        assert first.exit_code == 0, first.render()
    stored = {u for (u,) in query(db, "select url from jobs where page = 1")}
    assert all(u.startswith(old.base_url) for u in stored)
    async with CitationSite(reps, per_page=5) as new:
        assert new.base_url != old.base_url
        clock.offset += 5.0  # past refresh_max: every report is due
        second = await run_crawl(fast_settings(new.base_url, db, **REFRESH), None, clock=clock)
        fetched = {r.path_qs.split("?")[0] for r in new.requests if r.status in (200, 304)}
    assert second.exit_code == 0, second.render()
    assert query(db, "select count(*) from jobs where state = 'dead'") == [(0,)]
    assert all(u.startswith(new.base_url) for (u,) in query(db, "select url from jobs"))
    assert {urlsplit(u).path for u in stored} <= fetched
    assert second.counters.pages_done == query(db, "select count(*) from jobs")[0][0]  # all read


async def test_two_crawls_at_once_never_fetch_a_page_twice(tmp_path: Path) -> None:
    reps = reports(30, seed=22)
    clock = OffsetClock()
    db = tmp_path / "c.sqlite"
    async with CitationSite(reps) as site:
        settings = fast_settings(
            site.base_url, db, concurrency=3, per_host_concurrency=3, **REFRESH
        )
        assert (await run_crawl(settings, list(reps), clock=clock)).exit_code == 0
        site.faults = type(site.faults).parse("slow=1.0,delay=0.05")  # make the runs overlap
        clock.offset += 5.0
        for r in list(reps.values()):
            site.set_report(dataclasses.replace(r, title=r.title + " (revised)"))
        mark = len(site.requests)
        ui_b, first = quiet_ui(), FirstPage()
        a = asyncio.create_task(run_crawl(settings, None, RunUI(progress=first), clock=clock))
        await first.done.wait()  # b joins a crawl under way
        b = asyncio.create_task(run_crawl(settings, None, ui_b, clock=clock))
        sa, sb = await asyncio.wait_for(asyncio.gather(a, b), 120)
        paths = report_paths(site, mark)
    assert sa.exit_code == 0 and sb.exit_code == 0
    assert "another run is active" in ui_text(ui_b)
    twice = {p: n for p, n in Counter(paths).items() if n > 1}
    assert twice == {}
    titles = [t for (t,) in query(db, "select title from papers where last_crawled_at is not null")]
    assert all(t.endswith("(revised)") for t in titles) and len(titles) == len(reps)
    assert sa.counters.pages_done + sb.counters.pages_done == len(paths)


async def test_max_duration_stops_at_the_budget_commits_fetched_pages_and_next_run_finishes(
    tmp_path: Path,
) -> None:
    reps = reports(30, seed=23)
    clock = SteppedClock()
    completed: list[str] = []

    class Timed(AiohttpFetcher):
        async def fetch(self, url: str, validators: Validators | None = None) -> Page:
            page = await super().fetch(url, validators)
            completed.append(url)
            clock.advance(1.0)  # each fetch 'takes' a second of the budget
            return page

    db = tmp_path / "c.sqlite"
    async with CitationSite(reps) as site:
        settings = fast_settings(site.base_url, db, concurrency=2, per_host_concurrency=2)
        fetcher = Timed(settings)
        try:
            first = await run_crawl(
                settings, list(reps), clock=clock, fetcher=fetcher, max_duration=5.0
            )
        finally:
            await fetcher.close()
        assert first.exit_code == 3, first.render()
        assert first.out_of_time and "time budget spent" in first.render()
        # stopped claiming at the budget: at most the pages in flight then were fetched
        assert 5 <= len(completed) <= 5 + settings.concurrency
        # and every page fetched was committed, none thrown away
        assert query(db, "select count(*) from jobs where state = 'done'") == [(len(completed),)]
        left = query(db, "select count(*) from jobs where state in ('queued', 'failed')")[0][0]
        assert left > 0
        assert query(db, "select count(*) from jobs where state = 'leased'") == [(0,)]
        second = await run_crawl(settings, None)
    assert second.exit_code == 0, second.render()
    assert query(db, "select count(*) from jobs where state != 'done'") == [(0,)]
    expected = {(r.doi, s.citing_doi, s.snippet) for r in reps.values() for s in r.statements}
    assert set(query(db, "select cited_doi, citing_doi, snippet from statements")) == expected


async def test_at_the_budget_pages_waiting_for_their_polite_turn_are_not_sent(
    tmp_path: Path,
) -> None:
    """Under politeness most claimed pages wait for their turn. At the budget they are not
    sent (their leases go back at once), so the run does not outlive its budget by a queue
    of politeness waits."""
    reps = reports(20, seed=29)
    clock = SteppedClock()

    class Timed(AiohttpFetcher):
        async def fetch(self, url: str, validators: Validators | None = None) -> Page:
            page = await super().fetch(url, validators)
            clock.advance(1.0)  # each fetch 'takes' a second of the budget
            return page

    db = tmp_path / "p.sqlite"
    async with CitationSite(reps) as site:
        settings = fast_settings(
            site.base_url, db, concurrency=8, per_host_concurrency=8, request_delay=0.2
        )
        fetcher = Timed(settings)
        try:
            summary = await run_crawl(
                settings, list(reps), clock=clock, fetcher=fetcher, max_duration=2.0
            )
        finally:
            await fetcher.close()
        sent = report_paths(site)
    assert summary.exit_code == 3, summary.render()
    # 8 pages were claimed; only those sent before the budget (one of them may be a
    # redirect's first hop) reached the site, and what was fetched was committed
    assert len(sent) <= 3, sent
    done = summary.counters.pages_done
    assert done >= 2
    assert query(db, "select count(*) from jobs where state = 'done'") == [(done,)]
    assert query(db, "select count(*) from jobs where state = 'leased'") == [(0,)]


async def test_a_stop_request_releases_leases_and_the_rest_stays_queued(tmp_path: Path) -> None:
    """A stop (what Ctrl-C asks) during a slow, polite crawl: sleeps are cancelled, the
    leases released, the exit code says which signal, and a re-run finishes the work."""
    reps = reports(20, seed=25)
    db = tmp_path / "c.sqlite"
    stop = Stop()
    async with CitationSite(reps) as site:
        settings = fast_settings(
            site.base_url, db, concurrency=4, per_host_concurrency=1, request_delay=30.0
        )

        first = FirstPage()
        ui = RunUI(progress=first)

        async def stop_when_fetching() -> None:
            await first.done.wait()  # the other pages wait for their politeness slot
            stop.request(2)  # SIGINT

        stopper = asyncio.create_task(stop_when_fetching())
        async with app.open_pipeline(settings) as p:
            summary = await commands.backfill(p, list(reps), stop=stop, ui=ui)
        await stopper
        assert summary.exit_code == 130
        assert "stopped by signal" in summary.render()
        assert query(db, "select count(*) from jobs where state = 'leased'") == [(0,)]
        assert query(db, "select count(*) from jobs where state = 'queued'")[0][0] > 0
        again = await run_backfill(fast_settings(site.base_url, db), list(reps))
    assert again.exit_code == 0
    assert set(stored_statements(db)) == expected_statements(reps)


# ---------------------------------------------------------------- schedule


async def test_schedule_runs_crawls_on_its_cron_expression(tmp_path: Path) -> None:
    """A nightly schedule under a clock that jumps to each due time: two crawls run, then
    a stop ends the schedule normally (exit 0)."""
    reps = reports(5, seed=24)
    clock = ManualClock(autojump=True)
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("".join(d + "\n" for d in reps), encoding="utf-8")
    db = tmp_path / "c.sqlite"
    stop = Stop()
    crawls: list[RunSummary] = []

    def on_crawl(summary: RunSummary) -> None:
        crawls.append(summary)
        if len(crawls) == 2:
            stop.request()

    async with CitationSite(reps) as site:
        settings = fast_settings(site.base_url, db, schedule="0 3 * * *")
        async with app.open_pipeline(settings, clock=clock) as p:
            result = await commands.schedule(
                p, str(seeds), stop=stop, ui=quiet_ui(), on_crawl=on_crawl
            )
    assert len(crawls) == 2 and all(c.exit_code == 0 for c in crawls)
    assert result.exit_code == 0
    assert query(db, "select count(*) from runs where kind = 'crawl'") == [(2,)]
    # the crawls started at the cron expression's times (03:00 on two days in a row)
    started = [s for (s,) in query(db, "select started_at from runs order by id")]
    assert [s[11:16] for s in started] == ["03:00", "03:00"] and started[0][:10] != started[1][:10]
    expected = {(r.doi, s.citing_doi, s.snippet) for r in reps.values() for s in r.statements}
    assert set(query(db, "select cited_doi, citing_doi, snippet from statements")) == expected


# ---------------------------------------------------------------- leases of earlier runs


async def test_leases_of_a_dead_process_on_this_host_are_reclaimed_at_once(
    tmp_path: Path,
) -> None:
    """A SIGKILLed run left leases for 10 minutes; its pid is gone and it has no live
    heartbeat, so a rerun takes the pages back at once instead of waiting."""
    reps = reports(4, seed=51)
    dois = list(reps)
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()  # a pid that no longer exists
    db = tmp_path / "c.sqlite"
    ui = quiet_ui()
    async with CitationSite(reps) as site:
        settings = fast_settings(site.base_url, db)
        async with app.open_pipeline(settings) as p:
            await p.store.enqueue(
                [NewJob(doi=d, url=f"{site.base_url}/reports/{d}") for d in dois[:2]]
            )
            leased = await p.store.claim(f"{socket.gethostname()}:{gone.pid}", 2, 600)
            assert len(leased) == 2
        summary = await run_backfill(settings, dois, ui)
    assert summary.exit_code == 0, summary.render()
    assert "reclaimed 2 leases of a run whose process is gone" in ui_text(ui)
    assert query(db, "select count(*) from jobs where state != 'done'") == [(0,)]
    assert set(stored_statements(db)) == expected_statements(reps)


async def test_leases_of_a_gone_process_with_a_fresh_heartbeat_are_reclaimed_at_once(
    tmp_path: Path,
) -> None:
    """A run that died a second ago (a full disk) still has a fresh heartbeat row; its pid
    is gone on this host, so its leases come back at once, and `status` does not list it
    as active (issue 20, points 6 and 7)."""
    reps = reports(3, seed=53)
    dois = list(reps)
    gone = await asyncio.create_subprocess_exec("true")
    await gone.wait()
    host = socket.gethostname()
    db = tmp_path / "c.sqlite"
    ui = quiet_ui()
    async with CitationSite(reps) as site:
        settings = fast_settings(site.base_url, db, lease_seconds=600.0)
        async with app.open_pipeline(settings) as p:
            await p.store.start_run("backfill", host, gone.pid)  # heartbeat: now
            await p.store.enqueue([NewJob(doi=d, url=f"{site.base_url}/reports/{d}") for d in dois])
            assert len(await p.store.claim(f"{host}:{gone.pid}", 2, 600)) == 2
            assert (await p.store.stats()).active_runs == ()
        summary = await asyncio.wait_for(run_backfill(settings, dois, ui), 20)
    assert summary.exit_code == 0, summary.render()
    assert "reclaimed 2 leases of a run whose process is gone" in ui_text(ui)
    assert set(stored_statements(db)) == expected_statements(reps)


async def test_the_wait_for_leases_of_an_earlier_run_is_named(tmp_path: Path) -> None:
    """Leases held by a process this host cannot check (another host) are waited for,
    and the wait says how many and until when; once they expire the run finishes."""
    reps = reports(3, seed=52)
    dois = list(reps)
    clock = OffsetClock()
    db = tmp_path / "c.sqlite"

    class Waiting(RunUI):
        def message(self, text: str) -> None:
            super().message(text)
            if text.startswith("waiting for"):
                clock.offset += 60.0  # a minute later the leases have expired

    ui = Waiting(err=io.StringIO())
    async with CitationSite(reps) as site:
        settings = fast_settings(site.base_url, db)
        async with app.open_pipeline(settings, clock=clock) as p:
            await p.store.enqueue([NewJob(doi=d, url=f"{site.base_url}/reports/{d}") for d in dois])
            await p.store.claim("another-host:4242", 2, 30)
        [(lease_until,)] = query(db, "select max(lease_until) from jobs")
        until = datetime.fromisoformat(lease_until).strftime("%H:%M:%S")
        summary = await run_backfill(settings, dois, ui, clock=clock)
    assert summary.exit_code == 0, summary.render()
    text = ui_text(ui)
    assert f"waiting for 2 leases of an earlier run to expire (until {until} UTC)" in text
    assert query(db, "select count(*) from jobs where state != 'done'") == [(0,)]


async def test_schedule_reads_its_cron_expression_in_the_timezone_setting(tmp_path: Path) -> None:
    """`0 3 * * *` with timezone America/New_York (UTC-5 in January): 08:00 UTC."""
    reps = reports(2, seed=26)
    clock = ManualClock(autojump=True)  # starts 2026-01-01 00:00 UTC
    db = tmp_path / "c.sqlite"
    stop = Stop()
    async with CitationSite(reps) as site:
        settings = fast_settings(
            site.base_url, db, schedule="0 3 * * *", timezone="America/New_York"
        )
        async with app.open_pipeline(settings, clock=clock) as p:
            await commands.schedule(
                p, None, stop=stop, ui=quiet_ui(), on_crawl=lambda _: stop.request()
            )
    [(started,)] = query(db, "select started_at from runs")
    assert started.startswith("2026-01-01T08:00:00")


async def test_an_empty_input_says_so(tmp_path: Path) -> None:
    ui = quiet_ui()
    async with CitationSite(reports(1, seed=27)) as site:
        summary = await run_backfill(
            fast_settings(site.base_url, tmp_path / "c.sqlite"), ["", "# only a comment\n"], ui
        )
    assert "the input holds no DOIs" in ui_text(ui)
    assert "note:       the input holds no DOIs" in summary.render()
    assert summary.exit_code == 0


async def test_worker_burst_follows_the_rule_and_a_long_running_worker_ends_at_0(
    tmp_path: Path,
) -> None:
    reps = reports(3, seed=28)
    db = tmp_path / "c.sqlite"
    async with CitationSite(reps) as site:
        settings = fast_settings(site.base_url, db)
        async with app.open_pipeline(settings) as p:
            urls = [*reps, "10.5555/missing"]
            await p.store.enqueue([NewJob(doi=d, url=f"{site.base_url}/reports/{d}") for d in urls])
            burst = await commands.worker(p, burst=True, ui=quiet_ui())
            stop = Stop()
            stop.request(15)  # SIGTERM: the normal end of a long-running worker
            long_running = await commands.worker(p, burst=False, stop=stop, ui=quiet_ui())
    assert burst.exit_code == 1 and dict(burst.counters.dead) == {"not found (404)": 1}
    assert long_running.exit_code == 0


async def test_a_stop_while_reading_the_input_ends_the_reading(tmp_path: Path) -> None:
    stop = Stop()

    def lines() -> Iterator[str]:
        for i in range(5000):
            if i == 1500:
                stop.request(2)
            yield f"10.5555/n{i}\n"

    db = tmp_path / "c.sqlite"
    async with app.open_pipeline(fast_settings("http://127.0.0.1:9", db)) as p:
        summary = await commands.backfill(p, lines(), stop=stop, ui=quiet_ui())
    assert summary.exit_code == 130
    assert summary.inputs.lines == 1500  # read up to the stop, not to the end
    assert query(db, "select count(*) from jobs where state = 'queued'") == [(1500,)]


async def test_a_small_input_in_a_large_store_is_judged_without_a_full_scan(
    tmp_path: Path,
) -> None:
    """The dead jobs of the input are always read (by DOI); counting every input job by
    state, a pass over all jobs, is skipped when the store is much larger than the input."""
    reps = reports(2, seed=29)
    db = tmp_path / "c.sqlite"
    async with CitationSite(reps) as site:
        settings = fast_settings(site.base_url, db)
        async with app.open_pipeline(settings) as p:
            others = [
                NewJob(doi=f"10.5555/other.{i}", url=f"{site.base_url}/x{i}") for i in range(40)
            ]
            await p.store.enqueue(others)
            for job in await p.store.claim("elsewhere:1", 40, 60):
                await p.store.fail(job, "an older input's trouble", None)
        summary = await run_backfill(settings, [*reps, "10.5555/missing"])
    assert summary.input_states == Counter()  # not counted: 40 other jobs, 3 DOIs
    assert dict(summary.input_dead) == {"not found (404)": 1}
    assert summary.exit_code == 1
    assert "input jobs: 1 dead job; the others not counted" in summary.render()


async def test_status_json_lists_the_active_runs_with_their_times(tmp_path: Path) -> None:
    """The image's healthcheck (`citepipe status --json`) while a worker runs: the run's
    times are ISO 8601 text, not a crash (which made every worker container unhealthy)."""
    db = tmp_path / "c.sqlite"
    async with app.open_pipeline(fast_settings("http://127.0.0.1:9", db)) as p:
        run_id = await p.register_run("worker")
        res = await run_cli("status", "--json", env=fast_env("http://127.0.0.1:9", db))
        await p.store.finish_run(run_id, {})
    assert res.code == 0, res.err[-2000:]
    [run] = json.loads(res.out)["active_runs"]
    assert run["kind"] == "worker" and run["id"] == run_id
    assert datetime.fromisoformat(run["started_at"]).utcoffset() is not None
