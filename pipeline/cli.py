"""The `citepipe` command: backfill, crawl, worker, status, export, parse, site, demo.

Each subcommand is a small function over the composition root (`app.open_pipeline`). Exit
codes: 0 done, 1 some DOIs dead or bad input lines, 2 usage or configuration error,
3 (crawl) time budget spent with work left queued.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import structlog
from croniter import croniter

from pipeline.app import Pipeline, open_pipeline
from pipeline.config import Settings, load_settings
from pipeline.errors import ConfigError, ParseError, PipelineError
from pipeline.inputs import read_doi_lines
from pipeline.logs import configure_logging, redact_text
from pipeline.models import RUN_HEARTBEAT, RUN_STALE_AFTER, NewJob, Page
from pipeline.normalise import normalise_doi, report_address
from pipeline.store.base import EXPORT_TABLES
from pipeline.summary import (
    EXIT_BUDGET,
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_USAGE,
    InputTally,
    Progress,
    RunSummary,
    render_status,
)
from pipeline.worker import RunCounters, Worker

log = structlog.get_logger("citepipe")

ENQUEUE_CHUNK = 1000
DEMO_DB = "data/demo.sqlite"

# Flags that map one-to-one onto settings (dest == setting name).
_SETTING_FLAGS: tuple[tuple[str, type, str], ...] = (
    ("--base-url", str, "the citation site's base URL (default https://scite.ai)"),
    ("--db", str, "the store: a SQLite file path (default data/citepipe.sqlite)"),
    ("--concurrency", int, "pages in flight in this process"),
    ("--per-host-concurrency", int, "pages in flight per host"),
    ("--request-delay", float, "seconds between request starts to one host"),
    ("--timeout", float, "seconds before a request times out"),
    ("--max-attempts", int, "attempts before a page is given up (dead)"),
    ("--user-agent", str, "User-Agent header: name the tool and a contact"),
    ("--selectors", str, "a TOML file overriding the report page selectors"),
    ("--log-level", str, "debug, info, warning or error"),
    ("--log-format", str, "auto (console on a TTY, else JSON), json or console"),
)


def parse_duration(text: str) -> float:
    """`90`, `90s`, `15m`, `2h`, `1d` -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    try:
        if t and t[-1] in units:
            return float(t[:-1]) * units[t[-1]]
        return float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 90s, 15m, 2h)") from None


def _common(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("settings (override config file and CITEPIPE_* env)")
    g.add_argument("--config", help="TOML settings file (default config/citepipe.toml)")
    for flag, kind, text in _SETTING_FLAGS:
        g.add_argument(flag, type=kind, help=text, default=None)
    g.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        default=None,
        help="no progress bar, even on a TTY",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citepipe",
        description="Harvest citation report pages into a queue-backed SQLite store.",
        epilog="Exit codes: 0 done; 1 some DOIs dead or bad input lines; "
        "2 usage/config error; 3 crawl time budget spent, work left queued.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "backfill",
        help="enqueue a DOI list and work until it is drained",
        description="Read DOIs (one a line; a file or - for stdin), report bad "
        "lines with their numbers, enqueue the rest and crawl "
        "every page of their reports.",
    )
    p.add_argument("input", help="file of DOIs, or - for standard input")
    p.add_argument(
        "--depth",
        type=int,
        default=None,
        help="also crawl citing papers, this many levels deep (default 0)",
    )
    _common(p)

    p = sub.add_parser(
        "crawl",
        help="refresh stale reports and new seeds (for cron)",
        description="Enqueue the seed list's new DOIs and every report due for "
        "a refresh, then work until done or out of time.",
    )
    p.add_argument("--seeds", help="file of seed DOIs (optional)")
    p.add_argument(
        "--max-duration",
        type=parse_duration,
        default=None,
        help="time budget, e.g. 20m; what is left stays queued",
    )
    p.add_argument("--depth", type=int, default=None, help="depth for new seeds")
    _common(p)

    p = sub.add_parser(
        "schedule",
        help="run crawl each time the cron expression `schedule` comes due",
        description="A small scheduler process (for containers): runs `citepipe crawl` "
        "each time the cron expression in the `schedule` setting comes due, until "
        "SIGTERM/SIGINT.",
    )
    p.add_argument("--seeds", help="file of seed DOIs for each crawl (optional)")
    p.add_argument(
        "--max-duration", type=parse_duration, default=None, help="time budget of each crawl"
    )
    p.add_argument("--depth", type=int, default=None, help="depth for new seeds")
    _common(p)

    p = sub.add_parser(
        "worker",
        help="work the queue until stopped (long-running)",
        description="Claim and crawl jobs until SIGTERM/SIGINT.",
    )
    p.add_argument("--burst", action="store_true", help="return once the queue is drained")
    _common(p)

    p = sub.add_parser(
        "status",
        help="queue by state, dead reasons, rows, rates",
        description="Show the store's queue and results.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    _common(p)

    p = sub.add_parser(
        "export",
        help="stream a table as CSV or JSON lines",
        description="Stream a table of the store, any size.",
    )
    p.add_argument("--table", required=True, choices=EXPORT_TABLES)
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--output", "-o", help="file to write (default standard output)")
    _common(p)

    p = sub.add_parser(
        "parse",
        help="parse a saved report page and print it as JSON",
        description="Parse one saved page with the report profile: the tool "
        "to reach for when the site's layout drifts.",
    )
    p.add_argument("file", help="an HTML file")
    p.add_argument("--url", help="the URL it was fetched from (resolves relative links)")
    _common(p)

    p = sub.add_parser(
        "site",
        help="run the local citation site (for tests and demos)",
        description="Serve report pages from a data set, with faults.",
    )
    from citesite.server import add_arguments as add_site_arguments

    add_site_arguments(p)

    p = sub.add_parser(
        "demo",
        help="crawl the bundled local site into data/demo.sqlite",
        description="Start the local citation site on a free loopback port, "
        "backfill its DOIs into data/demo.sqlite, print a summary.",
    )
    _common(p)
    return parser


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    overrides = {
        flag.lstrip("-").replace("-", "_"): getattr(args, flag.lstrip("-").replace("-", "_"), None)
        for flag, _, _ in _SETTING_FLAGS
    }
    for name in ("depth", "progress"):
        overrides[name] = getattr(args, name, None)
    overrides.update(extra)
    return load_settings(getattr(args, "config", None), overrides=overrides)


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_stop_handlers: list[Callable[[], None]] = []


def _fire_stop_handlers() -> None:
    for handler in list(_stop_handlers):
        handler()


@contextlib.contextmanager
def _on_stop(handler: Callable[[], None]) -> Iterator[None]:
    """While inside, SIGTERM/SIGINT call `handler` and every outer one (a scheduler's
    crawl stops gracefully and so does the scheduler); the outer ones stay after."""
    loop = asyncio.get_running_loop()
    _stop_handlers.append(handler)
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, _fire_stop_handlers)
    try:
        yield
    finally:
        _stop_handlers.remove(handler)
        if not _stop_handlers:
            for sig in _STOP_SIGNALS:
                loop.remove_signal_handler(sig)


