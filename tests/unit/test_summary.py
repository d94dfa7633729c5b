"""The end-of-run summary: what people read and the one line log collectors parse."""

from __future__ import annotations

import json
from collections import Counter

from pipeline.models import DeadReason, RunCounters, Stats
from pipeline.runs.summary import EXIT_INCOMPLETE, InputTally, RunSummary


def stats(dead: dict[str, int] | None = None) -> Stats:
    dead = dead or {}
    return Stats(
        jobs_by_state={
            "queued": 0,
            "leased": 0,
            "done": 5,
            "failed": 0,
            "dead": sum(dead.values()),
        },
        dead_by_reason=tuple(DeadReason(r, n) for r, n in dead.items()),
        incomplete_reports=len(dead),
        rows_by_table={"papers": 3, "statements": 40},
    )


def counters(pages: int = 5, dead: dict[str, int] | None = None) -> RunCounters:
    return RunCounters(pages_done=pages, statements=40, dead=Counter(dead or {}))


def machine_line(text: str) -> dict[str, object]:
    [line] = [x for x in text.splitlines() if x.startswith("citepipe-summary ")]
    parsed: dict[str, object] = json.loads(line.removeprefix("citepipe-summary "))
    return parsed


def test_an_input_run_shows_its_input_and_not_a_second_enqueued_line() -> None:
    inputs = InputTally(lines=7, dois=6, bad_lines=1, enqueued=6)
    text = RunSummary("backfill", counters(), stats(), inputs, statements_before=0).render()
    assert "input:      6 DOIs, 1 bad line, 6 jobs queued" in text
    assert "enqueued:" not in text and "dead before" not in text
    data = machine_line(text)
    assert data["exit_code"] == EXIT_INCOMPLETE and data["bad_lines"] == 1
    assert data["pages"] == 5 and data["statements_stored"] == 40


def test_a_run_without_input_lines_shows_what_it_queued() -> None:
    text = RunSummary("crawl", counters(), stats(), InputTally(enqueued=4)).render()
    assert "enqueued:   4 jobs" in text and "input:" not in text


def test_dead_before_and_dead_this_run_are_told_apart() -> None:
    inputs = InputTally(lines=2, dois=2, enqueued=1, already_dead=Counter({"not found (404)": 1}))
    summary = RunSummary(
        "backfill",
        counters(dead={"broken page: no title": 1}),
        stats({"not found (404)": 1, "broken page: no title": 1}),
        inputs,
    )
    text = summary.render()
    assert "dead before: 1 job of the input died in an earlier run" in text
    assert "dead:       not found (404): 1; broken page: no title: 1" in text
    data = machine_line(text)
    assert data["already_dead"] == {"not found (404)": 1}
    assert data["dead_this_run"] == {"broken page: no title": 1}
    assert data["dead_total"] == {"not found (404)": 1, "broken page: no title": 1}


def test_many_dead_reasons_show_the_commonest_and_how_many_more() -> None:
    """A bug whose message names each page makes a reason per job: the summary's `dead:`
    line shows the commonest few, says how many more, and the JSON line keeps them all."""
    dead = {f"internal error: KeyError: 'page {i}'": 1 for i in range(8)}
    dead = {"not found (404)": 3, **dead}
    text = RunSummary("backfill", counters(dead=dead), stats(dead)).render()
    [line] = [x for x in text.splitlines() if x.startswith("  dead:")]
    assert line.startswith(
        "  dead:       not found (404): 3; internal error: KeyError: 'page 0': 1"
    )
    assert line.count("internal error") == 4
    assert line.endswith("; 4 more reasons (`citepipe status` lists them)")
    assert len(machine_line(text)["dead_total"]) == 9  # type: ignore[arg-type]


def test_statements_stored_counts_the_new_rows_not_the_statements_read_again() -> None:
    """832 statements read, 681 in the store: the summary said 832 stored."""
    summary = RunSummary(
        "backfill", RunCounters(pages_done=5, statements=50), stats(), statements_before=10
    )
    text = summary.render()
    assert "statements: 30 new in the store this run (50 statements read; 20 already stored)" in (
        text
    )
    data = machine_line(text)
    assert data["statements_stored"] == 30 and data["statements_read"] == 50


def test_the_summary_states_its_exit_code_and_why() -> None:
    inputs = InputTally(lines=7, dois=6, bad_lines=1, enqueued=6)
    text = RunSummary("backfill", counters(dead={"not found (404)": 2}), stats(), inputs).render()
    assert "  exit code:  1 (2 jobs of the input ended dead" in text
    assert "; 1 bad input line)" in text
    ok = RunSummary("backfill", counters(), stats(), InputTally(lines=6, dois=6, enqueued=6))
    assert "  exit code:  0 (every job done)" in ok.render()
    assert machine_line(ok.render())["exit_reason"] == "every job done"
    stopped = RunSummary("crawl", counters(), stats(), stopped_by=15)
    assert "  exit code:  143 (stopped by signal 15; the rest stays queued)" in stopped.render()


def test_the_json_line_can_be_left_out() -> None:
    text = RunSummary("backfill", counters(), stats()).render(json_line=False)
    assert "citepipe-summary" not in text and "exit code:" in text


def test_reports_the_site_lists_in_part_do_not_read_as_failures() -> None:
    """The demo: 26 of 40 reports 'incomplete' read as failure on a first run; they are
    reports whose site lists fewer statements than it counts, all of them stored."""
    from pipeline.crawl.pagination import FEWER

    c = RunCounters(pages_done=60, reports_done=40, incomplete=Counter({FEWER: 26, "cut": 1}))
    text = RunSummary("demo", c, stats(), InputTally(lines=40, dois=40, enqueued=40)).render()
    [line] = [x for x in text.splitlines() if x.startswith("  reports:")]
    assert line.startswith("  reports:    13 complete this run, 26 whose site lists fewer")
    assert "the site's data, not a failure" in line
    assert line.endswith(", 1 incomplete (cut: 1)")
