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

import asyncio
import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from pipeline import config
from pipeline.errors import StoreDataError, StoreError
from pipeline.models import (
    Completion,
    DeadJob,
    Job,
    KeptPage,
    NewJob,
    Requeued,
    RobotsRecord,
)
from pipeline.store import reads, rules
from pipeline.store.batching import CompletionWriter
from pipeline.store.fts import fts5_query
from pipeline.store.queries import Migration, migrations, queries
from pipeline.store.rules import from_iso, iso

T = TypeVar("T")
Clock = Callable[[], datetime]
Body = Callable[[sqlite3.Connection], T]  # work run on a connection's own thread

MEMORY = ":memory:"
DEFAULT_QUEUE_SIZE = 1000
BUSY_TIMEOUT = 10.0  # seconds another process may hold the write lock before we give up
ENQUEUE_CHUNK = 5000  # jobs per transaction when streaming a backfill
WRITER_LINGER = 0.005  # seconds the writer waits for more pages to commit with the first
WRITER_CACHE_KIB = 8000  # the writing connection's page cache (see PRAGMAS)
PRAGMAS = (
    "PRAGMA journal_mode = WAL",  # readers do not block the writer; persistent
    "PRAGMA synchronous = NORMAL",  # safe in WAL against process crashes; fast
    "PRAGMA foreign_keys = ON",
    "PRAGMA temp_store = MEMORY",
    # 8 MB page cache: a backfill of 9,452 pages ran as fast as with 32 MB (1.93-2.08 vs
    # 1.94-2.20 CPU-ms/page) and peaked at 96 MB instead of 121 MB (the cache fills as
    # the store grows); with 2 MB it was ~5% slower. The OS caches the file besides.
    f"PRAGMA cache_size = -{WRITER_CACHE_KIB}",
)
READER_CACHE_KIB = 8000  # the read connection's page cache
_LOCK_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


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


def _encode_read(params: rules.Params) -> rules.Params:
    """A read's parameters as SQLite takes them: datetimes as the stored text, lists as
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


@contextlib.contextmanager
def _os_errors(path: str) -> Iterator[None]:
    """A folder that cannot be made is a StoreError that names it (and who we are)."""
    try:
        yield
    except OSError as exc:
        raise StoreError(
            f"cannot create the folder of {path}: {exc.strerror} (running as uid {os.getuid()})"
        ) from exc


def check_writable(path: str) -> None:
    """Refuse, with the reason, a store this process cannot write: SQLite itself says only
    "unable to open database file". It writes the file and, beside it, the `-wal` and
    `-shm` files, so the folder must be writable too (a container's bind mount of a host
    folder that its uid does not own is the usual case)."""
    folder = os.path.dirname(os.path.abspath(path))
    uid = os.getuid()
    with contextlib.suppress(OSError):
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            raise StoreError(
                f"cannot write the store folder {folder}: it is on a read-only file system "
                "(a read-only mount?)"
            )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StoreError(
            f"permission denied: uid {uid} cannot write the store folder {folder} (SQLite "
            f"makes {os.path.basename(path)} and its -wal and -shm files there); make it "
            f"writable by uid {uid}, e.g. `chown {uid} {folder}`"
        )
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(
            f"permission denied: uid {uid} cannot read and write the store {path}; make it "
            f"writable by uid {uid}, e.g. `chown {uid} {path}`"
        )


def _is_lock_error(exc: BaseException) -> bool:
    """SQLite's SQLITE_BUSY / SQLITE_LOCKED (any extended code): another connection holds
    the lock. Read from the error code, not the message."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and (code & 0xFF) in _LOCK_CODES


def _is_busy(exc: BaseException) -> bool:
    """A lock timeout: retrying page by page would only wait again."""
    return exc.__cause__ is not None and _is_lock_error(exc.__cause__)


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# ---------------------------------------------------------------- connections


