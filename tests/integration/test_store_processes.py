"""The store across real processes: SIGKILL at random moments never leaves a half-written
page or a lost job, and processes claiming from one store never share a job. SQLite: one
or two processes on a file; PostgreSQL: three processes at once on one database."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pipeline.models import NewJob
from pipeline.store import open_store

ROOT = Path(__file__).resolve().parents[2]
PAGES = 3  # pages per report
K = 5  # statements per page
AUTHORS = 2

# A crawler stand-in: enqueues reports, claims pages and completes them (K statements each,
# the next page as a follow-up), sometimes fails one for a retry or for good.
CRAWLER = textwrap.dedent(f"""
    import asyncio, sys
    from datetime import UTC, datetime, timedelta
    from pipeline.models import Completion, NewJob, Paper, ParseResult, Statement, Tally
    from pipeline.store import open_store

    PAGES, K = {PAGES}, {K}

    def result(doi, page):
        return ParseResult(
            paper=Paper(doi=doi, title="T " + doi, authors=("A1", "A2")),
            tallies=Tally(page, 2, 3),
            statements=tuple(
                Statement(citing_doi=f"10.8/{{doi}}-{{page}}-{{i}}", snippet=f"{{doi}} {{i}}",
                          section=f"p{{page}}", citing_title="citer")
                for i in range(K)),
            next_page_url=f"{{doi}}?page={{page + 1}}" if page < PAGES else None)

    async def handle(store, job):
        n = int(job.doi.rsplit("/", 1)[1])
        if n % 11 == 0 and job.page == 2:
            await store.fail(job, "http 404", None)
            return
        if n % 7 == 0 and job.attempts == 1:
            await store.fail(job, "http 503", datetime.now(UTC) + timedelta(seconds=0.05))
            return
        follow = (NewJob(job.doi, f"{{job.doi}}?page={{job.page + 1}}", job.page + 1),
                  ) if job.page < PAGES else ()
        await store.complete(Completion(job, result(job.doi, job.page), follow))

    async def main(path, start, drain):
        async with open_store(path, writer_batch=32) as store:
            n = start
            while True:
                if not drain:
                    await store.enqueue(NewJob(f"10.7/{{i}}", f"u{{i}}") for i in range(n, n + 8))
                    n += 8
                jobs = await store.claim("w", 24, lease_seconds=0.3)
                if not jobs:
                    if drain and await store.pending() == 0:
                        return
                    await asyncio.sleep(0.02)
                    continue
                await asyncio.gather(*(handle(store, j) for j in jobs))
                print("batch", flush=True)

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "drain"))
""")

CLAIMER = textwrap.dedent("""
    import asyncio, json, os, sys
    from pipeline.store import open_store

    async def main(path, name, go):
        got = []
        async with open_store(path) as store:
            print("ready", flush=True)
            while not os.path.exists(go):  # start together: all are open before any claims
                await asyncio.sleep(0.01)
            while jobs := await store.claim(name, 5, lease_seconds=600):
                got += [j.id for j in jobs]
                # a worker does work between claims; SQLite's busy handler is not fair,
                # and a claimer in a tight loop can starve the other on a loaded machine
                await asyncio.sleep(0.001)
        print(json.dumps(got))

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
""")


def spawn(script: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


Query = Callable[[str], list[tuple[Any, ...]]]


def sqlite_query(path: Path) -> Query:
    def run(sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(path, timeout=10) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]

    return run


def pg_query(url: str) -> Query:
    async def fetch(sql: str) -> list[tuple[Any, ...]]:
        conn: Any = await asyncpg.connect(url)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return lambda sql: asyncio.run(fetch(sql))


def check_sqlite_file(path: Path) -> None:
    with sqlite3.connect(path, timeout=10) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def check_invariants(query: Query) -> dict[str, int]:
    """Everything a crash must never break; returns the job counts by state. Plain SQL
    that both engines run (foreign keys are enforced by both)."""
    states = dict(query("SELECT state, count(*) FROM jobs GROUP BY state"))
    assert set(states) <= {"queued", "leased", "done", "failed", "dead"}
    jobs = {(d, p): s for d, p, s in query("SELECT doi, page, state FROM jobs")}
    per_page = {
        (d, int(sec[1:])): n
        for d, sec, n in query("SELECT cited_doi, section, count(*) FROM statements GROUP BY 1, 2")
    }
    for (doi, pg), state in jobs.items():
        # A page's rows are all there exactly when its job is done: one transaction.
        assert per_page.get((doi, pg), 0) == (K if state == "done" else 0), (doi, pg, state)
        if state == "done" and pg < PAGES:
            assert (doi, pg + 1) in jobs, f"follow-up of {doi} p{pg} lost"
    assert set(per_page) <= set(jobs)
    done_page_one = {d for (d, p), s in jobs.items() if p == 1 and s == "done"}
    authors = dict(query("SELECT doi, count(*) FROM authors GROUP BY doi"))
    assert authors == dict.fromkeys(done_page_one, AUTHORS)
    crawled = {r[0] for r in query("SELECT doi FROM papers WHERE last_crawled_at IS NOT NULL")}
    assert crawled == done_page_one
    tallies = {r[0] for r in query("SELECT doi FROM tallies")}
    assert tallies == done_page_one
    for table, key in [
        ("statements", "cited_doi, citing_doi, snippet"),
        ("papers", "doi"),
        ("tally_history", "doi"),
    ]:
        ((total, distinct),) = query(
            f"SELECT count(*), (SELECT count(*) FROM (SELECT DISTINCT {key} FROM {table}) AS d)"
            f" FROM {table}"
        )
        assert total == distinct, f"duplicate rows in {table}"
    dead_marked = {
        r[0] for r in query("SELECT doi FROM papers WHERE CAST(incomplete AS integer) = 1")
    }
    dead = {d for (d, p), s in jobs.items() if s == "dead"}
    assert dead_marked == dead & crawled
    return states


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    script = tmp_path / "crawler.py"
    script.write_text(CRAWLER)
    path = tmp_path / "crash.sqlite"
    rng = random.Random(20240501)
    kills = runs = 0
    done_before = 0
    while kills < 22:
        runs += 1
        assert runs < 80, "the crawler keeps exiting on its own"
        proc = spawn(script, str(path), str(runs * 10_000), "run")
        # Kill after a random number of batches, then a random moment into the next one:
        # progress, not wall time, decides when, so a slow machine is tested the same way.
        assert proc.stdout is not None
        for _ in range(rng.randint(1, 12)):
            if not proc.stdout.readline():
                break
        time.sleep(rng.uniform(0.0, 0.03))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, -signal.SIGKILL), err
        if path.exists():
            check_sqlite_file(path)
            states = check_invariants(sqlite_query(path))
            done_before = max(done_before, states.get("done", 0))
    assert done_before > 100, "too little work got done between kills to mean anything"
    proc = spawn(script, str(path), "0", "drain")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    check_sqlite_file(path)
    states = check_invariants(sqlite_query(path))
    assert set(states) <= {"done", "dead"}, states  # nothing lost: every job finished
    dead = {r[0] for r in sqlite_query(path)("SELECT DISTINCT doi FROM jobs WHERE state='dead'")}
    assert dead and all(int(d.rsplit("/", 1)[1]) % 11 == 0 for d in dead)


@pytest.mark.slow
def test_three_processes_sigkilled_on_postgres_lose_nothing(tmp_path: Path, pg_url: str) -> None:
    """Three crawlers on one PostgreSQL database at once; in each round one to three of
    them are SIGKILLed at random moments (after a random number of their own batches) and
    new ones start. Every round the invariants hold; at the end three drain the queue."""
    script = tmp_path / "crawler.py"
    script.write_text(CRAWLER)
    query = pg_query(pg_url)
    rng = random.Random(20240502)
    kills = 0
    done_before = 0
    for rnd in range(8):
        procs = [spawn(script, pg_url, str((rnd * 3 + i + 1) * 10_000), "run") for i in range(3)]
        for proc in rng.sample(procs, rng.randint(1, 3)):
            assert proc.stdout is not None
            for _ in range(rng.randint(1, 8)):
                if not proc.stdout.readline():
                    break
            time.sleep(rng.uniform(0.0, 0.03))
        for proc in procs:  # the ones not waited for die at whatever moment they are in
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            _, err = proc.communicate(timeout=60)
            assert proc.returncode in (0, -signal.SIGKILL), err
        states = check_invariants(query)
        done_before = max(done_before, states.get("done", 0))
    assert kills >= 20 and done_before > 100, (kills, done_before)
    drains = [spawn(script, pg_url, "0", "drain") for _ in range(3)]
    for proc in drains:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    states = check_invariants(query)
    assert set(states) <= {"done", "dead"}, states  # nothing lost: every job finished
    dead = {r[0] for r in query("SELECT DISTINCT doi FROM jobs WHERE state='dead'")}
    assert dead and all(int(d.rsplit("/", 1)[1]) % 11 == 0 for d in dead)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
async def test_processes_never_claim_the_same_job(
    tmp_path: Path, engine: str, request: pytest.FixtureRequest
) -> None:
    location = (
        str(tmp_path / "claim.sqlite") if engine == "sqlite" else request.getfixturevalue("pg_url")
    )
    jobs = 3000
    async with open_store(location) as store:
        await store.enqueue(NewJob(f"10.1/{i}", "u") for i in range(jobs))
    script = tmp_path / "claimer.py"
    script.write_text(CLAIMER)
    names = ("a", "b") if engine == "sqlite" else ("a", "b", "c", "d")
    go = tmp_path / "go"
    procs = [spawn(script, location, name, str(go)) for name in names]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline() == "ready\n"
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    outputs = [(out.splitlines()[-1], err) for out, err in outputs]
    assert [p.returncode for p in procs] == [0] * len(names), [err for _, err in outputs]
    claimed = [set(json.loads(out)) for out, _ in outputs]
    assert all(claimed), [len(c) for c in claimed]  # they started together
    assert sum(len(c) for c in claimed) == len(set().union(*claimed))  # no job twice
    assert set().union(*claimed) == set(range(1, jobs + 1))
