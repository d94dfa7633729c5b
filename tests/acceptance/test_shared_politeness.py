"""Politeness shared through the store: two `citepipe backfill` processes on one SQLite file
at `request_delay` 0.2 s together keep to 5 requests/s, read from the local site's own
request log. The bounds are tolerant (loopback jitter moves an arrival by milliseconds);
the exact figure is printed for the notes, not asserted."""

from __future__ import annotations

import asyncio
from itertools import pairwise
from pathlib import Path

import pytest

from citesite.server import CitationSite

from .conftest import crawl_input, run_cli, shared_env, summary_of

DELAY = 0.2


@pytest.mark.slow
async def test_two_processes_together_keep_the_request_delay(tmp_path: Path) -> None:
    reps, dois, db = crawl_input(tmp_path, 16, seed=13)
    async with CitationSite(reps) as site:
        env = shared_env(
            site.base_url,
            db,
            DELAY,
            per_host_concurrency=2,
            concurrency=2,  # each process holds few jobs, so both work all along
            respect_robots="true",
            lease_seconds=30,
        )
        first, second = await asyncio.gather(
            run_cli("backfill", str(dois), env=env, timeout=240),
            run_cli("backfill", str(dois), env=env, timeout=240),
        )
        log = [r for r in site.requests if r.path_qs.startswith("/reports/")]
    assert (first.code, second.code) == (0, 0), (first.err[-2000:], second.err[-2000:])
    pages = [summary_of(r.out)["pages"] for r in (first, second)]
    assert all(isinstance(p, int) and p > 0 for p in pages), pages  # both did work
    times = sorted(r.time for r in log)
    assert len(times) >= 30
    gaps = [b - a for a, b in pairwise(times)]
    rate = (len(times) - 1) / (times[-1] - times[0])
    print(
        f"shared politeness: {len(times)} requests by 2 processes (pages {pages}), "
        f"{rate:.3f} requests/s at request_delay {DELAY}; "
        f"gaps min {min(gaps):.3f} s, median {sorted(gaps)[len(gaps) // 2]:.3f} s"
    )
    # 5 requests/s + 5 %; one process alone on its own would allow 5, two 10.
    assert rate <= (1 / DELAY) * 1.05, rate
    # spacing between any two starts, whichever process sent them (jitter-tolerant)
    assert min(gaps) >= DELAY / 2, min(gaps)
