"""Politeness shared through the store: two `citepipe backfill` processes on one SQLite file
at `request_delay` 0.2 s together keep to 5 requests/s, read from the local site's own
request log. The bounds are tolerant (loopback jitter moves an arrival by milliseconds);
the exact figure is printed for the notes, not asserted."""

from __future__ import annotations

import asyncio
import json
from itertools import pairwise
from pathlib import Path

import pytest

from citesite.server import CitationSite

from .conftest import fast_env, reports, run_cli, write_dois

DELAY = 0.2


def summary_of(out: str) -> dict[str, object]:
    line = next(x for x in out.splitlines() if x.startswith("citepipe-summary "))
    data = json.loads(line.removeprefix("citepipe-summary "))
    assert isinstance(data, dict)
    return data


@pytest.mark.slow
async def test_two_processes_together_keep_the_request_delay(tmp_path: Path) -> None:
    reps = reports(16, seed=13)
    dois = write_dois(tmp_path / "dois.txt", list(reps))
    db = tmp_path / "store.sqlite"
    async with CitationSite(reps) as site:
        env = fast_env(
            site.base_url,
            db,
            request_delay=DELAY,
            per_host_concurrency=2,
            concurrency=2,  # each process holds few jobs, so both work all along
            claim_batch=2,
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
