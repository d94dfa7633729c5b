"""The real `citepipe` command on PostgreSQL (a fresh schema per test, tests/conftest.py):
three backfill processes at once, some SIGKILLed and restarted, end exactly equal to the
data set; status, export and copy-store work on a PostgreSQL URL; three processes together
keep one host's request delay through the `hosts` table."""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from citesite.server import CitationSite
from pipeline.store import open_store

from .conftest import expected_statements, fast_env, reports, run_cli, start_cli, write_dois

# Every user-visible column but times (a crawl at another moment has other times).
_TIMELESS = {
    "papers": ("doi", "title", "year", "publication_date", "journal", "abstract",
               "abstract_truncated", "report_url", "incomplete"),
    "authors": ("doi", "position", "name"),
    "tallies": ("doi", "supporting", "mentioning", "contrasting", "citing_publications",
                "citation_statements", "references_count"),
    "facets": ("doi", "facet", "label", "count"),
    "statements": ("cited_doi", "citing_doi", "snippet", "section", "type", "confidence"),
    "jobs": ("doi", "page", "state"),
}  # fmt: skip


async def snapshot(location: str) -> dict[str, list[tuple[Any, ...]]]:
    """The store's rows through `export`: the same shape from either engine."""
    store = open_store(location, create=False)
    async with store:
        out: dict[str, list[tuple[Any, ...]]] = {}
        for table, cols in _TIMELESS.items():
            rows = [tuple(r[c] for c in cols) async for r in store.export(table)]
            out[table] = sorted(rows, key=repr)
        return out


async def pg_count(url: str, sql: str) -> int:
    conn: Any = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval(sql))
    except asyncpg.UndefinedTableError:
        return 0  # the schema is not made yet
    finally:
        await conn.close()


async def wait_for_done(url: str, at_least: int, timeout: float = 60) -> None:
    for _ in range(int(timeout * 20)):
        if await pg_count(url, "select count(*) from jobs where state = 'done'") >= at_least:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the backfill made no progress")


@pytest.mark.slow
async def test_three_backfills_killed_and_restarted_end_equal_to_the_data_set(
    tmp_path: Path, pg_database_url: str
) -> None:
    """The issue's "done when": three processes backfill one input into a fresh database;
    some are SIGKILLed at random moments and restarted; the end is exactly the data set,
    nothing lost, nothing twice, and equal to a clean single run into SQLite."""
    reps = reports(60, seed=21)
    rng = random.Random(9)
    async with CitationSite(reps, faults="slow=0.3,delay=0.1,seed=4") as site:
        inp = write_dois(tmp_path / "in.txt", list(reps))
        clean_db = tmp_path / "clean.sqlite"
        clean = await run_cli("backfill", str(inp), env=fast_env(site.base_url, clean_db))
        assert clean.code == 0, clean.err[-2000:]
        env = fast_env(site.base_url, pg_database_url, concurrency=4, per_host_concurrency=12)  # type: ignore[arg-type]
        first = len(site.requests)  # the clean run's requests are not counted
        procs = [await start_cli("backfill", str(inp), env=env) for _ in range(3)]
        kills = 0
        for at_least in (5, 15, 30, 45):  # kill one or two at each stage, restart them
            await wait_for_done(pg_database_url, at_least)
            for i in rng.sample(range(3), rng.randint(1, 2)):
                if procs[i].returncode is None:
                    procs[i].send_signal(signal.SIGKILL)
                    await procs[i].wait()
                    kills += 1
                procs[i] = await start_cli("backfill", str(inp), env=env)
        outs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 240)
        codes = [p.returncode for p in procs]
        fetched = Counter(
            r.path_qs for r in site.requests[first:] if r.path_qs.startswith("/reports/")
        )
    assert kills >= 4
    assert codes == [0, 0, 0], [err.decode()[-1500:] for _, err in outs]
    pg, lite = await snapshot(pg_database_url), await snapshot(str(clean_db))
    assert pg == lite  # every table, row for row
    stored = pg["statements"]
    assert len(stored) == len(set(stored)) and set(stored) == expected_statements(reps)
    assert {state for _, _, state in pg["jobs"]} == {"done"}
    print(
        f"3 processes on PostgreSQL, {kills} SIGKILLs: {sum(fetched.values())} page fetches "
        f"for {len(pg['jobs'])} pages (pages fetched more than once, after a kill or a "
        f"fault: {sum(1 for n in fetched.values() if n > 1)})"
    )


