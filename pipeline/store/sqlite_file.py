"""The SQLite file: where a store may live, its connections and its schema.

`check_location` refuses, before anything is opened or written, a location no run should
touch; `check_writable` says why SQLite could not write one. A `Connection` is a stdlib
`sqlite3` connection owned by its own one-thread executor (what aiosqlite does, with
only public APIs): a transaction is one synchronous body run whole on that thread
(`run_transaction`), so no cancelled await can leave it half done. `migrate` applies the
numbered migrations a file lacks. The store itself is `store/sqlite.py`. Why not
aiosqlite: docs/performance.md, "aiosqlite or our own executor".
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from pipeline.errors import ConfigError, StoreError
from pipeline.store import rules
from pipeline.store.queries import Migration, migrations, plan_migrations
from pipeline.store.rules import iso

T = TypeVar("T")
Clock = Callable[[], datetime]
Body = Callable[[sqlite3.Connection], T]  # work run on a connection's own thread

MEMORY = ":memory:"  # SQLite's private in-memory database (the memory store)

BUSY_TIMEOUT = 10.0  # seconds another process may hold the write lock before we give up
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
_SQLITE_HEADER = b"SQLite format 3\x00"


@contextlib.contextmanager
def os_errors(path: str) -> Iterator[None]:
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


# ---------------------------------------------------------------- locations


def sqlite_path(db: str) -> str | None:
    """The file path of a SQLite store location (`path` or `sqlite:///path`), else None."""
    if db.startswith("sqlite:///"):
        return db[len("sqlite:///") :]
    return None if "://" in db else db


def check_location(path_or_db: str | os.PathLike[str], *, create: bool) -> None:
    """Refuse, before anything is opened or written, a SQLite location no run should
    touch: a directory, an empty file for a read-only command, a file that is not
    SQLite, or another program's SQLite database (which a migration would change).

    `path_or_db` is a file path or a `db` setting (`sqlite:///path`; another URL is not
    SQLite's and passes). The errors are `ConfigError`s naming `db`."""
    path = sqlite_path(os.fspath(path_or_db))
    if path is None or path == MEMORY:
        return
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"db: {path} is a directory, not a store file")
    if not target.is_file():
        return  # missing: the store makes it, or (create=False) refuses it
    try:
        check_writable(path)  # before the peek below, which would leave -wal/-shm files
    except StoreError as exc:
        raise ConfigError(f"db: {exc}") from None
    try:
        with target.open("rb") as f:
            header = f.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise ConfigError(
            f"db: cannot read {path}: {exc.strerror} (running as uid {os.getuid()})"
        ) from None
    if not header:
        if not create:
            raise ConfigError(
                f"db: {path} is an empty file, not a store "
                "(`citepipe backfill` or `citepipe crawl` makes one)"
            )
        return
    if header != _SQLITE_HEADER:
        raise ConfigError(f"db: {path} is not a SQLite file")
    try:
        con = sqlite3.connect(f"file:{target.resolve().as_posix()}?mode=ro", uri=True)
        try:
            names = {n for (n,) in con.execute("select name from sqlite_master")}
        finally:
            con.close()
    except sqlite3.Error:
        return  # unreadable this way (locked, WAL without -shm): the store will say
    if names and "schema_version" not in names:
        raise ConfigError(
            f"db: {path} is a SQLite database of another program, not a citepipe store; "
            "refusing to change it"
        )
    if not names and not create:
        raise ConfigError(f"db: {path} is an empty SQLite database, not a store")


def is_demo_store(path: str) -> bool:
    """Whether `path` is a SQLite store that only `citepipe demo` ever ran on (so a new
    demo may remove it)."""
    try:
        con = sqlite3.connect(f"file:{Path(path).resolve().as_posix()}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        kinds = {k for (k,) in con.execute("select distinct kind from runs")}
        con.execute("select 1 from jobs limit 1").fetchall()
    except sqlite3.Error:
        return False
    finally:
        con.close()
    return kinds == {"demo"}


def is_lock_error(exc: BaseException) -> bool:
    """SQLite's SQLITE_BUSY / SQLITE_LOCKED (any extended code): another connection holds
    the lock. Read from the error code, not the message."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and (code & 0xFF) in _LOCK_CODES


def is_busy(exc: BaseException) -> bool:
    """A lock timeout: retrying page by page would only wait again."""
    return exc.__cause__ is not None and is_lock_error(exc.__cause__)


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
                if not is_lock_error(exc) or time.monotonic() >= deadline:
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
    for migration in plan_migrations(applied, found):
        body = partial(_apply, migration=migration, applied_at=iso(clock()))
        await conn.run(partial(run_transaction, body=body))
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


def run_transaction(raw: sqlite3.Connection, body: Body[T]) -> T:
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
