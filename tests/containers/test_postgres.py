"""The compose file's `postgres` profile on a real engine: several `pg-worker` containers
(`--scale`) share one PostgreSQL database. No registry can be reached here for the
`postgres` image, so the database is a fresh one on the test server
(CITEPIPE_TEST_POSTGRES, this machine's at 127.0.0.1:5432 in CI): the override points the
workers' CITEPIPE_DB at it and they start without the `postgres` service (`--no-deps`).
Proved from the database's own rows."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg

from citesite.dataset import page_count
from citesite.generator import GeneratedReports

from .conftest import docker, free_port, host_network_override, site_command, statements
from .test_compose import one_off_like, site_stats

WORKERS = 3


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    async def fetch() -> list[tuple[Any, ...]]:
        conn: Any = await asyncpg.connect(url)
        try:
            return [tuple(r) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_several_pg_workers_share_one_database(
    compose: Any, pg_database_url: str, tmp_path: Path
) -> None:
    """Three scaled pg-workers and a one-off backfill on one database: every statement
    stored once, every page done, the work shared, and each worker stops with exit 0."""
    port = free_port()
    truth = dict(GeneratedReports(60, 9).items())
    env = {
        "CITEPIPE_BASE_URL": f"http://site:{port}",
        "CITEPIPE_REQUEST_DELAY": "0",
        "CITEPIPE_CONCURRENCY": "4",
        "CITEPIPE_PER_HOST_CONCURRENCY": "16",
    }
    site = {
        "command": site_command(
            port, "--generate", "60", "--seed", "9", "--faults", "slow=1,delay=0.15"
        )
    }
    pg_worker = {"environment": {"CITEPIPE_DB": pg_database_url}}
    c = compose(host_network_override(port, {"site": site, "pg-worker": pg_worker}), **env)
    c("up", "-d", "--no-build", "--no-deps", "--scale", f"pg-worker={WORKERS}", "site",
      "pg-worker", timeout=300)  # fmt: skip
    workers = c("ps", "-q", "pg-worker").stdout.split()
    assert len(workers) == WORKERS
    dois = tmp_path / "dois.txt"
    dois.write_text("".join(d + "\n" for d in truth))
    backfill = one_off_like(workers[0], "backfill", "-", stdin=dois)
    _, err = backfill.communicate(timeout=240)
    assert backfill.returncode == 0, err[-3000:]
    assert site_stats(port)["requests"] > 0
    c("stop", "-t", "20", "pg-worker")
    for cid in workers:
        assert docker("inspect", "-f", "{{.State.ExitCode}}", cid).stdout.strip() == "0"
    stored = rows(
        pg_database_url,
        "select cited_doi, citing_doi, snippet, section, type, confidence from statements",
    )
    assert sorted(stored) == statements(truth)
    pages = sum(page_count(r) for r in truth.values())
    assert rows(pg_database_url, "select state, count(*) from jobs group by state") == [
        ("done", pages)
    ]
    runs: dict[str, list[dict[str, Any]]] = {"worker": [], "backfill": []}
    for kind, summary in rows(pg_database_url, "select kind, summary from runs"):
        runs[kind].append(json.loads(summary) if isinstance(summary, str) else summary)
    assert len(runs["worker"]) == WORKERS
    assert sum(s["pages"] for s in runs["worker"] + runs["backfill"]) == pages  # each once
    assert sum(1 for s in runs["worker"] if s["pages"] > 0) >= 2  # the work was shared
