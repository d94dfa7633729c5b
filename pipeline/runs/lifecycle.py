"""The run lifecycle shared by backfill, crawl, demo and worker: stop requests, input
streaming, run heartbeats, progress lines, the work phase and the final survey of the
input's jobs.

Nothing here parses arguments or installs signal handlers: the command line does that and
hands a `Stop` in; tests request a stop the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

import structlog

from pipeline.app import Pipeline
from pipeline.config import cpu_cores, process_count
from pipeline.crawl.worker import Worker
from pipeline.errors import BadInputError, PipelineError
from pipeline.models import RUN_HEARTBEAT, RUN_STALE_AFTER, Job, NewJob, RunCounters, RunInfo
from pipeline.runs.inputs import InputDois, open_input, read_doi_lines
from pipeline.runs.processes import HELPER_POLL, Helpers
from pipeline.runs.progress import Progress
from pipeline.runs.summary import InputTally, plural
from pipeline.sources.scite_api import BACKFILL_ENDPOINTS, REFRESH_ENDPOINTS
from pipeline.store.sql import process_gone

log = structlog.get_logger("citepipe")

ENQUEUE_BATCH = 1000
PROGRESS_REFRESH = 1.0  # seconds between refreshes of the bar's known total


class Stop:
    """A request to stop a run, with the signal that asked for it (if any).

    The command line calls `request(signum)` from its signal handler; a scheduler's crawl
    and the scheduler share one `Stop`, so one SIGTERM ends both, without any module-global
    list of handlers.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._event = asyncio.Event()
        self._callbacks: list[Callable[[], None]] = []

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, signum: int = signal.SIGTERM) -> None:
        """Ask the run to stop (idempotent: the first signal is the one remembered)."""
        if self._event.is_set():
            return
        self.signum = signum
        self._event.set()
        for callback in list(self._callbacks):
            callback()

    async def wait(self) -> None:
        await self._event.wait()

    @contextlib.contextmanager
    def calling(self, callback: Callable[[], None]) -> Iterator[None]:
        """While inside, a stop request also calls `callback` (at once if already asked)."""
        self._callbacks.append(callback)
        try:
            if self._event.is_set():
                callback()
            yield
        finally:
            self._callbacks.remove(callback)


@dataclass
class RunUI:
    """Where a run talks to its user: messages (stderr) and the progress display."""

    err: TextIO = field(default_factory=lambda: sys.stderr)
    progress: Progress | None = None
    log_summary: bool = True  # a `summary` log line for log collectors (not on a terminal)

    def message(self, text: str) -> None:
        """A line for people, printed above any progress bar."""
        if self.progress is not None and self.progress.shown:
            self.progress.message(text)
        else:
            print(text, file=self.err, flush=True)


async def enqueue_lines(
    p: Pipeline,
    lines: Iterable[str],
    depth: int,
    tally: InputTally,
    ui: RunUI,
    seen: set[str] | InputDois | None = None,
    stop: Stop | None = None,
) -> None:
    """Stream DOI lines into the queue in chunks; report each bad line by number.

    Also counts the input's DOIs that are already dead from an earlier run: no work is
    repeated for them, but they are not done either. `seen` collects the input's DOIs,
    for the survey at the end of the run. A stop request ends the reading early.
    """
    chunk: list[NewJob] = []
    progress = ui.progress
    mode = p.settings.source
    batcher = p.batch_source if mode in ("api", "both") else None
    batch: dict[str, None] = {}  # the next API batch's DOIs, in input order, once each

    async def flush_batch() -> None:
        if batcher is not None and batch:
            jobs = batcher.jobs(list(batch), BACKFILL_ENDPOINTS)
            tally.enqueued += await p.store.enqueue(jobs)
            batch.clear()

    async def flush() -> None:
        dois = [job.doi for job in chunk]
        if seen is not None:
            seen.update(dois)
        if batcher is not None:  # the API first: its jobs are queued ahead of the pages
            for doi in dois:
                batch[doi] = None
                if len(batch) >= batcher.batch:
                    await flush_batch()
        if mode != "api":
            tally.enqueued += await p.store.enqueue(chunk)
        tally.already_dead.update(await p.store.dead_among(dois))
        chunk.clear()
        if progress is not None:
            progress.enqueue(tally.lines, tally.dois)

    for line in read_doi_lines(lines):
        if stop is not None and stop.requested:
            break  # a stop while reading a long input: what was read is queued
        tally.lines += 1
        address, problem = None, line.problem
        if line.doi is not None:
            try:
                address = p.source.address(line.doi)  # the Source owns the site's addresses
            except BadInputError as exc:
                problem = exc.message
        if line.doi is None or address is None:
            tally.bad_lines += 1
            # one line each, on a terminal or not (it used to be a message and a log line)
            ui.message(f"line {line.lineno}: {problem or 'not a DOI'}: {line.raw[:200]!r}")
            continue
        tally.dois += 1
        chunk.append(NewJob(doi=line.doi, url=address, depth=depth, seed=True))
        if len(chunk) >= ENQUEUE_BATCH:
            await flush()
    if chunk:
        await flush()
    await flush_batch()


