"""The `citepipe` command: it parses arguments, installs signal handlers and prints.

Everything else is the composition root's (`pipeline.app`): each run subcommand opens a
pipeline, calls one app-level run function and prints the `RunSummary` it returns; the
exit code comes from the summary (`summary.exit_code`, one rule for every run). Each
subcommand is registered by its own `_add_<name>` function, next to its handler.

Exit codes: 0 done; 1 a job of this run's input ended dead, or bad input lines; 2 usage or
configuration error, or a store that cannot be opened; 3 time budget spent with work left
queued; 130/143 stopped by SIGINT/SIGTERM.
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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pipeline import app
from pipeline.config import DAY, Settings, load_settings, parse_duration
from pipeline.errors import ConfigError, ParseError, PipelineError
from pipeline.logs import configure_logging, redact_text
from pipeline.models import Requeued
from pipeline.normalise import doi_or_none
from pipeline.progress import LiveStderr, Progress
from pipeline.runs import RunUI, Stop, open_input
from pipeline.store.base import EXPORT_TABLES
from pipeline.store.copy import DEFAULT_CHUNK as DEFAULT_COPY_CHUNK
from pipeline.store.copy import TableCopy
from pipeline.summary import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_SIGNAL_BASE,
    EXIT_USAGE,
    RunSummary,
    plural,
    render_status,
)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def duration_arg(text: str) -> float:
    """A duration flag (`90`, `90s`, `15m`, `2h`, `1d`), parsed strictly: argparse names
    the flag and exits 2 for `-5m`, `nan`, `inf` and the like."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# Flags that map one-to-one onto settings (dest == setting name): flag, type, help.
_SETTING_FLAGS: dict[str, tuple[Callable[[str], Any], str]] = {
    "base_url": (str, "the citation site's base URL"),
    "db": (str, "the store: a SQLite file path, sqlite:///path or postgresql://user@host/db"),
    "concurrency": (int, "pages in flight in each process"),
    "processes": (str, "worker processes on the store, or auto (one per CPU core)"),
    "per_host_concurrency": (int, "pages in flight per host"),
    "request_delay": (duration_arg, "seconds between request starts to one host"),
    "timeout": (duration_arg, "seconds before a request times out"),
    "max_attempts": (int, "attempts before a page is given up (dead)"),
    "user_agent": (str, "User-Agent header: name the tool and a contact"),
    "selectors": (str, "a TOML file overriding the report page selectors"),
    "keep_pages": (str, "fetched pages kept in the store for `reparse`: broken or all"),
    "log_level": (str, "debug, info, warning or error"),
    "log_format": (str, "auto (console on a TTY, else JSON), json or console"),
}
_CRAWL_FLAGS = (
    "base_url",
    "db",
    "concurrency",
    "per_host_concurrency",
    "request_delay",
    "timeout",
    "max_attempts",
    "user_agent",
    "selectors",
    "keep_pages",
    "log_level",
    "log_format",
)
_LOG_FLAGS = ("log_level", "log_format")
_WORK_FLAGS = (*_CRAWL_FLAGS, "processes")  # commands that work the queue here


def _settings_flags(
    parser: argparse.ArgumentParser,
    names: Sequence[str],
    *,
    progress: bool = False,
    defaults: dict[str, Any] | None = None,
    shown: dict[str, str] | None = None,
) -> None:
    """Add the setting flags this command uses, each with the default it applies
    (`shown`: the help's words for a default the command picks itself)."""
    base = Settings()
    applied = defaults or {}
    g = parser.add_argument_group("settings (override the config file and CITEPIPE_* variables)")
    g.add_argument("--config", help="TOML settings file (default config/citepipe.toml)")
    for name in names:
        kind, text = _SETTING_FLAGS[name]
        default = (shown or {}).get(name, applied.get(name, getattr(base, name)))
        if default == "":
            default = "built in" if name == "selectors" else "none"
        flag = "--" + name.replace("_", "-")
        g.add_argument(flag, type=kind, default=None, help=f"{text} (default {default})")
    if progress:
        g.add_argument(
            "--no-progress",
            dest="progress",
            action="store_false",
            default=None,
            help="no progress bar, even on a terminal",
        )
    parser.set_defaults(_setting_names=tuple(names), _setting_defaults=applied)


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    """Defaults < command defaults < config file < CITEPIPE_* < flags (demo: its own
    defaults win over the file and the environment, flags still win over them)."""
    flags = {name: getattr(args, name, None) for name in getattr(args, "_setting_names", ())}
    for name in ("depth", "progress"):
        flags[name] = getattr(args, name, None)
    overrides = dict(getattr(args, "_setting_defaults", {}))
    overrides.update({k: v for k, v in flags.items() if v is not None})
    overrides.update(extra)
    try:
        return load_settings(getattr(args, "config", None), overrides=overrides)
    except UnicodeDecodeError as exc:  # a binary file named by --config
        name = getattr(args, "config", None) or "config/citepipe.toml"
        raise ConfigError(f"config file {name}: not UTF-8 text (byte {exc.start})") from None


