"""The performance race (`benchmarks/race.py`) runs end to end on a tiny site: every tool
stores the same rows and the table is printed. No timing is asserted: the figures go into
the notes, from `make bench`."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from .conftest import ROOT


@pytest.mark.slow
def test_the_race_runs_and_every_tool_stores_the_same_rows() -> None:
    tools = ["citepipe", "citepipe-p2", "bare"]
    if importlib.util.find_spec("scrapy") is not None:  # the optional `bench` extra
        tools += ["scrapy-parsel", "scrapy-citepipe"]
    done = subprocess.run(
        [
            *(sys.executable, str(ROOT / "benchmarks" / "race.py")),
            *("--reports", "12", "--rounds", "2", "--concurrency", "4"),
            *("--tools", ",".join(tools)),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "every tool stored the same" in done.stdout
    for tool in tools:
        assert f"| {tool} |" in done.stdout, tool
    assert "citepipe / bare:" in done.stdout