async def enqueue_due_batches(p: Pipeline) -> int:
    """Source api or both: every paper due for a refresh, `api_batch` of them a request,
    on the tallies and papers endpoints (`REFRESH_ENDPOINTS`: counts and notices), so a
    nightly crawl of 1 M papers sends about 4,000 requests, never one a paper. Returns
    how many batch jobs were queued (0 with source report)."""
    batcher = p.batch_source
    if batcher is None or p.settings.source not in ("api", "both"):
        return 0
    size = batcher.batch

    def make(dois: Sequence[str], round: int) -> list[NewJob]:
        jobs: list[NewJob] = []
        for start in range(0, len(dois), size):
            jobs.extend(batcher.jobs(dois[start : start + size], REFRESH_ENDPOINTS, round))
        return jobs

    return await p.store.enqueue_due_batches(p.clock.now(), make)


@dataclass
class InputSurvey:
    """The input's jobs by final state, and its dead jobs by reason (any run, any process)."""

    states: Counter[str] = field(default_factory=Counter)
    dead: Counter[str] = field(default_factory=Counter)


SURVEY_CHUNK = 1000
SURVEY_SCAN_RATIO = 4  # count states by a pass over the jobs table up to 4 jobs per DOI


async def survey_input(
    p: Pipeline, dois: Collection[str], total_jobs: int | None = None
) -> InputSurvey:
    """The input's jobs as the store holds them at the end of the run.

    What the exit code judges, the input's dead jobs by reason, is always read, by DOI
    (indexed): a job of this input that ended dead counts, whoever killed it (this
    process, an earlier run, another process on the same store) and for whatever reason
    (including a crash). The count of every input job by state takes one streaming pass
    over the jobs table, done only when the store is not much larger than the input
    (`total_jobs`), so that a small backfill into a huge store stays quick;
    `states` is empty when it was skipped.
    """
    survey = InputSurvey()
    if not dois:
        return survey
    chunk: list[str] = []
    for doi in dois:
        chunk.append(doi)
        if len(chunk) >= SURVEY_CHUNK:
            survey.dead.update(await p.store.dead_among(chunk))
            chunk.clear()
    if chunk:
        survey.dead.update(await p.store.dead_among(chunk))
    if total_jobs is not None and total_jobs > SURVEY_SCAN_RATIO * len(dois):
        return survey
    batch: list[tuple[str, str]] = []

    def count(rows: list[tuple[str, str]]) -> None:
        if isinstance(dois, InputDois):  # one look-up a batch, not one a job
            members = dois.members([doi for doi, _ in rows])
            survey.states.update(state for doi, state in rows if doi in members)
        else:
            survey.states.update(state for doi, state in rows if doi in dois)
        rows.clear()

    async for row in p.store.export("jobs"):
        batch.append((str(row["doi"]), str(row["state"])))
        if len(batch) >= SURVEY_CHUNK:
            count(batch)
    count(batch)
    return survey


async def heartbeat_run(p: Pipeline, run_id: int, interval: float = RUN_HEARTBEAT) -> None:
    """Keep the run's registry row alive, so that other runs see us as active."""
    while True:
        await asyncio.sleep(interval)
        with contextlib.suppress(PipelineError):
            await p.store.heartbeat_run(run_id)


async def log_progress(
    p: Pipeline, counters: RunCounters | Callable[[], RunCounters], interval: float
) -> None:
    """A `progress` log line every `interval` seconds, for runs nobody watches on a
    terminal (cron, containers, nohup): pages, the recent rate, what is left. `counters`
    may be a function giving them (every process's, with `--processes`)."""
    clock = p.clock
    read = counters if callable(counters) else (lambda: counters)
    last_pages, last_time = read().pages_done, clock.monotonic()
    while True:
        await asyncio.sleep(interval)
        now = clock.monotonic()
        try:
            pending: int | None = await p.store.pending()
        except PipelineError:
            pending = None
        span = now - last_time
        c = read()
        log.info(
            "progress",
            pages=c.pages_done,
            pages_per_s=round((c.pages_done - last_pages) / span, 1) if span > 0 else 0.0,
            statements=c.statements,
            retries=c.retries,
            dead=c.dead.total(),
            pending=pending,
        )
        last_pages, last_time = c.pages_done, now