# ---------------------------------------------------------------------------- signals


def _force_quit(code: int) -> None:
    os._exit(code)  # a second signal: no cleanup; leases return within lease_seconds


@contextlib.contextmanager
def handle_signals(
    stop: Stop, err: IO[str] | None = None, force_quit: Callable[[int], None] = _force_quit
) -> Iterator[None]:
    """While inside, SIGTERM/SIGINT ask `stop` to stop the run; a second one forces the
    quit at once (leases left behind return within `lease_seconds`, or at once to a
    next run on this host). The previous handlers are restored on the way out."""
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    out = err or sys.stderr
    received: list[int] = []

    def on_signal(signum: int) -> None:  # runs in the event loop, not in signal context
        received.append(signum)
        if len(received) > 1:
            with contextlib.suppress(OSError, ValueError):
                out.write("citepipe: second signal, quitting now\n")
                out.flush()
            force_quit(EXIT_SIGNAL_BASE + received[0])
            return
        with contextlib.suppress(OSError, ValueError):
            out.write("citepipe: stopping (again to quit at once)\n")
            out.flush()
        stop.request(signum)

    for sig in STOP_SIGNALS:  # the loop's handlers wake it at once, from any thread
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)


def _run(
    settings: Settings,
    kind: str,
    body: Callable[[Stop, RunUI], Awaitable[RunSummary]],
) -> int:
    """Run one app-level run under signal handlers with a progress display, print its
    summary and return its exit code."""
    # logs follow sys.stderr, which a progress bar redirects to print above itself
    configure_logging(settings.log_level, settings.log_format, stream=LiveStderr())  # type: ignore[arg-type]

    async def main() -> RunSummary:
        stop = Stop()
        ui = RunUI(
            sys.stderr,
            Progress(settings.progress, kind),
            log_summary=not sys.stderr.isatty(),  # people read the printed summary
        )
        try:
            with handle_signals(stop):
                return await body(stop, ui)
        finally:
            if ui.progress is not None:
                ui.progress.close()

    summary = asyncio.run(main())
    if summary.command not in ("worker", "schedule"):
        print(summary.render())
    for line in summary.epilogue:
        print(line)
    return summary.exit_code


# ---------------------------------------------------------------------------- subcommands


def _add_backfill(sub: Any) -> None:
    p = sub.add_parser(
        "backfill",
        help="enqueue a DOI list and work until it is drained",
        description="Read DOIs (one a line; a file or - for stdin), report bad "
        "lines with their numbers, enqueue the rest and crawl every page of their reports.",
    )
    p.add_argument("input", help="file of DOIs, or - for standard input")
    p.add_argument(
        "--depth", type=int, default=None, help="also crawl citing papers, this many levels deep"
    )
    _settings_flags(p, _WORK_FLAGS, progress=True)
    p.set_defaults(handler=cmd_backfill)


