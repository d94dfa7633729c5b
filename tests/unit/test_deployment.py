"""The container files, checked without a Docker engine: structure, commands, settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from pipeline.cli import build_parser
from pipeline.config import ENV_PREFIX, setting_names

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)  # type: ignore[arg-type]


def volumes_of(svc: dict[str, Any]) -> set[str]:
    return {v.split(":", 1)[0] for v in svc.get("volumes", [])}


def test_three_profiles_each_with_its_own_store() -> None:
    """demo and crawl never share a store: nothing of one can claim the other's jobs, and
    no service starts without a profile (a plain `up` crawls nothing, scite.ai least)."""
    c = compose()
    services = c["services"]
    assert {n: s.get("profiles") for n, s in services.items()} == {
        "worker": ["crawl"],
        "scheduler": ["crawl"],
        "site": ["demo"],
        "demo-worker": ["demo"],
        "postgres": ["postgres"],
        "pg-worker": ["postgres"],
        "pg-scheduler": ["postgres"],
    }
    assert set(c["volumes"]) == {"citepipe-data", "demo-data", "citepipe-pg"}
    assert volumes_of(services["worker"]) == volumes_of(services["scheduler"]) == {"citepipe-data"}
    assert volumes_of(services["demo-worker"]) == {"demo-data"}
    assert volumes_of(services["site"]) == set()
    assert services["scheduler"]["command"][0] == "schedule"
    assert services["worker"]["command"] == ["worker"]


def test_the_demo_crawls_only_the_local_site() -> None:
    services = compose()["services"]
    demo = services["demo-worker"]
    assert demo["environment"]["CITEPIPE_BASE_URL"] == "http://site:8080"
    assert demo["environment"]["CITEPIPE_DB"] == "/data/demo.sqlite"
    assert demo["depends_on"] == {"site": {"condition": "service_healthy"}}
    assert "--public-url" not in services["site"]["command"]  # links follow the Host header
    assert "8080" in " ".join(services["site"]["healthcheck"]["test"])


def test_the_one_shot_demo_worker_has_no_healthcheck_and_no_restart() -> None:
    demo = compose()["services"]["demo-worker"]
    assert demo["healthcheck"] == {"disable": True}
    assert demo["restart"] == "no"


def test_dockerignore_keeps_local_files_out_of_the_image() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "data", "config/citepipe.toml", "**/__pycache__"} <= ignored
    assert not ignored & {"pipeline", "citesite", "config", "pyproject.toml", "README.md"}


def citepipe_services() -> dict[str, Any]:
    """The services that run citepipe (not the database of the `postgres` profile)."""
    return {
        n: s
        for n, s in compose()["services"].items()
        if "image" not in s or "citepipe" in s["image"]
    }


def test_postgres_profile_scales_workers_on_one_database() -> None:
    services = compose()["services"]
    assert services["postgres"]["profiles"] == ["postgres"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert "citepipe-pg" in compose()["volumes"]
    for name in ("pg-worker", "pg-scheduler"):
        svc = services[name]
        assert svc["profiles"] == ["postgres"]
        assert svc["environment"]["CITEPIPE_DB"].startswith("postgresql://")
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "container_name" not in svc and "ports" not in svc  # --scale works
    assert services["pg-worker"]["command"] == ["worker"]


def test_every_command_exists_and_parses() -> None:
    parser = build_parser()
    known = subcommands()
    for name, svc in citepipe_services().items():
        cmd = svc.get("command", ["worker"])
        assert cmd[0] in known, f"{name}: {cmd[0]} is not a citepipe command"
        parser.parse_args(cmd)  # raises SystemExit on a bad flag
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD ["):
            parser.parse_args(yaml.safe_load(line[4:]))


def test_every_env_name_is_a_setting() -> None:
    names = set(setting_names())
    found = 0
    for svc in citepipe_services().values():
        for key in svc.get("environment") or {}:
            assert key.startswith(ENV_PREFIX), key
            assert key[len(ENV_PREFIX) :].lower() in names, f"{key} is not a setting"
            found += 1
    for key in re.findall(r"\b(CITEPIPE_[A-Z_]+)=", (ROOT / "Dockerfile").read_text()):
        assert key[len(ENV_PREFIX) :].lower() in names, key
        found += 1
    assert found > 5


def test_dockerfile_is_slim_non_root_with_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1\d-slim", text, re.M)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0")
    health = re.search(r"^HEALTHCHECK [^\[]*?CMD (\[[^\]]*\])", text, re.M | re.S)
    assert health is not None
    hc = yaml.safe_load(health.group(1))
    assert hc[0] == "citepipe" and hc[1] in subcommands()
    assert 'ENTRYPOINT ["citepipe"]' in text
    assert "[test]" not in text  # runtime dependencies only


def test_seed_files_referenced_by_compose_exist() -> None:
    for svc in compose()["services"].values():
        for arg in svc.get("command", []):
            if arg.startswith("/app/config/"):
                assert (ROOT / "config" / arg.removeprefix("/app/config/")).is_file(), arg


# ---------------------------------------------------------------- issue 25, point 13


def pyproject() -> dict[str, Any]:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_license_is_an_spdx_string_for_a_setuptools_that_reads_it() -> None:
    """`license = { text = ... }` made three deprecation banners on every install."""
    data = pyproject()
    assert data["project"]["license"] == "MIT"
    requires = " ".join(data["build-system"]["requires"])
    found = re.search(r"setuptools>=([0-9]+)", requires)
    assert found is not None and int(found.group(1)) >= 77  # SPDX license: setuptools 77


def test_every_install_hint_names_an_extra_that_installs_from_the_checkout() -> None:
    """`pip install 'citepipe[plot]'` finds no package (citepipe is not on PyPI), and a
    non-editable `pip install '.[x]'` replaces the editable install."""
    extras = set(pyproject()["project"]["optional-dependencies"])
    hints = [
        m
        for path in (ROOT / "pipeline").rglob("*.py")
        for m in re.findall(r"pip install [^\"`)]*", path.read_text())
    ]
    assert hints
    for hint in hints:
        found = re.search(r"pip install -e '\.\[([a-z,]+)\]'", hint)
        assert found is not None, hint
        assert set(found.group(1).split(",")) <= extras, hint


def make_dry_run(target: str, tmp_path: Path) -> str:
    """What `make TARGET` would run on a fresh clone (a venv that does not exist yet)."""
    import subprocess

    done = subprocess.run(
        ["make", "-n", "-B", target, f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_make_demo_installs_the_package_without_the_test_tools(tmp_path: Path) -> None:
    demo = make_dry_run("demo", tmp_path)
    assert "pip install --quiet -e ." in demo and "citepipe demo" in demo
    assert "[test]" not in demo
    for target in ("test", "test-all", "lint", "typecheck", "dev"):
        assert "-e '.[test]'" in make_dry_run(target, tmp_path), target
    assert "-e '.[parquet,plot,datasette,network,bibliography]'" in make_dry_run("extras", tmp_path)
