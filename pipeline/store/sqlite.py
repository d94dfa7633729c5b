"""The SQLite store (aiosqlite): work queue and results in one WAL-mode file.

Writes: SQLite has one writer, so every write goes through one connection, one
transaction at a time, and `BEGIN IMMEDIATE` makes other processes on the same file wait
their turn (busy_timeout) instead of failing late. A transaction is one synchronous body
run whole on aiosqlite's thread (`_transaction`): one hop to the thread and back instead of
one per statement (each hop waits for a turn of the event loop, which a crawler's parsing
keeps busy), and no cancelled await can leave a transaction half done. aiosqlite's thread
runs one call at a time, which serialises the transactions.
Completions go through a bounded queue to one writer task that commits many pages per
transaction (a commit costs about as much as a page's rows, so batching is the speed-up);
`complete()` returns once its page is committed. If a batch fails, its pages are retried
one per transaction so that one bad page does not sink the others.

Reads (status, export, counts) use a second connection: WAL readers never block the writer.
sqlite3 errors are translated to `StoreError` here, and only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar

import aiosqlite
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from pipeline.errors import StoreError
from pipeline.models import (
    JOB_STATES,
    RUN_STALE_AFTER,
    Completion,
    DeadReason,
    Job,
    NewJob,
    RunInfo,
    Stats,
)
from pipeline.store import rules
from pipeline.store.base import EXPORT_TABLES
from pipeline.store.queries import Migration, migrations, queries

T = TypeVar("T")
Clock = Callable[[], datetime]
Body = Callable[[sqlite3.Connection], T]  # a transaction's work, run on the store's thread

DEFAULT_QUEUE_SIZE = 1000
BUSY_TIMEOUT = 10.0  # seconds another process may hold the write lock before we give up
ENQUEUE_CHUNK = 5000  # jobs per transaction when streaming a backfill
EXPORT_CHUNK = 1000  # rows per keyset page when exporting
PRAGMAS = (
    "PRAGMA journal_mode = WAL",  # readers do not block the writer; persistent
    "PRAGMA synchronous = NORMAL",  # safe in WAL against process crashes; fast
    "PRAGMA foreign_keys = ON",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA cache_size = -32000",  # 32 MB page cache
)


@contextlib.contextmanager
def _db_errors(what: str) -> Iterator[None]:
    """Translate driver errors into StoreError: the one place it is done."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"{what}: {exc}") from exc


@contextlib.contextmanager
def _os_errors(path: str) -> Iterator[None]:
    """A folder that cannot be made is a StoreError that names it."""
    try:
        yield
    except OSError as exc:
        raise StoreError(f"cannot create the folder of {path}: {exc.strerror}") from exc


def _is_lock_error(exc: BaseException) -> bool:
    """SQLite's "database is locked" / "busy": another process holds the lock."""
    return isinstance(exc, sqlite3.OperationalError) and (
        "locked" in str(exc) or "busy" in str(exc)
    )


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


@dataclass(slots=True)
class _Pending:
    completion: Completion
    future: asyncio.Future[None]


async def connect(path: str, *, read_only: bool = False) -> aiosqlite.Connection:
    """A connection with the store's pragmas; autocommit, transactions are explicit."""
    conn = await aiosqlite.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None)
    conn.row_factory = sqlite3.Row
    try:
        await conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        # Switching a new file to WAL needs an exclusive lock and SQLite answers "database is
        # locked" at once, without its busy handler, while another process does the same
        # (two services starting on one fresh volume): retry until the busy timeout.
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_is_lock_error),
            wait=wait_random_exponential(multiplier=0.01, max=0.5),
            stop=stop_after_delay(BUSY_TIMEOUT),
            reraise=True,
        ):
            with attempt:
                for pragma in PRAGMAS:
                    await conn.execute(pragma)
        if read_only:
            await conn.execute("PRAGMA query_only = ON")
    except BaseException:
        await conn.close()
        raise
    return conn


async def migrate(
    conn: aiosqlite.Connection,
    found: Sequence[Migration] | None = None,
    clock: Clock = rules.utcnow,
) -> int:
    """Apply the migrations the file lacks, in order, each in its own transaction.

    Safe when several processes open the file at once: each migration re-checks the
    version under the write lock. Returns the schema version.
    """
    found = migrations() if found is None else found
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
        "name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    version = await _in_thread(conn, _schema_version)
    latest = found[-1].version if found else 0
    if version > latest:
        raise StoreError(f"database schema version {version} is newer than this citepipe")
    for migration in found:
        if migration.version > version:
            body = partial(_apply, migration=migration, applied_at=rules.iso(clock()))
            await _in_thread(conn, partial(_run_transaction, body=body))
    return await _in_thread(conn, _schema_version)