async def _heartbeat_run(p: Pipeline, run_id: int) -> None:
    while True:
        await asyncio.sleep(RUN_HEARTBEAT)
        with contextlib.suppress(PipelineError):
            await p.store.heartbeat_run(run_id)


async def _log_progress(p: Pipeline, counters: RunCounters, interval: float) -> None:
    """A `progress` log line every `interval` seconds, for runs nobody watches on a
    terminal (cron, containers, nohup): pages, the recent rate, what is left."""
    last_pages, last_time = counters.pages_done, time.monotonic()
    while True:
        await asyncio.sleep(interval)
        now = time.monotonic()
        try:
            pending: int | None = await p.store.pending()
        except PipelineError:
            pending = None
        log.info(
            "progress",
            pages=counters.pages_done,
            pages_per_s=round((counters.pages_done - last_pages) / (now - last_time), 1),
            statements=counters.statements,
            retries=counters.retries,
            dead=counters.dead.total(),
            pending=pending,
        )
        last_pages, last_time = counters.pages_done, now


async def _work(
    p: Pipeline, run_id: int, kind: str, *, burst: bool, max_duration: float = 0.0
) -> Worker:
    """Run a worker with signals, progress and run heartbeats; return it when it ends.

    Progress is a bar on a terminal, else a log line every `progress_interval` seconds.
    """
    progress = Progress(p.settings.progress, kind)
    worker = p.worker(burst=burst, max_duration=max_duration, on_page=progress.update)
    background = [asyncio.create_task(_heartbeat_run(p, run_id))]
    if not progress.shown and p.settings.progress_interval > 0:
        background.append(
            asyncio.create_task(_log_progress(p, worker.counters, p.settings.progress_interval))
        )
    try:
        with _on_stop(worker.stop):
            await worker.run()
    finally:
        for task in background:
            task.cancel()
        progress.close()
    return worker


async def _enqueue_lines(
    p: Pipeline, lines: Iterable[str], depth: int, tally: InputTally, err: IO[str]
) -> None:
    """Stream DOI lines into the queue in chunks; report each bad line by number.

    Also counts the input's DOIs that are already dead from an earlier run: no work is
    repeated for them, but they are not done either.
    """
    chunk: list[NewJob] = []
    base = p.settings.base_url

    async def flush() -> None:
        tally.enqueued += await p.store.enqueue(chunk)
        tally.already_dead.update(await p.store.dead_among([job.doi for job in chunk]))
        chunk.clear()

    for line in read_doi_lines(lines):
        tally.lines += 1
        if line.doi is None:
            tally.bad_lines += 1
            print(f"line {line.lineno}: not a DOI: {line.raw[:200]!r}", file=err)
            if not err.isatty():  # on a terminal the line above says it all
                log.warning("bad input line", line=line.lineno, text=line.raw[:200])
            continue
        tally.dois += 1
        chunk.append(NewJob(doi=line.doi, url=report_address(base, line.doi), depth=depth))
        if len(chunk) >= ENQUEUE_CHUNK:
            await flush()
    if chunk:
        await flush()