async def reclaim_and_name_waits(p: Pipeline, ui: RunUI) -> None:
    """Before working: give back at once the leases of a run that is provably dead (same
    host, its pid gone: whatever its heartbeat's age, as a run that died a second ago
    still has a fresh one), and name the wait for the others' leases, with its reason and
    its end, in the log too.

    Without this a rerun after a SIGKILL sits silent until the killed run's leases expire
    (`lease_seconds`). Costs one count, and one read of the leased jobs when there are any.
    """
    try:
        if not (await p.store.stats()).jobs_by_state.get("leased"):
            return
        live = {(r.host, r.pid) for r in await p.store.active_runs(stale_after=RUN_STALE_AFTER)}
        host = socket.gethostname()
        dead: list[Job] = []
        dead_holders: set[str] = set()
        waiting = 0
        until: datetime | None = None
        for leased in await p.store.leased_jobs():
            holder = leased.worker
            h, _, pid_text = holder.rpartition(":")
            pid = int(pid_text) if pid_text.isdigit() else -1
            if h == host and process_gone(pid):
                dead.append(leased.job)
                dead_holders.add(holder)
            elif (h, pid) not in live:
                waiting += 1
                lease = leased.lease_until
                if lease is not None and (until is None or lease > until):
                    until = lease
        if dead:
            await p.store.release(dead)
            ui.message(
                f"reclaimed {plural(len(dead), 'lease')} of "
                f"{'a run' if len(dead_holders) == 1 else 'runs'} whose process is gone "
                f"({', '.join(sorted(dead_holders))}); their pages are queued again"
            )
        if waiting:
            at = f" (until {until.astimezone(UTC):%H:%M:%S} UTC)" if until is not None else ""
            ui.message(
                f"waiting for {plural(waiting, 'lease')} of an earlier run to expire{at}; "
                "those pages are worked then"
            )
            log.info(
                "waiting for leases of an earlier run",
                reason="held by a run this host cannot check (another host, or its process"
                " is alive) and not heartbeating",
                leases=waiting,
                until=until.isoformat() if until is not None else None,
            )
    except PipelineError as exc:  # a courtesy: never a reason to fail the run
        log.warning("could not look at leases of earlier runs", error=str(exc))


@dataclass
class WorkOutcome:
    """How the work phase ended."""

    worker: Worker
    out_of_time: bool = False
    stopped: bool = False
    notes: list[str] = field(default_factory=list)  # e.g. a worker process that failed
    statements_before: int | None = None  # rows of `statements` as the work began


