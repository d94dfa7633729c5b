"""Peak memory and time of parsing a pathological page: inline (as before) and bounded.

    .venv/bin/python benchmarks/pathological.py [--tags 50000] [--inline-cap-mb 4096]

The page is about `--tags` unclosed `<b>` tags, each with its own attribute (so that the
HTML standard's "Noah's Ark" clause does not fold them), with a paragraph every 500 tags:
every paragraph makes lexbor clone every formatting element still open. It has fewer
`<` than the parser's 50,000-tag guard, so the guard lets it through.

"inline" parses it as citepipe did before: in this process, on the caller's thread, with
no budget. It runs in a child process capped at `--inline-cap-mb` of address space and
`--inline-cap-s` of CPU, so that the script cannot take the machine down; a cap that
stops it is printed as such (the real figure is larger). "bounded" is the worker's path
(`pipeline.crawl.parsing.ProcessBudgetParser` with the default budget): the peak is the
parser process's, the time is until the broken-page reason came back. A script that
prints figures, never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import signal
import sys
import time

from pipeline.crawl.parsing import ParseBudget, ProcessBudgetParser
from pipeline.errors import ParseError
from pipeline.models import Page
from pipeline.sources.report import ReportSource

URL = "https://scite.ai/reports/10.1/pathological"


def pathological(tags: int) -> bytes:
    parts = ["<!DOCTYPE html><html><head><title>x</title></head><body>"]
    for i in range(tags):
        parts.append(f"<b id={i}>x")
        if i % 500 == 0:
            parts.append("<p>")
    return "".join(parts).encode()


def inline(body: bytes, cap_mb: int, cap_s: int) -> tuple[str, float, float]:
    """(outcome, seconds, peak MB) of an unbounded parse, in a capped child."""
    read, write = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        resource.setrlimit(resource.RLIMIT_AS, (cap_mb * 2**20, resource.RLIM_INFINITY))
        resource.setrlimit(resource.RLIMIT_CPU, (cap_s, resource.RLIM_INFINITY))
        try:
            ReportSource().parse(Page(URL, URL, 200, body))
            outcome = "parsed"
        except ParseError as exc:
            outcome = f"ParseError: {exc}"
        except MemoryError:
            outcome = "MemoryError"
        os.write(write, outcome.encode()[:500])
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode()
    _, status, usage = os.wait4(pid, 0)
    seconds = time.monotonic() - started
    if os.WIFSIGNALED(status):
        said = f"stopped by the script's cap ({signal.Signals(os.WTERMSIG(status)).name})"
    elif "Can't parse" in said or said == "MemoryError":
        said = f"stopped by the script's {cap_mb} MB cap ({said})"
    return said, seconds, usage.ru_maxrss / 1024


async def bounded(body: bytes) -> tuple[str, float, float]:
    parser = ProcessBudgetParser(ReportSource(), ParseBudget(), processes=1)
    started = time.monotonic()
    try:
        await parser.parse(Page(URL, URL, 200, body))
        outcome = "parsed"
    except ParseError as exc:
        outcome = str(exc)
    finally:
        parser.close()
    seconds = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return outcome, seconds, peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tags", type=int, default=48_000)
    ap.add_argument("--inline-cap-mb", type=int, default=4096)
    ap.add_argument("--inline-cap-s", type=int, default=120)
    ap.add_argument("--skip-inline", action="store_true")
    args = ap.parse_args()
    body = pathological(args.tags)
    print(
        f"python {sys.version.split()[0]}; page: {len(body) / 1000:.0f} KB, {body.count(b'<')} '<'"
    )
    budget = ParseBudget()
    print(f"budget: {budget.cpu_seconds:g} s CPU, {budget.memory_mb} MB")
    # bounded first: its peak is the largest of this script's children so far
    outcome, seconds, peak = asyncio.run(bounded(body))
    print(f"bounded (after):  {seconds:6.1f} s  peak {peak:7.0f} MB  {outcome}")
    if not args.skip_inline:
        outcome, seconds, peak = inline(body, args.inline_cap_mb, args.inline_cap_s)
        print(f"inline (before):  {seconds:6.1f} s  peak {peak:7.0f} MB  {outcome}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
