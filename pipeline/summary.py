"""What a run tells its user: a progress bar on a TTY and a summary at the end.

The summary is printed for people, then repeated as one `citepipe-summary {json}` line
that a log collector (or a cron wrapper) can parse.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

from tqdm import tqdm

from pipeline.models import Stats
from pipeline.worker import RunCounters

# Exit codes that cron (and people) can act on.
EXIT_OK = 0  # everything asked for is done
EXIT_INCOMPLETE = 1  # some DOIs dead, or bad input lines
EXIT_USAGE = 2  # usage or configuration error
EXIT_BUDGET = 3  # crawl: time budget spent, work left queued for the next run


class Progress:
    """A tqdm bar on stderr when it is a TTY and progress is on; silent otherwise."""

    def __init__(self, enabled: bool, desc: str, stream: TextIO | None = None) -> None:
        out = stream or sys.stderr
        self._bar: tqdm[Any] | None = (
            tqdm(desc=desc, unit="page", file=out, dynamic_ncols=True)
            if enabled and out.isatty()
            else None
        )

    @property
    def shown(self) -> bool:
        """Whether a bar is on screen (then progress log lines would garble it)."""
        return self._bar is not None

    def update(self, counters: RunCounters) -> None:
        if self._bar is not None:
            self._bar.n = counters.pages_done
            self._bar.set_postfix(
                statements=counters.statements, dead=sum(counters.dead.values()), refresh=False
            )
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@dataclass
class InputTally:
    """What the enqueue phase of a run read and queued."""

    lines: int = 0
    dois: int = 0
    bad_lines: int = 0
    enqueued: int = 0
    already_dead: Counter[str] = field(default_factory=Counter)  # by reason, earlier runs


@dataclass
class RunSummary:
    """Figures of one run of backfill, crawl or demo."""

    command: str
    counters: RunCounters
    stats: Stats
    exit_code: int
    inputs: InputTally = field(default_factory=InputTally)
    out_of_time: bool = False
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        c, s = self.counters, self.stats
        return {
            "command": self.command,
            "exit_code": self.exit_code,
            "elapsed_s": round(c.elapsed, 3),
            "pages": c.pages_done,
            "pages_unchanged": c.pages_unchanged,
            "pages_per_s": round(c.pages_per_second, 1),
            "statements_stored": c.statements,
            "retries": c.retries,
            "dead_this_run": dict(c.dead),
            "input_lines": self.inputs.lines,
            "input_dois": self.inputs.dois,
            "bad_lines": self.inputs.bad_lines,
            "enqueued": self.inputs.enqueued,
            "already_dead": dict(self.inputs.already_dead),
            "out_of_time": self.out_of_time,
            "jobs": s.jobs_by_state,
            "dead_total": {d.reason: d.count for d in s.dead_by_reason},
            "incomplete_reports": s.incomplete_reports,
            "rows": s.rows_by_table,
        }

    def render(self) -> str:
        c, s = self.counters, self.stats
        lines = [f"citepipe {self.command}: finished in {c.elapsed:.1f} s"]
        i = self.inputs
        if i.lines:
            lines.append(
                f"  input:      {i.dois} DOIs, {i.bad_lines} bad lines, {i.enqueued} jobs queued"
            )
        elif i.enqueued:
            lines.append(f"  enqueued:   {i.enqueued} jobs")
        if i.already_dead:
            lines.append(
                f"  dead before: {i.already_dead.total()} jobs of the input died in an earlier "
                "run (not retried; `citepipe status` lists the reasons)"
            )
        lines.append(
            f"  pages:      {c.pages_done} done ({c.pages_per_second:.1f} pages/s), "
            f"{c.pages_unchanged} unchanged, {c.retries} retries scheduled"
        )
        lines.append(f"  statements: {c.statements} stored this run")
        lines.append("  queue:      " + ", ".join(f"{k} {v}" for k, v in s.jobs_by_state.items()))
        if s.dead_by_reason:
            lines.append(
                "  dead:       " + "; ".join(f"{d.reason}: {d.count}" for d in s.dead_by_reason)
            )
        if s.incomplete_reports:
            lines.append(f"  incomplete: {s.incomplete_reports} reports have a dead page")
        lines.append("  rows:       " + ", ".join(f"{k} {v}" for k, v in s.rows_by_table.items()))
        lines.extend(f"  note:       {n}" for n in self.notes)
        lines.append("citepipe-summary " + json.dumps(self.as_dict(), sort_keys=True))
        return "\n".join(lines)


def render_status(stats: Stats) -> str:
    """`citepipe status` for people."""
    out = ["queue:"]
    out += [f"  {state:<8} {count}" for state, count in stats.jobs_by_state.items()]
    out.append("dead by reason:" if stats.dead_by_reason else "dead by reason: none")
    out += [f"  {d.count:>6}  {d.reason}" for d in stats.dead_by_reason]
    out.append(f"incomplete reports: {stats.incomplete_reports}")
    out.append("rows:")
    out += [f"  {table:<14} {count}" for table, count in stats.rows_by_table.items()]
    out.append(
        f"throughput: {stats.pages_last_minute} pages in the last minute, "
        f"{stats.pages_last_hour} in the last hour"
    )
    if stats.active_runs:
        out.append("active runs:")
        out += [
            f"  #{r.id} {r.kind} pid {r.pid} on {r.host} since {r.started_at}"
            for r in stats.active_runs
        ]
    return "\n".join(out)