@contextlib.contextmanager
def _open_input(name: str) -> Any:
    if name == "-":
        yield sys.stdin
        return
    try:
        f = open(name, encoding="utf-8-sig", errors="replace", newline=None)  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"input {name}: {exc.strerror}") from None
    with f:
        yield f


async def _finish(p: Pipeline, summary: RunSummary, run_id: int) -> int:
    await p.store.finish_run(run_id, summary.as_dict())
    print(summary.render())
    if not sys.stderr.isatty():  # for log collectors; people read the printed summary
        log.info("summary", **{k: v for k, v in summary.as_dict().items() if k != "rows"})
    return summary.exit_code


async def cmd_backfill(args: argparse.Namespace, settings: Settings) -> int:
    async with open_pipeline(settings) as p:
        tally = InputTally()
        with _open_input(args.input) as stream:
            await _enqueue_lines(p, stream, settings.depth, tally, sys.stderr)
        run_id = await p.register_run("backfill")
        worker = await _work(p, run_id, "backfill", burst=True)
        dead = tally.already_dead.total() + worker.counters.dead.total()
        code = EXIT_INCOMPLETE if (dead or tally.bad_lines) else EXIT_OK
        summary = RunSummary("backfill", worker.counters, await p.store.stats(), code, tally)
        if worker.stopping:
            summary.notes.append("stopped by signal; the rest stays queued")
            summary.exit_code = max(summary.exit_code, EXIT_INCOMPLETE)
        return await _finish(p, summary, run_id)


async def cmd_crawl(args: argparse.Namespace, settings: Settings) -> int:
    async with open_pipeline(settings) as p:
        run_id = await p.register_run("crawl")  # first, so a crawl starting now sees us
        notes = []
        others = await p.store.active_runs(stale_after=RUN_STALE_AFTER)
        for r in (r for r in others if r.id != run_id):
            note = (
                f"another run is active: #{r.id} {r.kind} pid {r.pid} on {r.host} "
                f"since {r.started_at}; sharing the queue safely"
            )
            notes.append(note)
            print(note, file=sys.stderr)
        tally = InputTally()
        if args.seeds:
            with _open_input(args.seeds) as stream:
                await _enqueue_lines(p, stream, settings.depth, tally, sys.stderr)
        tally.enqueued += await p.store.enqueue_stale(datetime.now(UTC))
        budget = args.max_duration or settings.max_duration
        worker = await _work(p, run_id, "crawl", burst=True, max_duration=budget)
        code = EXIT_INCOMPLETE if (worker.counters.dead or tally.bad_lines) else EXIT_OK
        if worker.out_of_time and await p.store.pending():
            notes.append("time budget spent; the rest stays queued for the next run")
            code = max(code, EXIT_BUDGET)
        summary = RunSummary(
            "crawl",
            worker.counters,
            await p.store.stats(),
            code,
            tally,
            out_of_time=worker.out_of_time,
            notes=notes,
        )
        return await _finish(p, summary, run_id)


async def cmd_schedule(args: argparse.Namespace, settings: Settings) -> int:
    """Sleep until the cron expression comes due, crawl, repeat; stop on a signal.

    The store is opened (made, migrated) at start: a bad `db` fails now, not at the first
    run hours later, and the container's healthcheck (`status`) finds it from the start.
    """
    async with open_pipeline(settings):
        pass
    stop = asyncio.Event()
    with _on_stop(stop.set):
        await _schedule_loop(args, settings, stop)
    return EXIT_OK


async def _schedule_loop(args: argparse.Namespace, settings: Settings, stop: asyncio.Event) -> None:
    schedule = croniter(settings.schedule, datetime.now(UTC))
    while not stop.is_set():
        due: datetime = schedule.get_next(datetime)
        wait = max(0.0, (due - datetime.now(UTC)).total_seconds())
        log.info("next crawl", at=due.isoformat(), schedule=settings.schedule)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
        if stop.is_set():
            break
        try:
            code = await cmd_crawl(args, settings)
        except PipelineError as exc:
            log.error("crawl failed", error=str(exc))
            continue
        log.info("crawl finished", exit_code=code)


