"""The compose services' exact commands and environment, run outside Docker against the
local citation site: each volume and /app/config are mapped to local folders. (On a real
engine: tests/containers, `make test-containers`.)"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import yaml

from citesite.dataset import demo_dataset_path, load_dataset
from citesite.epochs import next_epoch
from citesite.server import CitationSite

from .conftest import ROOT, expected_statements, query, run_cli, start_cli

_VAR = re.compile(r"\$\{(\w+):-([^}]*)\}")


def service(name: str, data: Path, base_url: str) -> tuple[list[str], dict[str, str]]:
    """A compose service's command and environment, as the container would see them: its
    volume is the folder `data/<volume name>`."""
    svc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][
        name
    ]
    [volume] = [v.split(":") for v in svc["volumes"]]
    folder = data / volume[0]
    folder.mkdir(exist_ok=True)
    env = {k: _VAR.sub(lambda m: m.group(2), str(v)) for k, v in svc["environment"].items()}
    env = {k: v.replace(f"{volume[1]}/", f"{folder}/") for k, v in env.items()}
    env["CITEPIPE_BASE_URL"] = base_url  # the site's address outside the compose network
    env["CITEPIPE_LEASE_SECONDS"] = "3"
    cmd = [arg.replace("/app/config/", f"{ROOT}/config/") for arg in svc["command"]]
    return cmd, env


def with_os_env(env: dict[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CITEPIPE_")}
    return {**base, **env}


async def test_the_demo_and_the_worker_each_keep_their_own_store(tmp_path: Path) -> None:
    """The demo profile's backfill and the crawl profile's long-running worker at once:
    the demo stores every statement in its volume, the worker never sees a demo job (it
    ends with SIGTERM, exit 0, an empty queue in its own volume)."""
    reps = load_dataset(demo_dataset_path())
    async with CitationSite(reps) as site:
        name = f"http://localhost:{site.port}"  # a name, as `http://site:8080` in compose
        worker_cmd, worker_env = service("worker", tmp_path, name)
        demo_cmd, demo_env = service("demo-worker", tmp_path, name)
        assert worker_env["CITEPIPE_DB"] != demo_env["CITEPIPE_DB"]
        worker_env["CITEPIPE_REQUEST_DELAY"] = "0"  # the real-site default is 1 s
        worker = await start_cli(*worker_cmd, env=with_os_env(worker_env))
        backfill = await run_cli(*demo_cmd, env=with_os_env(demo_env), timeout=120)
        assert backfill.code == 0, backfill.err[-2000:]
        await asyncio.sleep(0.5)
        if worker.returncode is not None:  # it died: show why, not a ProcessLookupError
            _, err = await worker.communicate()
            raise AssertionError(f"worker exited {worker.returncode}: {err.decode()[-2000:]}")
        worker.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(worker.communicate(), 20)
    assert worker.returncode == 0, err.decode()[-2000:]
    assert b'"worker stopped"' in err  # JSON logs, as compose asks
    demo_db, worker_db = Path(demo_env["CITEPIPE_DB"]), Path(worker_env["CITEPIPE_DB"])
    assert demo_db == tmp_path / "demo-data" / "demo.sqlite"
    assert worker_db == tmp_path / "citepipe-data" / "citepipe.sqlite"
    rows = query(
        demo_db, "select cited_doi, citing_doi, snippet, section, type, confidence from statements"
    )
    assert set(rows) == expected_statements(reps)
    assert query(demo_db, "select count(*) from jobs where state != 'done'") == [(0,)]
    assert {k for (k,) in query(demo_db, "select kind from runs")} == {"backfill"}
    assert query(worker_db, "select count(*) from jobs") == [(0,)]
    assert {k for (k,) in query(worker_db, "select kind from runs")} == {"worker"}


def test_the_image_wheel_carries_its_data_and_runs_outside_the_source_tree(
    tmp_path: Path,
) -> None:
    """What the Dockerfile installs: the wheel `pip wheel .` builds. Unpacked away from the
    checkout (no `config/`, no source tree), it must still hold the SQL, the selectors and
    the demo data: the demo crawl and the healthcheck run from it alone."""
    # The build context of the Dockerfile's first stage, and nothing else (a stale build/
    # in the checkout would hide a file missing from package-data).
    src = tmp_path / "src"
    for package in ("pipeline", "citesite"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = wheels.glob("citepipe-*.whl")
    installed = tmp_path / "site-packages"
    zipfile.ZipFile(wheel).extractall(installed)
    work = tmp_path / "app"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITEPIPE_")}
    env |= {"PYTHONPATH": str(installed), "CITEPIPE_DB": str(work / "c.sqlite")}

    def citepipe(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pipeline", *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import pipeline; print(pipeline.__file__)"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(installed))  # the wheel, not the checkout
    demo = citepipe("demo", "--db", str(work / "c.sqlite"))
    assert demo.returncode == 0, demo.stderr[-2000:]
    statements = query(work / "c.sqlite", "select count(*) from statements")[0][0]
    reps = load_dataset(demo_dataset_path())
    epoch = next_epoch(reps)  # the demo's crawl after the site's next epoch
    gained = sum(len(new) for new in epoch.new_statements.values())
    assert statements == len(expected_statements(reps)) + gained
    health = citepipe("status", "--json")
    assert health.returncode == 0, health.stderr[-2000:]
