"""A site that cannot be reached at all (nothing listening, the wrong scheme): said at
once by name and cause, the run ends with exit 1, and its jobs stay queued (not dead,
their attempts refunded) for the next run. The rule: three failures in a row before any
answer, and no answer from the host this run (crawl/politeness.py, `no_answer`)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from citesite.server import CitationSite

from .conftest import fast_env, query, reports, run_cli, summary_of, write_dois


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize("robots", ["true", "false"], ids=["robots", "no-robots"])
async def test_a_closed_port_is_named_and_the_jobs_stay_queued(tmp_path: Path, robots: str) -> None:
    base = f"http://127.0.0.1:{closed_port()}"
    db = tmp_path / "c.sqlite"
    env = fast_env(base, db, respect_robots=robots)
    dois = [f"10.5555/unreachable.{i}" for i in range(5)]
    result = await run_cli("backfill", str(write_dois(tmp_path / "in.txt", dois)), env=env)
    assert result.code == 1, result.err[-2000:]
    assert "site unreachable" in result.err and "connection refused" in result.err
    assert f"unreachable: {base}: connection refused; the run stopped" in result.out
    assert "exit code:  1 (the site is unreachable" in result.out
    unreachable = summary_of(result.out)["unreachable"]
    assert isinstance(unreachable, dict) and list(unreachable) == [f"{base}: connection refused"]
    assert query(db, "select state, attempts, count(*) from jobs group by 1, 2") == [
        ("queued", 0, 5)
    ]


async def test_https_against_an_http_site_is_a_tls_error(tmp_path: Path) -> None:
    reps = reports(2, seed=61)
    async with CitationSite(reps) as site:
        base = site.base_url.replace("http://", "https://")
        db = tmp_path / "c.sqlite"
        inp = write_dois(tmp_path / "in.txt", list(reps))
        result = await run_cli("backfill", str(inp), env=fast_env(base, db))
        assert result.code == 1, result.err[-2000:]
        assert "TLS error" in result.err
        assert query(db, "select distinct state, attempts from jobs") == [("queued", 0)]


async def test_a_site_that_never_answers_ends_the_run_with_its_jobs_queued(
    tmp_path: Path,
) -> None:
    """A port that takes connections and never says a word: each try ends at the
    request timeout (3 s here), and the third ends the run (it used to be ~15 minutes
    of backoff, then every job dead)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)  # connections complete in the backlog; nothing is ever read
        base = f"http://127.0.0.1:{silent.getsockname()[1]}"
        db = tmp_path / "c.sqlite"
        dois = [f"10.5555/silent.{i}" for i in range(3)]
        inp = write_dois(tmp_path / "in.txt", dois)
        result = await run_cli("backfill", str(inp), env=fast_env(base, db), timeout=120)
    assert result.code == 1, result.err[-2000:]
    assert f"unreachable: {base}: timeout; the run stopped" in result.out
    assert query(db, "select distinct state, attempts from jobs") == [("queued", 0)]