async def test_status_export_and_copy_store_on_a_postgresql_url(
    tmp_path: Path, pg_url: str
) -> None:
    reps = reports(5, seed=3)
    async with CitationSite(reps) as site:
        inp = write_dois(tmp_path / "in.txt", [*reps, "10.5555/missing"])
        lite = tmp_path / "c.sqlite"
        env_pg = fast_env(site.base_url, pg_url)  # type: ignore[arg-type]
        before = await run_cli("status", env=env_pg)
        assert before.code == 2 and "no store in" in before.err  # it created nothing
        assert (
            await pg_count(
                pg_url, "select count(*) from pg_tables where schemaname = current_schema()"
            )
            == 0
        )
        done = await run_cli("backfill", str(inp), env=fast_env(site.base_url, lite))
        assert done.code == 1  # the missing DOI is dead
    copied = await run_cli("copy-store", str(lite), pg_url, "--chunk", "3", env=env_pg)
    assert copied.code == 0, copied.err[-2000:]
    assert "every table's count matches" in copied.out
    again = await run_cli("copy-store", str(lite), pg_url, env=env_pg)  # resumes: nothing new
    assert again.code == 0 and "copied 0 rows" in again.out
    status = json.loads((await run_cli("status", "--json", env=env_pg)).out)
    assert status["jobs_by_state"]["dead"] == 1
    assert status["rows_by_table"]["statements"] == sum(len(r.statements) for r in reps.values())
    exported = {}
    for name, env in (("pg", env_pg), ("sqlite", fast_env("http://unused", lite))):
        res = await run_cli("export", "--table", "statements", "--format", "jsonl", env=env)
        assert res.code == 0, res.err
        exported[name] = res.out
    assert exported["pg"] == exported["sqlite"] and exported["pg"].count("\n") > 5
    assert await snapshot(pg_url) == await snapshot(str(lite))
    wrong = await run_cli("copy-store", str(tmp_path / "nothing.sqlite"), pg_url, env=env_pg)
    assert wrong.code == 2 and "no store at" in wrong.err
    mysql = await run_cli("copy-store", str(lite), "mysql://h/db", env=env_pg)
    assert mysql.code == 2 and "unknown store URL scheme" in mysql.err
    later = await pg_count(pg_url, "select count(*) from jobs where state='done' and page > 1")
    kept = await pg_count(pg_url, "select count(*) from jobs") - later
    pruned = await run_cli("prune", "--done-older-than", "0", env=env_pg)
    assert pruned.code == 0 and f"deleted {later} done job" in pruned.out, pruned.err
    assert later > 0 and await pg_count(pg_url, "select count(*) from jobs") == kept


DELAY = 0.2


@pytest.mark.slow
async def test_three_processes_keep_the_request_delay_together(tmp_path: Path, pg_url: str) -> None:
    """Shared politeness on PostgreSQL: 3 processes at request_delay 0.2 s make at most
    5 requests/s together (+5 %), measured from the site's own request log."""
    reps = reports(16, seed=13)
    dois = write_dois(tmp_path / "dois.txt", list(reps))
    async with CitationSite(reps) as site:
        env = fast_env(
            site.base_url,
            pg_url,  # type: ignore[arg-type]
            request_delay=DELAY,
            per_host_concurrency=2,
            concurrency=2,
            claim_batch=2,
            respect_robots="true",
            lease_seconds=30,
        )
        results = await asyncio.gather(
            *(run_cli("backfill", str(dois), env=env, timeout=240) for _ in range(3))
        )
        log = [r for r in site.requests if r.path_qs.startswith("/reports/")]
    assert [r.code for r in results] == [0, 0, 0], [r.err[-1500:] for r in results]
    pages = [
        json.loads(next(x for x in r.out.splitlines() if x.startswith("citepipe-summary "))[17:])[
            "pages"
        ]
        for r in results
    ]
    assert sum(1 for p in pages if p > 0) >= 2, pages  # they shared the work
    times = sorted(r.time for r in log)
    assert len(times) >= 30
    gaps = [b - a for a, b in pairwise(times)]
    rate = (len(times) - 1) / (times[-1] - times[0])
    print(
        f"shared politeness on PostgreSQL: {len(times)} requests by 3 processes "
        f"(pages {pages}), {rate:.3f} requests/s at request_delay {DELAY}; "
        f"gaps min {min(gaps):.3f} s, median {sorted(gaps)[len(gaps) // 2]:.3f} s"
    )
    assert rate <= (1 / DELAY) * 1.05, rate
    assert min(gaps) >= DELAY / 2, min(gaps)
