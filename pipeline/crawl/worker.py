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
import dataclasses
import hashlib
import os
import socket
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import structlog

from pipeline.config import Settings
from pipeline.crawl.fetcher import Fetcher
from pipeline.crawl.pagination import FEWER, Step, next_step, reason_kind
from pipeline.crawl.parsing import Parser, ThreadParser
from pipeline.crawl.politeness import host_key
from pipeline.crawl.retry import RetryPolicy
from pipeline.errors import (
    BadInputError,
    BatchRejectedError,
    BlockedError,
    FetchError,
    HostUnreachableError,
    ParseError,
    PipelineError,
    StoreDataError,
    StoreError,
    TransientFetchError,
)
from pipeline.models import (
    Completion,
    Job,
    KeptPage,
    NewJob,
    Page,
    ParseResult,
    RunCounters,
    Validators,
)
from pipeline.sources.base import BatchSource, Source
from pipeline.store.base import Store
from pipeline.store.pages import pack_page

log = structlog.get_logger("citepipe.worker")

IDLE_POLL = 1.0  # seconds between polls when the queue has nothing due
NOT_FOUND = "not found (404)"  # a page's 404, and a DOI the API has no data for


class BatchFetcher(Protocol):
    """Sends one batch request (`crawl/api.py`); raises FetchError (BatchRejectedError
    for a 422) or ParseError."""

    async def post(self, url: str, dois: Sequence[str]) -> Any: ...


UNREACHABLE_GRACE = 1.0  # seconds in-flight pages get once the site is found unreachable


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def crash_site(exc: BaseException) -> str:
    """`Type at file:line (path …)`: the exception's type and the whole path it took,
    named by its innermost frame. Two bugs that fail in one shared line (a `json.loads`
    reached from two places) took two paths, so each gets its own traceback."""
    frames = [(f.f_code.co_filename, line) for f, line in traceback.walk_tb(exc.__traceback__)]
    where = f"{frames[-1][0]}:{frames[-1][1]}" if frames else "?"
    path = hashlib.sha1(repr(frames).encode()).hexdigest()[:8]
    return f"{type(exc).__name__} at {where} (path {path})"


