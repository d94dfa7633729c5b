"""The commands that change a store between crawls: retry, reparse, prune, copy-store."""

from __future__ import annotations

import argparse
import json

from pipeline.cli._base import LOG, STORE, Command, Invocation, duration_arg
from pipeline.errors import ConfigError
from pipeline.ops import admin
from pipeline.ops.read import doi_argument
from pipeline.ops.reparse import reparse_store
from pipeline.runs.summary import EXIT_OK, plural
from pipeline.store.copy import DEFAULT_CHUNK as DEFAULT_COPY_CHUNK
from pipeline.store.copy import TableCopy


def retry_arguments(p: argparse.ArgumentParser) -> None:
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


async def retry(inv: Invocation) -> int:
    args, settings = inv.args, inv.settings
    if args.all == bool(args.reason is not None or args.dois):
        raise ConfigError(
            "retry: say which dead jobs: --all, or --reason TEXT and/or --doi DOI (not both)"
        )
    dois = None if args.dois is None else [doi_argument(d, "--doi") for d in args.dois]
    if args.reason is not None and not args.reason.strip():
        raise ConfigError("--reason: must not be empty (use --all for every dead job)")
    async with inv.pipeline() as p:
        done = await admin.retry(p, reason=args.reason, dois=dois)
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


def reparse_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broken", action="store_true", help="only the broken pages")
    p.add_argument(
        "--doi",
        nargs="+",
        action="extend",
        metavar="DOI",
        help="only the pages of these DOIs (any spelling; repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


async def reparse(inv: Invocation) -> int:
    async with inv.pipeline() as p:
        summary = await reparse_store(p, broken_only=inv.args.broken, dois=inv.args.doi)
    print(json.dumps(summary.as_dict(), sort_keys=True) if inv.args.json else summary.render())
    code: int = summary.exit_code
    return code


def prune_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--done-older-than",
        type=duration_arg,
        required=True,
        metavar="DURATION",
        help="e.g. 30d",
    )


async def prune(inv: Invocation) -> int:
    n = await admin.prune_done(inv.settings, inv.args.done_older_than)
    print(f"deleted {plural(n, 'done job')} of later pages")
    return EXIT_OK


def copy_store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SRC", help="a SQLite path, sqlite:///path or postgresql://")
    p.add_argument("target", metavar="DST", help="the same forms; made if missing")
    p.add_argument(
        "--chunk",
        type=int,
        default=DEFAULT_COPY_CHUNK,
        help="rows per transaction (default %(default)s)",
    )


async def copy_store(inv: Invocation) -> int:
    args = inv.args
    if args.chunk < 1:
        raise ConfigError(f"--chunk: must be >= 1, got {args.chunk}")

    def show(t: TableCopy) -> None:
        how = "resumed, " if t.resumed else ""
        print(
            f"{t.table:<14} {t.copied:>10} copied ({how}{t.target_rows} in the target, "
            f"{t.source_rows} in the source)"
        )

    report = await admin.copy_store(
        inv.settings, args.source, args.target, chunk=args.chunk, on_table=show
    )
    print(f"copied {plural(report.copied, 'row')}; every table's count matches")
    return EXIT_OK


COMMANDS = (
    Command(
        "copy-store",
        "copy a store's results and queue into another store",
        "Copy every table of the store SRC (results and queue) into the store "
        "DST, for example a SQLite file into a PostgreSQL database: "
        "citepipe copy-store data/citepipe.sqlite postgresql://user@host/db. "
        "Run again to resume a copy that stopped; the row counts of every table are "
        "checked at the end. Stop the workers on SRC first.",
        copy_store,
        copy_store_arguments,
        settings=LOG,
    ),
    Command(
        "prune",
        "delete old finished later-page jobs (retention)",
        "Retention for a large store: delete done jobs of pages after the first "
        "that were not touched for --done-older-than. Page-1 jobs and every result row stay; "
        "a refresh queues the later pages again. It never creates a store.",
        prune,
        prune_arguments,
    ),
    Command(
        "retry",
        "queue dead jobs again (after a wrong --base-url, an outage...)",
        "Queue dead jobs again, due now with their attempts reset, at addresses "
        "rebuilt from the current base_url; then run `citepipe worker --burst` (or crawl) "
        "to fetch them. Say which: --all, or --reason and/or --doi.",
        retry,
        retry_arguments,
        settings=("site", *STORE),
    ),
    Command(
        "reparse",
        "derive rows again from the kept pages, no request (after a selector fix)",
        "Read the pages kept in the store (keep_pages: broken ones always, every "
        "page with 'all') with the current parser and selectors. Broken jobs that parse now "
        "are done and their reports' next pages are queued (`worker --burst` or `crawl` "
        "fetches them); rows are written exactly as a crawl writes them. Exit 1 if some "
        "pages are still broken.",
        reparse,
        reparse_arguments,
        settings=("store", "site", "selectors", "keep", *LOG),
    ),
)
