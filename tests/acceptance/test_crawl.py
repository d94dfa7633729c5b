"""`citepipe crawl` end to end: refresh, change detection, overlap, time budget."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

from citesite.server import CitationSite

from .conftest import fast_env, query, reports, run_cli, start_cli, write_dois

REFRESH = {"refresh_interval": 1, "refresh_min": 1, "refresh_max": 4}


def report_paths(site: CitationSite, since: int = 0) -> list[str]:
    return [r.path_qs for r in site.requests[since:] if r.path_qs.startswith("/reports/")]


async def test_schedule_runs_crawls_on_its_cron_expression_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    reps = reports(5, seed=24)
    async with CitationSite(reps) as site:
        db = tmp_path / "c.sqlite"
        # croniter's sixth field is seconds: a crawl every 2 seconds
        env = fast_env(site.base_url, db, schedule="* * * * * */2")
        seeds = write_dois(tmp_path / "seeds.txt", list(reps))
        digest = tmp_path / "digest.md"  # each crawl's digest, as crawl --digest writes it
        proc = await start_cli("schedule", "--seeds", str(seeds), "--digest", str(digest), env=env)
        for _ in range(300):
            await asyncio.sleep(0.1)
            try:
                crawls = query(
                    db, "select count(*) from runs where kind = 'crawl' and finished_at is not null"
                )[0][0]
            except sqlite3.OperationalError:  # no file or no schema yet
                continue
            if crawls >= 2:
                break
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert out.decode().count("citepipe-summary") >= 2
    assert digest.read_text(encoding="utf-8").startswith("# What changed: ")
    expected = {(r.doi, s.citing_doi, s.snippet) for r in reps.values() for s in r.statements}
    assert set(query(db, "select cited_doi, citing_doi, snippet from statements")) == expected


async def test_schedule_makes_its_store_at_start_and_waits(tmp_path: Path) -> None:
    """A nightly schedule: the store exists (for the container's healthcheck) long before
    the first crawl, and SIGTERM while waiting exits 0 without crawling."""
    db = tmp_path / "data" / "c.sqlite"
    env = fast_env("http://127.0.0.1:9", db, schedule="0 3 1 1 *")  # once a year
    proc = await start_cli("schedule", env=env)
    for _ in range(300):
        if db.exists():
            break
        await asyncio.sleep(0.1)
    health = await run_cli("status", "--json", env=env)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert health.code == 0, health.err
    assert query(db, "select count(*) from runs") == [(0,)]
