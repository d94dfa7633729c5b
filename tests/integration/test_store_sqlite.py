"""What only the SQLite store has: the file's schema and migrations, pragmas, the claim's
query plan, the batching writer and its fallback, the factory, error translation."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import subprocess
import sys
import threading
from itertools import pairwise
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.errors import ConfigError, StoreError
from pipeline.models import Completion, Job, NewJob, Paper, ParseResult, Statement, Tally
from pipeline.store import MemoryStore, PostgresStore, SQLiteStore, open_store
from pipeline.store.base import COPY_TABLES
from pipeline.store.queries import (
    COMMON,
    Migration,
    migrations,
    overlay,
    parse_migration,
    parse_queries,
    plan_migrations,
    queries,
)
from pipeline.store.sqlite_file import Connection, migrate
from pipeline.store.sqlite_file import is_lock_error as _is_lock_error
from pipeline.store.tables import COLUMNS, KEYS

# The public interface of store.md: these names must exist, whatever else is added.
PUBLIC = {
    "papers": {
        "doi",
        "title",
        "year",
        "publication_date",
        "journal",
        "abstract",
        "abstract_truncated",
        "report_url",
        "first_seen_at",
        "last_crawled_at",
        "retracted",
        "volume",
        "issue",
        "pages",
    },
    "authors": {"doi", "position", "name"},
    "tallies": {
        "doi",
        "supporting",
        "mentioning",
        "contrasting",
        "citing_publications",
        "citation_statements",
        "references_count",
        "observed_at",
        "source",
        "api_statements",
    },
    "notices": {
        "doi",
        "status",
        "date",
        "notice_doi",
        "url",
        "first_seen_at",
        "last_seen_at",
    },
    "tally_history": {
        "doi",
        "supporting",
        "mentioning",
        "contrasting",
        "citing_publications",
        "citation_statements",
        "references_count",
        "observed_at",
    },
    "facets": {"doi", "facet", "label", "count"},
    "provenance": {"doi", "seed", "depth"},
    "statements": {
        "id",
        "cited_doi",
        "citing_doi",
        "snippet",
        "section",
        "type",
        "confidence",
        "first_seen_at",
        "last_seen_at",
    },
    "jobs": {
        "id",
        "doi",
        "url",
        "page",
        "state",
        "attempts",
        "not_before",
        "lease_until",
        "last_error",
        "depth",
        "created_at",
        "updated_at",
    },
    "pages": {"doi", "page", "url", "fetched_at", "broken", "error", "size", "body"},
    "citations": {"citing_doi", "cited_doi", "statements", "supporting", "mentioning"},
}


def db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path)


def page(doi: str, n_statements: int = 3, confidence: float | None = 0.5) -> ParseResult:
    return ParseResult(
        paper=Paper(doi=doi, title=f"T {doi}"),
        tallies=Tally(1, 2, 3),
        statements=tuple(
            Statement(citing_doi=f"10.9/{doi}-{i}", snippet=f"s{i}", confidence=confidence)
            for i in range(n_statements)
        ),
    )


async def enqueue_and_claim(store: SQLiteStore, n: int) -> list[Job]:
    await store.enqueue(NewJob(f"10.1/{i}", f"http://s/{i}") for i in range(n))
    return await store.claim("w", n, 60)


# ---------------------------------------------------------------- schema and migrations


async def test_schema_has_every_public_table_and_column(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    async with SQLiteStore(path):
        pass
    with db(path) as conn:
        for table, columns in COLUMNS.items():
            got = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            assert got == list(columns), table
            assert PUBLIC[table] <= set(got), table
        assert {"schema_version", "runs"} <= {
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }


async def test_migrations_run_once_at_open(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    for _ in range(2):
        async with SQLiteStore(path) as store:
            await store.enqueue([NewJob("10.1/a", "u")])
    with db(path) as conn:
        assert conn.execute("SELECT version, name FROM schema_version").fetchall() == [
            (m.version, m.name) for m in migrations()
        ]
        assert conn.execute("SELECT version, name FROM schema_version").fetchall() == [
            (1, "schema"),
            (2, "hosts"),
            (3, "incomplete_reason"),
            (4, "after_crawl"),
            (5, "search_merges"),
            (6, "page_charset"),
            (7, "notices"),
            (8, "provenance"),
            (9, "api"),
            (10, "digests"),
            (11, "volume_issue_pages"),
            (12, "completeness_history"),
            (13, "api_refresh"),
        ]
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (1,)
        # migration 5: the search index merges its segments 8 at a time
        assert conn.execute(
            "SELECT v FROM statements_fts_config WHERE k = 'automerge'"
        ).fetchone() == (8,)


async def test_later_migrations_apply_in_order_and_fail_atomically(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sqlite")
    n = migrations()[-1].version
    extra = (
        parse_migration(
            n + 1,
            "add_note",
            "-- name: add\nALTER TABLE papers ADD COLUMN note TEXT;\n"
            "-- name: index\nCREATE INDEX papers_note ON papers (note);",
        ),
        parse_migration(
            n + 2,
            "broken",
            "-- name: add\nALTER TABLE papers ADD COLUMN other TEXT;\n"
            "-- name: broken\nSELECT * FROM no_such_table;",
        ),
    )
    conn = await Connection.open(path)
    try:
        assert await migrate(conn, migrations()[:1]) == 1
        with pytest.raises(sqlite3.OperationalError):
            await migrate(conn, (*migrations(), *extra))
        columns = [
            r[1]
            for r in await conn.run(lambda c: c.execute("PRAGMA table_info(papers)").fetchall())
        ]
        assert "note" in columns and "other" not in columns  # the last one rolled back entirely
        assert await migrate(conn, (*migrations(), extra[0])) == n + 1
        with pytest.raises(StoreError, match="newer"):
            await migrate(conn, migrations())
    finally:
        await conn.close()


async def test_a_migration_merged_later_with_a_lower_number_is_still_applied(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "s.sqlite")
    top = migrations()[-1].version
    late = parse_migration(
        top + 1, "late", "-- name: add\nALTER TABLE papers ADD COLUMN late TEXT;"
    )
    later = parse_migration(top + 2, "later", "-- name: add\nALTER TABLE papers ADD COLUMN b TEXT;")
    conn = await Connection.open(path)
    try:
        assert await migrate(conn, (*migrations(), later)) == top + 2  # top + 1 not there yet
        assert await migrate(conn, (*migrations(), late, later)) == top + 2
        names = await conn.run(
            lambda c: [r[0] for r in c.execute("SELECT name FROM schema_version")]
        )
        assert {"late", "later"} <= set(names)
        columns = await conn.run(lambda c: [r[1] for r in c.execute("PRAGMA table_info(papers)")])
        assert {"late", "b"} <= set(columns)
    finally:
        await conn.close()


def test_migration_numbers_are_unique_and_start_at_1() -> None:
    assert migrations()[0].version == 1
    versions = [m.version for m in migrations()]
    assert versions == sorted(set(versions))


async def test_schema_has_the_after_crawl_objects(tmp_path: Path) -> None:
    """Datasette finds the FTS table by `content="statements"` (double quotes) and links
    the foreign keys the schema declares."""
    path = tmp_path / "s.sqlite"
    async with SQLiteStore(path):
        pass
    with db(path) as conn:
        fts = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'statements_fts'").fetchone()
        assert 'content="statements"' in fts[0] and "USING fts5" in fts[0]
        assert conn.execute(
            "SELECT type FROM sqlite_master WHERE name = 'citations'"
        ).fetchone() == ("view",)
        fks = {(r[2], r[3]) for r in conn.execute("PRAGMA foreign_key_list(statements)")}
        assert fks == {("papers", "cited_doi"), ("papers", "citing_doi")}


def test_migration_blocks_keep_triggers_whole() -> None:
    script = """-- Migration: a header comment; with a semicolon
