"""The composition root: `open_pipeline(settings)` assembles one process's parts.

Each part is built from Settings, and any part can be injected (as httpx's
`AsyncClient(transport=...)` or procrastinate's `App(connector=...)`): a store, a fetcher,
a source, a clock. That is how the tests run whole crawls in-process against a memory
store, a fake fetcher or a manual clock. Injected parts are used as given and left open
for their owner. What runs over a `Pipeline` (backfill, crawl, ...) lives in `runs/`, what
reads or changes a store after a crawl in `ops/`, and the command line in `cli/`: this
module imports none of them.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.clock import Clock, SystemClock
from pipeline.config import Settings, check_shareable
from pipeline.crawl.fetcher import AiohttpFetcher, Fetcher
from pipeline.crawl.parsing import ParseBudget, Parser, ProcessBudgetParser
from pipeline.crawl.retry import RetryPolicy
from pipeline.crawl.worker import RunCounters, Worker, WorkerOptions
from pipeline.errors import ConfigError, StoreError
from pipeline.sources import make_source
from pipeline.sources.base import Source
from pipeline.store import open_store
from pipeline.store.base import Store
from pipeline.store.sqlite import check_writable
from pipeline.urls import has_userinfo, strip_userinfo

STOP_GRACE = 1.0  # seconds in-flight pages get after a stop request (Ctrl-C, SIGTERM)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How runs of this process stop: built from Settings, in one place."""

    stop_grace: float  # after a signal: in-flight pages get this long, the rest is released
    budget_grace: float  # after the time budget: one request timeout to finish and commit

    @classmethod
    def from_settings(cls, s: Settings) -> RunOptions:
        return cls(stop_grace=min(STOP_GRACE, s.timeout), budget_grace=s.timeout)


@dataclass
class Pipeline:
    """The assembled parts of one citepipe process."""

    settings: Settings
    store: Store
    fetcher: Fetcher
    source: Source
    policy: RetryPolicy
    clock: Clock
    options: RunOptions
    parser: Parser | None = None  # where pages are parsed (bounded worker processes)

    def worker(
        self, *, burst: bool, on_page: Callable[[RunCounters], None] | None = None
    ) -> Worker:
        return Worker(
            self.store,
            self.fetcher,
            self.source,
            self.policy,
            WorkerOptions.from_settings(self.settings, burst=burst),
            on_page=on_page,
            now=self.clock.now,
            parser=self.parser,
        )

    async def register_run(self, kind: str) -> int:
        return await self.store.start_run(kind, socket.gethostname(), os.getpid())


_SQLITE_HEADER = b"SQLite format 3\x00"


def sqlite_path(db: str) -> str | None:
    """The file path of a SQLite store location (`path` or `sqlite:///path`), else None."""
    if db.startswith("sqlite:///"):
        return db[len("sqlite:///") :]
    return None if "://" in db else db


def check_store_location(settings: Settings, *, create: bool) -> None:
    """Refuse, before anything is opened or written, a SQLite location no run should
    touch: a directory, an empty file for a read-only command, a file that is not
    SQLite, or another program's SQLite database (which a migration would change)."""
    path = sqlite_path(settings.db)
    if path is None or path == ":memory:":
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


def make_store(settings: Settings, *, create: bool = True, clock: Clock | None = None) -> Store:
    """The store named by `settings.db` (a SQLite path, or a database URL).

    A location no store can serve is a configuration error naming `db` (exit code 2).
    """
    opts: dict[str, Any] = {"pool_min": settings.pg_pool_min, "pool_max": settings.pg_pool_max}
    if clock is not None and type(clock) is not SystemClock:  # a test clock, or a subclass
        opts["clock"] = clock.now  # a real clock stays the store's own (PostgreSQL: the db's)
    try:
        return open_store(
            settings.db,
            create=create,
            writer_batch=settings.writer_batch,
            refresh_interval=settings.refresh_interval,
            refresh_min=settings.refresh_min,
            refresh_max=settings.refresh_max,
            **opts,
        )
    except StoreError as exc:
        raise ConfigError(f"db: {exc}") from None


@asynccontextmanager
async def open_pipeline(
    settings: Settings,
    *,
    store: Store | None = None,
    fetcher: Fetcher | None = None,
    clock: Clock | None = None,
    source: Source | None = None,
    create: bool = True,
) -> AsyncIterator[Pipeline]:
    """Assemble the pipeline; close what was opened here on the way out, whatever happens.

    Injected parts are used as given and left open for their owner (a test may run two
    pipelines over one store). A store that cannot be opened is a configuration error
    naming `db` (exit 2). `create=False` is for commands that only read: a store that
    does not exist yet is an error for them, not an empty file left behind.
    """
    clock = clock or SystemClock()
    if has_userinfo(settings.base_url):  # never stored, never sent
        settings = dataclasses.replace(settings, base_url=strip_userinfo(settings.base_url))
    source = source or make_source(settings)
    own_store = store is None
    if own_store:
        check_store_location(settings, create=create)
        check_shareable(settings)  # settings built in code skip validate(): check here too
    the_store = store if store is not None else make_store(settings, create=create, clock=clock)
    try:
        await the_store.open()
    except StoreError as exc:
        raise ConfigError(f"db: {exc}") from None
    own_fetcher = fetcher is None
    the_fetcher: Fetcher = (  # politeness shared through the store
        fetcher
        if fetcher is not None
        else AiohttpFetcher(settings, hosts=the_store, scope=source.in_scope)
    )
    budget = ParseBudget(settings.parse_cpu_seconds, settings.parse_memory_mb)
    parser = ProcessBudgetParser(source, budget)  # its processes start at the first page
    try:
        yield Pipeline(
            settings,
            the_store,
            the_fetcher,
            source,
            RetryPolicy.from_settings(settings),
            clock,
            RunOptions.from_settings(settings),
            parser,
        )
    finally:
        parser.close()
        try:
            if own_fetcher:
                await the_fetcher.close()
        finally:
            if own_store:
                await the_store.close()
