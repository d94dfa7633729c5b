"""The worker: claim -> fetch -> parse -> complete, with bounded concurrency.

It claims jobs in batches, runs each under a semaphore, keeps its leases alive with a
heartbeat, and hands every outcome to the store: `complete` (rows, follow-ups and done in
one transaction) or `fail` (retry later, or dead with a reason). In *burst* mode it returns
once nothing is queued, due or in flight (cron runs and tests); otherwise it waits for work.
`stop()` (wired to SIGTERM/SIGINT by the CLI) makes it stop claiming, lets in-flight pages
finish for `grace` seconds, then gives the rest back to the queue unworked.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from pipeline.config import Settings
from pipeline.errors import FetchError, ParseError, PipelineError, TransientFetchError
from pipeline.fetcher import Fetcher
from pipeline.models import Completion, Job, KeptPage, NewJob, Page, ParseResult, Validators
from pipeline.normalise import report_address
from pipeline.politeness import host_key
from pipeline.retry import RetryPolicy
from pipeline.sources.base import Source
from pipeline.store.base import Store
from pipeline.store.rules import pack_page

log = structlog.get_logger("citepipe.worker")

IDLE_POLL = 1.0  # seconds between polls when the queue has nothing due


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class RunCounters:
    """What this process did: for the summary, the progress bar and the exit code."""

    started: float = field(default_factory=time.monotonic)
    pages_done: int = 0
    reports_done: int = 0  # reports whose last page this process completed
    pages_unchanged: int = 0
    statements: int = 0
    retries: int = 0
    dead: Counter[str] = field(default_factory=Counter)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def pages_per_second(self) -> float:
        return self.pages_done / self.elapsed if self.elapsed > 0 else 0.0


_DEFAULTS = Settings()  # the one place defaults live; app builds options from Settings


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    concurrency: int = _DEFAULTS.concurrency
    claim_batch: int = _DEFAULTS.claim_batch
    lease_seconds: float = _DEFAULTS.lease_seconds
    base_url: str = _DEFAULTS.base_url
    burst: bool = True
    grace: float = _DEFAULTS.timeout  # after a stop: seconds in-flight pages may finish in
    keep_pages: str = _DEFAULTS.keep_pages  # "broken": broken pages only; "all": every page


class Worker:
    """Drives jobs from the store through the fetcher and the source."""

    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        source: Source,
        policy: RetryPolicy,
        options: WorkerOptions,
        on_page: Callable[[RunCounters], None] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        """`now` is the wall clock (UTC) for fetch times and retry times; the composition
        root passes its injected clock's, so that store and worker agree on time."""
        self.store = store
        self.fetcher = fetcher
        self.source = source
        self.policy = policy
        self.options = options
        self.counters = RunCounters()
        self.id = worker_id()
        self._on_page = on_page
        self._now = now or (lambda: datetime.now(UTC))
        self._stopping = asyncio.Event()
        self._in_flight: dict[int, Job] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._site = host_key(options.base_url)
        # claim in batches: one claim transaction per few pages, not one per page
        self._claim_threshold = max(1, min(options.claim_batch, options.concurrency // 4))
        self._grace: float | None = None

    def stop(self, grace: float | None = None) -> None:
        """Stop claiming; in-flight pages finish (or are released after `grace` seconds,
        `options.grace` unless given; the shortest grace asked for wins)."""
        if grace is not None:
            self._grace = grace if self._grace is None else min(self._grace, grace)
        if not self._stopping.is_set():
            log.info("stopping", in_flight=len(self._in_flight))
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> RunCounters:
        """Work until drained (burst) or stopped; return the counters. (A time budget is
        the run's: `runs.work` stops the worker when it is spent.)"""
        heartbeat = asyncio.create_task(self._heartbeat())
        slots = asyncio.Semaphore(self.options.concurrency)
        next_reclaim = 0.0
        try:
            while not self._stopping.is_set():
                if time.monotonic() >= next_reclaim:  # a killed worker's jobs come back
                    if await self.store.requeue_expired():
                        log.info("reclaimed jobs whose lease expired")
                    next_reclaim = time.monotonic() + self.options.lease_seconds / 3
                free = self.options.concurrency - len(self._in_flight)
                jobs: list[Job] = []
                if free >= self._claim_threshold or not self._in_flight:
                    jobs = await self.store.claim(
                        self.id, min(free, self.options.claim_batch), self.options.lease_seconds
                    )
                for job in jobs:
                    await slots.acquire()
                    self._in_flight[job.id] = job
                    task = asyncio.create_task(self._run_job(job, slots))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                if jobs:
                    continue
                if await self._drained():
                    break
                await self._idle()
        finally:
            await self._finish_in_flight()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        return self.counters

    async def _drained(self) -> bool:
        """Burst mode ends when nothing is in flight and nothing is left to do."""
        if not self.options.burst or self._in_flight:
            return False
        return await self.store.pending() == 0

    async def _idle(self) -> None:
        """Sleep until a job could be due, a task finishes, or a stop arrives."""
        wait = IDLE_POLL
        if not self._in_flight:
            due = await self.store.next_due()
            if due is not None:
                wait = min(wait, max(0.01, (due - self._now()).total_seconds()))
        stop_wait = asyncio.ensure_future(self._stopping.wait())
        pending: set[asyncio.Future[Any]] = {*self._tasks, stop_wait}
        try:
            await asyncio.wait(pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()

    async def _finish_in_flight(self) -> None:
        if not self._tasks:
            return
        grace = self.options.grace if self._grace is None else self._grace
        _, still = await asyncio.wait(set(self._tasks), timeout=grace)
        for task in still:
            task.cancel()
        if still:
            await asyncio.gather(*still, return_exceptions=True)
        leftover = list(self._in_flight.values())
        if leftover:
            log.warning("releasing unfinished jobs", count=len(leftover))
            await self.store.release(leftover)
            self._in_flight.clear()

    async def _heartbeat(self) -> None:
        """Keep our leases alive while jobs run (a dead process's leases expire fast)."""
        interval = max(0.5, self.options.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            if self._in_flight:
                try:
                    await self.store.extend_leases(
                        self.id, list(self._in_flight), self.options.lease_seconds
                    )
                except PipelineError as exc:
                    log.warning("lease heartbeat failed", error=str(exc))

    async def _run_job(self, job: Job, slots: asyncio.Semaphore) -> None:
        try:
            with structlog.contextvars.bound_contextvars(
                job_id=job.id, doi=job.doi, url=job.url, attempt=job.attempts
            ):
                await self._process(job)
            self._in_flight.pop(job.id, None)
        except asyncio.CancelledError:
            raise  # left in _in_flight: released by _finish_in_flight
        except Exception:
            self._in_flight.pop(job.id, None)
            log.exception("job crashed")
            self.counters.dead["internal error"] += 1
            with contextlib.suppress(PipelineError):
                await self.store.fail(job, "internal error", None)
        finally:
            slots.release()

    async def _process(self, job: Job) -> None:
        validators = (
            Validators(job.etag, job.last_modified) if job.etag or job.last_modified else None
        )
        try:
            page = await self.policy.call(lambda: self.fetcher.fetch(job.url, validators))
            completion = self._completion(job, page)
        except TransientFetchError as exc:
            await self._fail_transient(job, exc)
            return
        except FetchError as exc:
            await self._fail_dead(job, exc.reason, str(exc))
            return
        except ParseError as exc:
            kept = await self._keep_broken(job, page, exc)
            await self._fail_dead(job, f"broken page: {exc}", f"{exc} ({kept})")
            return
        await self.store.complete(completion)
        self.counters.pages_done += 1
        if not any(f.doi == job.doi for f in completion.follow_ups):
            self.counters.reports_done += 1  # no next page: the report is complete
        if completion.result is None:
            self.counters.pages_unchanged += 1
        else:
            self.counters.statements += len(completion.result.statements)
        log.debug(
            "page done",
            statements=len(completion.result.statements) if completion.result else 0,
            unchanged=completion.result is None,
        )
        if self._on_page is not None:
            self._on_page(self.counters)

    def completion(self, job: Job, page: Page) -> Completion:
        """What a fetched page completes: its parse and follow-ups, exactly as a crawl
        builds them (`citepipe reparse` builds completions from kept pages with this).
        Raises ParseError for a broken page."""
        return self._completion(job, page)

    def _completion(self, job: Job, page: Page) -> Completion:
        """Parse the page (unless unchanged) and build the completion with follow-ups."""
        now = self._now()
        if page.not_modified:
            return Completion(
                job=job,
                result=None,
                follow_ups=self._next_page(job, None),
                etag=page.etag or job.etag,
                last_modified=page.last_modified or job.last_modified,
                content_hash=job.content_hash,
                fetched_at=now,
                final_url=self._moved_to(job, page),
            )
        digest = hashlib.blake2b(page.body, digest_size=16).hexdigest()
        result = None if digest == job.content_hash else self.source.parse(page)
        kept = None
        if result is not None and self.options.keep_pages == "all":
            packed = pack_page(page.body)  # here, not on the store's writer thread
            kept = KeptPage(job.doi, job.page, page.final_url, now, page.body, packed=packed)
        follow = self._next_page(job, result)
        if result is not None and job.depth > 0 and job.page == 1:
            follow += tuple(
                NewJob(
                    doi=p.doi,
                    url=report_address(self.options.base_url, p.doi),
                    page=1,
                    depth=job.depth - 1,
                )
                for p in result.citing_papers
                if p.doi != job.doi
            )
        return Completion(
            job=job,
            result=result,
            follow_ups=follow,
            etag=page.etag,
            last_modified=page.last_modified,
            content_hash=digest,
            fetched_at=now,
            final_url=self._moved_to(job, page),
            kept=kept,
        )

    def _moved_to(self, job: Job, page: Page) -> str | None:
        """The on-site address a redirect led to, so a refresh skips the redirect."""
        if page.final_url != job.url and host_key(page.final_url) == self._site:
            return page.final_url
        return None

    def _next_page(self, job: Job, result: ParseResult | None) -> tuple[NewJob, ...]:
        nxt = result.next_page_url if result is not None else job.next_url
        if not nxt or host_key(nxt) != self._site:
            return ()
        return (NewJob(doi=job.doi, url=nxt, page=job.page + 1, depth=job.depth, round=job.round),)

    async def _fail_transient(self, job: Job, exc: TransientFetchError) -> None:
        retry_at = self.policy.next_retry_at(job.attempts, exc.retry_after, self._now())
        if retry_at is None:
            reason = f"gave up after {job.attempts} attempts: {exc.reason}"
            await self._fail_dead(job, reason, str(exc))
            return
        self.counters.retries += 1
        log.info(
            "retry later",
            reason=exc.reason,
            retry_at=retry_at.isoformat(),
            retry_after=exc.retry_after,
        )
        await self.store.fail(job, exc.reason, retry_at)

    async def _fail_dead(self, job: Job, reason: str, detail: str) -> None:
        self.counters.dead[reason] += 1
        log.warning("job dead", reason=reason, detail=detail)
        await self.store.fail(job, reason, None)

    async def _keep_broken(self, job: Job, page: Page, error: ParseError) -> str:
        """Keep a broken page in the store (for `citepipe reparse`); say whether it was."""
        kept = KeptPage(job.doi, job.page, page.final_url, self._now(), page.body, True, str(error))
        try:
            await self.store.keep_page(kept)
        except PipelineError as exc:
            return f"page not kept: {exc}"
        return "page kept in the store"
