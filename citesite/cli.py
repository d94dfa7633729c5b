"""`citepipe site` and `python -m citesite.server`: the local site's command line.

`add_arguments` declares the options (pipeline/cli/tools.py adds them to `citepipe site`),
`run` loads the data, checks `--public-url` and serves until SIGINT/SIGTERM (exit 0; 2 on
a bad data file or an address it cannot listen on), `main` is the stand-alone entry.
Kept apart from `citesite.server` so the server is the site and its lifecycle only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from citesite.answers import public_url_or_error
from citesite.api import PER_MINUTE, PER_SECOND
from citesite.dataset import DEFAULT_PER_PAGE, SiteReport, demo_dataset_path, iter_dataset
from citesite.faults import FaultSpec, FaultSpecError
from citesite.generator import GeneratedReports
from citesite.server import serve_forever


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `citepipe site`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port (default %(default)s; 0 picks a free one)"
    )
    parser.add_argument(
        "--public-url",
        metavar="URL",
        default=None,
        help="the address clients reach the site at, named in its links (default: the "
        "request's Host, e.g. http://site:8080 behind a compose service name)",
    )
    parser.add_argument(
        "--data", metavar="FILE", help="JSONL data set (default: the bundled demo set)"
    )
    parser.add_argument(
        "--generate", type=int, metavar="N", help="serve N generated reports instead of a data file"
    )
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument(
        "--faults",
        type=_fault_arg,
        default=None,
        metavar="SPEC",
        help='faults to inject, e.g. "500=0.05,429=0.05,reset=0.03,first=1"',
    )
    parser.add_argument(
        "--per-page",
        type=int,
        default=DEFAULT_PER_PAGE,
        help="statements per page (default %(default)s)",
    )
    parser.add_argument(
        "--crawl-delay", type=float, default=None, help="Crawl-delay for robots.txt (default none)"
    )
    parser.add_argument(
        "--warm",
        action="store_true",
        help="render every page into the cache before serving (for benchmarks)",
    )
    parser.add_argument(
        "--api-token",
        metavar="TOKEN",
        default=None,
        help="the API token the site accepts (Authorization: Bearer TOKEN lifts the limits)",
    )
    parser.add_argument(
        "--api-per-second",
        type=int,
        default=PER_SECOND,
        help="API requests per second without the token (default %(default)s)",
    )
    parser.add_argument(
        "--api-per-minute",
        type=int,
        default=PER_MINUTE,
        help="API requests per minute without the token (default %(default)s)",
    )
    parser.add_argument(
        "--cache-size",
        type=int,
        default=2048,
        help="rendered pages kept in memory (default %(default)s)",
    )


def _fault_arg(text: str) -> FaultSpec:
    try:
        return FaultSpec.parse(text)
    except FaultSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser for `python -m citesite.server`."""
    parser = argparse.ArgumentParser(
        prog="citepipe site", description="Serve report pages from a data set, with faults."
    )
    add_arguments(parser)
    return parser


def _reports_from_args(args: argparse.Namespace) -> Mapping[str, SiteReport]:
    if args.generate is not None:
        return GeneratedReports(args.generate, args.seed)
    path = Path(args.data) if args.data else demo_dataset_path()
    return {r.doi: r for r in iter_dataset(path)}


def run(args: argparse.Namespace) -> int:
    """`citepipe site`: serve until interrupted; 0 on Ctrl-C, 2 on a bad data file."""
    try:
        reports = _reports_from_args(args)
    except (OSError, ValueError) as exc:
        print(f"citepipe site: cannot load data: {exc}", file=sys.stderr)
        return 2
    faults = args.faults if isinstance(args.faults, FaultSpec) else FaultSpec.coerce(args.faults)
    public_url = getattr(args, "public_url", None)
    if public_url:
        try:
            public_url = public_url_or_error(public_url)
        except ValueError as exc:
            print(f"citepipe site: --public-url: {exc}", file=sys.stderr)
            return 2

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await serve_forever(
            reports,
            host=args.host,
            port=args.port,
            faults=faults,
            per_page=args.per_page,
            crawl_delay=args.crawl_delay,
            cache_size=args.cache_size,
            public_url=public_url,
            warm=args.warm,
            stop=stop,
            api_token=getattr(args, "api_token", None),
            api_per_second=getattr(args, "api_per_second", PER_SECOND),
            api_per_minute=getattr(args, "api_per_minute", PER_MINUTE),
        )

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"citepipe site: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for `python -m citesite.server`."""
    return run(build_parser().parse_args(argv))
