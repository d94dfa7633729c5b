"""The progress display of a run: a rich bar on a terminal, nothing anywhere else.

Two phases, each with its own line: reading the input (lines and DOIs so far; the total
is not known ahead for a stream) and crawling (pages done out of the pages known, which
is done + still queued, so follow-up pages raise the total as they are found; pages/s,
ETA; reports done out of the reports queued; retries and dead). Messages and log lines
are printed above the bar, never into it: the bar owns stderr while it runs, and
`LiveStderr` sends log lines through it.

No bar when progress is off, stderr is not a terminal, or the terminal reports no width;
the run then logs a `progress` line every `progress_interval` seconds instead.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text

from pipeline.models import RunCounters


def terminal_width(stream: TextIO) -> int:
    """Columns of the terminal behind `stream`; 0 when it is none or reports no width."""
    try:
        if not stream.isatty():
            return 0
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


class LiveStderr:
    """A stream that writes to whatever `sys.stderr` is now.

    Logging is configured once, before a bar starts; while the bar runs, rich swaps
    `sys.stderr` for a proxy that prints above the bar, and log lines follow it.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.__stderr__ is not None and sys.__stderr__.isatty()

    def fileno(self) -> int:
        return sys.__stderr__.fileno() if sys.__stderr__ is not None else 2


class _PagesPerSecond(ProgressColumn):
    """The recent rate, in pages per second (`/s` only, on a narrow terminal)."""

    def __init__(self, unit: str = " pages/s") -> None:
        super().__init__()
        self._unit = unit

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text(("  -  " if speed is None else f"{speed:5.1f}") + self._unit)


NARROW = 110  # columns below which the bar, the ETA and the long words give way to numbers


class Progress:
    """The run's progress display (see the module docstring); silent when not shown."""

    def __init__(self, enabled: bool, desc: str, stream: TextIO | None = None) -> None:
        self._out = stream or sys.stderr
        self._desc = desc
        width = terminal_width(self._out) if enabled else 0
        self._bar: RichProgress | None = None
        self._enqueue: TaskID | None = None
        self._crawl: TaskID | None = None
        self._reports: int | None = None
        self._done_before = 0
        self._narrow = 0 < width < NARROW
        if width > 0:
            console = Console(file=self._out, width=width, force_terminal=True)
            columns: tuple[ProgressColumn, ...] = (
                TextColumn("{task.description}"),
                BarColumn(bar_width=None),
                MofNCompleteColumn(),
                _PagesPerSecond(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[extra]}"),
            )
            if self._narrow:  # the numbers first: what is done, how fast, what failed
                columns = (
                    TextColumn("{task.description}"),
                    MofNCompleteColumn(),
                    _PagesPerSecond("/s"),
                    TextColumn("{task.fields[extra]}"),
                )
            self._bar = RichProgress(
                *columns,
                console=console,
                redirect_stdout=False,
                redirect_stderr=True,
                expand=not self._narrow,
            )
            self._bar.start()

    @property
    def shown(self) -> bool:
        """Whether a bar is on screen (then progress log lines would garble it)."""
        return self._bar is not None

    def start_enqueue(self) -> None:
        """The enqueue phase begins: a line counting input lines and DOIs."""
        if self._bar is not None and self._enqueue is None:
            self._enqueue = self._bar.add_task(
                "input" if self._narrow else "reading input", total=None, extra=""
            )

    def enqueue(self, lines: int, dois: int) -> None:
        """`lines` input lines read so far, `dois` of them DOIs."""
        if self._bar is not None and self._enqueue is not None:
            self._bar.update(
                self._enqueue,
                completed=lines,
                description=f"{'input' if self._narrow else 'reading input'}: "
                f"{dois:,} DOI{'s' if dois != 1 else ''}",
            )

    def start_crawl(
        self, pending: int | None, reports: int | None = None, done_before: int = 0
    ) -> None:
        """The crawl phase begins with `pending` pages and `reports` reports known, of
        which `done_before` were finished by an earlier run (a resumed backfill counts
        its whole input: `reports 603/800` at the start, not `0/197`)."""
        if self._bar is None:
            return
        if self._enqueue is not None:
            task = self._bar.tasks[self._enqueue]
            self._bar.update(
                self._enqueue,
                total=task.completed,
                description="input" if self._narrow else "input read",
            )
        self._reports = reports
        self._done_before = done_before
        self._crawl = self._bar.add_task(
            "pages" if self._narrow else f"{self._desc} pages",
            total=pending,
            extra=self._extra(RunCounters()),
        )

    def _extra(self, counters: RunCounters) -> str:
        """Reports done out of those known, retries, dead."""
        known = self._reports
        done = counters.reports_done + self._done_before
        if known is not None and done > known:
            known = done  # citing papers (--depth) add reports
        of = f"/{known}" if known is not None else ""
        sep = " " if self._narrow else ", "
        return f"reports {done}{of}{sep}retries {counters.retries}{sep}dead {counters.dead.total()}"

    def remaining(self, done: int, pending: int) -> None:
        """The known total moved: `done` pages done and `pending` still to do."""
        if self._bar is not None and self._crawl is not None:
            self._bar.update(self._crawl, total=done + pending)

    def update(self, counters: RunCounters) -> None:
        if self._bar is None or self._crawl is None:
            return
        task = self._bar.tasks[self._crawl]
        total = task.total
        if total is not None and counters.pages_done > total:
            total = counters.pages_done
        self._bar.update(
            self._crawl, completed=counters.pages_done, total=total, extra=self._extra(counters)
        )

    def message(self, text: str) -> None:
        """A line printed above the bar (or plainly, when there is none)."""
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=self._out, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
