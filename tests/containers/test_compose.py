"""The shipped compose file on a real engine: the demo profile stores the whole demo data
set, `worker` and `scheduler` become healthy, SIGTERM drains and nothing is lost.
Everything is proved from the store's own contents, copied out of its volume."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from citesite.dataset import demo_dataset_path, load_dataset, page_count
from citesite.generator import GeneratedReports

from .conftest import (
    COMPOSE_FILE,
    IMAGE,
    TIMINGS,
    compose_command,
    copy_store,
    docker,
    free_port,
    health,
    host_network_override,
    query,
    site_command,
    statements,
    stored_statements,
    wait_healthy,
)


def test_demo_profile_stores_the_whole_demo_data_set(compose: Any, tmp_path: Path) -> None:
    """`docker compose --profile demo up`: the site reached by its service name, every
    page and every statement stored in the demo's own volume, exit 0, no dead job; the
    crawl profile's `worker` and `scheduler` never start; the finished one-shot
    demo-worker has no health state."""
    port = free_port()
    c = compose(host_network_override(port))
    started = time.monotonic()
    up = c("up", "--no-build", "--exit-code-from", "demo-worker", profiles=("demo",), timeout=300)
    TIMINGS["demo_up_s"] = time.monotonic() - started
    assert up.returncode == 0
    assert c.services_started() == {"site", "demo-worker"}
    worker = c.container("demo-worker")
    assert health(worker) == "exited"
    assert docker(
        "inspect", "-f", "{{.State.ExitCode}} {{.State.Health}}", worker
    ).stdout.split() == [
        "0",
        "<nil>",
    ]
    db = copy_store(worker, tmp_path / "data") / "demo.sqlite"
    truth = load_dataset(demo_dataset_path())
    pages = sum(page_count(r) for r in truth.values())
    assert (pages, len(statements(truth))) == (77, 1431)  # the numbers
    assert stored_statements(db) == statements(truth)
    assert query(db, "select state, count(*) from jobs group by state") == [("done", pages)]
    assert sorted(d for (d,) in query(db, "select distinct doi from jobs")) == sorted(truth)
    urls = {u for (u,) in query(db, "select report_url from papers where report_url is not null")}
    assert urls == {f"http://site:{port}/reports/{r.slug}" for r in truth.values()}
    assert query(db, "select kind from runs") == [("backfill",)]
    # nothing cut short; the demo's reports are samples of real ones, so some hold fewer
    # statements than their tallies count, which is flagged (and is all that is)
    reasons = {r.split(":")[0] for (r,) in query(db, INCOMPLETE)}
    assert reasons <= {"fewer statements than the report counts"}


def test_demo_links_to_another_address_are_recorded_not_silent(
    compose: Any, tmp_path: Path
) -> None:
    """The issue's old failure, now loud: a site whose links name an address the crawl
    was not given (here `--public-url`; before the Host fix, its bound 0.0.0.0) stores
    page 1 of each report and marks every longer report incomplete with the reason."""
    port = free_port()
    elsewhere = f"http://elsewhere.invalid:{port}"
    site = {"command": site_command(port, "--public-url", elsewhere)}
    c = compose(host_network_override(port, {"site": site}))
    c("up", "--no-build", "--exit-code-from", "demo-worker", profiles=("demo",), timeout=300)
    db = copy_store(c.container("demo-worker"), tmp_path / "data") / "demo.sqlite"
    truth = load_dataset(demo_dataset_path())
    longer = {d for d, r in truth.items() if page_count(r) > 1}
    assert longer and query(db, "select count(*) from jobs") == [(len(truth),)]  # page 1s
    off_site = query(db, f"{INCOMPLETE} and incomplete_reason like 'next page off the site%'")
    assert len(off_site) == len(longer)
    assert {d for (d,) in query(db, "select doi from papers where incomplete = 1 and "
            "incomplete_reason like 'next page off the site%'")} == longer  # fmt: skip


INCOMPLETE = "select incomplete_reason from papers where incomplete = 1"


def site_stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/__site/stats", timeout=5) as r:
        stats: dict[str, Any] = json.load(r)
        return stats


def one_off_like(cid: str, *args: str, stdin: Path) -> subprocess.Popen[str]:
    """`docker run` of the image with the container's environment, volume and network: a
    one-off backfill into the worker's store (docker-compose v1's `run` cannot use the
    host network)."""
    fmt = "{{json .Config.Env}}|{{json .Mounts}}|{{json .HostConfig.ExtraHosts}}"
    env, mounts, hosts = (
        json.loads(part) for part in docker("inspect", "-f", fmt, cid).stdout.split("|")
    )
    flags = [f for e in env if e.startswith("CITEPIPE_") for f in ("-e", e)]
    flags += [f for m in mounts for f in ("-v", f"{m['Name']}:{m['Destination']}")]
    flags += [f for h in hosts for f in ("--add-host", h)]
    with stdin.open("rb") as source:
        return subprocess.Popen(
            ["docker", "run", "--rm", "-i", "--network", "host", *flags, IMAGE, *args],
            stdin=source,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def test_worker_and_scheduler_become_healthy_and_sigterm_drains(
    compose: Any, tmp_path: Path
) -> None:
    """The crawl profile pointed at the local site (slow pages: work stays in flight).
    A backfill (`compose run worker backfill -`) and the long-running worker share the
    queue; the worker is sent SIGTERM mid-crawl: it exits 0 with its leases given back,
    the backfill finishes the rest, and the store holds every statement once."""
    port = free_port()
    truth = dict(GeneratedReports(60, 5).items())
    env = {
        "CITEPIPE_BASE_URL": f"http://site:{port}",
        "CITEPIPE_REQUEST_DELAY": "0",
        "CITEPIPE_CONCURRENCY": "4",
        "CITEPIPE_PER_HOST_CONCURRENCY": "8",
        "CITEPIPE_LEASE_SECONDS": "10",
    }
    site = {
        "command": site_command(
            port, "--generate", "60", "--seed", "5", "--faults", "slow=1,delay=0.15"
        )
    }
    never = {"environment": {"CITEPIPE_SCHEDULE": "0 0 1 1 *"}}  # no crawl of its own
    c = compose(host_network_override(port, {"site": site, "scheduler": never}), **env)
    c("up", "-d", "--no-build", "site", "worker", "scheduler", timeout=300)
    worker, scheduler = c.container("worker"), c.container("scheduler")
    wait_healthy(worker)
    wait_healthy(scheduler)
    dois = tmp_path / "dois.txt"
    dois.write_text("".join(d + "\n" for d in truth))
    backfill = one_off_like(worker, "backfill", "-", stdin=dois)
    started = time.monotonic()
    while site_stats(port)["requests"] < 40 and time.monotonic() < started + 60:
        time.sleep(0.2)
    TIMINGS["sigterm_after_s"] = time.monotonic() - started
    c("kill", "-s", "SIGTERM", "worker")
    assert docker("wait", worker, timeout=60).stdout.strip() == "0"
    _, err = backfill.communicate(timeout=240)
    assert backfill.returncode == 0, err[-3000:]
    c("stop", "-t", "20", "scheduler")
    assert docker("inspect", "-f", "{{.State.ExitCode}}", scheduler).stdout.strip() == "0"
    logs = docker("logs", worker).stderr
    assert '"worker stopped"' in logs
    db = copy_store(worker, tmp_path / "data") / "citepipe.sqlite"
    pages = sum(page_count(r) for r in truth.values())
    assert stored_statements(db) == statements(truth)
    assert query(db, "select state, count(*) from jobs group by state") == [("done", pages)]
    runs = {
        kind: json.loads(summary)
        for kind, summary in query(db, "select kind, summary from runs where kind != 'crawl'")
    }
    assert set(runs) == {"worker", "backfill"}
    assert runs["worker"]["stopped_by_signal"] == 15 and runs["worker"]["exit_code"] == 0
    assert 0 < runs["worker"]["pages"] < pages  # it worked, and was stopped mid-crawl
    assert runs["worker"]["pages"] + runs["backfill"]["pages"] == pages  # each page once


def test_the_shipped_file_is_an_ordinary_compose_file(engine: None) -> None:
    """Valid for compose as it is (no override), on the default network: no host
    networking, no host names, no published ports in what we ship."""
    done = subprocess.run(
        [*compose_command(), "-f", str(COMPOSE_FILE), "--profile", "demo", "--profile", "crawl",
         "config"],
        capture_output=True, text=True, timeout=60, cwd=COMPOSE_FILE.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert {"worker", "scheduler", "site", "demo-worker"} <= set(config["services"])
    for name, svc in config["services"].items():
        assert not {"network_mode", "extra_hosts", "ports"} & set(svc), name
