"""What only the PostgreSQL store has (the shared rules are tests/integration/
test_store_contract.py): migrations under an advisory lock, native types, the partial index
the claim walks, the queue table's storage options, the database clock for bookings, and
`copy-store` between SQLite and PostgreSQL. Each test has its own fresh schema."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pipeline.errors import ConfigError, StoreError
from pipeline.models import Completion, Facet, NewJob, Paper, ParseResult, Statement, Tally
from pipeline.store import PostgresStore, SQLiteStore, Store
from pipeline.store.base import COPY_TABLES
from pipeline.store.copy import TABLE_ORDER, copy_store
from pipeline.store.postgres_errors import db_errors as _db_errors
from pipeline.store.postgres_sql import SET_WRITES, merge_statements, positional, statements
from pipeline.store.queries import migrations, queries
from pipeline.store.tables import COLUMNS, KEYS

ROOT = Path(__file__).resolve().parents[2]


async def fetch(url: str, sql: str, *args: Any) -> list[Any]:
    conn: Any = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
        asyncpg.exceptions.ProtocolError("unexpected message"),
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.InterfaceError("cannot perform operation: connection is closed"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_driver_error_family_is_a_store_error(error: Exception) -> None:
    """What asyncpg raises while the server restarts is a store error (the job is tried
    again), never a bug that kills the job (issue 20, point 3)."""
    with pytest.raises(StoreError, match="complete: "), _db_errors("complete"):
        raise error


def test_named_parameters_become_positional() -> None:
    stmt = positional(
        "-- a comment with :not_a_param\n"
        "SELECT :a, :b::text, coalesce(:a::timestamptz, now()), 'x:y', '12:30'\n"
    )
    assert stmt.names == ("a", "b")
    assert stmt.sql == "SELECT $1, $2::text, coalesce($1::timestamptz, now()), 'x:y', '12:30'"
    assert stmt.args({"b": 2, "a": 1, "unused": 3}) == (1, 2)


def test_batch_wide_statement_rows_merge_as_if_applied_one_by_one() -> None:
    t1, t2, t3 = (datetime(2024, 1, d, tzinfo=UTC) for d in (1, 2, 3))
    row = {"cited_doi": "a", "citing_doi": "b", "snippet": "s", "snippet_hash": "h"}
    merged = merge_statements(
        [
            {**row, "section": "Intro", "type": None, "confidence": 0.5, "now": t1},
            {**row, "citing_doi": "a0", "section": None, "type": None, "confidence": None,
             "now": t2},
            {**row, "section": None, "type": "supporting", "confidence": None, "now": t3},
        ]
    )  # fmt: skip
    assert merged["citing_doi"] == ["a0", "b"]  # key order
    assert merged["section"][1] == "Intro" and merged["type"][1] == "supporting"
    assert merged["confidence"][1] == 0.5
    assert (merged["first_seen_at"][1], merged["last_seen_at"][1]) == (t1, t3)


def test_both_dialects_name_their_queries_alike() -> None:
    """Same block names where the meaning is the same; the differences are deliberate."""
    pg, lite = set(queries("postgres")), set(queries("sqlite"))
    batch_wide = {"upsert_partial_paper", "upsert_statement"}  # PostgreSQL: one statement
    assert pg - lite == {"sync_ids", "lock_writes", "unlock_writes"} | {
        f"{n}_set" for n in batch_wide
    }
    # SQLite books in 3 steps; its FTS5 index is fed by the writer (PostgreSQL: a GIN index)
    search = {"search_bulk_begin", "statements_top", "search_index_new", "search_bulk_end"}
    assert lite - pg == {"host_ensure", "host_state"} | batch_wide | search


def test_every_postgres_query_is_used() -> None:
    store_dir = ROOT / "pipeline" / "store"
    # write-plan steps are named in rules.py (`WritePlan.steps`), run by name
    source = "".join(
        (store_dir / f).read_text()
        for f in ("postgres.py", "postgres_sql.py", "sql.py", "sql_changes.py", "rules.py")
    )
    generated = {f"export_{t}" for t in COLUMNS} | {f"export_{t}_after" for t in COLUMNS}
    # copy-store's tables (not the citations view: it is derived)
    generated |= {f"{kind}_{t}" for t in COPY_TABLES for kind in ("last", "import")}
    generated |= {f"{n}_set" for n in SET_WRITES}
    unused = [n for n in statements() if f'"{n}"' not in source and n not in generated]
    assert unused == []
    assert generated <= set(statements())


async def test_schema_native_types_and_queue_storage(pg_url: str) -> None:
    async with PostgresStore(pg_url):
        pass
    types = {
        (r["table_name"], r["column_name"]): r["data_type"]
        for r in await fetch(
            pg_url,
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema()",
        )
    }
    for table, columns in COLUMNS.items():
        assert {c for t, c in types if t == table} == set(columns), table
    assert types[("jobs", "not_before")] == "timestamp with time zone"
    assert types[("papers", "incomplete")] == "boolean"
    assert types[("papers", "refresh_interval")] == "double precision"
    assert types[("statements", "confidence")] == "double precision"
    assert types[("hosts", "next_at")] == "timestamp with time zone"
    (opts,) = await fetch(pg_url, "SELECT reloptions FROM pg_class WHERE oid = 'jobs'::regclass")
    assert "fillfactor=70" in opts[0]
    assert "autovacuum_vacuum_scale_factor=0.02" in opts[0]
    (index,) = await fetch(
        pg_url,
        "SELECT indexdef FROM pg_indexes "
        "WHERE indexname = 'jobs_due' AND schemaname = current_schema()",
    )
    assert "WHERE (state = ANY" in index[0]  # partial: only waiting jobs


async def test_claim_walks_the_partial_index(pg_url: str) -> None:
    async with PostgresStore(pg_url) as store:
        await store.enqueue(NewJob(f"10.1/{i}", "u") for i in range(20_000))
        done = await store.claim("w", 15_000, 60)
        assert len(done) == 15_000
    stmt = statements()["claim"]
    conn: Any = await asyncpg.connect(pg_url)
    try:
        await conn.execute("ANALYZE jobs")
        now = datetime.now(UTC)
        args = stmt.args({"now": now, "limit": 10, "lease_until": now, "worker": "w"})
        async with conn.transaction():
            plan = "\n".join(
                r[0] for r in await conn.fetch("EXPLAIN " + stmt.sql, *args)
            )  # EXPLAIN without ANALYZE claims nothing
    finally:
        await conn.close()
    assert "jobs_due" in plan, plan
    assert "Seq Scan on jobs" not in plan, plan


async def test_processes_starting_at_once_migrate_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url) for _ in range(5)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        versions = await fetch(pg_url, "SELECT version, name FROM schema_version ORDER BY 1")
        expected = [(m.version, m.name) for m in migrations("sqlite")]  # the same numbers
        assert (
            [tuple(v) for v in versions]
            == expected
            == [(m.version, m.name) for m in migrations("postgres")]
        )
        assert len(expected) >= 3
        await stores[0].enqueue([NewJob("10.1/a", "u")])
        assert [await s.pending() for s in stores] == [1] * 5
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_a_database_without_a_store_is_refused_for_reading(pg_url: str) -> None:
    with pytest.raises(StoreError, match="no store in"):
        await PostgresStore(pg_url, create=False).open()
    assert await fetch(pg_url, "SELECT to_regclass('schema_version')") == [(None,)]
    async with PostgresStore(pg_url):
        pass
    async with PostgresStore(pg_url, create=False) as store:
        assert await store.pending() == 0


async def test_a_database_that_cannot_be_reached_is_a_store_error(pg_url: str) -> None:
    bad = pg_url.replace("postgresql://root@", "postgresql://root:hunter2@").rsplit("/", 1)[0]
    with pytest.raises(StoreError, match="cannot open the PostgreSQL store") as err:
        await PostgresStore(bad + "/no_such_database_here").open()
    assert "hunter2" not in str(err.value)


async def test_bookings_take_the_database_clock(pg_url: str) -> None:
    """With no injected clock, the row holds the database's times and the caller gets the
    start in its own clock: a process whose clock is an hour off still waits `delay`."""
    async with PostgresStore(pg_url) as store:
        skew = timedelta(hours=1)
        store._clock = lambda: datetime.now(UTC) + skew  # this machine's clock is off
        first = await store.book_request("http://h:80", 30.0)
        second = await store.book_request("http://h:80", 30.0)
        (row,) = await fetch(pg_url, "SELECT next_at, now() AS db FROM hosts")
    assert abs(first - (datetime.now(UTC) + skew)) < timedelta(seconds=5)  # now, locally
    assert timedelta(seconds=29) < second - first < timedelta(seconds=31)
    assert abs(row["next_at"] - row["db"] - timedelta(seconds=60)) < timedelta(seconds=5)


# ---------------------------------------------------------------- copy-store


def _result(doi: str, n: int) -> ParseResult:
    return ParseResult(
        paper=Paper(doi=doi, title=f"T {doi}", year=2020, authors=("A", "B")),
        tallies=Tally(supporting=n, mentioning=2),
        facets=(Facet("section", "Intro", n),),
        statements=tuple(
            Statement(
                citing_doi=f"10.9/{n}-{i}",
                snippet=f"s {doi} {i}",
                citing_title="C",
                type="supporting",
                confidence=0.5,
            )
            for i in range(3)
        ),
    )


async def _crawl_some(store: Store, n: int) -> None:
    await store.enqueue(NewJob(f"10.5/{i:03d}", f"u{i}") for i in range(n))
    jobs = await store.claim("w", n // 2, 60)
    for job in jobs:
        await store.complete(Completion(job, _result(job.doi, job.id)))
    await store.fail((await store.claim("w", 1, 60))[0], "http 404", None)


async def _dump(store: Store) -> dict[str, list[dict[str, Any]]]:
    return {t: [r async for r in store.export(t)] for t in TABLE_ORDER}


async def test_copy_store_sqlite_to_postgres_and_back(tmp_path: Path, pg_url: str) -> None:
    async with SQLiteStore(tmp_path / "a.sqlite") as lite:
        await _crawl_some(lite, 40)
        original = await _dump(lite)
        async with PostgresStore(pg_url) as pg:
            report = await copy_store(lite, pg, chunk=7)
            assert report.ok and report.copied == sum(len(v) for v in original.values())
            assert await _dump(pg) == original  # the same export from either engine
            async with SQLiteStore(tmp_path / "b.sqlite") as back:
                await copy_store(pg, back)
                assert await _dump(back) == original
            # the copy is a working store: new ids go past the copied ones
            await pg.enqueue([NewJob("10.5/new", "u")])
            ids = [r["id"] async for r in pg.export("jobs")]
            assert ids[-1] == max(r["id"] for r in original["jobs"]) + 1


async def test_copy_store_resumes_and_checks_counts(tmp_path: Path, pg_url: str) -> None:
    async with SQLiteStore(tmp_path / "a.sqlite") as lite, PostgresStore(pg_url) as pg:
        await _crawl_some(lite, 30)
        original = await _dump(lite)
        # A copy that stopped half way: papers complete, part of statements, no jobs.
        await pg.import_rows("papers", original["papers"])
        await pg.import_rows("statements", original["statements"][:20])
        report = await copy_store(lite, pg, chunk=5)
        by_table = {t.table: t for t in report.tables}
        assert by_table["papers"].copied == 0 and by_table["papers"].resumed
        assert by_table["statements"].copied == len(original["statements"]) - 20
        assert await _dump(pg) == original
        # A target holding rows the source lacks is refused before anything is written,
        # naming the table and the row.
        await lite.enqueue([NewJob("10.5/zzz", "u")])
        await pg.enqueue([NewJob("10.5/only-in-target", "u"), NewJob("10.5/other", "u")])
        before = await _dump(pg)
        with pytest.raises(ConfigError, match=r"not a copy of this source \(jobs row \d+"):
            await copy_store(lite, pg)
        assert await _dump(pg) == before


async def test_keys_sort_the_same_on_both_engines(tmp_path: Path, pg_url: str) -> None:
    """Text keys are COLLATE "C" (bytes, as SQLite): export order and resume agree."""
    dois = ["10.1/a", "10.1/B", "10.1/_x", "10.1/é", "10.1/a-b", "10.1/ab", "10.1/Z"]
    exported = []
    for store in (SQLiteStore(tmp_path / "k.sqlite"), PostgresStore(pg_url)):
        async with store:
            for doi in dois:
                await store.import_rows(
                    "papers",
                    [
                        dict.fromkeys(COLUMNS["papers"])
                        | {"doi": doi, "first_seen_at": "2024-05-01T12:00:00.000000Z"}
                        | {"incomplete": 0}
                    ],
                )
            exported.append([r["doi"] async for r in store.export("papers")])
    assert exported[0] == exported[1] == sorted(dois, key=lambda d: d.encode())
    assert KEYS["papers"] == ("doi",)


async def test_a_failed_batch_gives_the_writers_lock_back(pg_url: str) -> None:
    """Completion batches of all processes take one advisory lock; a batch that breaks a
    CHECK rolls back, says why, and leaves the lock free for everybody else."""
    bad = ParseResult(
        paper=Paper(doi="10.1/bad", title="t"),
        tallies=Tally(1),
        statements=(Statement(citing_doi="10.9/c", snippet="s", confidence=1.5),),
    )
    async with PostgresStore(pg_url, pool_max=2) as one, PostgresStore(pg_url) as other:
        await one.enqueue([NewJob("10.1/bad", "u"), NewJob("10.1/good", "u")])
        jobs = {j.doi: j for j in await one.claim("w", 2, 60)}
        with pytest.raises(StoreError, match="check constraint"):
            await one.complete(Completion(jobs["10.1/bad"], bad))
        good = Completion(jobs["10.1/good"], _result("10.1/good", 1))
        await asyncio.wait_for(other.complete(good), 10)  # not stuck behind a held lock
        await asyncio.wait_for(one.complete(good), 10)  # nor in the failed one's own pool
        held = await fetch(  # this test's database only: other runs may share the server
            pg_url,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        assert held == [(0,)]