async def work(
    p: Pipeline,
    run_id: int,
    ui: RunUI,
    stop: Stop,
    *,
    burst: bool,
    max_duration: float = 0.0,
    reports: int | None = None,
    input_reports: bool = False,
) -> WorkOutcome:
    """Run a worker with stop requests, a time budget, progress and run heartbeats.

    At the budget the worker stops claiming and in-flight pages get one request timeout
    to finish and be committed; on a stop request they get `stop_grace` (about a second)
    and the rest is released for the next run.

    `reports` is the bar's count of reports: with `input_reports`, the input's distinct
    DOIs, of which those with no job left in the queue were done by an earlier run (a
    report has one unfinished job at a time: its next page); else the reports queued for
    this run (at least the jobs pending at its start).
    """
    await reclaim_and_name_waits(p, ui)
    new_run = getattr(p.fetcher, "new_run", None)  # the site must answer this run again
    if new_run is not None:
        new_run()
    progress = ui.progress
    pending = await _pending_or_none(p)
    count = worker_processes(p.settings.processes, process_count(p.settings), cpu_cores(), ui)
    if burst and pending == 0:
        count = 1  # nothing queued: a helper would only start and find the queue drained
    helpers: Helpers | None = None
    if count > 1:  # N worker processes: this one and N - 1 helpers (pipeline.runs.processes)
        helpers = Helpers.start(p.settings, count - 1, burst=burst, max_duration=max_duration)

    def on_page(counters: RunCounters) -> None:
        if progress is not None:
            progress.update(helpers.combined(counters) if helpers is not None else counters)

    worker = p.worker(burst=burst, on_page=on_page if progress is not None else None)
    if helpers is not None and burst:  # the helpers may hold the last jobs: see them done
        worker.idle_poll = HELPER_POLL
    if helpers is not None and progress is not None:
        helpers.on_report = lambda: on_page(worker.counters)
    outcome = WorkOutcome(worker, statements_before=await _statement_rows(p))
    background = [asyncio.create_task(heartbeat_run(p, run_id))]
    if (progress is None or not progress.shown) and p.settings.progress_interval > 0:
        background.append(
            asyncio.create_task(
                log_progress(
                    p,
                    (lambda: helpers.combined(worker.counters))
                    if helpers is not None
                    else worker.counters,
                    p.settings.progress_interval,
                )
            )
        )
    if max_duration > 0:

        async def budget() -> None:
            await p.clock.sleep(max_duration)
            outcome.out_of_time = True
            log.info("time budget spent", max_duration=max_duration)
            worker.stop(grace=p.options.budget_grace)
            # pages still waiting for their turn (politeness) are not started: they go
            # back to the queue now instead of keeping the run past its budget
            log.info("budget: requests not sent", cancelled=p.fetcher.cancel_waiting())

        background.append(asyncio.create_task(budget()))

    def on_stop() -> None:
        outcome.stopped = True
        worker.stop(grace=p.options.stop_grace)
        if helpers is not None:
            helpers.stop()

    if progress is not None:
        done_before = 0
        if reports is not None and pending is not None:
            if input_reports:
                done_before = max(0, reports - pending)
            else:
                reports = max(reports, pending)
        progress.start_crawl(pending, reports, done_before)
        if progress.shown:
            background.append(
                asyncio.create_task(
                    _known_total(
                        p,
                        progress,
                        (lambda: helpers.combined(worker.counters))
                        if helpers is not None
                        else (lambda: worker.counters),
                    )
                )
            )
    try:
        with stop.calling(on_stop):
            await worker.run()
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if helpers is not None:
            # drained (burst) or stopped: nothing is left for the helpers, so stop their
            # idle polling now rather than a poll later
            helpers.stop()
            outcome.notes.extend(await helpers.wait())
            outcome.notes.append(helpers.share_note(worker.counters))
            worker.counters = helpers.combined(worker.counters)
            if progress is not None:  # already every process's: not combined again
                progress.update(worker.counters)
    return outcome


async def _known_total(
    p: Pipeline, progress: Progress, counters: Callable[[], RunCounters]
) -> None:
    """Keep the bar's total true: pages done (by every process of the run) plus pages
    still queued (follow-ups found during the run raise it)."""
    while True:
        await asyncio.sleep(PROGRESS_REFRESH)
        pending = await _pending_or_none(p)
        if pending is not None:
            progress.remaining(counters().pages_done, pending)


def worker_processes(asked: int, count: int, cores: int, ui: RunUI) -> int:
    """The worker processes a run starts: `count` (what `processes` asks for), at most one
    per CPU core. Each process already keeps `concurrency` pages in flight; past the
    cores, more processes only take turns on them (and each costs an interpreter and
    store connections), so a larger ask is capped, with a line saying so."""
    if count <= cores:
        return count
    ui.message(
        f"processes: {asked} asked, but this machine gives citepipe {plural(cores, 'CPU core')}: "
        f"running {plural(cores, 'worker process', 'worker processes')} (more would only "
        "compete for the cores; raise concurrency for more pages in flight)"
    )
    return cores


async def _statement_rows(p: Pipeline) -> int | None:
    """The store's statements now, so that the summary counts the new ones (not the
    statements read again); None when the store cannot say."""
    try:
        return (await p.store.stats()).rows_by_table.get("statements")
    except PipelineError:
        return None


async def _pending_or_none(p: Pipeline) -> int | None:
    try:
        return await p.store.pending()
    except PipelineError:
        return None


def active_run_notes(runs: Iterable[RunInfo], own: int) -> list[str]:
    """'another run is active' notes for every live run but our own."""
    return [
        f"another run is active: #{r.id} {r.kind} pid {r.pid} on {r.host} "
        f"since {r.started_at}; sharing the queue safely"
        for r in runs
        if r.id != own
    ]


__all__ = [
    "InputSurvey",
    "RunUI",
    "Stop",
    "WorkOutcome",
    "active_run_notes",
    "enqueue_due_batches",
    "enqueue_lines",
    "open_input",
    "survey_input",
    "work",
]