def cmd_backfill(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def body(stop: Stop, ui: RunUI) -> RunSummary:
        with open_input(args.input) as lines:  # before the store: a bad input creates nothing
            async with app.open_pipeline(settings) as p:
                return await app.backfill(p, lines, stop=stop, ui=ui)

    return _run(settings, "backfill", body)


def _add_crawl(sub: Any) -> None:
    p = sub.add_parser(
        "crawl",
        help="refresh stale reports and new seeds (for cron)",
        description="Enqueue the seed list's new DOIs and every report due for "
        "a refresh, then work until done or out of time.",
    )
    p.add_argument("--seeds", help="file of seed DOIs (optional)")
    p.add_argument(
        "--max-duration",
        type=duration_arg,
        default=None,
        help="time budget, e.g. 20m; what is left stays queued (default none)",
    )
    p.add_argument("--depth", type=int, default=None, help="depth for new seeds (default 0)")
    _settings_flags(p, _WORK_FLAGS, progress=True)
    p.set_defaults(handler=cmd_crawl)


def cmd_crawl(args: argparse.Namespace) -> int:
    settings = _settings(args, max_duration=args.max_duration)

    async def body(stop: Stop, ui: RunUI) -> RunSummary:
        with contextlib.ExitStack() as stack:
            seeds = stack.enter_context(open_input(args.seeds)) if args.seeds else None
            async with app.open_pipeline(settings) as p:
                return await app.crawl(p, seeds, stop=stop, ui=ui)

    return _run(settings, "crawl", body)


def _add_schedule(sub: Any) -> None:
    p = sub.add_parser(
        "schedule",
        help="run crawl each time the cron expression `schedule` comes due",
        description="A small scheduler process (for containers): runs a crawl each time "
        "the cron expression in the `schedule` setting comes due, until SIGTERM/SIGINT.",
    )
    p.add_argument("--seeds", help="file of seed DOIs for each crawl (optional)")
    p.add_argument(
        "--max-duration",
        type=duration_arg,
        default=None,
        help="time budget of each crawl (default none)",
    )
    p.add_argument("--depth", type=int, default=None, help="depth for new seeds (default 0)")
    _settings_flags(p, _CRAWL_FLAGS)
    p.set_defaults(handler=cmd_schedule, progress=False)


def cmd_schedule(args: argparse.Namespace) -> int:
    """The store is opened (made, migrated) at start: a bad `db` fails now, not at the
    first crawl hours later, and the container's healthcheck finds it from the start."""
    settings = _settings(args, max_duration=args.max_duration)

    async def body(stop: Stop, ui: RunUI) -> RunSummary:
        async with app.open_pipeline(settings) as p:
            return await app.schedule(p, args.seeds, stop=stop, ui=ui, on_crawl=_print_summary)

    return _run(settings, "schedule", body)


def _print_summary(summary: RunSummary) -> None:
    print(summary.render(), flush=True)


def _add_worker(sub: Any) -> None:
    p = sub.add_parser(
        "worker",
        help="work the queue until stopped (long-running)",
        description="Claim and crawl jobs until SIGTERM/SIGINT (exit 0), or with --burst "
        "until the queue is drained (exit codes as for backfill).",
    )
    p.add_argument("--burst", action="store_true", help="return once the queue is drained")
    _settings_flags(p, _WORK_FLAGS, progress=True)
    p.set_defaults(handler=cmd_worker)


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def body(stop: Stop, ui: RunUI) -> RunSummary:
        async with app.open_pipeline(settings) as p:
            return await app.worker(p, burst=args.burst, stop=stop, ui=ui)

    return _run(settings, "worker", body)


def _add_status(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="queue by state, dead reasons, rows, rates",
        description="Show the store's queue and results. It never creates a store.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    _settings_flags(p, ("db", *_LOG_FLAGS))
    p.set_defaults(handler=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)

    async def body() -> Any:
        async with app.open_pipeline(settings, create=False) as p:
            return await p.store.stats()

    stats = asyncio.run(body())
    if args.json:
        print(json.dumps(_jsonable(stats), indent=1, sort_keys=True, default=_json_value))
    else:
        print(render_status(stats))
    return EXIT_OK


def _jsonable(obj: Any) -> Any:
    return asdict(obj) if is_dataclass(obj) and not isinstance(obj, type) else obj


def _json_value(obj: Any) -> Any:
    """What `json` cannot write itself: datetimes (the runs' times), as ISO 8601 text."""
    if isinstance(obj, datetime):
        return obj.isoformat()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _add_export(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="stream a table as CSV, JSON lines or Parquet; or write Datasette metadata",
        description="Stream a table of the store, any size, optionally filtered. It never "
        "creates a store.",
    )
    p.add_argument(
        "--table", choices=EXPORT_TABLES, help="the table (required unless --datasette-metadata)"
    )
    p.add_argument(
        "--format",
        choices=("csv", "jsonl", "parquet"),
        default="csv",
        help="(default csv; parquet needs -o and the `parquet` extra)",
    )
    p.add_argument("--output", "-o", help="file to write (default standard output)")
    p.add_argument(
        "--where",
        action="append",
        metavar="COLUMN=VALUE",
        help="keep rows where the column has this value (also != < <= > >=; repeatable, "
        "all must hold), e.g. --where type=contrasting --where 'year>=2015'",
    )
    p.add_argument(
        "--since",
        metavar="TIME",
        help="keep rows new or changed since a date/time (UTC) or an age (36h, 7d)",
    )
    p.add_argument(
        "--datasette-metadata",
        action="store_true",
        help="write Datasette's metadata.json for this store (table and column "
        "descriptions, search) instead of rows",
    )
    _settings_flags(p, ("db", *_LOG_FLAGS))
    p.set_defaults(handler=cmd_export)


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


def cmd_export(args: argparse.Namespace) -> int:
    from pipeline.exporting import RowFilter, filtered, write_parquet

    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)
    if args.datasette_metadata:
        return _write_metadata(settings, args.output)
    if not args.table:
        raise ConfigError("export: --table is required (or --datasette-metadata)")
    if args.format == "parquet" and not args.output:
        raise ConfigError("--format parquet: needs --output FILE (Parquet is binary)")
    keep = RowFilter.build(args.table, args.where or (), args.since, now=datetime.now(UTC))

    async def body() -> int:
        async with app.open_pipeline(settings, create=False) as p:  # first: a bad store
            rows = p.store.export(args.table)  # leaves no output file behind
            if keep.conditions or keep.since is not None:
                rows = filtered(rows, keep)
            if not args.output:
                return await _write_rows(rows, args.format, sys.stdout)
            try:
                if args.format == "parquet":
                    return await write_parquet(rows, args.table, Path(args.output))
                with open(args.output, "w", encoding="utf-8", newline="") as out:  # noqa: ASYNC230
                    return await _write_rows(rows, args.format, out)
            except OSError as exc:
                raise ConfigError(f"--output {args.output}: {exc.strerror or exc}") from None

    n = asyncio.run(body())
    print(f"exported {n} row{'s' if n != 1 else ''} from {args.table}", file=sys.stderr)
    return EXIT_OK


def _write_metadata(settings: Settings, output: str | None) -> int:
    """`export --datasette-metadata`: the store's metadata.json, to a file or stdout."""
    from pipeline.metadata import datasette_metadata

    path = app.sqlite_path(settings.db)
    if path is None:
        raise ConfigError("--datasette-metadata: Datasette reads SQLite stores only")
    text = json.dumps(datasette_metadata(path), indent=1, ensure_ascii=False) + "\n"
    if not output:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--output {output}: {exc.strerror or exc}") from None
    print(f"Datasette metadata written to {output}", file=sys.stderr)
    return EXIT_OK


def _add_copy_store(sub: Any) -> None:
    p = sub.add_parser(
        "copy-store",
        help="copy a store's results and queue into another store",
        description="Copy every table of the store SRC (results and queue) into the store "
        "DST, for example a SQLite file into a PostgreSQL database: "
        "citepipe copy-store data/citepipe.sqlite postgresql://user@host/db. "
        "Run again to resume a copy that stopped; the row counts of every table are "
        "checked at the end. Stop the workers on SRC first.",
    )
    p.add_argument("source", metavar="SRC", help="a SQLite path, sqlite:///path or postgresql://")
    p.add_argument("target", metavar="DST", help="the same forms; made if missing")
    p.add_argument(
        "--chunk",
        type=int,
        default=DEFAULT_COPY_CHUNK,
        help="rows per transaction (default %(default)s)",
    )
    _settings_flags(p, _LOG_FLAGS)
    p.set_defaults(handler=cmd_copy_store)


def cmd_copy_store(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)
    if args.chunk < 1:
        raise ConfigError(f"--chunk: must be >= 1, got {args.chunk}")

    def show(t: TableCopy) -> None:
        how = "resumed, " if t.resumed else ""
        print(
            f"{t.table:<14} {t.copied:>10} copied ({how}{t.target_rows} in the target, "
            f"{t.source_rows} in the source)"
        )

    report = asyncio.run(
        app.copy_store(settings, args.source, args.target, chunk=args.chunk, on_table=show)
    )
    print(f"copied {report.copied} rows; every table's count matches")
    return EXIT_OK


def _add_prune(sub: Any) -> None:
    p = sub.add_parser(
        "prune",
        help="delete old finished later-page jobs (retention)",
        description="Retention for a large store: delete done jobs of pages after the first "
        "that were not touched for --done-older-than. Page-1 jobs and every result row stay; "
        "a refresh queues the later pages again. It never creates a store.",
    )
    p.add_argument(
        "--done-older-than",
        type=parse_duration,
        required=True,
        metavar="DURATION",
        help="e.g. 30d",
    )
    _settings_flags(p, ("db", *_LOG_FLAGS))
    p.set_defaults(handler=cmd_prune)


def cmd_prune(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)
    n = asyncio.run(app.prune_done(settings, args.done_older_than))
    print(f"deleted {n} done job{'s' if n != 1 else ''} of later pages")
    return EXIT_OK


def _add_retry(sub: Any) -> None:
    p = sub.add_parser(
        "retry",
        help="queue dead jobs again (after a wrong --base-url, an outage...)",
        description="Queue dead jobs again, due now with their attempts reset, at addresses "
        "rebuilt from the current base_url; then run `citepipe worker --burst` (or crawl) "
        "to fetch them. Say which: --all, or --reason and/or --doi.",
    )
    p.add_argument(
        "--reason",
        metavar="TEXT",
        help="only dead jobs whose reason contains TEXT (any case), e.g. 'connection error'",
    )
    p.add_argument(
        "--doi",
        dest="dois",
        nargs="+",
        action="extend",
        metavar="DOI",
        help="only the dead jobs of these DOIs (any spelling; repeatable)",
    )
    p.add_argument("--all", action="store_true", help="every dead job")
    _settings_flags(p, ("base_url", "db", *_LOG_FLAGS))
    p.set_defaults(handler=cmd_retry)


def cmd_retry(args: argparse.Namespace) -> int:
    if args.all == bool(args.reason is not None or args.dois):
        raise ConfigError(
            "retry: say which dead jobs: --all, or --reason TEXT and/or --doi DOI (not both)"
        )
    dois = None if args.dois is None else [_doi_arg(d) for d in args.dois]
    if args.reason is not None and not args.reason.strip():
        raise ConfigError("--reason: must not be empty (use --all for every dead job)")
    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)

    async def body() -> Requeued:
        async with app.open_pipeline(settings, create=False) as p:
            return await app.retry(p, reason=args.reason, dois=dois)

    done = asyncio.run(body())
    if done.jobs == 0 and done.kept == 0:
        print("no dead jobs match; nothing requeued")
        return EXIT_OK
    print(
        f"requeued {plural(done.jobs, 'dead job')} of {plural(done.reports, 'report')} "
        f"at {settings.base}/reports/"
    )
    if done.kept:
        print(f"kept dead: {plural(done.kept, 'job')} with no address on {settings.base}")
    if done.jobs:
        print("fetch them with: citepipe worker --burst (or citepipe crawl)")
    return EXIT_OK


