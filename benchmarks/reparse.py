"""Reparse: how fast the kept pages are read again (no request), against the crawl that
kept them. A script that prints figures, never a test.

    .venv/bin/python benchmarks/reparse.py [--reports 600] [--seed 5]

The crawl runs against the local site in this process (keep_pages = "all", politeness
off), so its pages/s include the site's work; the reparse's are the parser's and the
store's alone.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import tempfile
import time
from pathlib import Path

from citesite.generator import generate
from citesite.server import CitationSite
from pipeline import app
from pipeline.config import Settings
from pipeline.logs import configure_logging
from pipeline.ops.reparse import reparse_store
from pipeline.runs import commands
from pipeline.runs.lifecycle import RunUI


async def run(reports: int, seed: int, folder: Path) -> None:
    configure_logging("warning", "json", stream=io.StringIO())
    reps = {r.doi: r for r in generate(reports, seed)}
    async with CitationSite(reps) as site:
        site.warm()
        settings = dataclasses.replace(
            Settings(),
            base_url=site.base_url,
            db=str(folder / "store.sqlite"),
            request_delay=0.0,
            per_host_concurrency=32,
            concurrency=32,
            keep_pages="all",
            progress=False,
        ).validate()
        started = time.perf_counter()
        async with app.open_pipeline(settings) as p:
            summary = await commands.backfill(p, list(reps), ui=RunUI(err=io.StringIO()))
        crawl = time.perf_counter() - started
        pages = summary.counters.pages_done
    started, cpu = time.perf_counter(), time.process_time()
    async with app.open_pipeline(settings, create=False) as p:
        done = await reparse_store(p)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"crawl (site in this process): {pages} pages in {crawl:.1f} s "
        f"= {pages / crawl:.0f} pages/s"
    )
    print(
        f"reparse: {done.pages} kept pages in {wall:.1f} s = {done.pages / wall:.0f} pages/s, "
        f"{cpu / max(done.pages, 1) * 1e6:.0f} µs CPU a page; rewritten {done.rewritten}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reports", type=int, default=600)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="citepipe-reparse-") as tmp:
        asyncio.run(run(args.reports, args.seed, Path(tmp)))


if __name__ == "__main__":
    main()
