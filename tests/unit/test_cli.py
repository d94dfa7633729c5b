"""The command line's surface: help per command, `parse -`, plurals in what it prints."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline import cli
from pipeline.summary import plural

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"
CRAWL_ONLY = ("--concurrency", "--request-delay", "--base-url", "--max-attempts", "--timeout")


def help_of(command: str) -> str:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text: str = sub.choices[command].format_help()
    return " ".join(text.split())  # argparse wraps lines anywhere


@pytest.mark.parametrize("command", ["parse", "status", "export"])
def test_read_only_commands_list_no_crawl_options(command: str) -> None:
    text = help_of(command)
    for flag in CRAWL_ONLY:
        assert flag not in text, (command, flag)


def test_demo_help_shows_the_defaults_demo_applies_and_no_base_url() -> None:
    text = help_of("demo")
    assert "--base-url" not in text
    assert "(default data/demo.sqlite, or the db setting when it is set)" in text
    assert (
        "--request-delay REQUEST_DELAY seconds between request starts to one host (default 0.0)"
        in text
    )
    assert "(default 8)" in text and "--force" in text


def test_backfill_help_shows_the_settings_defaults() -> None:
    text = help_of("backfill")
    assert "(default data/citepipe.sqlite)" in text
    assert "--concurrency CONCURRENCY pages in flight in this process (default 16)" in text
    assert (
        "--request-delay REQUEST_DELAY seconds between request starts to one host (default 1.0)"
        in text
    )


def test_site_help_lists_every_fault_kind() -> None:
    from citesite.faults import OPTIONS, PERMANENT_KINDS, TRANSIENT_KINDS

    text = help_of("site")
    for kind in (*TRANSIENT_KINDS, *PERMANENT_KINDS, *OPTIONS):
        assert kind in text, kind


def test_parse_dash_reads_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    html = next(SAMPLES.glob("*.html")).read_bytes()
    monkeypatch.setattr("sys.stdin", SimpleNamespace(buffer=io.BytesIO(html)))
    code = cli.main(["parse", "-", "--url", "https://scite.ai/reports/x"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["doi"] == "10.1038/bmt.2012.184"


@pytest.mark.parametrize(
    ("n", "word", "many", "text"),
    [
        (0, "job", None, "0 jobs"),
        (1, "job", None, "1 job"),
        (2, "bad line", None, "2 bad lines"),
        (1, "retry", "retries", "1 retry"),
        (3, "retry", "retries", "3 retries"),
    ],
)
def test_plural(n: int, word: str, many: str | None, text: str) -> None:
    assert plural(n, word, many) == text
