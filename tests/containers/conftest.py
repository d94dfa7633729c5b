"""A real Docker engine for tests/containers: the image built once per session, compose
projects with an override for machines without a bridge network, the store copied out.

These machines allow only loopback traffic and their engine has no bridge network, so
every service gets `network_mode: host`, the compose service name `site` is pointed at
127.0.0.1 with `extra_hosts`, and the site binds 127.0.0.1 on a free port. Everything
else (images, commands, environment, volumes, healthchecks) is the shipped file's.
No engine is a failure, never a skip: `make test-containers` must not pass without one.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import socket
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from citesite.dataset import SiteReport

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
IMAGE = "citepipe:test-containers"
UID = 10001  # the image's user (Dockerfile)
TIMINGS: dict[str, float] = {}


def docker(
    *args: str, check: bool = True, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, input=input
    )
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: exit {done.returncode}\n{done.stderr}")
    return done


def compose_command() -> list[str]:
    """docker-compose v1 where installed (these machines), else the v2 plugin."""
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return ["docker", "compose"]


@pytest.fixture(scope="session")
def engine() -> None:
    if shutil.which("docker") is None:
        pytest.fail("no `docker` command: install and start a Docker engine (.ci/run starts one)")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        pytest.fail(
            "no Docker engine answers `docker info`; start one "
            f"(.ci/run starts one): {info.stderr.strip()[-500:]}"
        )


@pytest.fixture(scope="session")
def image(engine: None) -> str:
    """The image, built from the checkout as the README says (host network here)."""
    started = time.monotonic()
    docker("build", "--network", "host", "-q", "-t", IMAGE, str(ROOT), timeout=900)
    TIMINGS["build_s"] = time.monotonic() - started
    size = docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout.strip()
    TIMINGS["image_mb"] = int(size) / 1e6
    return IMAGE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def shipped() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def site_command(port: int, *extra: str) -> list[str]:
    """The shipped site command, bound to 127.0.0.1:port (host network), plus `extra`."""
    cmd = list(shipped()["services"]["site"]["command"])
    cmd[cmd.index("--host") + 1] = "127.0.0.1"
    cmd[cmd.index("--port") + 1] = str(port)
    return [*cmd, *extra]


def host_network_override(port: int, services: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every shipped service on the host network, `site` resolving to 127.0.0.1 and
    serving on `port`; the healthchecks' intervals short (their commands are the
    shipped ones). `services` adds to it per test."""
    shipped_services = shipped()["services"]
    out: dict[str, Any] = {}
    for name in shipped_services:
        out[name] = {"network_mode": "host", "extra_hosts": ["site:127.0.0.1"]}
    site_check = list(shipped_services["site"]["healthcheck"]["test"])
    out["site"] |= {
        "command": site_command(port),
        "healthcheck": {"test": [a.replace(":8080", f":{port}") for a in site_check]},
    }
    demo_base = shipped_services["demo-worker"]["environment"]["CITEPIPE_BASE_URL"]
    out["demo-worker"]["environment"] = {
        "CITEPIPE_BASE_URL": demo_base.replace(":8080", f":{port}")
    }
    for name in ("worker", "scheduler"):
        out[name]["healthcheck"] = {"interval": "1s", "start_period": "0s"}
    return {"services": merge(out, services or {})}


@dataclass
class Compose:
    """One compose project of the shipped file plus an override; `down -v` at the end."""

    project: str
    override: Path
    env: dict[str, str] = field(default_factory=dict)

    def args(self, profiles: tuple[str, ...]) -> list[str]:
        files = ["-f", str(COMPOSE_FILE), "-f", str(self.override)]
        flags = [f for p in profiles for f in ("--profile", p)]
        return [*compose_command(), "-p", self.project, *files, *flags]

    def environ(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CITEPIPE_")}
        return {**base, "CITEPIPE_IMAGE": IMAGE, **self.env}

    def __call__(
        self,
        *args: str,
        profiles: tuple[str, ...] = ("demo", "crawl"),
        check: bool = True,
        timeout: float = 180,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.args(profiles), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input,
            env=self.environ(),
            cwd=ROOT,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"compose {' '.join(args)}: exit {done.returncode}\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def container(self, service: str) -> str:
        """The id of the service's (one) container, running or exited."""
        ids = self("ps", "-a", "-q", service).stdout.split()
        assert len(ids) == 1, (service, ids)
        return ids[0]

    def services_started(self) -> set[str]:
        names = set()
        for cid in self("ps", "-a", "-q").stdout.split():
            label = '{{index .Config.Labels "com.docker.compose.service"}}'
            names.add(docker("inspect", "-f", label, cid).stdout.strip())
        return names


@pytest.fixture
def compose(image: str, tmp_path: Path) -> Iterator[Any]:
    """`compose(override_dict)` -> a Compose project; every project is taken down (with
    its volumes) at the end, whatever happened."""
    made: list[Compose] = []

    def make(override: dict[str, Any], **env: str) -> Compose:
        path = tmp_path / f"override-{len(made)}.yml"
        path.write_text(yaml.safe_dump(override, sort_keys=False))
        project = f"citepipe-test-{uuid.uuid4().hex[:8]}"
        made.append(Compose(project, path, env))
        return made[-1]

    yield make
    for c in made:
        with contextlib.suppress(Exception):
            c("down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=120)


def health(cid: str) -> str:
    """`healthy`, `unhealthy`, `starting`, `none` (no healthcheck) or `exited`."""
    fmt = "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}"
    status, check = docker("inspect", "-f", fmt, cid).stdout.split()
    return check if status == "running" else "exited"


def wait_healthy(cid: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    state = health(cid)
    while state in ("starting",) and time.monotonic() < deadline:
        time.sleep(0.5)
        state = health(cid)
    if state != "healthy":
        logs = docker("logs", "--tail", "30", cid, check=False)
        raise AssertionError(f"{cid[:12]} is {state}\n{logs.stdout}{logs.stderr}")


def copy_store(cid: str, dest: Path) -> Path:
    """The container's /data (its volume or bind mount) copied out: the store's own
    contents, read with sqlite3 here."""
    docker("cp", f"{cid}:/data", str(dest))
    return dest


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def statements(reports: Mapping[str, SiteReport]) -> list[tuple[Any, ...]]:
    """The ground truth, as rows of the statements table (sorted, with repeats)."""
    return sorted(
        (r.doi, s.citing_doi, s.snippet, s.section, s.type, s.confidence)
        for r in reports.values()
        for s in r.statements
    )


def stored_statements(db: Path) -> list[tuple[Any, ...]]:
    return sorted(
        query(
            db, "select cited_doi, citing_doi, snippet, section, type, confidence from statements"
        )
    )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TIMINGS:
        text = ", ".join(f"{k} {v:.1f}" for k, v in sorted(TIMINGS.items()))
        terminalreporter.write_line(f"containers: {text}")
