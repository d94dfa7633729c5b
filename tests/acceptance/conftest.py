"""Helpers for running the real `citepipe` command against the local citation site."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import os
import signal
import sqlite3
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from citesite.dataset import SiteReport
from citesite.generator import generate
from pipeline.clock import ManualClock, SystemClock
from pipeline.config import Settings
from pipeline.logs import configure_logging
from pipeline.models import RunCounters
from pipeline.runs.lifecycle import RunUI
from pipeline.runs.progress import Progress

ROOT = Path(__file__).resolve().parents[2]
_started: list[asyncio.subprocess.Process] = []


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Any:
    """A test that fails half-way must not leave a `citepipe worker` running for hours."""
    yield
    while _started:
        proc = _started.pop()
        if proc.returncode is None:  # by pid: the test's event loop may be closed by now
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)


@dataclass
class Result:
    code: int
    out: str
    err: str


def fast_env(base_url: str, db: Path, **extra: Any) -> dict[str, str]:
    """Settings for tests: politeness off, quick retries, JSON logs, no progress bar."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITEPIPE_")}
    env.update(
        {
            "CITEPIPE_BASE_URL": base_url,
            "CITEPIPE_DB": str(db),
            "CITEPIPE_REQUEST_DELAY": "0",
            "CITEPIPE_PER_HOST_CONCURRENCY": "16",
            "CITEPIPE_CONCURRENCY": "16",
            "CITEPIPE_RETRY_BASE": "0.05",
            "CITEPIPE_RETRY_CAP": "0.5",
            "CITEPIPE_MAX_ATTEMPTS": "6",
            "CITEPIPE_TIMEOUT": "3",
            "CITEPIPE_LEASE_SECONDS": "3",
            "CITEPIPE_LOG_FORMAT": "json",
            "CITEPIPE_PROGRESS": "false",
        }
    )
    env.update({f"CITEPIPE_{k.upper()}": str(v) for k, v in extra.items()})
    return env


async def start_cli(
    *args: str, env: dict[str, str], stdin: bytes | None = None
) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pipeline",
        *args,
        env=env,
        cwd=str(ROOT),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _started.append(proc)
    return proc


async def run_cli(
    *args: str, env: dict[str, str], stdin: bytes | None = None, timeout: float = 120
) -> Result:
    """Run citepipe in a subprocess while this event loop keeps serving the site."""
    proc = await start_cli(*args, env=env, stdin=stdin)
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def reports(n: int, seed: int) -> dict[str, SiteReport]:
    return {r.doi: r for r in generate(n, seed)}


def write_dois(path: Path, dois: list[str]) -> Path:
    path.write_text("".join(d + "\n" for d in dois), encoding="utf-8")
    return path


def messy_input(dois: list[str]) -> str:
    """Five DOIs as people hand them over: a BOM, CRLF line ends, an upper-case DOI, a
    blank line, `doi:` and `https://doi.org/` prefixes, a repeated DOI, and two bad lines
    (line 2 `not-a-doi`, line 5 `10.12/short`): 6 DOIs read, 2 bad lines."""
    return (
        "\ufeff"
        + dois[0].upper()
        + "\r\n"
        + "not-a-doi\r\n\r\n"
        + "doi:"
        + dois[1]
        + "\r\n"
        + "10.12/short\r\n"
        + "https://doi.org/"
        + dois[2]
        + "\r\n"
        + dois[3]
        + "\n"
        + dois[3]
        + "\n"
        + dois[4]
        + "\n"
    )


def crawl_input(tmp_path: Path, n: int, seed: int) -> tuple[dict[str, SiteReport], Path, Path]:
    """`n` generated reports (`seed`), their DOIs written to `dois.txt` and the path of the
    store `store.sqlite`, all in `tmp_path`: what a backfill of the local site starts from."""
    reps = reports(n, seed)
    return reps, write_dois(tmp_path / "dois.txt", list(reps)), tmp_path / "store.sqlite"


