"""What a run tells its user at the end: the summary, and the exit code (one rule).

The summary is printed for people, then repeated as one `citepipe-summary {json}` line
that a log collector (or a cron wrapper) can parse.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.crawl.pagination import FEWER
from pipeline.models import ApiCounts, RunCounters, Stats

# Exit codes that cron (and people) can act on. One rule for backfill, crawl, demo and
# `worker --burst`: see `exit_code`.
EXIT_OK = 0  # everything asked for is done
EXIT_INCOMPLETE = 1  # a job of this run's input ended dead, or bad input lines
EXIT_USAGE = 2  # usage or configuration error, or a store that cannot be opened
EXIT_BUDGET = 3  # time budget spent, work left queued for the next run
EXIT_SIGNAL_BASE = 128  # stopped by a signal: 128 + its number (130 SIGINT, 143 SIGTERM)
EXIT_CODES_HELP = (  # the one text of the exit codes (`citepipe --help`, docs/commands.md)
    "Exit codes: 0 done; 1 a job of the input ended dead or bad input lines; "
    "2 usage/config error or a store that cannot be opened; 3 time budget spent, work "
    "left queued; 130/143 stopped by SIGINT/SIGTERM."
)
DEAD_REASONS_SHOWN = 5  # the summary's `dead:` line; `citepipe status` lists them all


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 job`, `2 jobs`, `0 jobs`: the count with the word in the right number."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


@dataclass
class InputTally:
    """What the enqueue phase of a run read and queued."""

    lines: int = 0
    dois: int = 0
    bad_lines: int = 0
    enqueued: int = 0
    already_dead: Counter[str] = field(default_factory=Counter)  # by reason, earlier runs


@dataclass(frozen=True, slots=True)
class RunTimes:
    """Wall-clock seconds of a run's phases, each measured, none inferred."""

    enqueue: float = 0.0
    crawl: float = 0.0
    total: float = 0.0