_DEFAULTS = Settings()  # the one place defaults live; from_settings builds the real ones


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    concurrency: int = _DEFAULTS.concurrency
    claim_batch: int = _DEFAULTS.claim_batch
    lease_seconds: float = _DEFAULTS.lease_seconds
    base_url: str = _DEFAULTS.base_url
    burst: bool = True
    grace: float = _DEFAULTS.timeout  # after a stop: seconds in-flight pages may finish in
    max_pages_per_report: int = _DEFAULTS.max_pages_per_report
    keep_pages: str = _DEFAULTS.keep_pages  # "broken": broken pages only; "all": every page
    source: str = _DEFAULTS.source  # "api": a DOI the API lacks is stored as not found

    @classmethod
    def from_settings(cls, s: Settings, *, burst: bool) -> WorkerOptions:
        """The worker's options, from Settings (the one place their defaults live)."""
        return cls(
            concurrency=s.concurrency,
            claim_batch=s.claim_batch,
            lease_seconds=s.lease_seconds,
            base_url=s.base_url,
            burst=burst,
            grace=s.timeout,
            keep_pages=s.keep_pages,
            max_pages_per_report=s.max_pages_per_report,
            source=s.source,
        )


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
        *,
        api: BatchFetcher | None = None,
        batch_source: BatchSource | None = None,
        parser: Parser | None = None,
    ) -> None:
        """`now` is the wall clock (UTC) for fetch times and retry times; the composition
        root passes its injected clock's, so that store and worker agree on time. `api`
        and `batch_source` work batch jobs (scite's API); without them a batch job dies
        with a reason. `parser` is where pages are parsed (the composition root's bounded
        worker processes; without one, a thread of this process)."""
        self.api = api
        self.batch_source = batch_source
        self.parser = parser or ThreadParser(source)
        self.store = store
        self.fetcher = fetcher
        self.source = source
        self._site = host_key(options.base_url)  # the host next pages must stay on
        self.policy = policy
        self.options = options
        self.counters = RunCounters()
        self.id = worker_id()
        self._on_page = on_page
        self._now = now or (lambda: datetime.now(UTC))
        self._stopping = asyncio.Event()
        self._in_flight: dict[int, Job] = {}
        # seconds between looks at the queue while nothing is due; shorter when other
        # processes of the same command hold the last jobs (pipeline.runs.processes)
        self.idle_poll = IDLE_POLL
        self._tasks: set[asyncio.Task[None]] = set()
        # claim in batches: one claim transaction per few pages, not one per page
        self._claim_threshold = max(1, min(options.claim_batch, options.concurrency // 4))
        self._grace: float | None = None
        self._crash_sites: set[str] = set()  # where bugs struck: each traceback logged once

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
        wait = self.idle_poll
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
        """Let running pages finish for the grace, then release every job still held
        (also those whose task was cancelled already, e.g. a request the budget cancelled
        while it waited for its polite turn)."""
        if self._tasks:
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
        # bound around the outcome too: a crash or store-error line names its job
        with structlog.contextvars.bound_contextvars(
            job_id=job.id, doi=job.doi, url=job.url, attempt=job.attempts
        ):
            try:
                await self._process(job)
                self._in_flight.pop(job.id, None)
            except asyncio.CancelledError:
                raise  # left in _in_flight: released by _finish_in_flight
            except StoreDataError as exc:  # our rows broke a constraint: a bug, like below
                self._in_flight.pop(job.id, None)
                await self._crashed(job, exc)
            except StoreError as exc:  # the store failed, not the job: it is tried again
                self._in_flight.pop(job.id, None)
                await self._store_failed(job, exc)
            except Exception as exc:  # a bug in citepipe: the job dies
                self._in_flight.pop(job.id, None)
                await self._crashed(job, exc)
            finally:
                slots.release()

    async def _crashed(self, job: Job, exc: Exception) -> None:
        """A bug in our code kills the job with `internal error: Type: message`, counted
        like any dead job (summary, exit code). Its traceback is logged once per place it
        struck: a bug that hits every page logs one traceback, then a line per job."""
        reason = f"internal error: {type(exc).__name__}: {exc}"[:500]
        site = crash_site(exc)
        if site in self._crash_sites:
            log.error("job crashed", reason=reason, traceback=f"as logged before, at {site}")
        else:
            self._crash_sites.add(site)
            log.error("job crashed", reason=reason, exc_info=exc)
        self.counters.dead[reason] += 1
        with contextlib.suppress(PipelineError):
            await self.store.fail(job, reason, None)

    async def _store_failed(self, job: Job, exc: StoreError) -> None:
        """A store error (database locked, disk full) while working a job never kills it:
        the job is queued again after a backoff, whatever its attempts. If the store cannot
        take even that, its lease runs out and it comes back the same way."""
        wait = self.policy.backoff(min(job.attempts, self.policy.max_attempts))
        retry_at = self._now() + timedelta(seconds=wait)
        self.counters.retries += 1
        log.warning("store error; the job will be tried again", error=str(exc))
        try:
            await self.store.fail(job, f"store error: {exc}", retry_at)
        except PipelineError as again:
            log.warning("store error; the job waits for its lease to expire", error=str(again))

    def _address(self, job: Job) -> str:
        """Where the job's page is now: its stored address, or, when `base_url` changed
        since it was queued (a run against a wrong or unreachable site left it queued),
        the same report page on the current site (page 1 from its DOI, a later page by
        `relocate`). A page with no address there keeps its own, and ends off-site with
        that reason."""
        if self.source.in_scope(job.url):
            return job.url
        try:
            moved = self.source.address(job.doi) if job.page == 1 else self.source.relocate(job.url)
        except BadInputError:
            return job.url
        return moved or job.url

    async def _process(self, job: Job) -> None:
        if job.batch:
            await self._process_batch(job)
            return
        validators = (
            Validators(job.etag, job.last_modified) if job.etag or job.last_modified else None
        )
        url = self._address(job)
        try:
            page = await self.policy.call(lambda: self.fetcher.fetch(url, validators))
            completion = await self._completion(job, page)
        except HostUnreachableError as exc:
            await self._unreachable(job, exc)
            return
        except TransientFetchError as exc:
            await self._fail_transient(job, exc)
            return
        except FetchError as exc:
            await self._fail_dead(job, exc.reason, str(exc))
            return
        except BlockedError as exc:  # a captcha or login wall, not a layout drift; kept
            kept = await self._keep_broken(job, page, exc)  # all the same: reparse can judge
            await self._fail_dead(job, exc.reason, f"{exc} ({kept})")  # it again
            return
        except ParseError as exc:
            kept = await self._keep_broken(job, page, exc)
            await self._fail_dead(job, f"broken page: {exc}", f"{exc} ({kept})")
            return
        await self.store.complete(completion)
        self.counters.pages_done += 1
        if not any(f.doi == job.doi and f.page > job.page for f in completion.follow_ups):
            self.counters.reports_done += 1  # no next page: the report's crawl ends here
            if completion.incomplete is not None:
                kind = reason_kind(completion.incomplete)
                self.counters.incomplete[kind] += 1
                # a cut is the site misbehaving: a warning. Fewer statements than counted
                # is common (scite lists fewer than it counts) and the summary counts it:
                # a line each would bury the warnings, so only at debug.
                say = log.debug if kind == FEWER else log.warning
                say("report incomplete", reason=completion.incomplete)
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

    async def _process_batch(self, job: Job) -> None:
        """One API request for a batch job: its rows and done in one commit; a 422 splits
        it into two halves (queued in the same commit), a batch of one it kills."""
        endpoint = job.endpoint
        api, source = self.api, self.batch_source
        if api is None or source is None or endpoint is None:
            await self._fail_dead(job, "no API client", "batch job without an API client")
            return
        url = source.url(endpoint)  # the current api_url's, not the one it was queued at
        try:
            data = await self.policy.call(lambda: api.post(url, job.batch))
            result = source.parse(endpoint, job.batch, data)
        except BatchRejectedError as exc:
            if len(job.batch) < 2:
                await self._fail_dead(job, exc.reason, str(exc))
                return
            halves = source.split(job.batch, endpoint, job.round)
            await self.store.complete(Completion(job=job, result=None, follow_ups=halves))
            self.counters.api_splits += 1
            log.info("batch split", dois=len(job.batch), into=[len(h.batch) for h in halves])
            return
        except TransientFetchError as exc:
            await self._fail_transient(job, exc)
            return
        except FetchError as exc:
            await self._fail_dead(job, exc.reason, str(exc))
            return
        except ParseError as exc:
            await self._fail_dead(job, f"broken answer: {exc}", str(exc))
            return
        # a DOI the API lacks is not found once: by its metadata's answer (source api; with
        # both, its report page's own 404 says it)
        record = self.options.source == "api" and endpoint == "papers"
        # with source api nothing else reads these papers: the tallies' answer sets when
        # each is due again (with both, its report page's visit does, as without the API)
        schedule = self.options.source == "api" and endpoint == "tallies"
        result = dataclasses.replace(
            result, record_missing=record, missing_url=source.paper_url(""), schedule=schedule
        )
        await self.store.complete(
            Completion(job=job, result=None, fetched_at=self._now(), api=result)
        )
        self.counters.api_requests += 1
        self.counters.api_found += len(job.batch) - len(result.missing)
        if record and result.missing:
            self.counters.api_not_found += len(result.missing)
            self.counters.dead[NOT_FOUND] += len(result.missing)
        log.debug("batch done", endpoint=endpoint, dois=len(job.batch), missing=len(result.missing))
        if self._on_page is not None:
            self._on_page(self.counters)

    async def completion(self, job: Job, page: Page) -> Completion:
        """What a fetched page completes: its parse and follow-ups, exactly as a crawl
        builds them (`citepipe reparse` builds completions from kept pages with this).
        Raises ParseError for a broken page."""
        return await self._completion(job, page)

    async def _completion(self, job: Job, page: Page) -> Completion:
        """Parse the page (unless unchanged) and build the completion with follow-ups."""
        now = self._now()
        if page.not_modified:
            step = self._step(job, page, None)
            return Completion(
                job=job,
                result=None,
                follow_ups=(step.follow,) if step.follow else (),
                etag=page.etag or job.etag,
                last_modified=page.last_modified or job.last_modified,
                content_hash=job.content_hash,
                fetched_at=now,
                final_url=self._moved_to(job, page),
                incomplete=step.incomplete,
            )
        digest = hashlib.sha256(page.body).hexdigest()[:32]  # SHA-NI: twice blake2b's speed
        result = None if digest == job.content_hash else await self.parser.parse(page)
        step = self._step(job, page, result)
        stored_hash: str | None = digest
        if not step.keep:  # another report's page: nothing of it is stored under this one
            result, stored_hash = None, job.content_hash
        follow: tuple[NewJob, ...] = (step.follow,) if step.follow else ()
        kept = None
        if result is not None and self.options.keep_pages == "all":
            packed = pack_page(page.body)  # here, not on the store's writer thread
            kept = KeptPage(
                job.doi,
                job.page,
                page.final_url,
                now,
                page.body,
                packed=packed,
                media_type=page.media_type,
                charset=page.charset,
            )
        if result is not None and job.depth > 0:  # every page's citers, not page 1's only
            follow += self._citing(job, result)
        return Completion(
            job=job,
            result=result,
            follow_ups=follow,
            etag=page.etag,
            last_modified=page.last_modified,
            content_hash=stored_hash,
            fetched_at=now,
            final_url=self._moved_to(job, page),
            incomplete=step.incomplete,
            page_statements=len(result.statements) if result is not None else None,
            page_counted=result.tallies.citation_statements if result is not None else None,
            kept=kept,
        )

    def _step(self, job: Job, page: Page, result: ParseResult | None) -> Step:
        """The report's next page, or why its crawl ends here (`pipeline.crawl.pagination`).
        An unchanged page's stored next link that is on a former site (`base_url` changed
        since it was read) is the same report page on the current site (`relocate`)."""
        if result is None and job.next_url and not self.source.in_scope(job.next_url):
            moved = self.source.relocate(job.next_url)
            if moved is not None:
                job = dataclasses.replace(job, next_url=moved)
        return next_step(
            job,
            page,
            result,
            site=self._site,
            max_pages=self.options.max_pages_per_report,
            in_scope=self.source.in_scope,
        )

    def _citing(self, job: Job, result: ParseResult) -> tuple[NewJob, ...]:
        """Page 1 of each citing paper's report, at the address its Source gives (a DOI
        it can make no safe address for is skipped, with a log line)."""
        follow: list[NewJob] = []
        for paper in result.citing_papers:
            if paper.doi == job.doi:
                continue
            try:
                url = self.source.address(paper.doi)
            except BadInputError as exc:
                log.warning("citing paper skipped", citing_doi=paper.doi[:200], reason=str(exc))
                continue
            follow.append(NewJob(doi=paper.doi, url=url, page=1, depth=job.depth - 1))
        return tuple(follow)

    def _moved_to(self, job: Job, page: Page) -> str | None:
        """The report address a redirect led to, so a refresh skips the redirect."""
        if page.final_url != job.url and self.source.in_scope(page.final_url):
            return page.final_url
        return None

    async def _unreachable(self, job: Job, exc: HostUnreachableError) -> None:
        """The site gave no answer at all (`Politeness.no_answer` has the rule): nothing
        of it can be worked, so the run stops, says why in one line, and gives this job
        and the others back to the queue with their attempts refunded: not dead, and
        not retried in a loop. The next run tries again."""
        first = not self.counters.unreachable
        self.counters.unreachable[f"{exc.host}: {exc.cause}"] += 1
        await self.store.release([job])
        if first:
            log.error(
                "site unreachable: stopping; its jobs stay queued for the next run",
                host=exc.host,
                cause=exc.cause,
                tries=exc.tries,
            )
            self.stop(grace=UNREACHABLE_GRACE)
            self.fetcher.cancel_waiting()

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
        kept = KeptPage(
            job.doi,
            job.page,
            page.final_url,
            self._now(),
            page.body,
            True,
            str(error),
            media_type=page.media_type,
            charset=page.charset,
        )
        try:
            await self.store.keep_page(kept)
        except PipelineError as exc:
            return f"page not kept: {exc}"
        return "page kept in the store"
