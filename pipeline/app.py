"""Composition root: builds the store, fetcher, source and worker from Settings.

Everything that opens a resource is opened and closed here, so the CLI, the demo and the
tests all assemble the pipeline the same way.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import Settings
from pipeline.errors import ConfigError, StoreError
from pipeline.fetcher import AiohttpFetcher
from pipeline.retry import RetryPolicy
from pipeline.sources.report import ReportSource, load_selectors
from pipeline.store import open_store
from pipeline.store.base import Store
from pipeline.worker import RunCounters, Worker, WorkerOptions


def broken_dir(settings: Settings) -> Path | None:
    """Broken pages are kept beside the database file, in `broken/`."""
    if "://" in settings.db and not settings.db.startswith("sqlite:"):
        return Path("broken-pages")
    db = settings.db.removeprefix("sqlite:///")
    return Path(db).resolve().parent / "broken"


@dataclass
class Pipeline:
    """The assembled parts of one citepipe process."""

    settings: Settings
    store: Store
    fetcher: AiohttpFetcher
    source: ReportSource
    policy: RetryPolicy

    def worker(
        self,
        *,
        burst: bool,
        max_duration: float = 0.0,
        on_page: Callable[[RunCounters], None] | None = None,
    ) -> Worker:
        s = self.settings
        return Worker(
            self.store,
            self.fetcher,
            self.source,
            self.policy,
            WorkerOptions(
                concurrency=s.concurrency,
                claim_batch=s.claim_batch,
                lease_seconds=s.lease_seconds,
                base_url=s.base_url,
                burst=burst,
                max_duration=max_duration,
                broken_dir=broken_dir(s),
            ),
            on_page=on_page,
        )

    async def register_run(self, kind: str) -> int:
        return await self.store.start_run(kind, socket.gethostname(), os.getpid())


def make_store(settings: Settings, *, create: bool = True) -> Store:
    """The store named by `settings.db` (a SQLite path, or a database URL).

    A location no store can serve is a configuration error naming `db` (exit code 2).
    """
    try:
        return open_store(
            settings.db,
            create=create,
            writer_batch=settings.writer_batch,
            refresh_interval=settings.refresh_interval,
            refresh_min=settings.refresh_min,
            refresh_max=settings.refresh_max,
        )
    except StoreError as exc:
        raise ConfigError(f"db: {exc}") from None


@asynccontextmanager
async def open_pipeline(settings: Settings, *, create: bool = True) -> AsyncIterator[Pipeline]:
    """Open the store and the fetcher; close both on the way out, whatever happens.

    `create=False` is for commands that only read: a store that does not exist yet is
    an error for them, not an empty file left behind."""
    source = ReportSource(load_selectors(settings.selectors or None))
    store = make_store(settings, create=create)
    await store.open()
    fetcher = AiohttpFetcher(settings, hosts=store)  # politeness shared through the store
    try:
        yield Pipeline(settings, store, fetcher, source, RetryPolicy.from_settings(settings))
    finally:
        await fetcher.close()
        await store.close()
