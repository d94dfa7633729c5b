"""Between crawls: `retry` (dead jobs queued again), `prune` (retention of done jobs) and
`copy-store` (one store into another, resumable and checked by counts)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import timedelta

import structlog

from pipeline.app import Pipeline, make_store, open_pipeline
from pipeline.clock import Clock, SystemClock
from pipeline.config import Settings
from pipeline.errors import BadInputError, ConfigError, StoreError
from pipeline.models import DeadJob, Requeued
from pipeline.store.copy import CopyReport, TableCopy
from pipeline.store.copy import copy_store as copy_tables

log = structlog.get_logger("citepipe")


async def prune_done(settings: Settings, older_than: float, *, clock: Clock | None = None) -> int:
    """`citepipe prune`: retention of done later-page jobs (`Store.purge_done`)."""
    clock = clock or SystemClock()
    async with open_pipeline(settings, create=False, clock=clock) as p:
        return await p.store.purge_done(clock.now() - timedelta(seconds=older_than))


async def copy_store(
    settings: Settings,
    source: str,
    target: str,
    *,
    chunk: int,
    on_table: Callable[[TableCopy], None] | None = None,
) -> CopyReport:
    """`citepipe copy-store`: every exported table of the store at `source` into the
    store at `target` (made if missing), resumable and checked by counts
    (`store/copy.py`). A location no store can serve is a configuration error (exit 2)."""
    if source == target:
        raise ConfigError("copy-store: the source and the target are the same store")
    src_settings = dataclasses.replace(settings, db=source)
    dst_settings = dataclasses.replace(settings, db=target)
    src = make_store(src_settings, create=False)
    dst = make_store(dst_settings, create=True)
    try:
        await src.open()
    except StoreError as exc:
        raise ConfigError(f"copy-store source: {exc}") from None
    try:
        try:
            await dst.open()
        except StoreError as exc:
            raise ConfigError(f"copy-store target: {exc}") from None
        try:
            return await copy_tables(src, dst, chunk=chunk, on_table=on_table)
        finally:
            await dst.close()
    finally:
        await src.close()


async def retry(
    p: Pipeline, *, reason: str | None = None, dois: Sequence[str] | None = None
) -> Requeued:
    """`citepipe retry`: queue dead jobs again at addresses rebuilt from the current
    `base_url` by the Source (page 1 from the DOI; later pages keep their report path and
    query on the current site), attempts reset. `reason` (a substring, any case) and
    `dois` narrow the choice; neither means every dead job. The caller then runs a worker
    or a crawl to fetch them."""
    source = p.source

    def address(job: DeadJob) -> str | None:
        try:
            return source.address(job.doi) if job.page == 1 else source.relocate(job.url)
        except BadInputError:  # a DOI that can have no safe address stays dead
            return None

    done = await p.store.requeue_dead(address, reason=reason, dois=dois)
    log.info("dead jobs requeued", jobs=done.jobs, reports=done.reports, kept=done.kept)
    return done