@dataclass
class RunSummary:
    """Figures of one run of backfill, crawl, demo, worker or schedule.

    `input_states` and `input_dead` are the input's jobs as the store holds them at the
    end of the run (all runs, all processes); `counters` is what this process did.
    """

    command: str
    counters: RunCounters
    stats: Stats
    inputs: InputTally = field(default_factory=InputTally)
    times: RunTimes = field(default_factory=RunTimes)
    input_states: Counter[str] = field(default_factory=Counter)
    input_dead: Counter[str] = field(default_factory=Counter)
    out_of_time: bool = False
    stopped_by: int | None = None  # the signal that stopped the run
    long_running: bool = False  # worker without --burst, schedule: a signal is their end
    notes: list[str] = field(default_factory=list)
    epilogue: list[str] = field(default_factory=list)  # lines printed after the summary
    statements_before: int | None = None  # rows of `statements` when the run began

    @property
    def new_statements(self) -> int | None:
        """Distinct statements this run added to the store (a statement seen again, on a
        refresh or twice in one report, is one row, counted once); None when the count
        at the start is unknown. Another run writing the same store at the same time
        adds its own to this figure."""
        if self.statements_before is None:
            return None
        return max(0, self.stats.rows_by_table.get("statements", 0) - self.statements_before)

    @property
    def dead_jobs(self) -> int:
        """Dead jobs that judge this run: the input's (whoever killed them), or, for a
        run without an input (refreshes, a burst worker), those this process killed."""
        return max(self.input_dead.total(), self.counters.dead.total())

    @property
    def exit_code(self) -> int:
        return exit_code(self)

    @property
    def pages_per_second(self) -> float:
        t = self.times.crawl
        return self.counters.pages_done / t if t > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        c, s = self.counters, self.stats
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "elapsed_s": round(self.times.total, 3),
            "enqueue_s": round(self.times.enqueue, 3),
            "crawl_s": round(self.times.crawl, 3),
            "pages": c.pages_done,
            "reports_done": c.reports_done,
            "reports_incomplete_this_run": dict(c.incomplete),
            "pages_unchanged": c.pages_unchanged,
            "pages_per_s": round(self.pages_per_second, 1),
            "statements_stored": self.new_statements,
            "statements_read": c.statements,
            "exit_reason": exit_reason(self),
            "api_requests": c.api_requests,
            "api_dois_found": c.api_found,
            "api_not_found": c.api_not_found,
            "api_batches_split": c.api_splits,
            "retries": c.retries,
            "dead_this_run": dict(c.dead),
            "unreachable": dict(c.unreachable),
            "input_lines": self.inputs.lines,
            "input_dois": self.inputs.dois,
            "bad_lines": self.inputs.bad_lines,
            "enqueued": self.inputs.enqueued,
            "already_dead": dict(self.inputs.already_dead),
            "input_jobs": dict(self.input_states),
            "input_dead": dict(self.input_dead),
            "out_of_time": self.out_of_time,
            "stopped_by_signal": self.stopped_by,
            "jobs": s.jobs_by_state,
            "dead_total": {d.reason: d.count for d in s.dead_by_reason},
            "incomplete_reports": s.incomplete_reports,
            "incomplete_by_reason": {d.reason: d.count for d in s.incomplete_by_reason},
            "not_found": s.not_found,
            "api_statements": asdict(s.api_counts) if s.api_counts is not None else None,
            "rows": s.rows_by_table,
        }

    def render(self, json_line: bool = True) -> str:
        """The summary for people; with `json_line`, then the `citepipe-summary {json}`
        line for programs (not on a terminal: people read the lines above)."""
        c, s, t = self.counters, self.stats, self.times
        lines = [
            f"citepipe {self.command}: finished in {t.total:.1f} s "
            f"(enqueue {t.enqueue:.1f} s, crawl {t.crawl:.1f} s)"
        ]
        i = self.inputs
        if i.lines:
            lines.append(
                f"  input:      {plural(i.dois, 'DOI')}, {plural(i.bad_lines, 'bad line')}, "
                f"{plural(i.enqueued, 'job')} queued"
            )
        elif i.enqueued:
            lines.append(f"  enqueued:   {plural(i.enqueued, 'job')}")
        if i.already_dead:
            n = i.already_dead.total()
            lines.append(
                f"  dead before: {plural(n, 'job')} of the input died in an earlier "
                "run (not retried: `citepipe status` lists the reasons, `citepipe retry` "
                "queues them again)"
            )
        if self.input_states:
            lines.append(
                "  input jobs: "
                + ", ".join(f"{k} {v}" for k, v in sorted(self.input_states.items()))
            )
        elif i.dois:
            dead = self.input_dead.total()
            lines.append(
                f"  input jobs: {plural(dead, 'dead job')}; the others not counted by state "
                "(the store is much larger than this input)"
            )
        lines.append(
            f"  pages:      {c.pages_done} done ({self.pages_per_second:.1f} pages/s), "
            f"{c.pages_unchanged} unchanged, {plural(c.retries, 'retry', 'retries')} scheduled"
        )
        partial = c.incomplete.total()
        fewer = c.incomplete.get(FEWER, 0)
        cut = {k: v for k, v in c.incomplete.items() if k != FEWER}
        line = f"  reports:    {c.reports_done - partial} complete this run"
        if fewer:  # the site's own listing (scite lists fewer than it counts): no failure
            line += (
                f", {fewer} whose site lists fewer statements than it counts (every "
                "listed statement is stored: the site's data, not a failure)"
            )
        if cut:
            line += (
                f", {sum(cut.values())} incomplete ("
                + "; ".join(f"{k}: {v}" for k, v in sorted(cut.items()))
                + ")"
            )
        lines.append(line)
        new = self.new_statements
        read = f"{c.statements:,} statement{'' if c.statements == 1 else 's'}"
        if new is None:
            lines.append(f"  statements: {read} read this run")
        else:
            lines.append(
                f"  statements: {new:,} new in the store this run ({read} read; "
                f"{c.statements - new if c.statements >= new else 0:,} already stored)"
            )
        if c.api_requests or c.api_splits:
            lines.append(
                f"  api:        {plural(c.api_requests, 'request')} answered, "
                f"{c.api_found} DOI answers, {c.api_not_found} not found, "
                f"{plural(c.api_splits, 'batch', 'batches')} split (422)"
            )
        lines.append("  queue:      " + ", ".join(f"{k} {v}" for k, v in s.jobs_by_state.items()))
        if s.dead_by_reason:
            shown = s.dead_by_reason[:DEAD_REASONS_SHOWN]  # the commonest first
            more = len(s.dead_by_reason) - len(shown)
            rest = f"; {plural(more, 'more reason')} (`citepipe status` lists them)"
            lines.append(
                "  dead:       "
                + "; ".join(f"{d.reason}: {d.count}" for d in shown)
                + (rest if more else "")
            )
        if s.not_found:
            lines.append(f"  not found:  {plural(s.not_found, 'report')} the site does not have")
        if s.incomplete_reports:
            lines.append(
                f"  incomplete: {plural(s.incomplete_reports, 'report')} stored in part ("
                + "; ".join(f"{d.reason}: {d.count}" for d in s.incomplete_by_reason)
                + "; not a failure: `papers.incomplete_reason` says why)"
            )
        if s.api_counts is not None:
            lines.append(f"  vs api:     {api_counts_text(s.api_counts)}")
        lines.append("  rows:       " + ", ".join(f"{k} {v}" for k, v in s.rows_by_table.items()))
        for where in sorted(c.unreachable):
            lines.append(
                f"  unreachable: {where}; the run stopped, its jobs stay queued "
                "(check base_url; the next run tries again)"
            )
        lines.extend(f"  note:       {n}" for n in self.notes)
        lines.append(f"  exit code:  {self.exit_code} ({exit_reason(self)})")
        if json_line:
            lines.append("citepipe-summary " + json.dumps(self.as_dict(), sort_keys=True))
        return "\n".join(lines)


