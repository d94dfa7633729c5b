"""PostgreSQL for the tests: `pg_url` gives each test its own fresh, empty schema. And
tests/containers runs only with `--containers` (`make test-containers`), never in
`make test` or `make test-all`.

Where the server comes from, in order:
- `CITEPIPE_TEST_POSTGRES`, an admin URL such as `postgresql://root@127.0.0.1:5432/postgres`
  (`.ci/run` sets it to this machine's server);
- else, where `initdb` and `pg_ctl` exist, a throwaway server in a temporary folder,
  stopped at the end of the session (as root, which initdb refuses, it runs as the
  system's `postgres` user);
- else the PostgreSQL tests are skipped, and the session ends with ONE loud line saying so.

Each test gets a schema of its own with a unique name, named by the URL's `search_path`,
and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

ENV = "CITEPIPE_TEST_POSTGRES"
_skipped: list[str] = []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user() -> list[str] | None:
    """How to run initdb/pg_ctl: as ourselves, or, as root (which initdb refuses), as the
    system's `postgres` user through runuser. None when neither is possible."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    return [runuser, "-u", "postgres", "--"] if runuser else None


@dataclass(frozen=True)
class Cluster:
    """A private PostgreSQL server in `folder` (initdb + pg_ctl), for the session's tests
    and for a test that must restart or stop its own server."""

    folder: Path
    port: int
    prefix: tuple[str, ...]  # how to run pg_ctl: as ourselves, or as `postgres` (root)
    pg_ctl: str
    opts: str  # the server's options (port, socket folder, listen address)

    @property
    def url(self) -> str:
        return f"postgresql://citepipe@127.0.0.1:{self.port}/postgres"

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`pg_ctl -D DATA ARGS...` as the server's user; raises if it fails."""
        return subprocess.run(
            [*self.prefix, self.pg_ctl, "-D", str(self.folder / "data"), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every session is cut, the server is back on return.
        The server logs to the file (`-l`): on our pipe it would hold `run` open forever."""
        self.ctl("-w", "-m", "fast", "-l", str(self.folder / "log"), "restart")

    def start(self) -> None:
        """Start it again after `ctl("-m", "fast", "stop")`; back on return."""
        self.ctl("-w", "-o", self.opts, "-l", str(self.folder / "log"), "start")

    def stop(self) -> None:
        subprocess.run(
            [*self.prefix, self.pg_ctl, "-D", str(self.folder / "data"), "-m", "immediate",
             "stop"],
            capture_output=True,
        )  # fmt: skip


def start_cluster(folder: Path) -> Cluster | None:
    """Start a private server with its files in `folder` (which every user can reach);
    None where initdb/pg_ctl are missing or refuse."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    prefix = _as_server_user()
    if not initdb or not pg_ctl or prefix is None:
        return None
    if prefix:
        shutil.chown(folder, user="postgres")
    data = folder / "data"
    port = _free_port()
    init = subprocess.run(
        [*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "citepipe", "--no-sync"],
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        return None
    opts = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-o", opts, "-l", str(folder / "log"), "-w", "start"],
        capture_output=True,
        text=True,
    )
    if start.returncode != 0:
        return None
    return Cluster(folder, port, tuple(prefix), pg_ctl, opts)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """An admin URL of a PostgreSQL server the tests may create databases on."""
    url = os.environ.get(ENV)
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="citepipe-pg-") as folder:
        cluster = start_cluster(Path(folder))
        if cluster is None:
            _skipped.append("no server")
            pytest.skip(f"PostgreSQL tests did not run: set {ENV} or install initdb/pg_ctl")
        try:
            yield cluster.url
        finally:
            cluster.stop()


async def _admin_async(url: str, sql: str) -> None:
    conn: Any = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _admin(url: str, sql: str) -> None:
    """Run one admin statement on a thread of its own: the caller may be inside a running
    event loop (an async fixture asking for `pg_url`)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _admin_async(url, sql)).result()


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty schema of its own for this test (dropped afterwards): a URL whose
    `search_path` names it (asyncpg passes unknown URL parameters on as server settings),
    so the store, and any subprocess given the URL, sees only this test's tables. A schema
    rather than a database: CREATE/DROP DATABASE cost about a second a test (DROP forces a
    checkpoint), a schema a few milliseconds."""
    name = f"citepipe_test_{uuid.uuid4().hex[:12]}"
    _admin(pg_admin_url, f'CREATE SCHEMA "{name}"')
    try:
        yield with_search_path(pg_admin_url, name)
    finally:
        _admin(pg_admin_url, f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def pg_database_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database of its own (CREATE DATABASE from template0, dropped afterwards
    WITH (FORCE): a process the test killed may still hold a connection). About a second
    each way; for the few tests that must start from a database nobody touched."""
    name = f"citepipe_test_{uuid.uuid4().hex[:12]}"
    _admin(pg_admin_url, f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        parts = urlsplit(pg_admin_url)
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        _admin(pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_cluster() -> Iterator[Cluster]:
    """A private PostgreSQL server of this test's own, which it may restart (skipped,
    loudly, where initdb/pg_ctl are missing, as the session's server is)."""
    folder = Path(tempfile.mkdtemp(prefix="citepipe-cluster-"))
    folder.chmod(0o755)  # the server's user must reach it (tmp_path is private to root)
    cluster = start_cluster(folder)
    try:
        if cluster is None:
            _skipped.append("no server")
            pytest.skip("PostgreSQL restart test did not run: install initdb/pg_ctl")
        yield cluster
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


def with_search_path(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, f"search_path={schema}") if q)
    return urlunsplit(parts._replace(query=query))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _skipped:
        terminalreporter.write_line(
            f"!!!!! PostgreSQL tests did NOT run: no server ({ENV} unset, no usable "
            "initdb/pg_ctl) !!!!!",
            red=True,
            bold=True,
        )


CONTAINERS = Path(__file__).resolve().parent / "containers"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--containers",
        action="store_true",
        default=False,
        help="collect tests/containers: build the image, run the compose file (needs a "
        "Docker engine; `make test-containers`)",
    )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if collection_path == CONTAINERS and not config.getoption("--containers"):
        return True
    return None
