"""Composition root and the runs: backfill, crawl, worker, schedule and demo.

`open_pipeline(settings, store=..., fetcher=..., clock=...)` assembles one process's parts
from Settings; any part can be injected (as httpx's `AsyncClient(transport=...)` or
procrastinate's `App(connector=...)`), which is how the tests run whole crawls in-process
against a memory store, a fake fetcher or a manual clock. Each run is an async function
over a `Pipeline` that returns a `RunSummary`; `summary.exit_code` (one rule, in
`summary.py`) turns it into the process's exit code. Printing and signals belong to the
command line (`cli.py`), not here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import structlog
from croniter import croniter

from pipeline.clock import Clock, SystemClock
from pipeline.config import Settings
from pipeline.errors import BadInputError, ConfigError, NotFoundError, PipelineError, StoreError
from pipeline.fetcher import AiohttpFetcher, Fetcher
from pipeline.inputs import InputDois
from pipeline.models import (
    RUN_STALE_AFTER,
    DeadJob,
    Page,
    PaperView,
    Requeued,
    SearchHit,
    StatementType,
)
from pipeline.normalise import normalise_doi
from pipeline.processes import check_shareable
from pipeline.reparse import ReparseSummary
from pipeline.reparse import reparse as reparse_pages
from pipeline.retry import RetryPolicy
from pipeline.runs import (
    RunUI,
    Stop,
    WorkOutcome,
    active_run_notes,
    enqueue_lines,
    open_input,
    survey_input,
    work,
)
from pipeline.sources.base import Source
from pipeline.sources.report import ReportSource, load_selectors
from pipeline.store import open_store
from pipeline.store.base import Store
from pipeline.store.copy import CopyReport, TableCopy
from pipeline.store.copy import copy_store as copy_tables
from pipeline.store.sqlite import check_writable
from pipeline.summary import InputTally, RunSummary, RunTimes
from pipeline.urls import has_userinfo, strip_userinfo
from pipeline.worker import RunCounters, Worker, WorkerOptions

log = structlog.get_logger("citepipe")

DEMO_DB = "data/demo.sqlite"
# What `demo` sets unless a flag says otherwise: no politeness delay against its own
# loopback site, quick retries. (base_url is the site it starts; the store is `demo_db`.)
DEMO_DEFAULTS: dict[str, Any] = {
    "request_delay": 0.0,
    "per_host_concurrency": 8,
    "retry_base": 0.2,
}
BROKEN_PAGE = "broken page"  # the dead reason of a page that did not parse (worker.py)
REPARSE_HINT = (
    "broken pages are kept in the store: after a selector fix, "
    "`citepipe reparse --broken` reads them again without a request"
)
STOP_GRACE = 1.0  # seconds in-flight pages get after a stop request (Ctrl-C, SIGTERM)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How runs of this process stop: built from Settings, in one place."""

    stop_grace: float  # after a signal: in-flight pages get this long, the rest is released
    budget_grace: float  # after the time budget: one request timeout to finish and commit

    @classmethod
    def from_settings(cls, s: Settings) -> RunOptions:
        return cls(stop_grace=min(STOP_GRACE, s.timeout), budget_grace=s.timeout)


