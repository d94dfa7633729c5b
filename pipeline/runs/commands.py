"""The run commands: backfill, crawl, worker and schedule, each over an open `Pipeline`.

Each returns a `RunSummary`; `summary.exit_code` (one rule, in `runs/summary.py`) turns it
into the process's exit code. Printing and signals belong to the command line; a `Stop`
and a `RunUI` come in from it (tests build their own).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from datetime import datetime

import structlog
from croniter import croniter

from pipeline.app import Pipeline
from pipeline.clock import Clock
from pipeline.errors import BadInputError, PipelineError
from pipeline.models import RUN_STALE_AFTER, RunCounters
from pipeline.ops.digest import after_run
from pipeline.runs.inputs import InputDois
from pipeline.runs.lifecycle import (
    RunUI,
    Stop,
    WorkOutcome,
    active_run_notes,
    enqueue_due_batches,
    enqueue_lines,
    open_input,
    survey_input,
    work,
)
from pipeline.runs.summary import InputTally, RunSummary, RunTimes

log = structlog.get_logger("citepipe")

BROKEN_PAGE = "broken page"  # the dead reason of a page that did not parse (worker.py)
REPARSE_HINT = (
    "broken pages are kept in the store: after a selector fix, "
    "`citepipe reparse --broken` reads them again without a request"
)


async def _finish(
    p: Pipeline, summary: RunSummary, run_id: int, ui: RunUI, *, digest: bool = True
) -> RunSummary:
    """Record the run's end in the store, and log the summary for log collectors; then
    (`digest`) the run's digest, as `--digest`/`--notify` ask (`ops/digest.py`): after the
    summary is recorded, so it covers the whole run; it never changes the summary."""
    await p.store.finish_run(run_id, summary.as_dict())
    if ui.log_summary:
        log.info("summary", **{k: v for k, v in summary.as_dict().items() if k != "rows"})
    if digest:
        summary.epilogue.extend(await after_run(p, run_id))
    return summary


async def _summarise(
    p: Pipeline,
    command: str,
    outcome: WorkOutcome,
    stop: Stop,
    tally: InputTally,
    seen: InputDois,
    marks: tuple[float, float, float],
    notes: list[str],
) -> RunSummary:
    """The summary of a run over an input (backfill, crawl): its input's jobs by their
    final state in the store, the times of its phases (`marks`: start, enqueue done,
    crawl done), and why it ended early, if it did."""
    started, enqueued, crawled = marks
    notes.extend(outcome.notes)  # e.g. how the pages were shared by --processes
    stopped = outcome.stopped or stop.requested
    out_of_time = outcome.out_of_time and await p.store.pending() > 0
    if out_of_time:
        notes.append("time budget spent; the rest stays queued for the next run")
    if stopped:
        notes.append("stopped by signal; the rest stays queued")
    stats = await p.store.stats()
    survey = await survey_input(p, seen, sum(stats.jobs_by_state.values()))
    seen.close()
    if any(reason.startswith(BROKEN_PAGE) for reason in survey.dead):
        notes.append(REPARSE_HINT)
    return RunSummary(
        command,
        outcome.worker.counters,
        stats,
        tally,
        times=RunTimes(enqueued - started, crawled - enqueued, p.clock.monotonic() - started),
        input_states=survey.states,
        input_dead=survey.dead,
        out_of_time=out_of_time,
        stopped_by=stop.signum if stopped else None,
        notes=notes,
        statements_before=outcome.statements_before,
    )


async def backfill(
    p: Pipeline,
    lines: Iterable[str],
    *,
    stop: Stop | None = None,
    ui: RunUI | None = None,
    command: str = "backfill",
) -> RunSummary:
    """Stream a DOI list into the queue and work until it is drained (or stopped).

    The exit code judges this input's jobs as the store holds them at the end: any of
    them dead (this run, an earlier one, another process) makes it 1.
    """
    stop, ui = stop or Stop(), ui or RunUI()
    clock = p.clock
    started = clock.monotonic()
    tally, seen = InputTally(), InputDois()  # out of memory: inputs may be huge
    if ui.progress is not None:
        ui.progress.start_enqueue()
    await enqueue_lines(p, lines, p.settings.depth, tally, ui, seen, stop)
    if tally.lines == 0 and not stop.requested:
        ui.message("the input holds no DOIs (it is empty, or only blank and # comment lines)")
    enqueued = clock.monotonic()
    run_id = await p.register_run(command)
    outcome = await work(p, run_id, ui, stop, burst=True, reports=len(seen), input_reports=True)
    notes = ["the input holds no DOIs"] if tally.lines == 0 and not stop.requested else []
    summary = await _summarise(
        p, command, outcome, stop, tally, seen, (started, enqueued, clock.monotonic()), notes
    )
    return await _finish(p, summary, run_id, ui, digest=command == "backfill")


async def crawl(
    p: Pipeline,
    seeds: Iterable[str] | None = None,
    *,
    max_duration: float | None = None,
    stop: Stop | None = None,
    ui: RunUI | None = None,
    command: str = "crawl",
) -> RunSummary:
    """Queue new seeds and every report due for refresh (with source api or both, in API
    batches first: `enqueue_due_batches`); work until done, out of time or stopped. What
    is left stays queued for the next run. `command` names the run (the demo's crawl is a
    `demo` run: its store stays a demo store); only a `crawl` ends with its digest."""
    stop, ui = stop or Stop(), ui or RunUI()
    clock = p.clock
    started = clock.monotonic()
    run_id = await p.register_run(command)  # first, so a crawl starting now sees us
    notes = active_run_notes(await p.store.active_runs(stale_after=RUN_STALE_AFTER), run_id)
    for note in notes:
        ui.message(note)
    tally, seen = InputTally(), InputDois()  # out of memory: inputs may be huge
    if ui.progress is not None:
        ui.progress.start_enqueue()
    if seeds is not None:
        await enqueue_lines(p, seeds, p.settings.depth, tally, ui, seen, stop)
    # the API's batches first (source api or both), then, unless the API is the only
    # source, the report pages as without it
    tally.enqueued += await enqueue_due_batches(p)
    if p.settings.source != "api":
        tally.enqueued += await p.store.enqueue_stale(clock.now(), address=on_this_site(p))
    enqueued = clock.monotonic()
    budget = p.settings.max_duration if max_duration is None else max_duration
    outcome = await work(
        p, run_id, ui, stop, burst=True, max_duration=budget, reports=tally.enqueued
    )
    summary = await _summarise(
        p, command, outcome, stop, tally, seen, (started, enqueued, clock.monotonic()), notes
    )
    return await _finish(p, summary, run_id, ui, digest=command == "crawl")


def on_this_site(p: Pipeline) -> Callable[[str, str], str]:
    """Where a due refresh fetches a report: its stored address when it is on the current
    site, else the same report path on the current `base_url` (`Source.relocate`), else
    the address the Source makes for the DOI. After a change of `base_url` a refresh
    goes to the new site instead of dying as an off-site redirect without a request."""

    def address(doi: str, url: str) -> str:
        try:
            return p.source.relocate(url) or p.source.address(doi)
        except BadInputError:  # a DOI with no safe address: the stored one says so
            return url

    return address


async def worker(
    p: Pipeline, *, burst: bool, stop: Stop | None = None, ui: RunUI | None = None
) -> RunSummary:
    """Work the queue until stopped (or, with `burst`, until it is drained).

    A long-running worker ends normally on SIGTERM (exit 0); `--burst` follows the rule
    of backfill and crawl (1 when a job it worked died, 130/143 on a signal).
    """
    stop, ui = stop or Stop(), ui or RunUI()
    clock = p.clock
    started = clock.monotonic()
    log.info("worker started", db=p.settings.db, base_url=p.settings.base_url)
    run_id = await p.register_run("worker")
    outcome = await work(p, run_id, ui, stop, burst=burst)
    outcome.stopped = outcome.stopped or stop.requested
    elapsed = clock.monotonic() - started
    counters = outcome.worker.counters
    summary = RunSummary(
        "worker",
        counters,
        await p.store.stats(),
        InputTally(),
        times=RunTimes(0.0, elapsed, elapsed),
        stopped_by=stop.signum if outcome.stopped else None,
        long_running=not burst,
        notes=outcome.notes,
        statements_before=outcome.statements_before,
    )
    log.info("worker stopped", pages=counters.pages_done, dead=counters.dead.total())
    return await _finish(p, summary, run_id, ui, digest=burst)


async def schedule(
    p: Pipeline,
    seeds: str | None = None,
    *,
    stop: Stop | None = None,
    ui: RunUI | None = None,
    on_crawl: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """Crawl each time the cron expression `schedule` comes due, until stopped.

    The cron expression is read in the `timezone` setting (UTC by default). The seed
    file (if any) is read again for each crawl. A crawl that fails is logged
    and the schedule goes on. Returns a summary of the whole schedule (its counters are
    the last crawl's); SIGTERM is its normal end (exit 0).
    """
    stop, ui = stop or Stop(), ui or RunUI()
    clock = p.clock
    started = clock.monotonic()
    crawls = 0
    last: RunSummary | None = None
    cron = croniter(p.settings.schedule, clock.now().astimezone(p.settings.zone))
    while not stop.requested:
        due = cron.get_next(datetime)
        log.info("next crawl", at=due.isoformat(), schedule=p.settings.schedule)
        await _sleep_or_stop(clock, (due - clock.now()).total_seconds(), stop)
        if stop.requested:
            break
        try:
            if seeds is not None:
                with open_input(seeds) as stream:
                    last = await crawl(p, stream, stop=stop, ui=ui)
            else:
                last = await crawl(p, None, stop=stop, ui=ui)
        except PipelineError as exc:
            log.error("crawl failed", error=str(exc))
            continue
        crawls += 1
        log.info("crawl finished", exit_code=last.exit_code)
        if on_crawl is not None:
            on_crawl(last)
    elapsed = clock.monotonic() - started
    return RunSummary(
        "schedule",
        last.counters if last is not None else RunCounters(),
        await p.store.stats(),
        InputTally(),
        times=RunTimes(0.0, elapsed, elapsed),
        notes=[f"{crawls} crawl{'s' if crawls != 1 else ''} run"],
        stopped_by=stop.signum,
        long_running=True,
    )


async def _sleep_or_stop(clock: Clock, seconds: float, stop: Stop) -> None:
    """Sleep on the run's clock until `seconds` have passed or a stop is asked."""
    sleeper = asyncio.ensure_future(clock.sleep(max(0.0, seconds)))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeper.cancel()
        stopper.cancel()
