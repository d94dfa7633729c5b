"""The SQLite store: work queue and results in one WAL-mode file (or in memory).

Connections: each `Connection` is a stdlib `sqlite3` connection owned by its own
one-thread executor; every call on it runs on that thread, in order (what aiosqlite does,
with only public APIs). A transaction is one synchronous body run whole on the thread
(`_transaction`): one hop to the thread and back instead of one per statement (each hop
waits for a turn of the event loop, which a crawler's parsing keeps busy), and no cancelled
await can leave a transaction half done: the thread finishes it, commit or rollback.

Writes: SQLite has one writer, so every write goes through the writer connection, one
transaction at a time, and `BEGIN IMMEDIATE` makes other processes on the same file wait
their turn (busy_timeout) instead of failing late. Completions go through the shared
group-commit writer (`batching.CompletionWriter`): many pages per transaction, waiting
`WRITER_LINGER` for more after the first; `complete()` returns once its page is committed,
and a failed batch is retried page by page so that one bad page does not sink the others.

Reads (status, export, counts) use a second connection: WAL readers never block the
writer. `SQLiteStore(":memory:")` has one database, so it reads on the writer connection.

Times: the code passes aware datetimes; this driver writes them as fixed-shape ISO text
(`iso`) and reads them back (`from_iso`). sqlite3 errors are translated to `StoreError`
here, and only here. The contract is docs/store.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Self, TypeVar

from pipeline import config
from pipeline.config import Settings
from pipeline.errors import StoreDataError, StoreError
from pipeline.models import Completion, DeadJob, Job, NewJob, Requeued
from pipeline.store import rules, sql, tables
from pipeline.store.batching import CompletionWriter
from pipeline.store.fts import fts5_query
from pipeline.store.queries import queries
from pipeline.store.rules import from_iso, iso
from pipeline.store.sqlite_file import (
    MEMORY,
    Connection,
    check_location,
    check_writable,
    is_busy,
    migrate,
    os_errors,
    run_transaction,
    sqlite_path,
)

T = TypeVar("T")
Clock = Callable[[], datetime]
Body = Callable[[sqlite3.Connection], T]  # work run on a connection's own thread

DEFAULT_QUEUE_SIZE = 1000
WRITER_LINGER = 0.005  # seconds the writer waits for more pages to commit with the first


# ---------------------------------------------------------------- times


def _encode(params: rules.Params) -> rules.Params:
    """A row's datetimes as the stored text; everything else as it is."""
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in params.items()}


def _encode_rows(rows: list[rules.Params]) -> list[rules.Params]:
    """`_encode` for a batch's rows, in place (the rows are the write plan's own, made for
    this one transaction): the rows of a batch share a few datetimes (one a page), so each
    is formatted once (`iso` costs more than the rest of the row), and no row is copied."""
    texts: dict[datetime, str] = {}
    for row in rows:
        for k, v in row.items():
            if isinstance(v, datetime):
                found = texts.get(v)
                if found is None:
                    found = texts[v] = iso(v)
                row[k] = found
    return rows


def _encode_params(params: rules.Params) -> rules.Params:
    """A query's parameters as SQLite takes them: datetimes as the stored text, lists as
    JSON text (the queries unpack them with `json_each`)."""
    return {k: json.dumps(v) if isinstance(v, list) else v for k, v in _encode(params).items()}


# ---------------------------------------------------------------- errors


@contextlib.contextmanager
def _db_errors(what: str) -> Iterator[None]:
    """Translate driver errors into StoreError: the one place it is done."""
    try:
        yield
    except (sqlite3.IntegrityError, sqlite3.DataError) as exc:
        raise StoreDataError(f"{what}: {exc}") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"{what}: {exc}") from exc


