"""Tools beside the crawl: `parse` (one saved page, no store) and `site` (the local
citation site, for tests and demos; `citesite` is imported only when it is asked for)."""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.cli._base import Command, Invocation
from pipeline.errors import ConfigError, ParseError
from pipeline.normalise import DAY
from pipeline.ops.read import parse_page
from pipeline.runs.summary import EXIT_INCOMPLETE, EXIT_OK


def parse_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="an HTML file, or - for standard input")
    p.add_argument("--url", help="the URL it was fetched from (resolves relative links)")


async def parse(inv: Invocation) -> int:
    try:
        parsed = parse_page(inv.settings, inv.args.file, url=inv.args.url)
    except ParseError as exc:
        print(f"parse error: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE
    print(json.dumps(parsed, indent=1, ensure_ascii=False))
    return EXIT_OK


def site_arguments(p: argparse.ArgumentParser) -> None:
    from citesite.cli import add_arguments

    add_arguments(p)


def faults_help() -> str:
    import citesite.faults as faults

    doc = faults.__doc__ or ""
    return "faults (--faults SPEC):\n" + doc.split("\n", 2)[2].replace("::", ":")


def site(inv: Invocation) -> int:
    """Serve until interrupted. The site runs its own event loop, so this handler is a
    plain function the dispatcher calls outside its own."""
    from citesite.cli import run as run_site
    from citesite.faults import FaultSpecError

    args = inv.args
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
        code: int = run_site(args)
        return code
    except FaultSpecError as exc:  # the site has its own errors: a bad spec is bad config
        raise ConfigError(str(exc)) from None


COMMANDS = (
    Command(
        "parse",
        "parse a saved report page and print it as JSON",
        "Parse one saved page with the report profile: the tool "
        "to reach for when the site's layout drifts.",
        parse,
        parse_arguments,
        settings=("selectors",),
    ),
    Command(
        "site",
        "run the local citation site (for tests and demos)",
        "Serve report pages from a data set, with faults.",
        site,
        site_arguments,
        settings=(),
        epilog="faults",  # built lazily from citesite.faults' own text
        raw_help=True,
        uses_settings=False,
    ),
)