class Connection:
    """A stdlib sqlite3 connection and the one thread that uses it.

    `run(fn)` calls `fn(raw connection)` on that thread. Calls run one at a time, in the
    order they were made; a caller that is cancelled stops waiting, but its call still
    runs to its end (so a transaction body always commits or rolls back whole).
    """

    def __init__(self, raw: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self._raw = raw
        self._executor = executor

    @classmethod
    async def open(cls, path: str, *, read_only: bool = False) -> Connection:
        """A connection with the store's pragmas; autocommit, transactions are explicit."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="citepipe-sqlite")
        loop = asyncio.get_running_loop()
        try:
            raw = await loop.run_in_executor(executor, partial(_connect, path, read_only))
        except BaseException:
            executor.shutdown(wait=False)
            raise
        return cls(raw, executor)

    async def run(self, fn: Body[T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, self._raw)

    async def close(self) -> None:
        try:
            await self.run(lambda raw: raw.close())
        finally:
            self._executor.shutdown(wait=False)


def _connect(path: str, read_only: bool) -> sqlite3.Connection:
    """Open and set up a connection (on its own thread)."""
    raw = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    try:
        raw.row_factory = sqlite3.Row
        raw.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        # Switching a new file to WAL needs an exclusive lock and SQLite answers "database is
        # locked" at once, without its busy handler, while another process does the same
        # (two services starting on one fresh volume): retry until the busy timeout.
        deadline = time.monotonic() + BUSY_TIMEOUT
        wait = 0.01
        while True:
            try:
                for pragma in PRAGMAS:
                    raw.execute(pragma)
                break
            except sqlite3.OperationalError as exc:
                if not _is_lock_error(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(wait)  # on the connection's own thread, not the event loop's
                wait = min(wait * 2, 0.5)
        if read_only:
            raw.execute("PRAGMA query_only = ON")
            # short reads and keyset pages: a small cache keeps a long export or a survey
            # of millions of jobs from growing the process
            raw.execute(f"PRAGMA cache_size = -{READER_CACHE_KIB}")
    except BaseException:
        raw.close()
        raise
    return raw


async def migrate(
    conn: Connection,
    found: Sequence[Migration] | None = None,
    clock: Clock = rules.utcnow,
) -> int:
    """Apply the migrations the file lacks, in number order, each in its own transaction.

    "Lacks" is by number, not "above the highest applied": a migration merged later with
    a lower number (parallel changes) is still applied. Safe when several processes open
    the file at once: each migration re-checks under the write lock. Returns the schema
    version (the highest applied).
    """
    found = migrations() if found is None else found
    await conn.run(
        lambda raw: raw.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
            "name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
    )
    applied = await conn.run(_applied_versions)
    latest = found[-1].version if found else 0
    if applied and max(applied) > latest:
        raise StoreError(f"database schema version {max(applied)} is newer than this citepipe")
    for migration in found:
        if migration.version not in applied:
            body = partial(_apply, migration=migration, applied_at=iso(clock()))
            await conn.run(partial(_run_transaction, body=body))
    return await conn.run(_schema_version)


def _schema_version(raw: sqlite3.Connection) -> int:
    row = raw.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def _applied_versions(raw: sqlite3.Connection) -> set[int]:
    return {int(v) for (v,) in raw.execute("SELECT version FROM schema_version")}


def _apply(raw: sqlite3.Connection, migration: Migration, applied_at: str) -> None:
    """One migration, unless another process applied it first (checked under the lock)."""
    if migration.version not in _applied_versions(raw):
        for statement in migration.statements:
            raw.execute(statement)
        raw.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, applied_at),
        )


def _run_transaction(raw: sqlite3.Connection, body: Body[T]) -> T:
    """BEGIN IMMEDIATE, the body, COMMIT; ROLLBACK on any error. On the store's thread."""
    raw.execute("BEGIN IMMEDIATE")
    try:
        result = body(raw)
        raw.execute("COMMIT")
    except BaseException:
        if raw.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                raw.execute("ROLLBACK")
        raise
    return result


class SQLiteStore(reads.SQLReads):
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
        self._completions = CompletionWriter(
            self._commit_translated,
            batch=writer_batch,
            queue_size=queue_size,
            fatal=_is_busy,
            linger=WRITER_LINGER,
        )
        self._writer: Connection | None = None
        self._reader: Connection | None = None

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
            with _os_errors(self.path):
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

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _now(self) -> datetime:
        return self._clock()

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
            return await conn.run(partial(_run_transaction, body=body))

    def _executemany(self, name: str, rows: list[rules.Params]) -> Body[int]:
        sql = self._sql[name]
        encoded = [_encode(r) for r in rows]

        def body(conn: sqlite3.Connection) -> int:
            return max(conn.executemany(sql, encoded).rowcount, 0)

        return body

    # ------------------------------------------------------------ queue

    async def enqueue(self, jobs: Iterable[NewJob]) -> int:
        """Stream jobs in chunks, one transaction per chunk (a backfill may be huge)."""
        total = 0
        for chunk in _chunks(jobs, ENQUEUE_CHUNK):
            total += await self._transaction("enqueue", partial(self._enqueue_rows, jobs=chunk))
        return total

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
                )
                for j in jobs
            ]
        )
        cursor = conn.execute(self._sql["enqueue"], {"rows": packed, "now": stamp})
        return max(cursor.rowcount, 0)

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

    async def extend_leases(
        self, worker: str, job_ids: Sequence[int], lease_seconds: float
    ) -> None:
        if not job_ids:
            return
        now = self._now()
        until = now + timedelta(seconds=lease_seconds)
        rows = [{"id": i, "worker": worker, "lease_until": until, "now": now} for i in job_ids]
        await self._transaction("extend leases", self._executemany("extend_lease", rows))

    async def release(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        now = self._now()
        rows = [{"id": j.id, "round": j.round, "now": now} for j in jobs]
        await self._transaction("release", self._executemany("release", rows))

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
                conn.execute(self._sql["mark_incomplete"], params)

        await self._transaction("fail", body)

    async def requeue_expired(self) -> int:
        rows = [{"now": self._now()}]
        return await self._transaction(
            "requeue expired", self._executemany("requeue_expired", rows)
        )

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
                tuple(r[f] for f in rules.TALLY_FIELDS) if r["has_tallies"] else None,
            )
            for r in rows
        }

    # ------------------------------------------------------------ reads

    async def _read_all(self, name: str, params: rules.Params | None = None) -> list[Any]:
        """Run a named query on the read connection; datetimes go in as the stored ISO
        text and lists as JSON text (the queries read them with `json_each`)."""
        sql, encoded = self._sql[name], _encode_read(params or {})
        conn = self._read_conn()
        with _db_errors(name):
            return await conn.run(lambda raw: raw.execute(sql, encoded).fetchall())

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

    async def purge_done(self, before: datetime, *, chunk: int = 10_000) -> int:
        """Retention: delete done jobs of later pages (page > 1) not touched since
        `before`, in chunks. Page-1 jobs stay (see docs/store.md)."""
        total = 0
        while True:
            params = [{"before": before, "limit": chunk}]
            n = await self._transaction("purge done jobs", self._executemany("purge_done", params))
            total += n
            if n < chunk:
                return total

    # ------------------------------------------------------------ runs

    async def start_run(self, kind: str, host: str, pid: int) -> int:
        params = _encode({"kind": kind, "host": host, "pid": pid, "now": self._now()})

        def body(conn: sqlite3.Connection) -> int:
            row = conn.execute(self._sql["start_run"], params).fetchone()
            if row is None:
                raise StoreError("start_run returned no id")
            return int(row[0])

        return await self._transaction("start run", body)

    async def heartbeat_run(self, run_id: int) -> None:
        rows = [{"id": run_id, "now": self._now()}]
        await self._transaction("heartbeat run", self._executemany("heartbeat_run", rows))

    async def finish_run(self, run_id: int, summary: dict[str, Any]) -> None:
        rows = [
            {
                "id": run_id,
                "now": self._now(),
                "summary": json.dumps(summary, default=str, sort_keys=True),
            }
        ]
        await self._transaction("finish run", self._executemany("finish_run", rows))

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

    async def pause_host(self, host: str, until: datetime) -> None:
        rows = [{"host": host, "now": self._now(), "until": until}]
        await self._transaction("pause host", self._executemany("host_pause", rows))

    async def save_robots(self, host: str, record: RobotsRecord) -> None:
        rows = [
            {
                "host": host,
                "status": record.status,
                "text": record.text,
                "fetched_at": record.fetched_at,
                "expires_at": record.expires_at,
                "failures": record.failures,
            }
        ]
        await self._transaction("save robots", self._executemany("robots_save", rows))

    # ------------------------------------------------------------ kept pages

    async def keep_page(self, page: KeptPage) -> None:
        rows = [rules.page_params(page)]
        await self._transaction("keep page", self._executemany("keep_page", rows))

    async def settle_reparsed(self, dois: Sequence[str]) -> int:
        rows = [{"dois": json.dumps(sorted(set(dois)))}]
        return await self._transaction(
            "settle reparsed", self._executemany("settle_reparsed", rows)
        )


def _as_store_error(exc: Exception) -> Exception:
    """What a completion's caller gets: the StoreError, or a bug in our code as it is (so
    that it kills the job as an internal error instead of being retried for ever)."""
    if isinstance(exc, StoreError) or not isinstance(exc, sqlite3.Error):
        return exc
    error = StoreError(f"cannot store page: {exc!r}")
    error.__cause__ = exc
    return error
