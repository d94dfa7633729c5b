"""`--processes N`: one command, N worker processes on one store, one summary and one exit
code, politeness shared (read from the local site's own request log)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from citesite.server import CitationSite
from pipeline.cli import main as citepipe

from .conftest import (
    crawl_input,
    expected_statements,
    fast_env,
    query,
    reports,
    run_cli,
    shared_env,
    stored_statements,
    summary_of,
    write_dois,
)

DELAY = 0.02  # politeness on: both processes must keep it together
IN_FLIGHT = 4  # pages one process works at once (`concurrency`)


@pytest.mark.slow
async def test_backfill_with_two_processes_stores_every_page_once(tmp_path: Path) -> None:
    reps, dois, db = crawl_input(tmp_path, 60, seed=21)
    # The site answers no report until more requests have arrived than one process sends
    # at once (its clients wait 60 s, longer than any start-up): the helper has work in
    # flight however late it starts (no race against its start-up).
    async with CitationSite(reps, hold_until_arrived=IN_FLIGHT + 1) as site:
        env = shared_env(
            site.base_url,
            db,
            DELAY,
            concurrency=IN_FLIGHT,
            progress_interval=0.3,
            timeout=60,  # the held requests wait for the helper's start-up
        )
        result = await run_cli("backfill", str(dois), "--processes", "2", env=env, timeout=240)
        log = [r for r in site.requests if r.path_qs.startswith("/reports/")]
    assert result.code == 0, result.err[-3000:]
    summary = summary_of(result.out)
    done = query(db, "select count(*) from jobs where state = 'done'")[0][0]
    assert query(db, "select count(*) from jobs where state <> 'done'")[0][0] == 0
    assert summary["pages"] == done  # one summary counts the pages of both processes
    incomplete = query(db, "select count(*) from papers where incomplete = 1")[0][0]
    assert incomplete > 0  # the data set has short reports: both processes meet some
    this_run = summary["reports_incomplete_this_run"]
    assert isinstance(this_run, dict) and sum(this_run.values()) == incomplete  # all counted
    assert sorted(stored_statements(db), key=repr) == sorted(expected_statements(reps), key=repr)
    share = re.search(r"2 worker processes: ([0-9,]+) \+ ([0-9,]+) pages", result.out)
    assert share is not None, result.out
    own, helper = (int(x.replace(",", "")) for x in share.groups())
    assert own > 0 and helper > 0 and own + helper == done  # both worked, no page twice
    assert len([r for r in log if r.status == 200]) == done  # every page fetched once
    progress = [
        json.loads(line)
        for line in result.err.splitlines()
        if line.startswith("{") and '"progress"' in line
    ]
    assert progress and all(0 <= p["pages"] <= done for p in progress)
    # a fetch that follows a redirect is one booking; the held requests are answered
    # together, so the spacing is read from the last of them on
    times = sorted(r.time for r in log)[IN_FLIGHT:]
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate <= (1 / DELAY) * 1.05, rate  # both processes together keep the spacing


def test_processes_auto_and_bad_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dois = write_dois(tmp_path / "dois.txt", ["10.1234/x"])
    db = str(tmp_path / "s.sqlite")
    assert citepipe(["backfill", str(dois), "--db", db, "--processes", "many"]) == 2
    assert "processes" in capsys.readouterr().err
    assert citepipe(["backfill", str(dois), "--db", db, "--processes", "-1"]) == 2
    assert "processes: must be at least 0, got -1" in capsys.readouterr().err
    assert not Path(db).exists()  # refused before any store was made


def is_helper(proc: object) -> bool:
    """A worker process, not multiprocessing's own resource tracker."""
    import psutil

    assert isinstance(proc, psutil.Process)
    try:
        return "resource_tracker" not in " ".join(proc.cmdline())
    except psutil.Error:
        return False