def _doi_arg(text: str) -> str:
    doi = doi_or_none(text)
    if doi is None:
        raise ConfigError(f"--doi: not a DOI: {text.strip()[:200]!r}")
    return doi


def _add_parse(sub: Any) -> None:
    p = sub.add_parser(
        "parse",
        help="parse a saved report page and print it as JSON",
        description="Parse one saved page with the report profile: the tool "
        "to reach for when the site's layout drifts.",
    )
    p.add_argument("file", help="an HTML file, or - for standard input")
    p.add_argument("--url", help="the URL it was fetched from (resolves relative links)")
    _settings_flags(p, ("selectors",))
    p.set_defaults(handler=cmd_parse)


def cmd_parse(args: argparse.Namespace) -> int:
    try:
        parsed = app.parse_page(_settings(args), args.file, url=args.url)
    except ParseError as exc:
        print(f"parse error: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE
    print(json.dumps(parsed, indent=1, ensure_ascii=False))
    return EXIT_OK


def _add_reparse(sub: Any) -> None:
    p = sub.add_parser(
        "reparse",
        help="derive rows again from the kept pages, no request (after a selector fix)",
        description="Read the pages kept in the store (keep_pages: broken ones always, every "
        "page with 'all') with the current parser and selectors. Broken jobs that parse now "
        "are done and their reports' next pages are queued (`worker --burst` or `crawl` "
        "fetches them); rows are written exactly as a crawl writes them. Exit 1 if some "
        "pages are still broken.",
    )
    p.add_argument("--broken", action="store_true", help="only the broken pages")
    p.add_argument(
        "--doi",
        nargs="+",
        action="extend",
        metavar="DOI",
        help="only the pages of these DOIs (any spelling; repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    _settings_flags(p, ("db", "base_url", "selectors", "keep_pages", *_LOG_FLAGS))
    p.set_defaults(handler=cmd_reparse)


def cmd_reparse(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)

    async def body() -> Any:
        async with app.open_pipeline(settings, create=False) as p:
            return await app.reparse(p, broken_only=args.broken, dois=args.doi)

    summary = asyncio.run(body())
    print(json.dumps(summary.as_dict(), sort_keys=True) if args.json else summary.render())
    code: int = summary.exit_code
    return code


def _add_show(sub: Any) -> None:
    p = sub.add_parser(
        "show",
        help="one paper at a glance: metadata, tallies and their history, facets, statements",
        description="Show one stored paper. It never creates a store.",
    )
    p.add_argument("doi", help="the paper's DOI (any form backfill accepts)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--statements", type=int, default=1000, help="statements shown at most (default 1000)"
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw the tally history to a PNG file (needs the `plot` extra)",
    )
    _settings_flags(p, ("db", *_LOG_FLAGS))
    p.set_defaults(handler=cmd_show)


def cmd_show(args: argparse.Namespace) -> int:
    from pipeline import views

    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)

    async def body() -> Any:
        async with app.open_pipeline(settings, create=False) as p:
            return await app.show(p, args.doi, statements=args.statements)

    view = asyncio.run(body())
    if args.plot:
        written = views.plot_history(view, args.plot)
        print(f"tally history drawn to {written}", file=sys.stderr)
    if args.json:
        print(json.dumps(views.paper_json(view), indent=1, ensure_ascii=False))
    else:
        _print_rich(views.paper_renderable(view))
    return EXIT_OK


def _add_search(sub: Any) -> None:
    p = sub.add_parser(
        "search",
        help="full-text search over statement snippets",
        description="Find statements whose snippet matches QUERY, best first. QUERY is "
        'SQLite FTS5 syntax: words (all must match; stemmed), "a phrase", OR, NOT, '
        "prefix*, NEAR(a b). It never creates a store.",
    )
    p.add_argument("query", help='e.g. graft survival, "bone marrow", transplant*')
    p.add_argument("--type", choices=("supporting", "mentioning", "contrasting"))
    p.add_argument("--limit", type=int, default=20, help="hits at most (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _settings_flags(p, ("db", *_LOG_FLAGS))
    p.set_defaults(handler=cmd_search)


def cmd_search(args: argparse.Namespace) -> int:
    from pipeline import views

    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)

    async def body() -> Any:
        async with app.open_pipeline(settings, create=False) as p:
            return await app.search(p, args.query, type=args.type, limit=args.limit)

    hits = asyncio.run(body())
    if args.json:
        print(json.dumps(views.hits_json(hits), indent=1, ensure_ascii=False))
    else:
        _print_rich(views.hits_renderable(args.query, hits))
    return EXIT_OK


def _print_rich(renderable: Any) -> None:
    """A table on a terminal (colours, its width); plain text in a pipe."""
    from rich.console import Console

    Console(highlight=False).print(renderable)


def _add_site(sub: Any) -> None:
    from citesite.server import add_arguments as add_site_arguments

    p = sub.add_parser(
        "site",
        help="run the local citation site (for tests and demos)",
        description="Serve report pages from a data set, with faults.",
        epilog=_faults_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_site_arguments(p)
    p.set_defaults(handler=cmd_site)


def _faults_help() -> str:
    import citesite.faults as faults

    doc = faults.__doc__ or ""
    return "faults (--faults SPEC):\n" + doc.split("\n", 2)[2].replace("::", ":")


def cmd_site(args: argparse.Namespace) -> int:
    from citesite.faults import FaultSpecError
    from citesite.server import run as run_site

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port: {args.port} is not a port (0 to 65535; 0 picks a free one)")
    if args.per_page < 1:
        raise ConfigError(f"--per-page: must be at least 1, got {args.per_page}")
    if args.crawl_delay is not None and not 0 <= args.crawl_delay <= DAY:
        raise ConfigError(f"--crawl-delay: must be 0 to {DAY:g} seconds, got {args.crawl_delay}")
    if args.cache_size < 1:
        raise ConfigError(f"--cache-size: must be at least 1, got {args.cache_size}")
    if args.generate is not None and args.generate < 0:
        raise ConfigError(f"--generate: must be >= 0, got {args.generate}")
    if args.seed < 0:
        raise ConfigError(f"--seed: must be >= 0, got {args.seed}")
    try:
        return run_site(args)
    except FaultSpecError as exc:  # the site has its own errors: a bad spec is bad config
        raise ConfigError(str(exc)) from None


def _add_demo(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help=f"crawl the bundled local site into {app.DEMO_DB}",
        description="Start the local citation site on a free loopback port, backfill its "
        f"DOIs into a fresh store ({app.DEMO_DB}, unless --db or CITEPIPE_DB names another), "
        "print a summary. It replaces only a store an earlier demo made (--force to replace "
        "anything).",
    )
    p.add_argument(
        "--force", action="store_true", help="replace --db even if it is not a demo store"
    )
    names = [n for n in _CRAWL_FLAGS if n != "base_url"]
    _settings_flags(
        p,
        names,
        progress=True,
        defaults=app.DEMO_DEFAULTS,
        shown={"db": f"{app.DEMO_DB}, or the db setting when it is set"},
    )
    p.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    # base_url is replaced by the site's; any valid placeholder passes validation here
    settings = _settings(args)

    async def body(stop: Stop, ui: RunUI) -> RunSummary:
        return await app.demo(settings, force=args.force, stop=stop, ui=ui)

    return _run(settings, "demo", body)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citepipe",
        description="Harvest citation report pages into a queue-backed SQLite or PostgreSQL store.",
        epilog="Exit codes: 0 done; 1 a job of the input ended dead or bad input lines; "
        "2 usage/config error or a store that cannot be opened; 3 time budget spent, work "
        "left queued; 130/143 stopped by SIGINT/SIGTERM.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_backfill,
        _add_crawl,
        _add_schedule,
        _add_worker,
        _add_status,
        _add_export,
        _add_copy_store,
        _add_prune,
        _add_retry,
        _add_parse,
        _add_reparse,
        _add_show,
        _add_search,
        _add_site,
        _add_demo,
    ):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
        return code
    except ConfigError as exc:
        print(f"citepipe: configuration error: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except PipelineError as exc:
        print(f"citepipe: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_INCOMPLETE
    except KeyboardInterrupt:
        return EXIT_SIGNAL_BASE + signal.SIGINT
    except BrokenPipeError:  # `citepipe export ... | head`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
