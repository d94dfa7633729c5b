"""Enqueue speed and memory: a backfill's input phase over N DOIs into a fresh store file.

    .venv/bin/python benchmarks/enqueue.py [--dois 1000000]

Runs what `citepipe backfill` does before crawling (read the lines, normalise, enqueue in
chunks, count the input's dead jobs) and the input survey it does at the end, and prints
the time of each and the peak RSS before and after. A script, never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import io
import resource
import tempfile
import time
from pathlib import Path

from pipeline.app import open_pipeline
from pipeline.config import Settings
from pipeline.runs.inputs import InputDois
from pipeline.runs.lifecycle import RunUI, enqueue_lines, survey_input
from pipeline.runs.summary import InputTally


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def run(n: int, tmp: Path) -> None:
    path = tmp / "dois.txt"
    with path.open("w") as f:
        for i in range(n):
            f.write(f"10.5555/bench.{i:08d}\n")
    settings = dataclasses.replace(
        Settings(), db=str(tmp / "store.sqlite"), base_url="http://127.0.0.1:9", progress=False
    ).validate()
    before = rss_mb()
    async with open_pipeline(settings) as p:
        tally = InputTally()
        ui = RunUI(err=io.StringIO())
        seen = InputDois()
        started = time.perf_counter()
        with path.open() as lines:
            await enqueue_lines(p, lines, 0, tally, ui, seen)
        enqueued = time.perf_counter() - started
        after_enqueue = rss_mb()
        started = time.perf_counter()
        survey = await survey_input(p, seen, tally.enqueued)
        surveyed = time.perf_counter() - started
    print(
        f"enqueue {tally.enqueued:,} DOIs: {enqueued:.1f} s ({tally.enqueued / enqueued:,.0f}/s); "
        f"survey {surveyed:.1f} s ({sum(survey.states.values()):,} jobs by state)"
    )
    print(
        f"peak RSS: {before:.0f} MB before, {after_enqueue:.0f} MB after enqueue, "
        f"{rss_mb():.0f} MB after the survey"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--dois", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.dois, Path(tmp)))


if __name__ == "__main__":
    main()
