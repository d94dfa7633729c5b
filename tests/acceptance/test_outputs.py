"""Outputs never lose data (issue 25, points 1 and 2): an export or metadata file that is
the store (or its -wal/-shm) is refused with exit 2 before anything is written; an
interrupted export (a real SIGINT to a real `citepipe export`, a real full disk through
RLIMIT_FSIZE) leaves the old file exactly as it was, says so in one line, exits non-zero."""

from __future__ import annotations

import asyncio
import hashlib
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog

from pipeline import app
from pipeline.models import NewJob

from .conftest import ROOT, fast_env, fast_settings, start_cli

OLD = "an export from yesterday, which must survive\n" * 100


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("CITEPIPE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CITEPIPE_LOG_FORMAT", "json")
    monkeypatch.chdir(tmp_path)
    yield
    structlog.reset_defaults()


async def fill(db: str, jobs: int) -> None:
    """A real store (its own migrations) holding `jobs` queued jobs."""
    async with app.open_pipeline(fast_settings("http://127.0.0.1:9", db)) as p:  # type: ignore[arg-type]
        await p.store.enqueue(
            [
                NewJob(doi=f"10.1/{i}", url=f"http://127.0.0.1:9/reports/10.1/{i}")
                for i in range(jobs)
            ]
        )


def digest(*paths: Path) -> dict[str, str | None]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None for p in paths
    }


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


CASES = [
    *((name, ("--table", "papers")) for name in
      ("s.sqlite", "./sub/../s.sqlite", "s.sqlite-wal", "s.sqlite-shm", "link", "hard")),
    ("s.sqlite", ("--table", "papers", "--format", "jsonl")),
    ("s.sqlite", ("--table", "papers", "--format", "parquet")),
    ("hard", ("--table", "papers", "--format", "parquet")),
    ("s.sqlite", ("--datasette-metadata",)),
]  # fmt: skip


@pytest.mark.parametrize(("name", "extra"), CASES)
def test_an_output_that_is_the_store_is_refused_before_anything_is_written(
    tmp_path: Path, name: str, extra: tuple[str, ...]
) -> None:
    """The real command (a replaced store file would crash the process reading it)."""
    db = tmp_path / "s.sqlite"
    asyncio.run(fill(str(db), 3))
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(db)
    os.link(db, tmp_path / "hard")
    files = [db, tmp_path / "s.sqlite-wal", tmp_path / "s.sqlite-shm"]
    before = digest(*files)
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "export", *extra, "-o", name, "--db", str(db)],
        env=fast_env("http://127.0.0.1:9", db), cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "is the store" in line and "--output" in line
    assert digest(*files) == before
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "command",
    [("changes", "--since", "7d"), ("changes", "--format", "json"), ("graph",)],
)
@pytest.mark.parametrize("name", ["s.sqlite", "s.sqlite-wal", "hard"])
def test_changes_and_graph_refuse_to_write_over_the_store(
    tmp_path: Path, command: tuple[str, ...], name: str
) -> None:
    """Every command with `-o` follows the rule: the store (or a file SQLite keeps beside
    it, or a hard link to it) is never an output, refused before anything is opened."""
    db = tmp_path / "s.sqlite"
    asyncio.run(fill(str(db), 3))
    os.link(db, tmp_path / "hard")
    files = [db, tmp_path / "s.sqlite-wal", tmp_path / "s.sqlite-shm"]
    before = digest(*files)
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", *command, "-o", name, "--db", str(db)],
        env=fast_env("http://127.0.0.1:9", db), cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "is the store" in line and "--output" in line
    assert digest(*files) == before
    assert leftovers(tmp_path) == []


def test_an_export_over_a_full_disk_leaves_the_old_file(tmp_path: Path) -> None:
    """A real `citepipe export` whose writes fail half-way (RLIMIT_FSIZE: the kernel says
    "File too large" past 64 KiB, as a full disk says "No space left"): the old file is
    byte for byte as it was, no partial file is left, one line says so, exit non-zero."""
    db = tmp_path / "s.sqlite"
    asyncio.run(fill(str(db), 3000))  # far more than 64 KiB of CSV
    out = tmp_path / "jobs.csv"
    out.write_text(OLD, encoding="utf-8")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))

    for fmt in ("csv", "jsonl"):
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", "export", "--table", "jobs", "--format", fmt,
             "-o", str(out), "--db", str(db)],
            env=fast_env("http://127.0.0.1:9", db), cwd=ROOT, capture_output=True, text=True,
            preexec_fn=limit, timeout=120,
        )  # fmt: skip
        assert done.returncode != 0
        (line,) = done.stderr.strip().splitlines()
        assert "File too large" in line and f"{out} left as it was" in line
        assert out.read_text(encoding="utf-8") == OLD
        assert leftovers(tmp_path) == []


async def test_ctrl_c_during_an_export_leaves_the_old_file(tmp_path: Path, pg_url: str) -> None:
    """A real SIGINT to a real `citepipe export` while it is writing: the test holds an
    ACCESS EXCLUSIVE lock on `jobs`, so the export has opened its output and waits on its
    first page of rows, for as long as the test likes (no timing involved)."""
    await fill(pg_url, 50)
    out = tmp_path / "jobs.csv"
    out.write_text(OLD, encoding="utf-8")
    conn: Any = await asyncpg.connect(pg_url)
    try:
        tx = conn.transaction()
        await tx.start()
        await conn.execute("LOCK TABLE jobs IN ACCESS EXCLUSIVE MODE")
        proc = await start_cli(
            "export",
            "--table",
            "jobs",
            "-o",
            str(out),
            env=fast_env("http://127.0.0.1:9", pg_url),  # type: ignore[arg-type]
        )
        waiting = (
            "select count(*) from pg_stat_activity "
            "where application_name = 'citepipe' and wait_event_type = 'Lock' "
            "and datname = current_database()"  # this test's: others may share the server
        )
        for _ in range(600):  # until the export waits on the lock (at most a minute)
            await conn.execute("select pg_stat_clear_snapshot()")  # else one per transaction
            if await conn.fetchval(waiting):
                break
            assert proc.returncode is None, await proc.communicate()
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the export never reached its first page of rows")
        proc.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(proc.communicate(), 60)
        await tx.rollback()
    finally:
        await conn.close()
    assert proc.returncode == 128 + signal.SIGINT
    (line,) = stderr.decode().strip().splitlines()
    assert line == f"citepipe: export interrupted; {out} left as it was"
    assert out.read_text(encoding="utf-8") == OLD
    assert leftovers(tmp_path) == []