async def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    async with open_pipeline(settings) as p:
        log.info("worker started", db=settings.db, base_url=settings.base_url)
        run_id = await p.register_run("worker")
        worker = await _work(p, run_id, "worker", burst=args.burst)
        await p.store.finish_run(run_id, {"pages": worker.counters.pages_done})
        log.info(
            "worker stopped",
            pages=worker.counters.pages_done,
            dead=sum(worker.counters.dead.values()),
        )
    return EXIT_OK


async def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    async with open_pipeline(settings, create=False) as p:
        stats = await p.store.stats()
    if args.json:
        print(json.dumps(_jsonable(stats), indent=1, sort_keys=True))
    else:
        print(render_status(stats))
    return EXIT_OK


def _jsonable(obj: Any) -> Any:
    from dataclasses import asdict, is_dataclass

    return asdict(obj) if is_dataclass(obj) and not isinstance(obj, type) else obj


async def _write_rows(rows: AsyncIterator[dict[str, Any]], fmt: str, out: IO[str]) -> int:
    n = 0
    writer: csv.DictWriter[str] | None = None
    async for row in rows:
        if fmt == "jsonl":
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            if writer is None:
                writer = csv.DictWriter(out, fieldnames=list(row))
                writer.writeheader()
            writer.writerow(row)
        n += 1
    return n


async def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    async with open_pipeline(settings, create=False) as p:
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as out:  # noqa: ASYNC230
                n = await _write_rows(p.store.export(args.table), args.format, out)
        else:
            n = await _write_rows(p.store.export(args.table), args.format, sys.stdout)
    print(f"exported {n} rows from {args.table}", file=sys.stderr)
    return EXIT_OK


def cmd_parse(args: argparse.Namespace, settings: Settings) -> int:
    from pipeline.sources.report import ReportSource, load_selectors, result_to_dict

    path = Path(args.file)
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    url = args.url or path.resolve().as_uri()
    source = ReportSource(load_selectors(settings.selectors or None))
    try:
        result = source.parse(Page(url=url, final_url=url, status=200, body=body))
    except ParseError as exc:
        print(f"parse error: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE
    print(json.dumps(result_to_dict(result), indent=1, ensure_ascii=False))
    return EXIT_OK


def _fresh_file(db: str) -> None:
    """A demo starts empty: its site has a new port each run, so old jobs could not run."""
    for suffix in ("", "-wal", "-shm"):
        Path(db + suffix).unlink(missing_ok=True)


async def cmd_demo(args: argparse.Namespace) -> int:
    from citesite.dataset import demo_dataset_path, load_dataset
    from citesite.server import CitationSite

    reports = load_dataset(demo_dataset_path())
    async with CitationSite(reports, host="127.0.0.1", port=0) as site:
        settings = _settings(
            args,
            base_url=site.base_url,
            db=args.db or DEMO_DB,
            request_delay=args.request_delay or 0.0,
            per_host_concurrency=args.per_host_concurrency or 8,
            retry_base=0.2,
        )
        _fresh_file(settings.db)
        configure_logging(settings.log_level, settings.log_format)
        print(f"local citation site at {site.base_url} serving {len(reports)} reports")
        async with open_pipeline(settings) as p:
            tally = InputTally()
            await _enqueue_lines(p, list(reports), settings.depth, tally, sys.stderr)
            run_id = await p.register_run("demo")
            worker = await _work(p, run_id, "demo", burst=True)
            stats = await p.store.stats()
            code = EXIT_INCOMPLETE if stats.jobs_by_state.get("dead") else EXIT_OK
            await _finish(p, RunSummary("demo", worker.counters, stats, code, tally), run_id)
            seed = normalise_doi("10.1038/bmt.2012.184")
            print(f"\na few statements citing {seed}:")
            shown = 0
            async for row in p.store.export("statements"):
                if row["cited_doi"] == seed and shown < 3:
                    print(
                        f"  [{row['type']}, {row['section'] or 'no section'}] "
                        f"{row['citing_doi']}: {str(row['snippet'])[:150]}"
                    )
                    shown += 1
            print(
                f"\nstored in {settings.db}; try: sqlite3 {settings.db} "
                "'select type, count(*) from statements group by type'"
            )
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "site":
            from citesite.server import run as run_site

            return run_site(args)
        if args.command == "demo":
            return asyncio.run(cmd_demo(args))
        settings = _settings(args)
        configure_logging(settings.log_level, settings.log_format)
        if args.command == "parse":
            return cmd_parse(args, settings)
        handlers = {
            "backfill": cmd_backfill,
            "crawl": cmd_crawl,
            "worker": cmd_worker,
            "schedule": cmd_schedule,
            "status": cmd_status,
            "export": cmd_export,
        }
        return asyncio.run(handlers[args.command](args, settings))
    except ConfigError as exc:
        print(f"citepipe: configuration error: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except PipelineError as exc:
        print(f"citepipe: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_INCOMPLETE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `citepipe export ... | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