def worker_options(s: Settings, *, burst: bool) -> WorkerOptions:
    """The worker's options, from Settings (the one place their defaults live)."""
    return WorkerOptions(
        concurrency=s.concurrency,
        claim_batch=s.claim_batch,
        lease_seconds=s.lease_seconds,
        base_url=s.base_url,
        burst=burst,
        grace=s.timeout,
        keep_pages=s.keep_pages,
        max_pages_per_report=s.max_pages_per_report,
    )


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

    def worker(
        self, *, burst: bool, on_page: Callable[[RunCounters], None] | None = None
    ) -> Worker:
        return Worker(
            self.store,
            self.fetcher,
            self.source,
            self.policy,
            worker_options(self.settings, burst=burst),
            on_page=on_page,
            now=self.clock.now,
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
    source = source or ReportSource(
        load_selectors(settings.selectors or None), base_url=settings.base_url
    )
    own_store = store is None
    if own_store:
        check_store_location(settings, create=create)
        check_shareable(settings)  # --processes N needs a store every process can open
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
    try:
        yield Pipeline(
            settings,
            the_store,
            the_fetcher,
            source,
            RetryPolicy.from_settings(settings),
            clock,
            RunOptions.from_settings(settings),
        )
    finally:
        try:
            if own_fetcher:
                await the_fetcher.close()
        finally:
            if own_store:
                await the_store.close()


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
    check_store_location(src_settings, create=False)
    check_store_location(dst_settings, create=True)
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


# ---------------------------------------------------------------------------- the runs


async def _finish(p: Pipeline, summary: RunSummary, run_id: int, ui: RunUI) -> RunSummary:
    """Record the run's end in the store, and log the summary for log collectors."""
    await p.store.finish_run(run_id, summary.as_dict())
    if ui.log_summary:
        log.info("summary", **{k: v for k, v in summary.as_dict().items() if k != "rows"})
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
    outcome = await work(p, run_id, ui, stop, burst=True, reports=tally.enqueued)
    notes = ["the input holds no DOIs"] if tally.lines == 0 and not stop.requested else []
    summary = await _summarise(
        p, command, outcome, stop, tally, seen, (started, enqueued, clock.monotonic()), notes
    )
    return await _finish(p, summary, run_id, ui)


async def crawl(
    p: Pipeline,
    seeds: Iterable[str] | None = None,
    *,
    max_duration: float | None = None,
    stop: Stop | None = None,
    ui: RunUI | None = None,
) -> RunSummary:
    """Queue new seeds and every report due for refresh; work until done, out of time or
    stopped. What is left stays queued for the next run."""
    stop, ui = stop or Stop(), ui or RunUI()
    clock = p.clock
    started = clock.monotonic()
    run_id = await p.register_run("crawl")  # first, so a crawl starting now sees us
    notes = active_run_notes(await p.store.active_runs(stale_after=RUN_STALE_AFTER), run_id)
    for note in notes:
        ui.message(note)
    tally, seen = InputTally(), InputDois()  # out of memory: inputs may be huge
    if ui.progress is not None:
        ui.progress.start_enqueue()
    if seeds is not None:
        await enqueue_lines(p, seeds, p.settings.depth, tally, ui, seen, stop)
    tally.enqueued += await p.store.enqueue_stale(clock.now())
    enqueued = clock.monotonic()
    budget = p.settings.max_duration if max_duration is None else max_duration
    outcome = await work(
        p, run_id, ui, stop, burst=True, max_duration=budget, reports=tally.enqueued
    )
    summary = await _summarise(
        p, "crawl", outcome, stop, tally, seen, (started, enqueued, clock.monotonic()), notes
    )
    return await _finish(p, summary, run_id, ui)


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
    )
    log.info("worker stopped", pages=counters.pages_done, dead=counters.dead.total())
    return await _finish(p, summary, run_id, ui)


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


# ---------------------------------------------------------------------------- retry


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


# ---------------------------------------------------------------------------- demo


def demo_db(settings: Settings) -> str:
    """The demo's store: `db` when it was set away from its default (a flag, the config
    file or `CITEPIPE_DB`, as the container image sets it to its data volume), else the
    demo's own `data/demo.sqlite`, so a plain `citepipe demo` never touches the real
    store's default file."""
    return settings.db if settings.db != Settings().db else DEMO_DB


def demo_settings(settings: Settings, base_url: str) -> Settings:
    """The demo's settings: the given ones, pointed at the local site it started."""
    return dataclasses.replace(settings, base_url=base_url).validate()


def is_demo_store(path: str) -> bool:
    """Whether `path` is a SQLite store that only `citepipe demo` ever ran on."""
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


def prepare_demo_db(db: str, *, force: bool) -> None:
    """A demo starts empty (its site has a new port each run, so old jobs could not run);
    it removes only a store an earlier demo made, unless `force`."""
    path = db.removeprefix("sqlite:///")
    if "://" in path:
        raise ConfigError(f"db: the demo needs a SQLite file path, not {db!r}")
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"db: {path} is a directory")
    if target.exists() and not force and not is_demo_store(path):
        raise ConfigError(
            f"db: {path} is not a store made by `citepipe demo`; refusing to overwrite it "
            "(choose another --db, or --force)"
        )
    for suffix in ("", "-wal", "-shm"):
        try:
            Path(path + suffix).unlink(missing_ok=True)
        except OSError as exc:
            raise ConfigError(f"db: cannot remove {path + suffix}: {exc.strerror}") from None