@pytest.mark.slow
async def test_a_stop_ends_every_process_and_leaves_no_lease(tmp_path: Path) -> None:
    import asyncio
    import signal

    import psutil

    from .conftest import start_cli

    reps, dois, db = crawl_input(tmp_path, 40, seed=22)
    async with CitationSite(reps) as site:
        env = shared_env(site.base_url, db, 0.1, concurrency=2)
        proc = await start_cli("backfill", str(dois), "--processes", "2", env=env)
        helpers: list[psutil.Process] = []
        for _ in range(300):  # the helper is up and both have fetched pages
            await asyncio.sleep(0.05)
            helpers = [p for p in psutil.Process(proc.pid).children() if is_helper(p)]
            if helpers and len(site.requests) >= 6:
                break
        assert helpers, "no helper process was started"
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 143, err.decode()[-2000:]
    assert "stopped by signal" in out.decode()
    for helper in helpers:  # the helpers stopped with the command
        assert not helper.is_running() or helper.status() == psutil.STATUS_ZOMBIE
    assert query(db, "select count(*) from jobs where state = 'leased'")[0][0] == 0
    assert query(db, "select count(*) from jobs where state = 'queued'")[0][0] > 0


@pytest.mark.slow
async def test_a_crawl_budget_ends_every_process(tmp_path: Path) -> None:
    reps, dois, db = crawl_input(tmp_path, 40, seed=23)
    async with CitationSite(reps) as site:
        env = shared_env(site.base_url, db, 0.1, concurrency=2)
        result = await run_cli(
            "crawl", "--seeds", str(dois), "--processes", "2", "--max-duration", "2s", env=env
        )
    assert result.code == 3, result.err[-3000:]  # budget spent, work left queued
    assert "time budget spent" in result.out
    leased = query(db, "select id, worker from jobs where state = 'leased'")
    assert leased == [], (leased, result.err[-6000:])
    done = query(db, "select count(*) from jobs where state = 'done'")[0][0]
    assert done > 0 and summary_of(result.out)["pages"] == done


@pytest.mark.slow
async def test_a_long_running_worker_with_two_processes_ends_at_sigterm(tmp_path: Path) -> None:
    import asyncio
    import signal

    import psutil

    from pipeline.models import NewJob
    from pipeline.normalise import report_address
    from pipeline.store.sqlite import SQLiteStore

    from .conftest import start_cli

    reps = reports(20, seed=24)
    db = tmp_path / "store.sqlite"
    async with CitationSite(reps) as site:
        async with SQLiteStore(db) as store:
            await store.enqueue(NewJob(d, report_address(site.base_url, d)) for d in reps)
        env = fast_env(site.base_url, db, concurrency=2, claim_batch=2)
        proc = await start_cli("worker", "--processes", "2", env=env)
        helpers: list[psutil.Process] = []
        for _ in range(600):  # until the queue is worked through
            await asyncio.sleep(0.05)
            helpers = helpers or [p for p in psutil.Process(proc.pid).children() if is_helper(p)]
            left = query(db, "select count(*) from jobs where state <> 'done'")[0][0]
            if helpers and left == 0:
                break
        assert helpers and left == 0
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()[-2000:]  # a worker's normal end
    for helper in helpers:
        assert not helper.is_running() or helper.status() == psutil.STATUS_ZOMBIE


async def test_more_processes_than_cores_are_capped_with_a_message(tmp_path: Path) -> None:
    """`--processes 200` on a small machine used to start 199 helpers."""
    from pipeline.config import cpu_cores

    reps, dois, db = crawl_input(tmp_path, 3, seed=24)
    async with CitationSite(reps) as site:
        env = fast_env(site.base_url, db)
        result = await run_cli("backfill", str(dois), "--processes", "200", env=env, timeout=120)
    assert result.code == 0, result.err[-3000:]
    cores = cpu_cores()
    assert f"processes: 200 asked, but this machine gives citepipe {cores} CPU core" in result.err
    started = [json.loads(x) for x in result.err.splitlines() if "worker processes started" in x]
    assert [x["helpers"] for x in started] == ([cores - 1] if cores > 1 else [])


async def test_no_helpers_are_started_for_a_drained_queue(tmp_path: Path) -> None:
    reps, dois, db = crawl_input(tmp_path, 3, seed=25)
    async with CitationSite(reps) as site:
        env = fast_env(site.base_url, db)
        assert (await run_cli("backfill", str(dois), env=env)).code == 0
        again = await run_cli("backfill", str(dois), "--processes", "2", env=env)
    assert again.code == 0, again.err[-3000:]
    assert "worker processes started" not in again.err
    assert "worker processes:" not in again.out  # no share note: one process worked
