"""`citepipe changes` and the digest (issue 22): WHEN, the document, the renderings, the
notify settings and their secret. The store side is in the contract suite, whole runs in
tests/acceptance/test_changes.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from citesite.epochs import next_epoch
from citesite.generator import generate
from pipeline.cli import build_parser
from pipeline.cli._base import merge_settings
from pipeline.config import load_settings
from pipeline.errors import ConfigError
from pipeline.logs import redact_url
from pipeline.models import (
    Completeness,
    CompletenessChange,
    NewNotice,
    NewStatement,
    TallyChange,
    WindowChanges,
)
from pipeline.ops.changes import Digest, Window, md, parse_when, render_markdown, render_text

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
HOOK = "https://hooks.example.com/services/T000/B000/s3cr3tT0ken"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", 12),
        ("#7", 7),
        ("7d", NOW - timedelta(days=7)),
        ("36h", NOW - timedelta(hours=36)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T03:00", datetime(2026, 12, 1, 3, tzinfo=UTC)),
        ("2026-12-01T03:00+01:00", datetime(2026, 12, 1, 2, tzinfo=UTC)),
    ],
)
def test_when_is_a_run_a_time_or_an_age(text: str, expected: int | datetime) -> None:
    assert parse_when(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "-7d", "7x", "", "2026-13-01"])
def test_a_bad_when_names_its_flag(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--until "):
        parse_when(text, NOW, "--until")


def statement(cited: str, citing: str, kind: str | None) -> NewStatement:
    return NewStatement(cited, citing, f"T {citing}", kind, "Results", 0.5, f"s_{citing} [1]")  # type: ignore[arg-type]


def test_the_digest_lists_changed_papers_contrasting_news_first() -> None:
    changes = WindowChanges(
        statements=(
            statement("10.1/a", "10.9/1", "mentioning"),
            statement("10.1/b", "10.9/2", "supporting"),
            statement("10.1/b", "10.9/3", "contrasting"),
        ),
        tallies=(
            TallyChange("10.1/a", (0, 1, 0), (0, 2, 0)),
            TallyChange("10.1/c", (1, 1, 1), (1, 1, 1)),  # moved elsewhere: not listed
            TallyChange("10.1/d", None, (0, 0, 0)),  # new to the store
        ),
        notices=(NewNotice("10.1/e", "Retracted", None, None, None),),
        titles={"10.1/a": "A", "10.1/b": "B", "10.1/c": "C", "10.1/d": None, "10.1/e": "E"},
    )
    digest = Digest.build(Window(NOW - timedelta(days=1), NOW), changes)
    doc = digest.as_json()
    assert [p["doi"] for p in doc["papers"]] == ["10.1/b", "10.1/e", "10.1/a", "10.1/d"]
    assert doc["since"] == "2026-12-01T03:00:00Z" and doc["until"] == "2026-12-02T03:00:00Z"
    assert doc["totals"] == {
        "papers": 4,
        "new_statements": 3,
        "supporting": 1,
        "mentioning": 1,
        "contrasting": 1,
        "notices": 1,
        "became_incomplete": 0,
        "complete_again": 0,
    }
    b = doc["papers"][0]
    assert [s["type"] for s in b["statements"]] == ["contrasting", "supporting"]
    assert b["tallies"] is None  # no tally history row in the window
    assert doc["papers"][1]["notices"] == [{"status": "Retracted", "date": None}]
    assert doc["papers"][3]["tallies"] == {
        "before": None,
        "after": {"supporting": 0, "mentioning": 0, "contrasting": 0},
    }
    text, markdown = render_text(digest), render_markdown(digest)
    assert text.splitlines()[0].endswith(
        "4 papers, 3 new statements (1 contrasting, 1 supporting, 1 mentioning), 1 notice"
    )
    assert "mentioning 1 -> 2" in text and "mentioning 1 → 2" in markdown
    assert "s_10.9/3 [1]" in text and md("s_10.9/3 [1]") == r"s\_10.9/3 \[1\]"
    assert md("s_10.9/3 [1]") in markdown
    empty = Digest.build(Window(NOW, NOW), WindowChanges((), (), (), {}))
    assert empty.empty and "nothing changed" in render_text(empty)


def test_reports_that_became_incomplete_or_complete_again_are_listed() -> None:
    whole, cut = Completeness(False), Completeness(True, "fewer statements: 3 of 6")
    changes = WindowChanges(
        (),
        (),
        (),
        {"10.1/f": "F", "10.1/g": "G", "10.1/h": "H"},
        completeness=(
            CompletenessChange("10.1/f", whole, cut),
            CompletenessChange("10.1/g", Completeness(True, "cycle: page 2"), whole),
            CompletenessChange("10.1/h", cut, cut),  # no change: not listed
        ),
    )
    digest = Digest.build(Window(NOW - timedelta(days=1), NOW), changes)
    doc = digest.as_json()
    assert [(p["doi"], p["completeness"]) for p in doc["papers"]] == [
        ("10.1/f", {"before": "complete", "after": "incomplete: fewer statements: 3 of 6"}),
        ("10.1/g", {"before": "incomplete: cycle: page 2", "after": "complete"}),
    ]
    assert doc["totals"]["became_incomplete"] == 1 and doc["totals"]["complete_again"] == 1
    assert doc["papers"][0]["tallies"] is None and doc["papers"][0]["statements"] == []
    text, markdown = render_text(digest), render_markdown(digest)
    assert text.splitlines()[0].endswith(
        "2 papers, 0 new statements, 1 report incomplete, 1 report complete again"
    )
    assert "  report: complete -> incomplete: fewer statements: 3 of 6" in text
    assert "  report: incomplete: cycle: page 2 -> complete" in text
    assert "- **Report:** complete → incomplete: fewer statements: 3 of 6" in markdown
    assert str(Completeness(True)) == "incomplete"


def test_a_webhook_url_is_shown_without_its_secret() -> None:
    assert redact_url(HOOK) == "https://hooks.example.com/***"
    assert redact_url("http://user:pw@127.0.0.1:9/h?token=x") == "http://127.0.0.1:9/***"
    with pytest.raises(ConfigError) as bad:
        load_settings(env={}, overrides={"notify_url": "ftp://x/" + "s3cr3tT0ken"})
    assert "s3cr3tT0ken" not in str(bad.value) and str(bad.value).startswith("notify_url:")
    with pytest.raises(ConfigError, match=r"^notify_format: must be one of json, slack"):
        load_settings(env={}, overrides={"notify_format": "xml"})


def test_notify_and_digest_are_flags_of_the_runs_that_fetch() -> None:
    parser = build_parser()
    for argv in (["crawl"], ["backfill", "-"], ["worker", "--burst"]):
        args = parser.parse_args([*argv, "--notify", HOOK, "--digest", "d.md"])
        settings = merge_settings(args._command, args)
        assert (settings.notify_url, settings.digest) == (HOOK, "d.md")
    with pytest.raises(SystemExit):
        parser.parse_args(["status", "--notify", HOOK])


def test_the_next_epoch_changes_some_reports_and_issues_a_notice() -> None:
    reports = {r.doi: r for r in generate(24, 22)}
    epoch = next_epoch(reports)
    assert epoch == next_epoch(reports)  # deterministic
    assert set(epoch.new_statements) < set(epoch.reports)  # one report moves tallies only
    for doi, new in epoch.new_statements.items():
        report, old = epoch.reports[doi], reports[doi]
        assert report.statements == old.statements + new
        assert report.tallies.contrasting == old.tallies.contrasting + sum(  # type: ignore[operator]
            s.type == "contrasting" for s in new
        )
    (notice,) = epoch.notices
    assert notice.status == "Retracted" and notice.doi in epoch.new_statements
    assert next_epoch(reports, 2).reports.keys() == epoch.reports.keys()
    with pytest.raises(ValueError):
        next_epoch(reports, 0)