def shared_env(base_url: str, db: Path, delay: float, **extra: Any) -> dict[str, str]:
    """`fast_env` for several processes on one store: politeness on (`request_delay`
    `delay`, which they must keep together) and claims of 2 jobs, so every process gets
    work."""
    return fast_env(base_url, db, request_delay=delay, claim_batch=2, **extra)


def summary_of(out: str) -> dict[str, object]:
    """The JSON summary a citepipe command prints on its `citepipe-summary` line."""
    line = next(x for x in out.splitlines() if x.startswith("citepipe-summary "))
    data = json.loads(line.removeprefix("citepipe-summary "))
    assert isinstance(data, dict)
    return data


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def expected_statements(
    reps: dict[str, SiteReport],
    skip: set[str] = frozenset(),  # type: ignore[assignment]
) -> set[tuple[Any, ...]]:
    return {
        (r.doi, s.citing_doi, s.snippet, s.section, s.type, s.confidence)
        for r in reps.values()
        if r.doi not in skip
        for s in r.statements
    }


def stored_statements(db: Path) -> list[tuple[Any, ...]]:
    return query(
        db, "select cited_doi, citing_doi, snippet, section, type, confidence from statements"
    )


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every user-visible row, without timestamps: to compare two stores."""
    return {
        "papers": sorted(
            query(
                db,
                "select doi, title, year, publication_date, journal, "
                "abstract, abstract_truncated, report_url from papers",
            )
        ),
        "authors": sorted(query(db, "select doi, position, name from authors")),
        "tallies": sorted(
            query(
                db,
                "select doi, supporting, mentioning, contrasting, "
                "citing_publications, citation_statements, "
                "references_count from tallies",
            )
        ),
        "facets": sorted(query(db, "select doi, facet, label, count from facets")),
        "statements": sorted(stored_statements(db), key=repr),
        "jobs": sorted(query(db, "select doi, page, state from jobs")),
    }


# ---------------------------------------------------------------- in-process runs


def fast_settings(base_url: str, db: Path, **extra: Any) -> Settings:
    """The settings of `fast_env`, as an object for in-process runs (no env, no file)."""
    values: dict[str, Any] = {
        "base_url": base_url,
        "db": str(db),
        "request_delay": 0.0,
        "per_host_concurrency": 16,
        "concurrency": 16,
        "retry_base": 0.05,
        "retry_cap": 0.5,
        "max_attempts": 6,
        "timeout": 3.0,
        "lease_seconds": 3.0,
        "log_format": "json",
        "progress": False,
    }
    values.update(extra)
    return dataclasses.replace(Settings(), **values).validate()


class OffsetClock(SystemClock):
    """The real clock, moved forward on demand: 'a week later' without waiting a week."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> datetime:
        return super().now() + timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return super().monotonic() + self.offset


class SteppedClock(OffsetClock):
    """Wall time follows the real clock (the store's due times keep working); the budget
    clock (`monotonic`, `sleep`) moves only when `advance` is called."""

    def __init__(self) -> None:
        super().__init__()
        self._manual = ManualClock()

    def monotonic(self) -> float:
        return self._manual.monotonic()

    def advance(self, seconds: float) -> None:
        self._manual.advance(seconds)

    async def sleep(self, seconds: float) -> None:
        await self._manual.sleep(seconds)


def quiet_ui() -> RunUI:
    """A RunUI whose messages are kept for the test to read."""
    return RunUI(err=io.StringIO())


def ui_text(ui: RunUI) -> str:
    assert isinstance(ui.err, io.StringIO)
    return ui.err.getvalue()


@pytest.fixture
def json_logs() -> Any:
    """Capture the JSON log lines of in-process runs; restore structlog afterwards."""
    buf = io.StringIO()
    configure_logging("info", "json", stream=buf)
    yield buf
    structlog.reset_defaults()


class FirstPage(Progress):
    """A silent progress display that sets `done` when the run's first page is done."""

    def __init__(self) -> None:
        super().__init__(False, "test", io.StringIO())
        self.done = asyncio.Event()

    def update(self, counters: RunCounters) -> None:
        self.done.set()