async def demo(
    settings: Settings,
    *,
    force: bool = False,
    stop: Stop | None = None,
    ui: RunUI | None = None,
    clock: Clock | None = None,
) -> RunSummary:
    """Start the local citation site on a free loopback port, backfill its DOIs into a
    fresh demo store, and return the summary with a few stored statements as epilogue."""
    from citesite.dataset import demo_dataset_path, load_dataset
    from citesite.server import CitationSite

    ui = ui or RunUI()
    settings = dataclasses.replace(settings, db=demo_db(settings))
    prepare_demo_db(settings.db, force=force)
    reports = load_dataset(demo_dataset_path())
    async with CitationSite(reports, host="127.0.0.1", port=0) as site:
        s = demo_settings(settings, site.base_url)
        ui.message(f"local citation site at {site.base_url} serving {len(reports)} reports")
        async with open_pipeline(s, clock=clock) as p:
            summary = await backfill(p, list(reports), stop=stop, ui=ui, command="demo")
            seed = normalise_doi("10.1038/bmt.2012.184")
            summary.epilogue.append(f"\na few statements citing {seed}:")
            shown = 0
            async for row in p.store.export("statements"):
                if row["cited_doi"] == seed and shown < 3:
                    summary.epilogue.append(
                        f"  [{row['type']}, {row['section'] or 'no section'}] "
                        f"{row['citing_doi']}: {str(row['snippet'])[:150]}"
                    )
                    shown += 1
            summary.epilogue.append(
                f"\nstored in {s.db}; try: sqlite3 {s.db} "
                "'select type, count(*) from statements group by type'"
            )
    return summary


def read_stdin_or_file(name: str, stdin: IO[bytes] | None = None) -> bytes:
    """The bytes of a file, or of standard input for `-` (for `parse`)."""
    if name == "-":
        return (stdin or sys.stdin.buffer).read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: {exc.strerror}") from None


def parse_page(
    settings: Settings, name: str, *, url: str | None = None, stdin: IO[bytes] | None = None
) -> dict[str, Any]:
    """`citepipe parse`: read a saved page (a file, or `-` for standard input) with the
    report profile and return it as a JSON-able dict; a broken page raises ParseError."""
    from pipeline.sources.report import result_to_dict

    body = read_stdin_or_file(name, stdin)
    where = url or ("file:///dev/stdin" if name == "-" else Path(name).resolve().as_uri())
    source = ReportSource(load_selectors(settings.selectors or None))
    result = source.parse(Page(url=where, final_url=where, status=200, body=body))
    parsed: dict[str, Any] = result_to_dict(result)
    return parsed


# ---------------------------------------------------------------------------- after the crawl


async def reparse(
    p: Pipeline, *, broken_only: bool = False, dois: Sequence[str] | None = None
) -> ReparseSummary:
    """`citepipe reparse`: rows derived again from the kept pages with the current
    selectors, no request (`pipeline.reparse`)."""
    keys = None if dois is None else [_doi_argument(d) for d in dois]
    return await reparse_pages(
        p.worker(burst=True),
        keep_all=p.settings.keep_pages == "all",
        broken_only=broken_only,
        dois=keys,
    )


async def show(p: Pipeline, doi: str, *, statements: int = 1000) -> PaperView:
    """`citepipe show`: one paper at a glance; an unknown DOI is a clear error."""
    if statements < 0:
        raise ConfigError(f"--statements: must be 0 or more, got {statements}")
    key = _doi_argument(doi)
    view = await p.store.paper_view(key, statements=statements)
    if view is None:
        raise NotFoundError(f"{key}: no such paper in {p.settings.db}")
    return view


async def search(
    p: Pipeline, query: str, *, type: StatementType | None = None, limit: int = 20
) -> list[SearchHit]:
    """`citepipe search`: statements whose snippet matches (FTS5 query syntax)."""
    if not query.strip():
        raise ConfigError("search: the query is empty")
    if limit < 1:
        raise ConfigError(f"--limit: must be at least 1, got {limit}")
    try:
        return await p.store.search(query, type=type, limit=limit)
    except StoreError as exc:
        raise ConfigError(
            f'{exc} (FTS5 syntax: words, "a phrase", OR, NOT, prefix*; put words with '
            "punctuation in double quotes)"
        ) from None


def _doi_argument(text: str) -> str:
    """A DOI named on the command line, normalised; not a DOI is a usage error (exit 2)."""
    try:
        return normalise_doi(text)
    except BadInputError as exc:
        raise ConfigError(str(exc)) from None