def exit_code(summary: RunSummary) -> int:
    """The one exit-code rule of every run (documented in the README).

    A stop by signal is 128 + its number (130, 143), except for a long-running worker or
    scheduler, whose normal end it is (0). Then: 3 when the time budget was spent with
    work left; 1 when a job of this run's input ended dead, for any reason and by any
    process, or an input line was bad; else 0. (2 never comes from a summary: a run
    that cannot start raises a ConfigError instead.)
    """
    if summary.counters.unreachable and summary.stopped_by is None:
        return EXIT_INCOMPLETE  # even a long-running worker: it stopped for it
    if summary.long_running:
        return EXIT_OK
    if summary.stopped_by is not None:
        return EXIT_SIGNAL_BASE + summary.stopped_by
    if summary.out_of_time:
        return EXIT_BUDGET
    if summary.dead_jobs or summary.inputs.bad_lines:
        return EXIT_INCOMPLETE
    return EXIT_OK


def exit_reason(summary: RunSummary) -> str:
    """Why the run ends with its exit code, in words (the branches of `exit_code`)."""
    if summary.counters.unreachable and summary.stopped_by is None:
        return (
            "the site is unreachable ("
            + "; ".join(summary.counters.unreachable)
            + "); its jobs stay queued for the next run"
        )
    if summary.long_running:
        return "a long-running command's normal end"
    if summary.stopped_by is not None:
        return f"stopped by signal {summary.stopped_by}; the rest stays queued"
    if summary.out_of_time:
        return "time budget spent; the rest stays queued for the next run"
    why = []
    if summary.dead_jobs:
        why.append(
            f"{plural(summary.dead_jobs, 'job')} "
            f"{'of the input' if summary.inputs.dois else 'worked by this run'} ended dead "
            "(`citepipe status` lists why, `citepipe retry` queues them again)"
        )
    if summary.inputs.bad_lines:
        why.append(f"{plural(summary.inputs.bad_lines, 'bad input line')}")
    if why:
        return "; ".join(why)
    if summary.stats.incomplete_reports:
        return "every job done; the incomplete reports are the site's data, not a failure"
    return "every job done"


def api_counts_text(counts: ApiCounts) -> str:
    """`47 of 49 statements the API counts, over 1 report read`: the store's statements
    against the API's `total`, for the papers whose report was read."""
    return (
        f"{counts.collected} of {plural(counts.counted, 'statement')} the API counts, "
        f"over {plural(counts.papers, 'report')} read"
    )


def render_status(stats: Stats) -> str:
    """`citepipe status` for people."""
    out = ["queue:"]
    out += [f"  {state:<8} {count}" for state, count in stats.jobs_by_state.items()]
    out.append("dead by reason:" if stats.dead_by_reason else "dead by reason: none")
    out += [f"  {d.count:>6}  {d.reason}" for d in stats.dead_by_reason]
    if any(d.reason.startswith("broken page") for d in stats.dead_by_reason):
        out.append(
            "  (broken pages are kept in the store: after a selector fix, `citepipe "
            "reparse --broken` reads them again without a request)"
        )
    out.append(f"incomplete reports: {stats.incomplete_reports}")
    out += [f"  {d.count:>6}  {d.reason}" for d in stats.incomplete_by_reason]
    out.append(f"not found: {stats.not_found}")
    if stats.api_counts is not None:
        out.append(f"statements vs the API: {api_counts_text(stats.api_counts)}")
    out.append("rows:")
    out += [f"  {table:<14} {count}" for table, count in stats.rows_by_table.items()]
    out.append(
        f"throughput: {plural(stats.pages_last_minute, 'page')} in the last minute, "
        f"{stats.pages_last_hour} in the last hour"
    )
    if stats.active_runs:
        out.append("active runs:")
        out += [
            f"  #{r.id} {r.kind} pid {r.pid} on {r.host} since {r.started_at}"
            for r in stats.active_runs
        ]
    return "\n".join(out)
