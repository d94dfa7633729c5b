"""The image alone (`docker run`): the demo in its data volume, and the store's volume
and bind-mount permissions as the README documents them."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from citesite.dataset import demo_dataset_path, load_dataset
from citesite.epochs import next_epoch

from .conftest import UID, docker, query, statements, stored_statements


def citepipe(
    image: str, *args: str, mounts: tuple[str, ...] = (), user: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`docker run --rm` of the image with no network at all (loopback only inside)."""
    flags = [f for m in mounts for f in ("-v", m)]
    if user is not None:
        flags += ["--user", user]
    return docker("run", "--rm", "--network", "none", *flags, image, *args, check=False)


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A host folder to bind-mount (root-owned, 0755, like `mkdir data` as root)."""
    folder = Path(tempfile.mkdtemp(prefix="citepipe-bind-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def test_docker_run_demo_stores_into_the_data_volume(image: str) -> None:
    """`docker run citepipe demo`: the store goes to /data (CITEPIPE_DB), not under the
    root-owned working folder; every statement of the demo set is there."""
    volume = f"citepipe-test-{uuid.uuid4().hex[:8]}"
    try:
        run = citepipe(image, "demo", mounts=(f"{volume}:/data",))
        assert run.returncode == 0, run.stderr[-3000:]
        assert "stored in /data/citepipe.sqlite" in run.stdout
        look = docker(
            "run", "--rm", "--network", "none", "-v", f"{volume}:/data", "--entrypoint",
            "stat", image, "-c", "%u %a", "/data", "/data/citepipe.sqlite",
        )  # fmt: skip
        assert look.stdout.split() == [str(UID), "755", str(UID), "644"]
    finally:
        docker("volume", "rm", "-f", volume, check=False)


def test_a_bind_mount_owned_by_the_image_user_holds_the_store(image: str, host_dir: Path) -> None:
    os.chown(host_dir, UID, UID)
    run = citepipe(image, "demo", mounts=(f"{host_dir}:/data",))
    assert run.returncode == 0, run.stderr[-3000:]
    db = host_dir / "citepipe.sqlite"
    assert db.stat().st_uid == UID
    reports = load_dataset(demo_dataset_path())
    after = {**reports, **next_epoch(reports).reports}  # the demo's crawl after next epoch
    assert stored_statements(db) == statements(after)
    assert query(db, "select count(*) from jobs where state != 'done'") == [(0,)]


def test_a_bind_mount_with_another_user_runs_as_that_user(image: str, host_dir: Path) -> None:
    """`docker run --user UID` for a host folder owned by UID (the README's other way)."""
    os.chown(host_dir, 4321, 4321)
    contact = "citepipe-tests/1.0 (mailto:ci@citepipe.invalid)"  # not the placeholder
    run = citepipe(
        image, "crawl", "--user-agent", contact, mounts=(f"{host_dir}:/data",), user="4321:4321"
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (host_dir / "citepipe.sqlite").stat().st_uid == 4321


def test_a_bind_mount_the_image_user_cannot_write_says_so(image: str, host_dir: Path) -> None:
    """Not "unable to open database file": one line with the permission, the uid and
    the cure, exit 2, nothing written into the folder."""
    run = citepipe(image, "crawl", mounts=(f"{host_dir}:/data",))
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines() == [
        f"citepipe: configuration error: db: permission denied: uid {UID} cannot write the "
        "store folder /data (SQLite makes citepipe.sqlite and its -wal and -shm files there); "
        f"make it writable by uid {UID}, e.g. `chown {UID} /data`"
    ]
    assert list(host_dir.iterdir()) == []


def test_a_read_only_mount_says_so(image: str, host_dir: Path) -> None:
    os.chown(host_dir, UID, UID)
    run = citepipe(image, "crawl", mounts=(f"{host_dir}:/data:ro",))
    assert run.returncode == 2, run.stderr
    line = run.stderr.strip()
    assert "\n" not in line
    assert line.endswith(
        "db: cannot write the store folder /data: it is on a read-only file system "
        "(a read-only mount?)"
    )
    assert stat.S_IMODE(host_dir.stat().st_mode) == 0o755 and list(host_dir.iterdir()) == []
