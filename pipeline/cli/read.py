"""The commands that read a store: status, export, show and search. None creates one."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime

from pipeline.cli import views
from pipeline.cli._base import Command, Invocation, print_json, print_rich
from pipeline.errors import ConfigError, UsageError
from pipeline.ops import export as exporting
from pipeline.ops.bibliography import FORMATS as BIBLIOGRAPHY_FORMATS
from pipeline.ops.bibliography import require as require_bibliography
from pipeline.ops.output import refuse_store
from pipeline.ops.read import search as search_store
from pipeline.ops.read import show as show_paper
from pipeline.runs.summary import EXIT_OK, plural, render_status
from pipeline.store.base import EXPORT_TABLES


def json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


async def status(inv: Invocation) -> int:
    async with inv.pipeline() as p:
        stats = await p.store.stats()
    if inv.args.json:
        print_json(stats)
    else:
        print(render_status(stats))
    return EXIT_OK


def export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--table",
        choices=EXPORT_TABLES,
        help="the table, or the citations view (required unless --datasette-metadata)",
    )
    p.add_argument(
        "--format",
        choices=("csv", "jsonl", "parquet", *BIBLIOGRAPHY_FORMATS),
        default="csv",
        help="(default csv; parquet needs -o and the `parquet` extra; ris, bibtex and "
        "csl-json: --table papers as records for reference managers, the `bibliography` "
        "extra)",
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


async def export(inv: Invocation) -> int:
    args = inv.args
    if args.output:  # before anything is opened or written
        refuse_store(args.output, inv.settings.db)
    if args.datasette_metadata:
        given = [f for f, v in (("--table", args.table), ("--where", args.where),
                                ("--since", args.since)) if v]  # fmt: skip
        if given:
            raise UsageError(
                f"--datasette-metadata describes the whole store: it takes no "
                f"{' or '.join(given)} (export rows without --datasette-metadata)"
            )
        if exporting.write_metadata(inv.settings.db, args.output):
            print(f"Datasette metadata written to {args.output}", file=sys.stderr)
        return EXIT_OK
    if not args.table:
        raise ConfigError("export: --table is required (or --datasette-metadata)")
    if args.format in BIBLIOGRAPHY_FORMATS:
        if args.table != "papers":
            raise ConfigError(f"--format {args.format}: exports --table papers only")
        require_bibliography(args.format)  # before any output file is made
    if args.format == "parquet" and not args.output:
        raise ConfigError("--format parquet: needs --output FILE (Parquet is binary)")
    keep = exporting.RowFilter.build(
        args.table, args.where or (), args.since, now=datetime.now(UTC)
    )
    try:
        async with inv.pipeline() as p:  # first: a bad store leaves no output file behind
            n = await exporting.export(p, args.table, args.format, args.output, keep)
    except (asyncio.CancelledError, KeyboardInterrupt):  # Ctrl-C: the old file is kept
        if args.output:
            print(f"citepipe: export interrupted; {args.output} left as it was", file=sys.stderr)
        raise
    unit = "record" if args.format in BIBLIOGRAPHY_FORMATS else "row"  # titled papers only
    print(f"exported {plural(n, unit)} from {args.table}", file=sys.stderr)
    return EXIT_OK


def show_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("doi", help="the paper's DOI (any form backfill accepts)")
    json_flag(p)
    p.add_argument(
        "--statements", type=int, default=1000, help="statements shown at most (default 1000)"
    )
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also draw the tally history to a PNG file (needs the `plot` extra)",
    )


async def show(inv: Invocation) -> int:
    async with inv.pipeline() as p:
        view = await show_paper(p, inv.args.doi, statements=inv.args.statements)
    if inv.args.plot:
        written = views.plot_history(view, inv.args.plot)
        print(f"tally history drawn to {written}", file=sys.stderr)
    if inv.args.json:
        print(json.dumps(views.paper_json(view), indent=1, ensure_ascii=False))
    else:
        print_rich(views.paper_renderable(view))
    return EXIT_OK


def search_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", help='e.g. graft survival, "bone marrow", transplant*')
    p.add_argument("--type", choices=("supporting", "mentioning", "contrasting"))
    p.add_argument("--limit", type=int, default=20, help="hits at most (default 20)")
    json_flag(p)


async def search(inv: Invocation) -> int:
    args = inv.args
    async with inv.pipeline() as p:
        found = await search_store(p, args.query, type=args.type, limit=args.limit)
    if args.json:
        print(json.dumps(views.hits_json(found.hits), indent=1, ensure_ascii=False))
    else:
        print_rich(views.hits_renderable(args.query, found.hits, more=found.more))
    return EXIT_OK


COMMANDS = (
    Command(
        "status",
        "queue by state, dead reasons, rows, rates",
        "Show the store's queue and results. It never creates a store.",
        status,
        json_flag,
    ),
    Command(
        "export",
        "stream a table as CSV, JSON lines or Parquet; or write Datasette metadata",
        "Stream a table of the store, any size, optionally filtered. It never creates a store.",
        export,
        export_arguments,
    ),
    Command(
        "show",
        "one paper at a glance: metadata, tallies and their history, facets, statements",
        "Show one stored paper. It never creates a store.",
        show,
        show_arguments,
    ),
    Command(
        "search",
        "full-text search over statement snippets",
        "Find statements whose snippet matches QUERY, best first. QUERY: words "
        '(all must match; stemmed; COVID-19 or T-cells as they are), "a phrase", OR, '
        "NOT, prefix*, NEAR(a b) (SQLite FTS5 syntax). It never creates a store.",
        search,
        search_arguments,
    ),
)
