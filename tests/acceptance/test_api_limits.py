"""The API's limits and faults: 422 splits a batch, 429 pauses the API for every process
(with and without Retry-After), a kill -9 loses and duplicates nothing, two processes keep
the limits together (measured from the site's request log)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from citesite.server import CitationSite
from pipeline.crawl.fetcher import DEFAULT_PAUSE

from .conftest import crawl_input, fast_env, query, run_cli, start_cli

TOKEN = "tok"
ENDPOINTS = ("/tallies", "/papers", "/tallies/cited-by-sections")


def posts(site: CitationSite) -> list:  # type: ignore[type-arg]
    return [r for r in site.requests if r.method == "POST"]


def assert_every_row(db: Path, dois: list[str]) -> None:
    """Every DOI's tallies, paper and sections once; every batch job done."""
    tallies = query(db, "SELECT doi FROM tallies ORDER BY doi")
    assert [d for (d,) in tallies] == sorted(dois)
    assert query(db, "SELECT count(*) FROM tally_history") == [(len(dois),)]
    assert query(db, "SELECT count(DISTINCT doi) FROM facets WHERE facet = 'section'") == [
        (len(dois),)
    ]
    states = query(db, "SELECT state, count(*) FROM jobs GROUP BY 1")
    assert dict(states).keys() == {"done"}


async def test_a_422_splits_the_batch_until_the_api_takes_it(tmp_path: Path) -> None:
    reps, dois, db = crawl_input(tmp_path, 20, seed=31)
    async with CitationSite(reps, api_token=TOKEN, faults="api-max=6") as site:
        env = fast_env(site.base_url, db, api_url=site.base_url, api_token=TOKEN, api_batch=20)
        result = await run_cli("backfill", str(dois), "--source", "api", env=env)
        assert result.code == 0, result.err
        log = posts(site)
    for path in ENDPOINTS:
        sizes = [(r.dois, r.status) for r in log if r.path_qs == path]
        # 20 -> 10 + 10 -> 5 + 5 + 5 + 5: each refused batch once, each half once
        assert sorted(sizes) == sorted([(20, 422), (10, 422), (10, 422)] + [(5, 200)] * 4)
    assert_every_row(db, list(reps))


async def test_a_429_with_retry_after_holds_every_request_until_then(tmp_path: Path) -> None:
    reps, dois, db = crawl_input(tmp_path, 12, seed=32)
    async with CitationSite(reps, api_token=TOKEN, faults="429=1@1,retry-after=2") as site:
        env = fast_env(site.base_url, db, api_url=site.base_url, api_token=TOKEN, api_batch=4)
        result = await run_cli("backfill", str(dois), "--source", "api", env=env)
        assert result.code == 0, result.err
        log = posts(site)
    pauses = [r for r in log if r.status == 429]
    assert len(pauses) == 9  # the first attempt of each of the 9 batches
    first = min(pauses, key=lambda r: r.time)
    assert first.retry_after_until is not None
    # nothing that got through was sent before the first pause ended
    assert all(r.time >= first.retry_after_until - 0.05 for r in log if r.status == 200)
    assert_every_row(db, list(reps))


async def test_a_429_without_retry_after_pauses_the_api_for_the_default(tmp_path: Path) -> None:
    reps, dois, db = crawl_input(tmp_path, 4, seed=33)
    async with CitationSite(reps, api_token=TOKEN, faults="429-bare=1@1") as site:
        env = fast_env(site.base_url, db, api_url=site.base_url, api_token=TOKEN)
        result = await run_cli("backfill", str(dois), "--source", "api", env=env)
        assert result.code == 0, result.err
        log = posts(site)
    bare = [r for r in log if r.status == 429]
    assert bare and all(r.retry_after_until is None for r in bare)
    first = min(r.time for r in bare)
    ok = [r.time for r in log if r.status == 200]
    assert len(ok) == 3
    assert min(ok) >= first + DEFAULT_PAUSE - 0.05
    assert_every_row(db, list(reps))


async def test_kill_9_mid_run_then_resume_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    reps, dois, db = crawl_input(tmp_path, 30, seed=34)
    async with CitationSite(reps, api_per_second=100, api_per_minute=100_000) as site:
        # no token: the client spaces its requests (0.2 s), so the kill lands mid-run
        env = fast_env(
            site.base_url,
            db,
            api_url=site.base_url,
            api_batch=3,
            api_requests_per_second=5,
            api_requests_per_minute=100_000,
        )
        proc = await start_cli("backfill", str(dois), "--source", "api", env=env)
        for _ in range(2000):  # until 6 answers went out (each 0.2 s apart)
            if len([r for r in posts(site) if r.status == 200]) >= 6:
                break
            await asyncio.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
        done_before = len([r for r in posts(site) if r.status == 200])
        assert done_before < 30  # 10 batches x 3 endpoints: it was killed mid-run
        again = await run_cli("backfill", str(dois), "--source", "api", env=env)
        assert again.code == 0, again.err
        log = posts(site)
    assert not [r for r in log if r.status == 429]
    # asked again: only the batches in flight at the kill (2 per host at most)
    assert len([r for r in log if r.status == 200]) <= 30 + 2
    assert query(db, "SELECT count(*) FROM jobs WHERE doi LIKE 'api:%'") == [(30,)]
    assert_every_row(db, list(reps))


async def test_two_processes_keep_the_api_limits_together(tmp_path: Path) -> None:
    reps, dois, db = crawl_input(tmp_path, 40, seed=35)
    per_second, per_minute = 5, 100_000  # the site's limits
    async with CitationSite(reps, api_per_second=per_second, api_per_minute=per_minute) as site:
        envs = [
            fast_env(
                site.base_url,
                db,
                api_url=site.base_url,
                api_batch=5,
                api_requests_per_second=4,  # what the client keeps: under the site's 5
                api_requests_per_minute=per_minute,
                claim_batch=1,
                user_agent=f"citepipe-test/{i}",
            )
            for i in (1, 2)
        ]
        procs = [await start_cli("backfill", str(dois), "--source", "api", env=e) for e in envs]
        codes = [await asyncio.wait_for(p.wait(), 120) for p in procs]
        assert codes == [0, 0]
        log = posts(site)
    agents = {r.user_agent for r in log if r.status == 200}
    assert agents == {"citepipe-test/1", "citepipe-test/2"}  # both worked the batches
    assert not [r for r in log if r.status == 429]  # together, never over the limits
    times = sorted(r.time for r in log)
    busiest = max(sum(1 for t in times if s <= t < s + 1.0) for s in times)
    assert busiest <= per_second
    per_min = (len(times) - 1) / (times[-1] - times[0]) * 60
    assert per_min <= 4 * 60 * 1.05  # measured: the client's 4 a second, both together
    assert_every_row(db, list(reps))
