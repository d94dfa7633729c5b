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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pipeline.clock import Clock, SystemClock
from pipeline.config import Settings, check_shareable
from pipeline.crawl.api import ApiClient
from pipeline.crawl.fetcher import AiohttpFetcher, Fetcher
from pipeline.crawl.parsing import ParseBudget, Parser, ProcessBudgetParser
from pipeline.crawl.retry import RetryPolicy
from pipeline.crawl.worker import Worker, WorkerOptions
from pipeline.errors import ConfigError, StoreError
from pipeline.models import RunCounters
from pipeline.sources import make_batch_source, make_source
from pipeline.sources.base import BatchSource, Source
from pipeline.store import open_store
from pipeline.store.base import Store
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
    api: ApiClient | None = None  # scite's API (batch jobs), over the store's host ledger
    batch_source: BatchSource | None = None
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
            api=self.api,
            batch_source=self.batch_source,
            parser=self.parser,
        )

    async def register_run(self, kind: str) -> int:
        return await self.store.start_run(kind, socket.gethostname(), os.getpid())


def make_store(settings: Settings, *, create: bool = True, clock: Clock | None = None) -> Store:
    """The store named by `settings.db`, built by its driver from the settings; its driver
    checks the location first. A location no store can serve is a configuration error
    naming `db` (exit code 2)."""
    own_clock = {} if clock is None or type(clock) is SystemClock else {"clock": clock.now}
    try:  # a real clock stays the store's own (PostgreSQL: the database's)
        return open_store(settings, create=create, **own_clock)
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
    # any process can work batch jobs another queued; its session opens at first use
    api = ApiClient(settings, hosts=the_store)
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
            api=api,
            batch_source=make_batch_source(settings),
            parser=parser,
        )
    finally:
        parser.close()
        try:
            try:
                await api.close()
            finally:
                if own_fetcher:
                    await the_fetcher.close()
        finally:
            if own_store:
                await the_store.close()
