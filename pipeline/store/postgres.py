"""The PostgreSQL store: many workers on many machines, one database (asyncpg).

Why asyncpg: it speaks PostgreSQL's binary protocol from asyncio with prepared statements
and pipelined `executemany`; pgqueuer's harness measured 14.1 k jobs/s on it against
8.35 k on psycopg 3.

Connections: one `asyncpg` pool per store (`pool_min`..`pool_max` connections, the
`pg_pool_min`/`pg_pool_max` settings). A transaction is taken from the pool, run whole and
given back. Deadlocks and serialization failures (rows locked in a different order by two
machines' batches) roll back and the whole transaction runs again, a few times.

Claims: one statement (`claim` in `sql/postgres/queries.sql`): a CTE picks due jobs from
the partial index `jobs_due` with `FOR UPDATE SKIP LOCKED LIMIT n`, the `UPDATE ...
RETURNING` leases them. Expired leases are taken back by whoever claims next (same
transaction, SKIP LOCKED too).

Waking up: workers poll (claim, and when nothing is due sleep until `next_due` or a short
interval), as with SQLite; there is no LISTEN/NOTIFY. A crawl's queue is never empty for
long and a worker is busy with its own in-flight pages, so a notification would save at
most one poll interval on an idle queue, while costing a dedicated connection per process
(which a pgbouncer in transaction mode cannot even carry) and a NOTIFY in every enqueue
transaction (a global lock at commit, what limits Oban and graphile at high rates).

Completions: a `CompletionWriter` batches up to `writer_batch` pages per transaction; the
citers and statements of the whole batch go in one statement each (arrays through
`unnest`), the other rows through pipelined `executemany` (one network round trip per
statement kind, not per row). Batches of all processes write one at a time
(`lock_writes`, an advisory lock given back just before COMMIT, so commits still
overlap): their rows overlap (citing papers), and unordered upserts of them deadlocked
under load, each deadlock costing a second (`deadlock_timeout`).

Politeness: `book_request` is one atomic `INSERT ... ON CONFLICT DO UPDATE ... RETURNING`
on the host's row, whose row lock serialises every process on every machine. With the
default clock the booking takes the database's clock, and the start comes back in the
caller's clock, so machines whose clocks differ still keep the spacing.

Times are `timestamptz` (aware datetimes both ways); `export` writes them as the same ISO
text as SQLite. asyncpg errors become `StoreError` here, and only here. See
docs/store-postgres.md.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Self, TypeVar, cast

import asyncpg

from pipeline import config
from pipeline.config import Settings
from pipeline.errors import StoreError
from pipeline.logs import redact_text
from pipeline.models import Completion, DeadJob, Job, NewJob, Requeued
from pipeline.store import rules, sql, tables
from pipeline.store.batching import CompletionWriter
from pipeline.store.postgres_errors import db_errors as _db_errors
from pipeline.store.postgres_errors import reconnecting
from pipeline.store.postgres_sql import (
    DIALECT,
    LOCK_ORDER,
    SET_WRITES,
    export_value,
    positional_cached,
    statements,
    status_count,
    time_positions,
)
from pipeline.store.queries import migrations, plan_migrations

T = TypeVar("T")
Clock = Callable[[], datetime]
Conn = Any  # asyncpg.Connection (asyncpg ships no type hints)
Body = Callable[[Conn], Awaitable[T]]

DEFAULT_QUEUE_SIZE = 1000
REQUEUE_EVERY = timedelta(seconds=1)  # a claim takes back expired leases this often
TX_RETRIES = 8  # a deadlocked or serialization-failed transaction runs again this often
CONNECT_TIMEOUT = 10.0  # seconds to connect before the store gives up
COMMAND_TIMEOUT = 60.0  # seconds one statement may take before the store gives up
# pg_advisory_lock key for migrations: "citepipe" in ASCII (`lock_writes` in queries.sql
# has a key of its own). Advisory locks are per database.
MIGRATION_LOCK = 0x63697465706970
_RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)


class PostgresStore(sql.SQLStore):
    """The Store protocol on one PostgreSQL database (see the module docstring)."""

    def __init__(
        self,
        dsn: str,
        *,
        writer_batch: int = config.DEFAULT_WRITER_BATCH,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        refresh_interval: float = config.DEFAULT_REFRESH_INTERVAL,
        refresh_min: float = config.DEFAULT_REFRESH_MIN,
        refresh_max: float = config.DEFAULT_REFRESH_MAX,
        clock: Clock | None = None,
        create: bool = True,
        pool_min: int = config.DEFAULT_PG_POOL_MIN,
        pool_max: int = config.DEFAULT_PG_POOL_MAX,
    ) -> None:
        """`create=False` refuses a database without a citepipe schema (status, export);
        `clock` None: bookings take the database's clock (several machines)."""
        if writer_batch < 1 or queue_size < 1:
            raise StoreError("writer_batch and queue_size must be >= 1")
        if not 1 <= pool_min <= pool_max:
            raise StoreError("pool sizes: need 1 <= pg_pool_min <= pg_pool_max")
        self.dsn = dsn
        self.create = create
        self.writer_batch = writer_batch
        self._queue_size = queue_size
        self._pool_min, self._pool_max = pool_min, pool_max
        self._policy = rules.RefreshPolicy(refresh_interval, refresh_min, refresh_max)
        self._db_clock = clock is None
        self._clock = clock or rules.utcnow
        self._sql = statements()
        self._dialect = DIALECT
        self._pool: Any = None  # asyncpg.Pool
        self._writer: CompletionWriter | None = None
        self._last_requeue: datetime | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, create: bool = True, clock: Clock | None = None
    ) -> Self:
        """The database at `settings.db`, its pool and writer sized by the settings."""
        return cls(
            settings.db,
            create=create,
            clock=clock,
            pool_min=settings.pg_pool_min,
            pool_max=settings.pg_pool_max,
            **sql.store_options(settings),
        )

    @staticmethod
    def check_location(dsn: str, *, create: bool) -> None:
        """Nothing to check before connecting: the server says what is wrong with a DSN,
        and `create=False` is checked on open (a database without a citepipe schema)."""

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Connect, create or migrate the schema (under an advisory lock), start the
        writer task."""
        if self._pool is not None:
            return
        where = f"cannot open the PostgreSQL store {redact_text(self.dsn)}"
        with _db_errors(where):
            pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self._pool_min,
                max_size=self._pool_max,
                command_timeout=COMMAND_TIMEOUT,
                timeout=CONNECT_TIMEOUT,
                server_settings={"application_name": "citepipe", "synchronous_commit": "off"},
            )
        try:
            with _db_errors(where):
                async with pool.acquire() as conn:
                    await self._migrate(conn)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        self._writer = CompletionWriter(
            self._commit_pages, batch=self.writer_batch, queue_size=self._queue_size
        )
        self._writer.start()

    async def _migrate(self, conn: Conn) -> int:
        """Apply the migrations the database lacks, each in its own transaction, holding a
        session advisory lock: processes starting together take turns, and each sees the
        version the previous one left."""
        if not self.create:
            found = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
            if not found:
                raise StoreError(
                    f"no store in {redact_text(self.dsn)}: nothing has been crawled into it yet "
                    "(`citepipe backfill` or `citepipe crawl` creates it)"
                )
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL)"
            )
            applied = {int(v) for (v,) in await conn.fetch("SELECT version FROM schema_version")}
            for migration in plan_migrations(applied, migrations(DIALECT)):
                async with conn.transaction():
                    for statement in migration.statements:
                        await conn.execute(statement)
                    await conn.execute(
                        "INSERT INTO schema_version (version, name, applied_at) "
                        "VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        self._clock(),
                    )
                applied.add(migration.version)
            version = max(applied, default=0)
            return version
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)

    async def close(self) -> None:
        """Commit what is queued, stop the writer, close the pool."""
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        pool, self._pool = self._pool, None
        if pool is not None:
            with _db_errors("close"):
                await pool.close()

    def _require_pool(self) -> Any:
        if self._pool is None:
            raise StoreError("store is not open")
        return self._pool

    async def _transaction(
        self,
        what: str,
        body: Body[T],
        *,
        durable: bool = False,
        atomic: bool = True,
        after_rollback: Body[None] | None = None,
    ) -> T:
        """Run `body` on a pooled connection, in one transaction when `atomic` (a single
        statement, or one `executemany`, is atomic by itself and spares BEGIN and COMMIT);
        run it again after a deadlock or serialization failure (rolled back whole).

        `durable`: the commit waits for the WAL flush (`synchronous_commit = on`). Only
        what is acknowledged to a caller as stored needs it: completions, enqueues,
        imports. A claim, lease, failure, booking or run row lost in a crash of the
        database server itself (never of a client) is harmless: the lease runs out and the
        job comes back. So connections run with `synchronous_commit = off`, and a claim
        costs no disk flush. `after_rollback` runs on the connection after a failed
        transaction rolled back."""

        async def run() -> T:
            return await self._run_transaction(body, durable, atomic, after_rollback)

        return await reconnecting(what, self.dsn, run)

    async def _run_transaction(
        self,
        body: Body[T],
        durable: bool,
        atomic: bool,
        after_rollback: Body[None] | None,
    ) -> T:
        """One go of `_transaction`: deadlocks and serialization failures run again here."""
        pool = self._require_pool()
        for attempt in range(TX_RETRIES):
            try:
                async with pool.acquire() as conn:
                    if not atomic:
                        return await body(conn)
                    try:
                        async with conn.transaction():
                            if durable:
                                await conn.execute("SET LOCAL synchronous_commit = on")
                            return await body(conn)
                    except BaseException:
                        if after_rollback is not None:
                            await after_rollback(conn)
                        raise
            except _RETRYABLE:
                if attempt == TX_RETRIES - 1:
                    raise
                await asyncio.sleep(random.uniform(0, 0.02 * 2**attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _executemany(self, name: str, rows: Sequence[rules.Params]) -> Body[None]:
        stmt = self._sql[name]
        order = LOCK_ORDER.get(name)
        if order:
            rows = sorted(rows, key=lambda r: tuple(r[k] for k in order))
        args = [stmt.args(r) for r in rows]

        async def body(conn: Conn) -> None:
            if args:
                await conn.executemany(stmt.sql, args)

        return body

    async def _write(
        self, what: str, name: str, rows: Sequence[rules.Params], *, durable: bool = False
    ) -> int:
        """One row: one statement, its command tag's count; several: one pipelined
        `executemany` in lock order (`LOCK_ORDER`), which reports no count, so the rows
        sent. Either is atomic by itself, so only a durable write takes an explicit
        transaction (for `SET LOCAL synchronous_commit = on`)."""
        if not rows:
            return 0
        if len(rows) > 1:
            many = self._executemany(name, rows)

            async def batch(conn: Conn) -> int:
                await many(conn)
                return len(rows)

            return await self._transaction(what, batch, durable=durable, atomic=durable)
        stmt = self._sql[name]
        args = stmt.args(rows[0])

        async def one(conn: Conn) -> int:
            return status_count(await conn.execute(stmt.sql, *args))

        return await self._transaction(what, one, durable=durable, atomic=durable)

    async def _write_returning(
        self, what: str, name: str, params: rules.Params, *, durable: bool = False
    ) -> list[sql.Row]:
        """One statement with RETURNING; atomic by itself unless durable (see `_write`)."""
        stmt = self._sql[name]
        args = stmt.args(params)

        async def body(conn: Conn) -> list[sql.Row]:
            return list(await conn.fetch(stmt.sql, *args))

        return await self._transaction(what, body, durable=durable, atomic=durable)

    async def _read_all(self, name: str, params: rules.Params | None = None) -> list[Any]:
        """Run a named query on a pooled connection (lists go in as arrays)."""
        stmt = self._sql[name]
        args = stmt.args(params or {})

        async def run() -> list[Any]:
            return cast(list[Any], await self._require_pool().fetch(stmt.sql, *args))

        return await reconnecting(name, self.dsn, run)

    async def _read_tuples(
        self, query: str, params: rules.Params, table: str
    ) -> list[tuple[Any, ...]]:
        """Tuples with the table's `timestamptz` columns as the export's ISO text."""
        stmt = positional_cached(query)
        pool = self._require_pool()
        with _db_errors(f"export {table}"):
            rows = await pool.fetch(stmt.sql, *stmt.args(params))
        times = time_positions(table)
        if not times:
            return [tuple(r) for r in rows]
        out = []
        for r in rows:
            row = list(r)
            for i in times:
                if row[i] is not None:
                    row[i] = rules.iso(row[i])
            out.append(tuple(row))
        return out

    def _time(self, value: Any) -> datetime:
        """Times are `timestamptz`: asyncpg gives aware datetimes already."""
        return cast(datetime, value)

    def _text_row(self, row: Any) -> dict[str, Any]:
        """A row with its `timestamptz` values as the export's ISO text."""
        return {k: export_value(v) for k, v in row.items()}

    # ------------------------------------------------------------ queue

    async def _enqueue_chunk(self, jobs: Sequence[NewJob]) -> int:
        body = partial(self._enqueue_rows, jobs=jobs)
        return await self._transaction("enqueue", body, durable=True)

    async def _enqueue_rows(self, conn: Conn, jobs: Sequence[NewJob]) -> int:
        now = self._now()
        rows = [rules.enqueue_params(job, now) for job in jobs]  # input order: queue order
        if any(job.round > 0 for job in jobs):  # round 0 can never bump a stored round
            await self._executemany("enqueue_bump_round", rows)(conn)
        stmt = self._sql["enqueue"]
        added = await conn.fetchmany(stmt.sql, [stmt.args(r) for r in rows])
        await self._executemany("provenance_seed", rules.seed_rows(jobs))(conn)
        return len(added)

    async def claim(self, worker: str, limit: int, lease_seconds: float) -> list[Job]:
        """Lease due jobs in one statement; expired leases are taken back first."""
        if limit < 1:
            return []
        now = self._now()
        params: rules.Params = {
            "now": now,
            "worker": worker,
            "limit": limit,
            "lease_until": now + timedelta(seconds=lease_seconds),
        }
        if self._last_requeue is None or now - self._last_requeue >= REQUEUE_EVERY:
            await self.requeue_expired()  # its own statement: it need not be atomic with
            self._last_requeue = now  # the claim, and runs at most once a second
        claim = self._sql["claim"]

        async def body(conn: Conn) -> list[Any]:
            return cast(list[Any], await conn.fetch(claim.sql, *claim.args(params)))

        rows = await self._transaction("claim", body, atomic=False)
        rows.sort(key=lambda r: (r["not_before"], r["id"]))
        return [rules.job_from_row(row) for row in rows]

    async def fail(self, job: Job, error: str, retry_at: datetime | None) -> None:
        """`failed` until `retry_at`, or `dead` (and, for a page after the first, its
        report marked incomplete with the reason: `rules.dead_page_reason`)."""
        reason = rules.dead_page_reason(job, error) if retry_at is None else None
        params: rules.Params = {
            "id": job.id,
            "round": job.round,
            "error": error,
            "doi": job.doi,
            "reason": reason,
            "retry_at": retry_at,
            "now": self._now(),
        }
        fail, mark = self._sql["fail"], self._sql["mark_incomplete"]
        baseline, snapshot = self._sql["completeness_baseline"], self._sql["completeness_snapshot"]

        async def body(conn: Conn) -> None:
            hit = await conn.fetch(fail.sql, *fail.args(params))
            if reason is not None and hit:
                await conn.execute(baseline.sql, *baseline.args(params))
                await conn.execute(mark.sql, *mark.args(params))
                await conn.execute(snapshot.sql, *snapshot.args(params))

        await self._transaction("fail", body)

    async def enqueue_stale(
        self, now: datetime, address: Callable[[str, str], str] | None = None
    ) -> int:
        """Page 1 of every report due for a refresh, with round = its max round + 1, at
        `address(doi, url)` when given."""
        where = address or (lambda _doi, url: url)
        stmt = self._sql["stale_page_one"]

        async def body(conn: Conn) -> int:
            rows = await conn.fetch(stmt.sql, *stmt.args({"now": now}))
            jobs = [
                NewJob(r["doi"], where(r["doi"], r["url"]), 1, r["depth"], r["round"]) for r in rows
            ]
            return await self._enqueue_rows(conn, jobs) if jobs else 0

        return await self._transaction("enqueue stale", body, durable=True)

    async def enqueue_due_batches(
        self, now: datetime, batches: Callable[[Sequence[str], int], Sequence[NewJob]]
    ) -> int:
        """`batches(due DOIs, batch round + 1)` queued, in one transaction."""
        due, top = self._sql["due_refresh_dois"], self._sql["batch_round"]

        async def body(conn: Conn) -> int:
            dois = [r[0] for r in await conn.fetch(due.sql, *due.args({"now": now}))]
            if not dois:
                return 0
            jobs = batches(dois, int(await conn.fetchval(top.sql)) + 1)
            return await self._enqueue_rows(conn, jobs) if jobs else 0

        return await self._transaction("enqueue due batches", body, durable=True)

    async def requeue_dead(
        self,
        address: Callable[[DeadJob], str | None],
        *,
        reason: str | None = None,
        dois: Sequence[str] | None = None,
    ) -> Requeued:
        """Dead jobs queued again at their rebuilt addresses, in one transaction."""
        select, update = self._sql["dead_jobs"], self._sql["requeue_dead"]
        params = {"reason": reason, "dois": None if dois is None else list(dois)}

        async def body(conn: Conn) -> Requeued:
            now = self._now()
            rows, kept, reports = [], 0, set()
            for r in await conn.fetch(select.sql, *select.args(params)):
                url = address(DeadJob(r["doi"], r["page"], r["url"], r["reason"]))
                if url is None:
                    kept += 1
                    continue
                rows.append(update.args({"id": r["id"], "url": url, "now": now}))
                reports.add(r["doi"])
            done = len(await conn.fetchmany(update.sql, rows)) if rows else 0
            return Requeued(jobs=done, reports=len(reports), kept=kept)

        return await self._transaction("requeue dead jobs", body, durable=True)

    # ------------------------------------------------------------ completions

    async def complete(self, completion: Completion) -> None:
        """Hand the page to the writer; return once it is committed (or raise StoreError)."""
        if self._writer is None:
            raise StoreError("store is closed")
        await self._writer.submit(completion)

    async def _commit_pages(self, items: list[Completion]) -> None:
        """The batch's writes under the writers' lock (`lock_writes` in queries.sql), a
        session lock given back just before COMMIT. A rollback keeps a session lock, so
        after a failed write it is given back once the transaction has rolled back (or the
        connection is closed, which ends it with the session)."""
        lock, unlock = self._sql["lock_writes"].sql, self._sql["unlock_writes"].sql
        held = False

        async def body(conn: Conn) -> None:
            nonlocal held
            await conn.execute(lock)
            held = True
            await self._write_pages(conn, items)
            await conn.execute(unlock)
            held = False

        async def after_rollback(conn: Conn) -> None:
            nonlocal held
            if held:
                held = False
                try:
                    await conn.execute(unlock)
                except Exception:
                    conn.terminate()

        await self._transaction("complete", body, durable=True, after_rollback=after_rollback)

    async def _write_pages(self, conn: Conn, items: list[Completion]) -> None:
        states = await self._report_states(conn, rules.page_one_dois(items))
        plan = rules.plan_completions(items, states, self._now(), self._policy)
        for name, rows in plan.steps():
            if not rows:
                continue
            if name in SET_WRITES:  # the many rows of a batch: one statement, arrays
                stmt = self._sql[f"{name}_set"]
                await conn.execute(stmt.sql, *stmt.args(SET_WRITES[name](rows)))
            else:
                await self._executemany(name, rows)(conn)
        if plan.follow_ups:  # in key order, as the other writes (lock order)
            follow_ups = sorted(plan.follow_ups, key=lambda j: (j.doi, j.page))
            await self._enqueue_rows(conn, follow_ups)
        await self._executemany("mark_done", plan.mark_done)(conn)

    async def _report_states(self, conn: Conn, dois: list[str]) -> dict[str, rules.ReportState]:
        if not dois:
            return {}
        stmt = self._sql["page_one_state"]
        rows = await conn.fetch(stmt.sql, *stmt.args({"dois": dois}))
        return {
            r["doi"]: rules.ReportState(
                r["refresh_interval"],
                tuple(r[f] for f in tables.TALLY_FIELDS) if r["has_tallies"] else None,
            )
            for r in rows
        }

    # ------------------------------------------------------------ copy-store

    async def import_rows(self, table: str, rows: Sequence[dict[str, Any]]) -> int:
        """Insert exported rows as they are (ids kept) in one transaction; rows already
        there are left alone. Moves the id sequences past the copied ids."""
        stmt = self._sql[f"import_{table}"]
        args = [stmt.args(r) for r in rows]
        sync = self._sql["sync_ids"]

        async def body(conn: Conn) -> int:
            if args:
                await conn.executemany(stmt.sql, args)
            if "id" in tables.KEYS[table]:
                await conn.execute(sync.sql)
            return len(args)

        return await self._transaction(f"import {table}", body, durable=True)

    # ------------------------------------------------------------ politeness (hosts)

    async def book_request(self, host: str, delay: float) -> datetime:
        """`rules.book_request` in one statement on the host's row (see `host_book`).
        With the database's clock, `start` is turned into this process's clock."""
        stmt = self._sql["host_book"]
        now = None if self._db_clock else self._now()
        args = stmt.args({"host": host, "now": now, "delay": float(max(0.0, delay))})

        async def body(conn: Conn) -> Any:
            return await conn.fetchrow(stmt.sql, *args)

        row = await self._transaction("book request", body, atomic=False)
        start, db_now = row["start"], row["db_now"]
        if now is None:
            return cast(datetime, self._now() + (start - db_now))
        return cast(datetime, start)