class SQLiteStore(sql.SQLStore):
    """The Store protocol on one SQLite file, or on `":memory:"` (a private in-memory
    database, gone at `close`). See the module docstring for the design."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        writer_batch: int = config.DEFAULT_WRITER_BATCH,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        refresh_interval: float = config.DEFAULT_REFRESH_INTERVAL,
        refresh_min: float = config.DEFAULT_REFRESH_MIN,
        refresh_max: float = config.DEFAULT_REFRESH_MAX,
        clock: Clock | None = None,
        create: bool = True,
    ) -> None:
        """`create=False` opens only a file that exists (for status and export, which
        should say there is nothing rather than leave an empty store behind)."""
        self.path = os.fspath(path)
        self.create = create
        self.writer_batch = writer_batch
        self._policy = rules.RefreshPolicy(refresh_interval, refresh_min, refresh_max)
        self._clock = clock or rules.utcnow
        self._sql = queries()
        self._dialect = "sqlite"
        self._completions = CompletionWriter(
            self._commit_translated,
            batch=writer_batch,
            queue_size=queue_size,
            fatal=is_busy,
            linger=WRITER_LINGER,
        )
        self._writer: Connection | None = None
        self._reader: Connection | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, create: bool = True, clock: Clock | None = None
    ) -> Self:
        """The store at `settings.db` (a path or `sqlite:///path`), tuned by the settings."""
        path = sqlite_path(settings.db)
        if not path:
            raise StoreError(
                f"bad SQLite location {settings.db!r}: expected a path or sqlite:///path"
            )
        return cls(path, create=create, clock=clock, **sql.store_options(settings))

    @staticmethod
    def check_location(path_or_db: str | os.PathLike[str], *, create: bool) -> None:
        """`check_location`: refuse a location no run should touch (`open_store` calls it
        before it builds the store)."""
        check_location(path_or_db, create=create)

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Connect, migrate the schema, start the writer task."""
        if self._writer is not None:
            return
        self._check_path()
        with _db_errors(f"cannot open {self.path}"):
            writer = await Connection.open(self.path)
            try:
                await migrate(writer, clock=self._clock)
                if self.path == MEMORY:
                    self._reader = writer  # one database: a second connection would be empty
                else:
                    self._reader = await Connection.open(self.path, read_only=True)
            except BaseException:
                await writer.close()
                raise
        self._writer = writer
        self._completions.start()

    def _check_path(self) -> None:
        """Make the file's folder when creating; refuse a missing file when not, and a
        file or folder this process cannot write (with the reason)."""
        if self.path == MEMORY:
            return
        if not os.path.exists(self.path):
            if not self.create:
                raise StoreError(
                    f"no store at {self.path}: nothing has been crawled into it yet "
                    "(`citepipe backfill` or `citepipe crawl` creates it)"
                )
            with os_errors(self.path):
                os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        check_writable(self.path)

    async def close(self) -> None:
        """Commit what is queued, stop the writer, close the connections."""
        await self._completions.stop()
        reader, writer = self._reader, self._writer
        self._reader = self._writer = None
        for conn in (reader, writer) if reader is not writer else (writer,):
            if conn is not None:
                with _db_errors("close"):
                    await conn.close()

    def _read_conn(self) -> Connection:
        if self._reader is None:
            raise StoreError("store is not open")
        return self._reader

    async def _transaction(self, what: str, body: Body[T]) -> T:
        """Run `body` as one write transaction, whole, on the writer connection's thread."""
        conn = self._writer
        if conn is None:
            raise StoreError("store is not open")
        with _db_errors(what):
            return await conn.run(partial(run_transaction, body=body))

    def _executemany(self, name: str, rows: Sequence[rules.Params]) -> Body[int]:
        statement = self._sql[name]
        encoded = [_encode_params(r) for r in rows]

        def body(conn: sqlite3.Connection) -> int:
            return max(conn.executemany(statement, encoded).rowcount, 0)

        return body

    async def _write(
        self, what: str, name: str, rows: Sequence[rules.Params], *, durable: bool = False
    ) -> int:
        """One `executemany` in one transaction, one hop to the writer's thread. `durable`
        asks nothing more here: every commit is as safe as WAL with `synchronous = NORMAL`
        makes it (a process crash loses nothing)."""
        return await self._transaction(what, self._executemany(name, rows))

    async def _write_returning(
        self, what: str, name: str, params: rules.Params, *, durable: bool = False
    ) -> list[sql.Row]:
        statement, encoded = self._sql[name], _encode_params(params)

        def body(conn: sqlite3.Connection) -> list[sql.Row]:
            return conn.execute(statement, encoded).fetchall()

        return await self._transaction(what, body)

    # ------------------------------------------------------------ queue

    async def _enqueue_chunk(self, jobs: Sequence[NewJob]) -> int:
        return await self._transaction("enqueue", partial(self._enqueue_rows, jobs=jobs))

    def _enqueue_rows(self, conn: sqlite3.Connection, jobs: Sequence[NewJob]) -> int:
        now = self._now()
        if any(job.round > 0 for job in jobs):  # round 0 can never bump a stored round
            rows = [_encode(rules.enqueue_params(job, now)) for job in jobs]
            conn.executemany(self._sql["enqueue_bump_round"], rows)
        stamp = iso(now)
        packed = json.dumps(
            [
                (
                    j.doi,
                    j.url,
                    j.page,
                    j.depth,
                    j.round,
                    stamp if j.not_before is None else iso(j.not_before),
                    rules.chain_text(j.chain),
                    rules.batch_text(j.batch),
                )
                for j in jobs
            ]
        )
        cursor = conn.execute(self._sql["enqueue"], {"rows": packed, "now": stamp})
        added = max(cursor.rowcount, 0)
        conn.executemany(self._sql["provenance_seed"], rules.seed_rows(jobs))
        return added

    async def claim(self, worker: str, limit: int, lease_seconds: float) -> list[Job]:
        """Lease due jobs, oldest `not_before` first. Expired leases are taken back first,
        so a killed worker's jobs return even if nobody calls `requeue_expired`."""
        if limit < 1:
            return []
        now = self._now()
        params = _encode(
            {
                "now": now,
                "worker": worker,
                "limit": limit,
                "lease_until": now + timedelta(seconds=lease_seconds),
            }
        )

        def body(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            conn.execute(self._sql["requeue_expired"], params)
            return conn.execute(self._sql["claim"], params).fetchall()

        rows = await self._transaction("claim", body)
        rows.sort(key=lambda r: (from_iso(r["not_before"]), r["id"]))
        return [rules.job_from_row(row) for row in rows]

    async def fail(self, job: Job, error: str, retry_at: datetime | None) -> None:
        """`failed` until `retry_at`, or `dead` (and, for a page after the first, its
        report marked incomplete with the reason: `rules.dead_page_reason`)."""
        reason = rules.dead_page_reason(job, error) if retry_at is None else None
        params = _encode(
            {
                "id": job.id,
                "round": job.round,
                "error": error,
                "doi": job.doi,
                "reason": reason,
                "retry_at": retry_at,
                "now": self._now(),
            }
        )

        def body(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(self._sql["fail"], params)
            if reason is not None and cursor.rowcount > 0:
                conn.execute(self._sql["completeness_baseline"], params)
                conn.execute(self._sql["mark_incomplete"], params)
                conn.execute(self._sql["completeness_snapshot"], params)

        await self._transaction("fail", body)

    async def enqueue_stale(
        self, now: datetime, address: Callable[[str, str], str] | None = None
    ) -> int:
        """Page 1 of every report due for a refresh, with round = its max round + 1, at
        `address(doi, url)` when given."""
        where = address or (lambda _doi, url: url)
        params = _encode({"now": now})

        def body(conn: sqlite3.Connection) -> int:
            rows = conn.execute(self._sql["stale_page_one"], params).fetchall()
            jobs = [
                NewJob(r["doi"], where(r["doi"], r["url"]), 1, r["depth"], r["round"]) for r in rows
            ]
            return self._enqueue_rows(conn, jobs) if jobs else 0

        return await self._transaction("enqueue stale", body)

    async def enqueue_due_batches(
        self, now: datetime, batches: Callable[[Sequence[str], int], Sequence[NewJob]]
    ) -> int:
        """`batches(due DOIs, batch round + 1)` queued, in one transaction."""
        params = _encode({"now": now})

        def body(conn: sqlite3.Connection) -> int:
            dois = [r[0] for r in conn.execute(self._sql["due_refresh_dois"], params)]
            if not dois:
                return 0
            top = conn.execute(self._sql["batch_round"]).fetchone()[0]
            jobs = batches(dois, int(top) + 1)
            return self._enqueue_rows(conn, jobs) if jobs else 0

        return await self._transaction("enqueue due batches", body)

    async def requeue_dead(
        self,
        address: Callable[[DeadJob], str | None],
        *,
        reason: str | None = None,
        dois: Sequence[str] | None = None,
    ) -> Requeued:
        """Dead jobs queued again at their rebuilt addresses, in one transaction."""
        select = {"reason": reason, "dois": None if dois is None else json.dumps(list(dois))}

        def body(conn: sqlite3.Connection) -> Requeued:
            now = self._now()
            rows, kept, reports = [], 0, set()
            for r in conn.execute(self._sql["dead_jobs"], select).fetchall():
                url = address(DeadJob(r["doi"], r["page"], r["url"], r["reason"]))
                if url is None:
                    kept += 1
                    continue
                rows.append(_encode({"id": r["id"], "url": url, "now": now}))
                reports.add(r["doi"])
            done = max(conn.executemany(self._sql["requeue_dead"], rows).rowcount, 0)
            return Requeued(jobs=done, reports=len(reports), kept=kept)

        return await self._transaction("requeue dead jobs", body)

    # ------------------------------------------------------------ completions

    async def complete(self, completion: Completion) -> None:
        """Hand the page to the writer; return once it is committed (or raise StoreError)."""
        await self._completions.submit(completion)

    async def _commit_translated(self, items: list[Completion]) -> None:
        """One batch's transaction, its sqlite3 errors as StoreError (bugs as they are)."""
        try:
            await self._commit_pages(items)
        except Exception as exc:
            error = _as_store_error(exc)
            if error is exc:
                raise
            raise error from exc

    async def _commit_pages(self, items: list[Completion]) -> None:
        await self._transaction("complete", partial(self._write_pages, items=items))

    def _write_pages(self, conn: sqlite3.Connection, items: list[Completion]) -> None:
        states = self._report_states(conn, rules.page_one_dois(items))
        plan = rules.plan_completions(items, states, self._now(), self._policy)
        bulk = bool(plan.upsert_statement)
        if bulk:  # the batch's new statements are indexed below, in one statement
            conn.execute(self._sql["search_bulk_begin"])
            top = conn.execute(self._sql["statements_top"]).fetchone()[0]
        for name, rows in plan.steps():
            if rows:
                conn.executemany(self._sql[name], _encode_rows(rows))
        if bulk:
            conn.execute(self._sql["search_index_new"], {"after_id": top})
            conn.execute(self._sql["search_bulk_end"])
        if plan.follow_ups:
            self._enqueue_rows(conn, plan.follow_ups)
        conn.executemany(self._sql["mark_done"], _encode_rows(plan.mark_done))

    def _report_states(
        self, conn: sqlite3.Connection, dois: list[str]
    ) -> dict[str, rules.ReportState]:
        if not dois:
            return {}
        rows = conn.execute(self._sql["page_one_state"], {"dois": json.dumps(dois)}).fetchall()
        return {
            r["doi"]: rules.ReportState(
                r["refresh_interval"],
                tuple(r[f] for f in tables.TALLY_FIELDS) if r["has_tallies"] else None,
            )
            for r in rows
        }

    # ------------------------------------------------------------ reads

    async def _read_all(self, name: str, params: rules.Params | None = None) -> list[Any]:
        """Run a named query on the read connection; datetimes go in as the stored ISO
        text and lists as JSON text (the queries read them with `json_each`)."""
        statement, encoded = self._sql[name], _encode_params(params or {})
        conn = self._read_conn()
        with _db_errors(name):
            return await conn.run(lambda raw: raw.execute(statement, encoded).fetchall())

    async def _read_tuples(
        self, query: str, params: rules.Params, table: str
    ) -> list[tuple[Any, ...]]:
        """Plain tuples (no `sqlite3.Row`): times are stored as the export's text already."""
        encoded = _encode_params(params)
        conn = self._read_conn()

        def run(raw: sqlite3.Connection) -> list[tuple[Any, ...]]:
            cursor = raw.cursor()
            cursor.row_factory = None
            return cursor.execute(query, encoded).fetchall()

        with _db_errors(f"export {table}"):
            return await conn.run(run)

    def _time(self, value: Any) -> datetime:
        """Times are stored as ISO text (`iso`)."""
        return from_iso(value)

    def _text_row(self, row: Any) -> dict[str, Any]:
        """Times are stored as the export's ISO text already: the row as it is."""
        return dict(zip(row.keys(), row, strict=True))

    async def _search_rows(self, query: str, params: rules.Params) -> list[Any]:
        """The query as FTS5 reads it (`fts.fts5_query`: terms with punctuation quoted);
        FTS5 rejects a malformed one (`a OR`): say which query was bad."""
        params = {**params, "query": fts5_query(query)}
        try:
            return await self._read_all("search_statements", params)
        except StoreError as exc:
            raise StoreError(f"bad search query {query!r}: {exc.__cause__ or exc}") from None

    # ------------------------------------------------------------ copy-store

    async def import_rows(self, table: str, rows: Sequence[dict[str, Any]]) -> int:
        """Insert exported rows as they are (ids kept; export's ISO text is this store's
        own time format) in one transaction; rows already there are left alone."""
        body = self._executemany(f"import_{table}", list(rows))
        await self._transaction(f"import {table}", body)
        return len(rows)

    # ------------------------------------------------------------ politeness (hosts)

    async def book_request(self, host: str, delay: float) -> datetime:
        """`rules.book_request` on the host's row, inside one write transaction: the read
        and the write happen under SQLite's write lock, so processes take turns."""
        now = self._now()
        ensure = _encode({"host": host, "now": now})

        def body(conn: sqlite3.Connection) -> datetime:
            conn.execute(self._sql["host_ensure"], ensure)
            row = conn.execute(self._sql["host_state"], ensure).fetchone()
            start, next_at = rules.book_request(
                from_iso(row["next_at"]), from_iso(row["paused_until"]), now, delay
            )
            conn.execute(self._sql["host_book"], {"host": host, "next_at": iso(next_at)})
            return start

        return await self._transaction("book request", body)


def _as_store_error(exc: Exception) -> Exception:
    """What a completion's caller gets: the StoreError, or a bug in our code as it is (so
    that it kills the job as an internal error instead of being retried for ever)."""
    if isinstance(exc, StoreError) or not isinstance(exc, sqlite3.Error):
        return exc
    error = StoreError(f"cannot store page: {exc!r}")
    error.__cause__ = exc
    return error
