"""Options for the whole suite: tests/containers runs only with `--containers`
(`make test-containers`), never in `make test` or `make test-all`."""

from __future__ import annotations

from pathlib import Path

import pytest

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