def _schema_version(raw: sqlite3.Connection) -> int:
    row = raw.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(row[0]) if row else 0


def _apply(raw: sqlite3.Connection, migration: Migration, applied_at: str) -> None:
    """One migration, unless another process applied it first (checked under the lock)."""
    if _schema_version(raw) < migration.version:
        for statement in migration.statements:
            raw.execute(statement)
        raw.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, applied_at),
        )


async def _in_thread(conn: aiosqlite.Connection, fn: Body[T]) -> T:
    """Call `fn(sqlite3 connection)` on aiosqlite's thread, like its own methods do.

    aiosqlite has no public call for this; `_execute` is the one all its own methods go
    through. The store's tests run every write through here, so an aiosqlite release
    that renamed it would fail them at once rather than in a user's crawl.
    """
    raw: sqlite3.Connection = conn._conn
    result: T = await conn._execute(fn, raw)  # type: ignore[no-untyped-call]
    return result


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


class SQLiteStore:
    """The Store protocol on one SQLite file. See the module docstring for the design."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        writer_batch: int = 100,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        refresh_interval: float = rules.DEFAULT_REFRESH_INTERVAL,
        refresh_min: float = rules.DEFAULT_REFRESH_MIN,
        refresh_max: float = rules.DEFAULT_REFRESH_MAX,
        clock: Clock | None = None,
        create: bool = True,
    ) -> None:
        """`create=False` opens only a file that exists (for status and export, which
        should say there is nothing rather than leave an empty store behind)."""
        if writer_batch < 1 or queue_size < 1:
            raise StoreError("writer_batch and queue_size must be >= 1")
        self.path = os.fspath(path)
        self.create = create
        self.writer_batch = writer_batch
        self._policy = rules.RefreshPolicy(refresh_interval, refresh_min, refresh_max)
        self._clock = clock or rules.utcnow
        self._sql = queries()
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue(maxsize=queue_size)
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._closing = False

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Connect, migrate the schema, start the writer task."""
        if self._writer is not None:
            return
        self._check_path()
        with _db_errors(f"cannot open {self.path}"):
            writer = await connect(self.path)
            try:
                await migrate(writer, clock=self._clock)
                self._reader = await connect(self.path, read_only=True)
            except BaseException:
                await writer.close()
                raise
        self._writer = writer
        self._closing = False
        self._writer_task = asyncio.create_task(self._write_loop(), name="store-writer")

    def _check_path(self) -> None:
        """Make the file's folder when creating; refuse a missing file when not."""
        if self.path == ":memory:" or os.path.exists(self.path):
            return
        if not self.create:
            raise StoreError(
                f"no store at {self.path}: nothing has been crawled into it yet "
                "(`citepipe backfill` or `citepipe crawl` creates it)"
            )
        with _os_errors(self.path):
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)

    async def close(self) -> None:
        """Commit what is queued, stop the writer, close both connections."""
        self._closing = True
        if self._writer_task is not None:
            await self._queue.put(None)
            await self._writer_task
            self._writer_task = None
        for conn in (self._reader, self._writer):
            if conn is not None:
                with _db_errors("close"):
                    await conn.close()
        self._reader = self._writer = None

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _now(self) -> datetime:
        return self._clock()

    def _read_conn(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreError("store is not open")
        return self._reader

    async def _transaction(self, what: str, body: Body[T]) -> T:
        """Run `body` as one write transaction, whole, on the writer connection's thread."""
        conn = self._writer
        if conn is None:
            raise StoreError("store is not open")
        with _db_errors(what):
            return await _in_thread(conn, partial(_run_transaction, body=body))

    # ------------------------------------------------------------ queue

    async def enqueue(self, jobs: Iterable[NewJob]) -> int:
        """Stream jobs in chunks, one transaction per chunk (a backfill may be huge)."""
        total = 0
        for chunk in _chunks(jobs, ENQUEUE_CHUNK):
            total += await self._transaction("enqueue", partial(self._enqueue_rows, jobs=chunk))
        return total

    def _enqueue_rows(self, conn: sqlite3.Connection, jobs: Sequence[NewJob]) -> int:
        now = rules.iso(self._now())
        rows = [rules.enqueue_params(job, now) for job in jobs]
        if any(job.round > 0 for job in jobs):  # round 0 can never bump a stored round
            conn.executemany(self._sql["enqueue_bump_round"], rows)
        return max(conn.executemany(self._sql["enqueue"], rows).rowcount, 0)

    async def claim(self, worker: str, limit: int, lease_seconds: float) -> list[Job]:
        """Lease due jobs, oldest `not_before` first. Expired leases are taken back first,
        so a killed worker's jobs return even if nobody calls `requeue_expired`."""
        if limit < 1:
            return []
        now = self._now()
        params = {
            "now": rules.iso(now),
            "worker": worker,
            "limit": limit,
            "lease_until": rules.iso(now + timedelta(seconds=lease_seconds)),
        }

        def body(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            conn.execute(self._sql["requeue_expired"], params)
            return conn.execute(self._sql["claim"], params).fetchall()

        rows = await self._transaction("claim", body)
        rows.sort(key=lambda r: (r["not_before"], r["id"]))
        return [rules.job_from_row(row) for row in rows]

    async def extend_leases(
        self, worker: str, job_ids: Sequence[int], lease_seconds: float
    ) -> None:
        if not job_ids:
            return
        now = self._now()
        until = rules.iso(now + timedelta(seconds=lease_seconds))
        rows = [
            {"id": i, "worker": worker, "lease_until": until, "now": rules.iso(now)}
            for i in job_ids
        ]
        await self._transaction("extend leases", self._executemany("extend_lease", rows))

    async def release(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        now = rules.iso(self._now())
        rows = [{"id": j.id, "round": j.round, "now": now} for j in jobs]
        await self._transaction("release", self._executemany("release", rows))

    def _executemany(self, name: str, rows: list[rules.Params]) -> Body[int]:
        def body(conn: sqlite3.Connection) -> int:
            return max(conn.executemany(self._sql[name], rows).rowcount, 0)

        return body

    async def fail(self, job: Job, error: str, retry_at: datetime | None) -> None:
        """`failed` until `retry_at`, or `dead` (and its report marked incomplete)."""
        params = {
            "id": job.id,
            "round": job.round,
            "error": error,
            "doi": job.doi,
            "retry_at": rules.iso(retry_at) if retry_at is not None else None,
            "now": rules.iso(self._now()),
        }

        def body(conn: sqlite3.Connection) -> None:
            cursor = conn.execute(self._sql["fail"], params)
            if retry_at is None and cursor.rowcount > 0:
                conn.execute(self._sql["mark_incomplete"], params)

        await self._transaction("fail", body)

    async def requeue_expired(self) -> int:
        rows = [{"now": rules.iso(self._now())}]
        return await self._transaction(
            "requeue expired", self._executemany("requeue_expired", rows)
        )

    async def enqueue_stale(self, now: datetime) -> int:
        """Page 1 of every report due for a refresh, with round = its max round + 1."""

        def body(conn: sqlite3.Connection) -> int:
            rows = conn.execute(self._sql["stale_page_one"], {"now": rules.iso(now)}).fetchall()
            jobs = [NewJob(r["doi"], r["url"], 1, r["depth"], r["round"]) for r in rows]
            return self._enqueue_rows(conn, jobs) if jobs else 0

        return await self._transaction("enqueue stale", body)

    # ------------------------------------------------------------ completions

    async def complete(self, completion: Completion) -> None:
        """Hand the page to the writer; return once it is committed (or raise StoreError)."""
        if self._closing or self._writer_task is None:
            raise StoreError("store is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(completion, future))  # blocks when behind
        await future

    async def _write_loop(self) -> None:
        """The one writer: take what is queued (up to a batch, never waiting for more)."""
        stop = False
        while not stop:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self.writer_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stop = True
                    break
                batch.append(item)
            await self._commit_batch(batch)
        self._fail_leftovers()

    def _fail_leftovers(self) -> None:
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None:
                _settle(item.future, StoreError("store closed before the page was written"))

    async def _commit_batch(self, batch: list[_Pending]) -> None:
        try:
            await self._commit_pages([p.completion for p in batch])
        except Exception as exc:
            error = _as_store_error(exc)
            if len(batch) == 1 or _is_busy(error):
                for pending in batch:
                    _settle(pending.future, error)
                return
            for pending in batch:  # isolate the bad page(s)
                try:
                    await self._commit_pages([pending.completion])
                except Exception as one:
                    _settle(pending.future, _as_store_error(one))
                else:
                    _settle(pending.future, None)
            return
        for pending in batch:
            _settle(pending.future, None)

    async def _commit_pages(self, items: list[Completion]) -> None:
        await self._transaction("complete", partial(self._write_pages, items=items))

    def _write_pages(self, conn: sqlite3.Connection, items: list[Completion]) -> None:
        states = self._report_states(conn, rules.page_one_dois(items))
        plan = rules.plan_completions(items, states, self._now(), self._policy)
        for name, rows in plan.steps():
            if rows:
                conn.executemany(self._sql[name], rows)
        if plan.follow_ups:
            self._enqueue_rows(conn, plan.follow_ups)
        conn.executemany(self._sql["mark_done"], plan.mark_done)

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

    async def _read_one(self, name: str, params: rules.Params | None = None) -> Any:
        with _db_errors(name):
            async with self._read_conn().execute(self._sql[name], params or {}) as cur:
                row = await cur.fetchone()
        return row[0] if row else None

    async def _read_all(self, name: str, params: rules.Params | None = None) -> list[Any]:
        with _db_errors(name):
            async with self._read_conn().execute(self._sql[name], params or {}) as cur:
                return list(await cur.fetchall())

    async def pending(self) -> int:
        return int(await self._read_one("pending"))

    async def next_due(self) -> datetime | None:
        value = await self._read_one("next_due")
        return rules.from_iso(value) if value else None

    async def dead_among(self, dois: Sequence[str]) -> dict[str, int]:
        rows = await self._read_all("dead_among", {"dois": json.dumps(list(dois))})
        return {r[0]: r[1] for r in rows}

    async def stats(self) -> Stats:
        now = self._now()
        by_state: dict[str, int] = dict.fromkeys(JOB_STATES, 0)
        by_state.update({r[0]: r[1] for r in await self._read_all("jobs_by_state")})
        dead = tuple(DeadReason(r[0], r[1]) for r in await self._read_all("dead_by_reason"))
        return Stats(
            jobs_by_state=by_state,
            dead_by_reason=dead,
            incomplete_reports=int(await self._read_one("incomplete_reports")),
            rows_by_table={t: await self._count(t) for t in EXPORT_TABLES},
            pages_last_minute=await self._done_since(now - timedelta(minutes=1)),
            pages_last_hour=await self._done_since(now - timedelta(hours=1)),
            active_runs=tuple(await self.active_runs(RUN_STALE_AFTER)),
        )

    async def _done_since(self, since: datetime) -> int:
        return int(await self._read_one("pages_done_since", {"since": rules.iso(since)}))

    async def _count(self, table: str) -> int:
        with _db_errors(f"count {table}"):
            async with self._read_conn().execute(f"SELECT count(*) FROM {table}") as cur:
                row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def export(self, table: str) -> AsyncIterator[dict[str, Any]]:
        """Keyset pages in key order: no read transaction is held between pages, so a
        slow consumer never pins the WAL."""
        if table not in EXPORT_TABLES:
            raise StoreError(f"unknown table {table!r}; one of {', '.join(EXPORT_TABLES)}")
        columns, keys = rules.COLUMNS[table], rules.KEYS[table]
        select = f"SELECT {', '.join(columns)} FROM {table}"
        order = f"ORDER BY {', '.join(keys)} LIMIT {EXPORT_CHUNK}"
        after = f"WHERE ({', '.join(keys)}) > ({', '.join('?' for _ in keys)})"
        last: tuple[Any, ...] | None = None
        while True:
            sql = f"{select} {order}" if last is None else f"{select} {after} {order}"
            with _db_errors(f"export {table}"):
                async with self._read_conn().execute(sql, last or ()) as cur:
                    rows = list(await cur.fetchall())
            for row in rows:
                yield dict(zip(columns, row, strict=True))
            if len(rows) < EXPORT_CHUNK:
                return
            last = tuple(rows[-1][k] for k in keys)

    # ------------------------------------------------------------ runs

    async def start_run(self, kind: str, host: str, pid: int) -> int:
        params = {"kind": kind, "host": host, "pid": pid, "now": rules.iso(self._now())}

        def body(conn: sqlite3.Connection) -> int:
            row = conn.execute(self._sql["start_run"], params).fetchone()
            if row is None:
                raise StoreError("start_run returned no id")
            return int(row[0])

        return await self._transaction("start run", body)

    async def heartbeat_run(self, run_id: int) -> None:
        rows = [{"id": run_id, "now": rules.iso(self._now())}]
        await self._transaction("heartbeat run", self._executemany("heartbeat_run", rows))

    async def finish_run(self, run_id: int, summary: dict[str, Any]) -> None:
        rows = [
            {
                "id": run_id,
                "now": rules.iso(self._now()),
                "summary": json.dumps(summary, default=str, sort_keys=True),
            }
        ]
        await self._transaction("finish run", self._executemany("finish_run", rows))

    async def active_runs(self, stale_after: float) -> list[RunInfo]:
        since = rules.iso(self._now() - timedelta(seconds=stale_after))
        rows = await self._read_all("active_runs", {"since": since})
        return [RunInfo(*tuple(r)) for r in rows]


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    """Resolve a completion's future unless its caller gave up waiting."""
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


def _as_store_error(exc: BaseException) -> StoreError:
    if isinstance(exc, StoreError):
        return exc
    error = StoreError(f"cannot store page: {exc!r}")
    error.__cause__ = exc
    return error
