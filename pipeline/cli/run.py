"""The commands that crawl: backfill, crawl, schedule, worker and demo.

Each handler opens its input first (a bad input creates no store), then the pipeline,
and returns the run's `RunSummary`; the dispatcher prints it and exits with its code.
"""

from __future__ import annotations

import argparse
import contextlib

from pipeline.cli._base import DIGEST, LOG, WORK, Command, Invocation, duration_arg, print_summary
from pipeline.config import check_contact
from pipeline.runs import commands
from pipeline.runs.demo import DEMO_DB, DEMO_DEFAULTS, demo
from pipeline.runs.inputs import open_input
from pipeline.runs.summary import RunSummary


def _depth(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--depth", type=int, default=None, help=text)


def _budget(parser: argparse.ArgumentParser, text: str) -> None:
    parser.add_argument("--max-duration", type=duration_arg, default=None, help=text)


def backfill_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="file of DOIs, or - for standard input")
    _depth(p, "also crawl citing papers, this many levels deep")


async def backfill(inv: Invocation) -> RunSummary:
    with open_input(inv.args.input) as lines:  # before the store: a bad input creates nothing
        async with inv.pipeline(create=True) as p:
            check_contact(p.settings)  # after the input and the store, before any request
            return await commands.backfill(p, lines, stop=inv.stop, ui=inv.ui)


def crawl_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", help="file of seed DOIs (optional)")
    _budget(p, "time budget, e.g. 20m; what is left stays queued (default none)")
    _depth(p, "depth for new seeds (default 0)")


async def crawl(inv: Invocation) -> RunSummary:
    with contextlib.ExitStack() as stack:
        seeds = stack.enter_context(open_input(inv.args.seeds)) if inv.args.seeds else None
        async with inv.pipeline(create=True) as p:
            check_contact(p.settings)
            return await commands.crawl(p, seeds, stop=inv.stop, ui=inv.ui)


def schedule_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", help="file of seed DOIs for each crawl (optional)")
    _budget(p, "time budget of each crawl (default none)")
    _depth(p, "depth for new seeds (default 0)")


async def schedule(inv: Invocation) -> RunSummary:
    """The store is opened (made, migrated) at start: a bad `db` fails now, not at the
    first crawl hours later, and the container's healthcheck finds it from the start."""
    async with inv.pipeline(create=True) as p:
        check_contact(p.settings)
        return await commands.schedule(
            p, inv.args.seeds, stop=inv.stop, ui=inv.ui, on_crawl=print_summary
        )


def worker_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--burst", action="store_true", help="return once the queue is drained")


async def worker(inv: Invocation) -> RunSummary:
    async with inv.pipeline(create=True) as p:
        check_contact(p.settings)
        return await commands.worker(p, burst=inv.args.burst, stop=inv.stop, ui=inv.ui)


def demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--force", action="store_true", help="replace --db even if it is not a demo store"
    )


async def run_demo(inv: Invocation) -> RunSummary:
    # base_url is replaced by the site's; any valid placeholder passes validation here
    return await demo(inv.settings, force=inv.args.force, stop=inv.stop, ui=inv.ui)


COMMANDS = (
    Command(
        "backfill",
        "enqueue a DOI list and work until it is drained",
        "Read DOIs (one a line; a file or - for stdin), report bad "
        "lines with their numbers, enqueue the rest and crawl every page of their reports.",
        backfill,
        backfill_arguments,
        settings=(*WORK, *DIGEST),
        run_ui=True,
    ),
    Command(
        "crawl",
        "refresh stale reports and new seeds (for cron)",
        "Enqueue the seed list's new DOIs and every report due for "
        "a refresh, then work until done or out of time.",
        crawl,
        crawl_arguments,
        settings=(*WORK, *DIGEST),
        run_ui=True,
    ),
    Command(
        "schedule",
        "run crawl each time the cron expression `schedule` comes due",
        "A small scheduler process (for containers): runs a crawl each time "
        "the cron expression in the `schedule` setting comes due, until SIGTERM/SIGINT. "
        "Set it with --schedule '0 3 * * *', CITEPIPE_SCHEDULE or `schedule = ...` in "
        "config/citepipe.toml (five fields: minute hour day month weekday), read in the "
        "`timezone` setting's zone.",
        schedule,
        schedule_arguments,
        settings=("site", "store", "crawl", "schedule", *LOG, *DIGEST),
        run_ui=True,
        defaults={"progress": False},
    ),
    Command(
        "worker",
        "work the queue until stopped (long-running)",
        "Claim and crawl jobs until SIGTERM/SIGINT (exit 0), or with --burst "
        "until the queue is drained (exit codes as for backfill).",
        worker,
        worker_arguments,
        settings=(*WORK, *DIGEST),
        run_ui=True,
    ),
    Command(
        "demo",
        f"crawl the bundled local site into {DEMO_DB}",
        "Start the local citation site on a free loopback port, backfill its "
        f"DOIs into a fresh store ({DEMO_DB}, unless --db or CITEPIPE_DB names another), "
        "print a summary. It replaces only a store an earlier demo made (--force to replace "
        "anything).",
        run_demo,
        demo_arguments,
        settings=("store", "crawl", "work", *LOG),
        run_ui=True,
        defaults=DEMO_DEFAULTS,
        shown={"db": f"{DEMO_DB}, or the db setting when it is set"},
    ),
)
