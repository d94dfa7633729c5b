"""A PostgreSQL server restarted (`pg_ctl restart -m fast`) under a 2-process backfill, on
a private server of the test's own: nothing lost, no job killed by the store, the run goes
on to the end, and stderr stays JSON lines, with no traceback.

A restart takes about a second; whether a statement is running in that second is luck.
So the test also stops the server and, until the processes have tried to reach it
`CUT_ATTEMPTS` times, answers its port itself by closing every connection at once: the
processes meet a dead database for sure (counted, not timed), then the server starts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from citesite.server import CitationSite

from .conftest import expected_statements, fast_env, reports, start_cli, summary_of, write_dois
from .test_postgres import pg_count, snapshot, wait_for_done

IN_FLIGHT = 3  # pages one process works at once (`concurrency`)
CUT_ATTEMPTS = 12  # connections cut while the server is down


async def outage(cluster: Any, attempts: int) -> int:
    """Stop the server; cut the first `attempts` connections made to its port; start it
    again. Returns the connections cut."""
    await asyncio.to_thread(cluster.ctl, "-w", "-m", "fast", "stop")
    cut = 0
    enough = asyncio.Event()

    async def refuse(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal cut
        cut += 1
        if cut >= attempts:
            enough.set()
        writer.transport.abort()

    server = await asyncio.start_server(refuse, "127.0.0.1", cluster.port)
    try:
        await asyncio.wait_for(enough.wait(), 60)
    finally:
        server.close()
        await server.wait_closed()
    await asyncio.to_thread(cluster.start)
    return cut


def json_lines(err: str) -> list[dict[str, Any]]:
    """Every stderr line as JSON: a line that is not (a bare traceback, a library's plain
    text) fails the test, named."""
    out = []
    for line in err.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            raise AssertionError(f"a stderr line is not JSON: {line!r}") from None
        assert isinstance(value, dict), line
        out.append(value)
    return out


@pytest.mark.slow
async def test_a_postgres_restart_mid_backfill_loses_and_kills_nothing(
    tmp_path: Path,
    pg_cluster: Any,  # tests/conftest.py's Cluster
) -> None:
    reps = reports(30, seed=20)
    url = pg_cluster.url
    async with CitationSite(reps) as site:
        env = fast_env(
            site.base_url,
            url,  # type: ignore[arg-type]
            concurrency=IN_FLIGHT,
            claim_batch=2,
            timeout=60,  # held requests must not time out: the hold is not a fault
        )
        inp = write_dois(tmp_path / "in.txt", list(reps))
        proc = await start_cli("backfill", str(inp), "--processes", "2", env=env)
        await wait_for_done(url, 4)
        site.hold()  # both processes fill their slots with requests the site holds
        for _ in range(1200):
            if site.holding >= 2 * IN_FLIGHT or proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        assert site.holding >= 2 * IN_FLIGHT, site.holding
        await asyncio.to_thread(pg_cluster.restart)  # every session of both processes cut
        assert await outage(pg_cluster, CUT_ATTEMPTS) >= CUT_ATTEMPTS
        site.release()  # their pages come back to a store whose connections are gone
        out, err = await asyncio.wait_for(proc.communicate(), 90)
    text = err.decode()
    lines = json_lines(text)
    assert "Traceback" not in text
    assert not [x for x in lines if "internal error" in json.dumps(x)], text[-3000:]
    assert proc.returncode == 0, text[-3000:]
    summary = summary_of(out.decode())
    assert summary["dead_this_run"] == {} and summary["dead_total"] == {}, summary
    stored = (await snapshot(url))["statements"]
    assert len(stored) == len(set(stored)) and set(stored) == expected_statements(reps)
    assert await pg_count(url, "select count(*) from jobs where state <> 'done'") == 0
    waits = [x for x in lines if x["event"] == "database unreachable; trying again"]
    assert waits and all(x["level"] == "warning" for x in waits)  # the outage was said
