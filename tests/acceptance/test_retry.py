"""`citepipe retry`: dead jobs come back, at addresses rebuilt from the current base_url.

The issue's story: a backfill against a wrong `--base-url` leaves every job dead; a rerun
with the right one said "dead before: 11 (not retried)" and `jobs.url` kept the wrong
host. Now `retry` queues them again at the right addresses and the rerun finishes them.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from citesite.server import CitationSite
from pipeline import app, cli
from pipeline.models import NewJob, Requeued
from pipeline.ops import admin
from pipeline.runs import commands

from .conftest import (
    expected_statements,
    fast_env,
    fast_settings,
    query,
    quiet_ui,
    reports,
    run_cli,
    stored_statements,
    write_dois,
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("CITEPIPE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no config/citepipe.toml of the checkout
    yield
    structlog.reset_defaults()  # cli.main configured logging onto capsys's stream


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_retry_after_a_wrong_base_url_finishes_the_input(tmp_path: Path) -> None:
    reps = reports(4, seed=15)
    dois = sorted(reps)
    db = tmp_path / "s.sqlite"
    closed = f"http://127.0.0.1:{closed_port()}"
    async with app.open_pipeline(fast_settings(closed, db, max_attempts=1)) as p:
        unreachable = await commands.backfill(p, dois, ui=quiet_ui())
    # nothing listens there: the run stops at once and keeps the jobs queued (issue 25.8)
    assert unreachable.exit_code == 1 and unreachable.input_dead.total() == 0
    assert query(db, "select state, attempts, count(*) from jobs group by 1, 2") == [
        ("queued", 0, len(dois))
    ]
    db.unlink()
    # a wrong site that answers (no such reports there): the jobs die, `retry` recovers
    async with CitationSite({}) as elsewhere:
        wrong = elsewhere.base_url
        async with app.open_pipeline(fast_settings(wrong, db, max_attempts=1)) as p:
            first = await commands.backfill(p, dois, ui=quiet_ui())
    assert first.exit_code == 1 and first.input_dead.total() == len(dois)

    async with CitationSite(reps) as site:
        right = fast_settings(site.base_url, db)
        async with app.open_pipeline(right) as p:
            done = await admin.retry(p, reason="not found")
            assert done == Requeued(jobs=len(dois), reports=len(dois), kept=0)
            urls = {u for (u,) in query(db, "select url from jobs")}
            assert urls == {p.source.address(d) for d in dois}  # the right host now
            again = await commands.backfill(p, dois, ui=quiet_ui())
    assert again.exit_code == 0
    assert again.input_dead.total() == 0
    assert query(db, "select state, count(*) from jobs group by state") == [
        ("done", sum(site.pages(d) for d in dois))
    ]
    assert not [u for (u,) in query(db, "select url from jobs") if wrong in u]


async def test_later_pages_keep_their_path_on_the_new_site(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    old, new = "http://127.0.0.1:9", "http://127.0.0.1:10"
    async with app.open_pipeline(fast_settings(old, db)) as p:
        await p.store.enqueue(
            [
                NewJob("10.1000/a", f"{old}/reports/10.1000/a"),
                NewJob("10.1000/a", f"{old}/reports/slug-a?page=2", page=2),
                NewJob("10.1000/b", f"{old}/elsewhere?page=2", page=2),
            ]
        )
        for job in await p.store.claim("w", 10, 30):
            await p.store.fail(job, "http 500", None)
    async with app.open_pipeline(fast_settings(new, db)) as p:
        assert await admin.retry(p, dois=["10.1000/a", "10.1000/b"]) == Requeued(2, 1, 1)
    assert query(db, "select doi, page, state, url from jobs order by id") == [
        ("10.1000/a", 1, "queued", f"{new}/reports/10.1000/a"),
        ("10.1000/a", 2, "queued", f"{new}/reports/slug-a?page=2"),
        ("10.1000/b", 2, "dead", f"{old}/elsewhere?page=2"),  # no report path: kept
    ]


def dead_store(db: Path, base: str, dois: list[str]) -> None:
    async def make() -> None:
        async with app.open_pipeline(fast_settings(base, db)) as p:
            await p.store.enqueue([NewJob(d, f"{base}/reports/{d}") for d in dois])
            for job in await p.store.claim("w", 10, 30):
                reason = "not found (404)" if job.doi.endswith("b") else "connection error"
                await p.store.fail(job, reason, None)

    asyncio.run(make())


def test_retry_command_requeues_and_says_how_many(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.sqlite"
    dead_store(db, "http://127.0.0.1:9", ["10.1000/a", "10.1000/b", "10.1000/c"])
    argv = ["retry", "--db", str(db), "--base-url", "http://user:pw@127.0.0.1:8/"]
    assert cli.main([*argv, "--doi", "https://doi.org/10.1000/A", "--reason", "CONNECTION"]) == 0
    out = capsys.readouterr().out
    assert "requeued 1 dead job of 1 report at http://127.0.0.1:8/reports/" in out
    assert "citepipe worker --burst" in out
    assert cli.main([*argv, "--all"]) == 0
    assert "requeued 2 dead jobs of 2 reports" in capsys.readouterr().out
    assert cli.main([*argv, "--all"]) == 0
    assert "no dead jobs match" in capsys.readouterr().out
    assert query(db, "select url, attempts, state from jobs order by doi") == [
        (f"http://127.0.0.1:8/reports/10.1000/{x}", 0, "queued") for x in "abc"
    ]


@pytest.mark.parametrize(
    ("args", "word"),
    [
        ([], "--all"),
        (["--all", "--reason", "x"], "--all"),
        (["--doi", "not-a-doi"], "--doi"),
        (["--reason", " "], "--reason"),
    ],
)
def test_retry_needs_a_clear_choice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], word: str
) -> None:
    db = tmp_path / "s.sqlite"
    dead_store(db, "http://127.0.0.1:9", ["10.1000/a"])
    assert cli.main(["retry", "--db", str(db), *args]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and word in err
    assert query(db, "select state from jobs") == [("dead",)]


def test_retry_never_creates_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["retry", "--all", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert not (tmp_path / "none.sqlite").exists()


@pytest.mark.slow
async def test_retry_as_a_command_then_worker_burst(tmp_path: Path) -> None:
    """The real commands, as a user types them."""
    reps = reports(3, seed=16)
    db = tmp_path / "s.sqlite"
    dois = write_dois(tmp_path / "in.txt", sorted(reps))
    async with CitationSite({}) as elsewhere:  # a wrong site that answers: the jobs die
        env = fast_env(elsewhere.base_url, db, max_attempts=1)
        first = await run_cli("backfill", str(dois), env=env)
    assert first.code == 1
    async with CitationSite(reps) as site:
        env = fast_env(site.base_url, db)
        retried = await run_cli("retry", "--all", env=env)
        assert retried.code == 0 and "requeued 3 dead jobs" in retried.out
        worked = await run_cli("worker", "--burst", env=env)
    assert worked.code == 0
    assert query(db, "select distinct state from jobs") == [("done",)]


async def test_a_rerun_at_the_right_base_url_finishes_jobs_an_unreachable_site_left(
    tmp_path: Path,
) -> None:
    """A site that could not be reached leaves the jobs queued at its addresses; the next
    run, at the right `base_url`, fetches them on the current site (not dead as off-site)."""
    reps = reports(3, seed=16)
    db = tmp_path / "s.sqlite"
    closed = f"http://127.0.0.1:{closed_port()}"
    dois = write_dois(tmp_path / "in.txt", sorted(reps))
    first = await run_cli("backfill", str(dois), env=fast_env(closed, db, max_attempts=1))
    assert first.code == 1
    assert query(db, "select distinct state from jobs") == [("queued",)]
    async with CitationSite(reps) as site:
        worked = await run_cli("worker", "--burst", env=fast_env(site.base_url, db))
    assert worked.code == 0, worked.err[-1500:]
    assert query(db, "select distinct state from jobs") == [("done",)]
    assert set(stored_statements(db)) == expected_statements(reps)