-- name: table
CREATE TABLE t (x);
-- name: trigger
CREATE TRIGGER tr AFTER INSERT ON t BEGIN
    UPDATE t SET x = 1; UPDATE t SET x = 2;
END;
"""
    migration = parse_migration(7, "t", script)
    assert migration == Migration(7, "t", (migration.statements[0], migration.statements[1]))
    assert len(migration.statements) == 2 and migration.statements[1].endswith("END;")
    with pytest.raises(StoreError, match="before the first"):
        parse_queries("CREATE TABLE t (x);\n-- name: a\nSELECT 1;")
    with pytest.raises(StoreError, match="twice"):
        parse_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;")
    with pytest.raises(StoreError, match="empty"):
        parse_queries("-- name: a\n-- only a comment\n")


def test_a_dialect_gets_the_common_queries_and_may_not_redefine_one() -> None:
    common = queries(COMMON)
    for dialect in ("sqlite", "postgres"):
        assert set(common) < set(queries(dialect))
        assert all(queries(dialect)[n] == sql for n, sql in common.items())
    assert overlay({"a": "SELECT 1;"}, {"b": "SELECT 2;"}, "x") == {
        "a": "SELECT 1;",
        "b": "SELECT 2;",
    }
    with pytest.raises(StoreError, match="move it out of common/"):
        overlay({"a": "SELECT 1;"}, {"a": "SELECT 2;"}, "x")


def test_plan_migrations_applies_what_is_missing_by_number() -> None:
    found = [Migration(v, f"m{v}", ("SELECT 1;",)) for v in (1, 2, 4, 5)]
    assert [m.version for m in plan_migrations(set(), found)] == [1, 2, 4, 5]
    assert [m.version for m in plan_migrations({1, 2, 5}, found)] == [4]  # a gap filled
    assert plan_migrations({1, 2, 4, 5}, found) == []
    with pytest.raises(StoreError, match="newer"):
        plan_migrations({1, 2, 6}, found)


def test_importing_the_store_loads_no_database_client() -> None:
    """Drivers load by URL scheme when a store is opened (`ENGINES`), not on import."""
    code = "import pipeline.config, pipeline.store, sys; print('asyncpg' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_query_loader_knows_no_dialect() -> None:
    """The loader is shared by every dialect: no sqlite3 import, no SQL parsing."""
    store_dir = Path(__file__).resolve().parents[2] / "pipeline" / "store"
    source = (store_dir / "queries.py").read_text()
    assert "sqlite3" not in source and "complete_statement" not in source
    shared = (store_dir / "rules.py").read_text() + (store_dir / "base.py").read_text()
    for dialect_only in ("INDEXED BY", "json_each", "sqlite3", "strftime"):
        assert dialect_only not in shared, dialect_only


def test_every_named_query_is_used_by_the_store() -> None:
    store_dir = Path(__file__).resolve().parents[2] / "pipeline" / "store"
    source = "".join(
        (store_dir / f).read_text()
        for f in ("sqlite.py", "sqlite_file.py", "rules.py", "sql.py", "sql_changes.py")
    )
    exported = {f"export_{t}" for t in COLUMNS} | {f"export_{t}_after" for t in COLUMNS}
    copied = COPY_TABLES  # copy-store's tables (not the citations view: it is derived)
    exported |= {f"last_{t}" for t in copied} | {f"import_{t}" for t in copied}  # f-strings
    unused = [name for name in queries() if f'"{name}"' not in source and name not in exported]
    assert unused == []
    assert exported <= set(queries())


async def test_export_queries_select_the_public_columns_in_order(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    async with SQLiteStore(path):
        pass
    with db(path) as conn:
        for table, columns in COLUMNS.items():
            for name in (f"export_{table}", f"export_{table}_after"):
                params = {"limit": 1} | {f"after_{k}": None for k in KEYS[table]}
                cur = conn.execute(queries()[name], params)
                assert [d[0] for d in cur.description] == list(columns), name


# ---------------------------------------------------------------- pragmas and plans


async def test_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    async with SQLiteStore(path) as store:
        writer = store._writer
        assert writer is not None
        values = {}
        for pragma in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout"):
            row = await writer.run(lambda c, p=pragma: c.execute(f"PRAGMA {p}").fetchone())
            values[pragma] = row[0]
    assert values == {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "synchronous": 1,
        "busy_timeout": 10000,
    }
    with db(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


async def test_open_waits_for_another_process_switching_a_new_file(tmp_path: Path) -> None:
    """Two services starting on one fresh volume: while one holds the write lock of the
    still rollback-mode file, SQLite fails the other's switch to WAL at once, without its
    busy handler. Opening must wait for the lock instead of failing (a CI flake once)."""
    path = tmp_path / "s.sqlite"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("CREATE TABLE other (x)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO other VALUES (1)")
    loop = asyncio.get_running_loop()
    release = loop.call_later(0.3, other.execute, "COMMIT")
    try:
        async with SQLiteStore(path) as store:
            assert await store.pending() == 0
    finally:
        release.cancel()
        other.close()
    with db(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT x FROM other").fetchall() == [(1,)]


async def test_claim_walks_the_due_index_without_sorting(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    async with SQLiteStore(path) as store:
        await store.enqueue(NewJob(f"10.1/{i}", "u") for i in range(1000))
    params = {"now": "2100-01-01T00:00:00.000000Z", "limit": 10, "worker": "w", "lease_until": "x"}
    with db(path) as conn:
        conn.execute("ANALYZE")
        plan = " | ".join(
            r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + queries()["claim"], params)
        )
    assert "jobs_due" in plan and "TEMP B-TREE" not in plan, plan


async def test_statements_are_indexed_both_ways(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    async with SQLiteStore(path):
        pass
    with db(path) as conn:
        for column in ("cited_doi", "citing_doi"):
            plan = str(
                conn.execute(
                    f"EXPLAIN QUERY PLAN SELECT * FROM statements WHERE {column} = 'x'"
                ).fetchall()
            )
            assert "USING INDEX" in plan, (column, plan)


# ---------------------------------------------------------------- the writer


async def test_writer_commits_many_pages_per_transaction(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "s.sqlite", writer_batch=50) as store:
        jobs = await enqueue_and_claim(store, 200)
        batches: list[int] = []
        commit = store._commit_pages

        async def counting(items: list[Completion]) -> None:
            batches.append(len(items))
            await commit(items)

        store._commit_pages = counting  # type: ignore[method-assign]
        await asyncio.gather(*(store.complete(Completion(j, page(j.doi))) for j in jobs))
        stats = await store.stats()
    assert sum(batches) == 200 and max(batches) == 50 and len(batches) < 200 / 10
    assert stats.jobs_by_state["done"] == 200 and stats.rows_by_table["statements"] == 600


async def test_a_bad_page_does_not_sink_its_batch(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "s.sqlite") as store:
        jobs = await enqueue_and_claim(store, 6)
        calls: list[int] = []
        commit = store._commit_pages

        async def counting(items: list[Completion]) -> None:
            calls.append(len(items))
            await commit(items)

        store._commit_pages = counting  # type: ignore[method-assign]
        # Hold the writer's thread so that all six queue up as one batch.
        writer, go = store._writer, threading.Event()
        assert writer is not None
        held = asyncio.create_task(writer.run(lambda _: go.wait(5)))
        tasks = [
            asyncio.create_task(
                store.complete(
                    Completion(j, page(j.doi, confidence=7.0 if j.doi == "10.1/3" else 0.5))
                )
            )
            for j in jobs
        ]
        await asyncio.sleep(0.05)
        go.set()
        await held
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        states = {r["doi"]: r["state"] async for r in store.export("jobs")}
    assert calls == [6, 1, 1, 1, 1, 1, 1]
    # the bad page's own error: the store refused its row (a StoreError, not worth retrying)
    assert [type(o).__name__ for o in outcomes] == ["NoneType"] * 3 + ["StoreDataError"] + [
        "NoneType"
    ] * 2
    assert states["10.1/3"] == "leased"
    assert [d for d, s in states.items() if s == "done"] == [
        "10.1/0",
        "10.1/1",
        "10.1/2",
        "10.1/4",
        "10.1/5",
    ]


async def test_back_pressure_with_a_tiny_queue(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "s.sqlite", queue_size=1, writer_batch=4) as store:
        jobs = await enqueue_and_claim(store, 40)
        await asyncio.gather(*(store.complete(Completion(j, page(j.doi))) for j in jobs))
        assert (await store.stats()).jobs_by_state["done"] == 40


async def test_close_commits_what_was_acknowledged_and_refuses_more(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    store = SQLiteStore(path)
    await store.open()
    jobs = await enqueue_and_claim(store, 10)
    tasks = [asyncio.create_task(store.complete(Completion(j, page(j.doi)))) for j in jobs]
    await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.complete(Completion(jobs[0], None))
    with db(path) as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE state = 'done'").fetchone() == (10,)


async def test_two_stores_on_one_file_share_the_queue(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    async with SQLiteStore(path) as a, SQLiteStore(path) as b:
        await a.enqueue(NewJob(f"10.1/{i}", "u") for i in range(100))
        got: list[Job] = []
        for _ in range(30):
            got += await a.claim("a", 3, 60) + await b.claim("b", 4, 60)
        assert sorted(j.id for j in got) == list(range(1, 101))


# ---------------------------------------------------------------- factory and errors


@pytest.mark.parametrize("form", ["path", "url"])
async def test_open_store_sqlite(tmp_path: Path, form: str) -> None:
    path = tmp_path / "f.sqlite"
    store = open_store(path if form == "path" else f"sqlite:///{path}", writer_batch=7)
    assert isinstance(store, SQLiteStore) and store.writer_batch == 7
    async with store:
        assert await store.pending() == 0
    assert path.exists()


def test_open_store_checks_the_location_before_building_the_store(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE mine (x)")
    con.close()
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ConfigError, match="another program"):
        open_store(f"sqlite:///{other}")
    with pytest.raises(ConfigError, match="is a directory"):
        open_store(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing left beside it


async def test_open_store_builds_each_driver_from_settings(tmp_path: Path) -> None:
    tuned = Settings(writer_batch=7, refresh_min=60.0, pg_pool_min=2, pg_pool_max=3)
    path = tmp_path / "s.sqlite"
    for db in (str(path), f"sqlite:///{path}"):
        store = open_store(dataclasses.replace(tuned, db=db))
        assert isinstance(store, SQLiteStore) and (store.path, store.writer_batch) == (
            str(path),
            7,
        )
        async with store:
            assert await store.pending() == 0
    assert isinstance(open_store(dataclasses.replace(tuned, db="memory://")), MemoryStore)
    pg = open_store(dataclasses.replace(tuned, db="postgresql://u@h:5432/d"), create=False)
    assert isinstance(pg, PostgresStore) and (pg.writer_batch, pg.create) == (7, False)
    with pytest.raises(ConfigError, match="is a directory"):
        open_store(dataclasses.replace(tuned, db=str(tmp_path)))


def test_open_store_other_schemes() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    for url in ("postgresql://db/citepipe", "postgres://x", "POSTGRESQL://u:p@h:5/d"):
        assert isinstance(open_store(url, pool_max=3), PostgresStore)  # nothing opened yet
    for url in ("mysql://x", "sqlite://rel", "mariadb://h/d"):
        with pytest.raises(StoreError):
            open_store(url)


async def test_driver_errors_become_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot open"):
        await SQLiteStore(tmp_path).open()  # a folder, not a database file
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError):
        await SQLiteStore(garbage).open()
    with pytest.raises(StoreError, match="not open"):
        await SQLiteStore(tmp_path / "x.sqlite").claim("w", 1, 1)


async def test_foreign_keys_hold_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    async with SQLiteStore(path) as store:
        jobs = await enqueue_and_claim(store, 20)
        await asyncio.gather(*(store.complete(Completion(j, page(j.doi))) for j in jobs))
    with db(path) as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        conn.execute("PRAGMA foreign_keys = ON")
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO authors (doi, position, name) VALUES ('nope', 1, 'x')")


async def test_a_new_store_makes_its_folder_and_readers_do_not_create_one(tmp_path: Path) -> None:
    """The default `data/citepipe.sqlite` must work in a fresh checkout (no `data/` yet);
    status and export open with create=False and must not leave an empty store behind."""
    missing = tmp_path / "nowhere" / "c.sqlite"
    with pytest.raises(StoreError, match="no store at"):
        await open_store(missing, create=False).open()
    assert not missing.parent.exists()
    nested = tmp_path / "a" / "b" / "c.sqlite"
    async with SQLiteStore(nested) as store:
        assert await store.pending() == 0
    async with open_store(nested, create=False) as store:
        assert await store.pending() == 0
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot create the folder"):
        await SQLiteStore(blocked / "c.sqlite").open()


def test_lock_errors_are_known_by_their_code(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    a = sqlite3.connect(path, isolation_level=None, timeout=0)
    b = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        a.execute("CREATE TABLE t (x)")
        a.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError) as info:
            b.execute("BEGIN IMMEDIATE")
        assert _is_lock_error(info.value)
        # the message alone proves nothing: no error code, no lock error
        assert not _is_lock_error(sqlite3.OperationalError("database is locked"))
        a.execute("ROLLBACK")
    finally:
        a.close()
        b.close()


def test_the_driver_uses_no_private_api() -> None:
    source = (Path(__file__).resolve().parents[2] / "pipeline" / "store" / "sqlite.py").read_text()
    for private in (
        "import aiosqlite",
        "._conn)",
        "._conn,",
        "._execute(",
        '"locked" in',
        '"busy" in',
    ):
        assert private not in source, private


async def test_bookings_from_two_connections_never_overlap(tmp_path: Path) -> None:
    """Two stores on one file (two processes) booking at once: every start is distinct
    and `delay` after the previous one, whoever booked it."""
    path = tmp_path / "s.sqlite"
    async with SQLiteStore(path) as a, SQLiteStore(path) as b:
        starts = await asyncio.gather(
            *(s.book_request("http://site:80", 0.25) for _ in range(20) for s in (a, b))
        )
    ordered = sorted(starts)
    gaps = [(y - x).total_seconds() for x, y in pairwise(ordered)]
    assert len(set(starts)) == 40
    assert min(gaps) >= 0.25 - 1e-6, gaps


async def test_datasette_metadata_describes_only_real_tables_and_columns(tmp_path: Path) -> None:
    from pipeline.ops.datasette import HIDDEN, datasette_metadata

    path = tmp_path / "store.sqlite"
    async with SQLiteStore(path):
        pass
    meta = datasette_metadata(path)
    tables = meta["databases"]["store"]["tables"]
    with db(path) as conn:
        for table, spec in tables.items():
            columns = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            assert columns, table
            assert set(spec.get("columns", {})) <= columns, table
    assert set(HIDDEN) <= set(tables)
    assert set(COLUMNS) <= set(tables)
    assert all(set(tables[t]["columns"]) == set(COLUMNS[t]) for t in COLUMNS if t != "jobs")


async def test_the_search_index_follows_every_writer(tmp_path: Path) -> None:
    """citepipe's writer indexes a batch's new statements in one statement; any other
    writer (sqlite3, Datasette) is indexed by the triggers: inserts, edits, deletes."""
    path = tmp_path / "s.sqlite"
    paper = Paper(doi="10.1234/a", title="A")
    async with SQLiteStore(path) as store:
        await store.enqueue([NewJob("10.1234/a", "http://site/r/a")])
        (job,) = await store.claim("w", 1, 30)
        said = (Statement("10.1234/b", "wombats dig burrows"), Statement("10.1234/c", "otters"))
        await store.complete(Completion(job, ParseResult(paper, Tally(), statements=said)))
        assert {h.citing_doi for h in await store.search("wombat*")} == {"10.1234/b"}
    with db(path) as conn:
        assert conn.execute("SELECT bulk FROM search_bulk").fetchall() == [(0,)]
        conn.execute(
            "INSERT INTO statements (cited_doi, citing_doi, snippet, snippet_hash, "
            "first_seen_at, last_seen_at) VALUES ('10.1234/a', '10.1234/c', "
            "'wombats again', 'h', 'x', 'x')"
        )
        conn.execute("UPDATE statements SET snippet = 'badgers now' WHERE snippet = 'otters'")
        conn.execute("DELETE FROM statements WHERE snippet = 'wombats dig burrows'")
        conn.commit()
        matches = conn.execute(
            "SELECT s.snippet FROM statements_fts JOIN statements s ON s.id = statements_fts.rowid "
            "WHERE statements_fts MATCH ? ORDER BY 1",
            ("wombats OR badgers OR otters",),
        ).fetchall()
        assert matches == [("badgers now",), ("wombats again",)]
        conn.execute("INSERT INTO statements_fts (statements_fts) VALUES ('integrity-check')")


async def test_an_export_filter_on_an_indexed_column_uses_its_index(tmp_path: Path) -> None:
    """`--where citing_doi=...` is SQL that statements_by_citing serves (equality, then
    the key order the index already holds), not a scan of every row in Python."""
    from pipeline.store.export_sql import Comparison, ExportFilter, bound_params, export_query

    path = tmp_path / "s.sqlite"
    async with SQLiteStore(path):
        pass
    where = ExportFilter((Comparison("citing_doi", "=", "10.2/x"),))
    db = sqlite3.connect(path)
    for after in (False, True):
        query = export_query("sqlite", "statements", where, after=after)
        params = {"limit": 10, "after_id": 0, **bound_params(where)}
        plan = " ".join(str(r[3]) for r in db.execute(f"EXPLAIN QUERY PLAN {query}", params))
        assert "USING INDEX statements_by_citing" in plan, plan
    db.close()
