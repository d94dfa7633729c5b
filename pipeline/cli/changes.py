"""`citepipe changes`: what changed in a window (by default the latest run), for people
(text, Markdown) or programs (JSON). It never creates a store. See docs/changes.md."""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.cli._base import Command, Invocation
from pipeline.ops import changes as ops
from pipeline.ops.output import refuse_store
from pipeline.ops.read import doi_argument
from pipeline.runs.summary import EXIT_OK

FORMATS = ("text", "markdown", "json")


def changes_arguments(p: argparse.ArgumentParser) -> None:
    when = "a run id (as `citepipe status` lists them), a UTC date or time, or an age (7d)"
    p.add_argument("--since", metavar="WHEN", help=f"start of the window: {when}")
    p.add_argument("--until", metavar="WHEN", help=f"end of the window (default now): {when}")
    p.add_argument("--doi", action="append", metavar="DOI", help="only this paper (repeatable)")
    p.add_argument("--format", choices=FORMATS, default="text", help="(default text)")
    p.add_argument("--output", "-o", metavar="FILE", help="file to write (default stdout)")


async def changes(inv: Invocation) -> int:
    args = inv.args
    dois = [doi_argument(d) for d in args.doi] if args.doi else None
    if args.output:  # before the store is opened: the store is never an output
        refuse_store(args.output, inv.settings.db)
    async with inv.pipeline() as p:
        window = await ops.resolve_window(p.store, args.since, args.until, p.clock.now())
        digest = await ops.collect(p.store, window, dois)
    if args.format == "json":
        text = json.dumps(digest.as_json(), indent=1, ensure_ascii=False) + "\n"
    elif args.format == "markdown":
        text = ops.render_markdown(digest)
    else:
        text = ops.render_text(digest)
    if args.output:
        ops.write_output(args.output, text)
        print(f"changes: {ops.headline(digest)}; written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return EXIT_OK


COMMANDS = (
    Command(
        "changes",
        "what changed: new statements, tally moves and notices since a run or a time",
        "List, for each paper that changed in a window, the statements first seen in it "
        "(contrasting first), its tallies before and after, and new editorial notices. "
        "Without --since the window is the latest finished run that fetched anything "
        "(crawl, backfill, worker --burst). It never creates a store.",
        changes,
        changes_arguments,
    ),
)
