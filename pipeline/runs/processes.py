"""`--processes N`: one command, N worker processes on one store.

The process the user started does everything it does alone (reads the input, registers
the run, shows the progress display, surveys the input, prints the one summary and gives
the one exit code) and works the queue too; `N - 1` helper processes only work the queue.
They share it the way any processes on one store do: claims are atomic, leases and
heartbeats as usual, and politeness is booked in the store's `hosts` table, so together
they keep each host's spacing and pauses.

Helpers are started with `spawn` (a fresh interpreter: no threads or event loop copied by
`fork`) and report their counters to the starting process over a pipe, a few times a
second and once at the end, so the progress display and the summary count every page.
A stop (signal, time budget) is passed on to them; a helper whose parent is gone stops
too (it sees the pipe close). A helper that dies leaves its leased jobs to expire and be
reclaimed by the others (`lease_seconds`), like any killed worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import structlog

from pipeline.app import open_pipeline
from pipeline.config import Settings
from pipeline.crawl.fetcher import Fetcher
from pipeline.logs import configure_logging
from pipeline.models import RunCounters

log = structlog.get_logger("citepipe.processes")

REPORT_EVERY = 0.2  # seconds between a helper's counter reports
HELPER_POLL = 0.1  # seconds between looks at the queue when the others hold the last jobs


# What a helper reports: every count of its `RunCounters` (all but the start time), so a
# count added there reaches the one summary without a change here.
_COUNTS = tuple(f.name for f in dataclasses.fields(RunCounters) if f.name != "started")


def _snapshot(counters: RunCounters) -> dict[str, Any]:
    """A helper's counters as plain data for the pipe (Counters as dicts)."""
    return {
        name: dict(value) if isinstance(value, Counter) else value
        for name in _COUNTS
        for value in (getattr(counters, name),)
    }


@dataclass
class Helpers:
    """The helper processes of one run, and what they last reported."""

    processes: list[BaseProcess] = field(default_factory=list)
    pipes: list[Connection] = field(default_factory=list)
    reported: dict[int, dict[str, Any]] = field(default_factory=dict)
    on_report: Callable[[], None] | None = None
    stopping: bool = False  # asked to stop: a helper ended by that SIGTERM did not fail

    @classmethod
    def start(cls, settings: Settings, count: int, *, burst: bool, max_duration: float) -> Helpers:
        """Start `count` helpers working the store of `settings`."""
        helpers = cls()
        ctx = multiprocessing.get_context("spawn")
        for index in range(count):
            # duplex: the helper watches its end close when this process is gone
            ours, theirs = ctx.Pipe(duplex=True)
            proc = ctx.Process(
                target=helper_main,
                args=(settings, theirs, burst, max_duration),
                name=f"citepipe-worker-{index + 2}",
                daemon=False,
            )
            proc.start()
            theirs.close()
            helpers.processes.append(proc)
            helpers.pipes.append(ours)
            loop = asyncio.get_running_loop()
            loop.add_reader(ours.fileno(), helpers._read, index)
        log.info("worker processes started", helpers=count)
        return helpers

    def _read(self, index: int) -> None:
        """Take what helper `index` reported (called by the loop when its pipe is readable)."""
        pipe = self.pipes[index]
        try:
            while pipe.poll():
                self.reported[index] = pipe.recv()
        except (EOFError, OSError):
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(pipe.fileno())
        if self.on_report is not None:
            self.on_report()

    def combined(self, own: RunCounters) -> RunCounters:
        """This process's counters plus every helper's last report (same start time)."""
        total = RunCounters(started=own.started)
        for counts in (_snapshot(own), *self.reported.values()):
            for name in _COUNTS:
                value = counts.get(name)
                if isinstance(value, dict):
                    getattr(total, name).update(value)
                elif value is not None:
                    setattr(total, name, getattr(total, name) + value)
        return total

    def share_note(self, own: RunCounters) -> str:
        """`2 worker processes: 1,180 + 1,179 pages` (this process first)."""
        pages = [own.pages_done] + [
            self.reported.get(i, {}).get("pages_done", 0) for i in range(len(self.processes))
        ]
        return f"{len(pages)} worker processes: {' + '.join(f'{n:,}' for n in pages)} pages"

    def stop(self) -> None:
        """Ask every helper to stop (SIGTERM: in-flight pages finish, the rest is released)."""
        self.stopping = True
        for proc in self.processes:
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)

    async def wait(self) -> list[str]:
        """Wait for every helper to end; take their last reports; notes on any that failed."""
        for proc in self.processes:
            await asyncio.to_thread(proc.join)
        notes = []
        loop = asyncio.get_running_loop()
        for index, (proc, pipe) in enumerate(zip(self.processes, self.pipes, strict=True)):
            proc.join()
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(pipe.fileno())
            with contextlib.suppress(EOFError, OSError):
                while pipe.poll():
                    self.reported[index] = pipe.recv()
            pipe.close()
            stopped = self.stopping and proc.exitcode == -signal.SIGTERM  # before its loop ran
            if proc.exitcode not in (0, None) and not stopped:
                notes.append(
                    f"worker process {proc.name} (pid {proc.pid}) exited with code "
                    f"{proc.exitcode}; its leased pages return to the queue after their lease"
                )
        return notes


# ------------------------------------------------------------------- in the helper


def helper_main(settings: Settings, pipe: Connection, burst: bool, max_duration: float) -> None:
    """A helper process: work the store until drained (burst), stopped or out of time."""
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(_help(settings, pipe, burst, max_duration))
    except KeyboardInterrupt:  # a Ctrl-C before the loop took the signal over
        pass
    finally:
        pipe.close()


async def _help(settings: Settings, pipe: Connection, burst: bool, max_duration: float) -> None:
    async with open_pipeline(dataclasses.replace(settings, processes=1)) as p:
        last = 0.0

        def report(counters: RunCounters, final: bool = False) -> None:
            nonlocal last
            now = time.monotonic()
            if final or now - last >= REPORT_EVERY:
                last = now
                with contextlib.suppress(OSError):
                    pipe.send(_snapshot(counters))

        worker = p.worker(burst=burst, on_page=report)
        if burst:  # a long-running worker need not poll an empty queue ten times a second
            worker.idle_poll = HELPER_POLL
        loop = asyncio.get_running_loop()
        grace = p.options.stop_grace  # as the starting process's, from the same settings
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop, grace)
        # nothing is ever sent to a helper: its pipe turning readable means EOF, the
        # starting process is gone (killed hard: no one else would stop us)
        loop.add_reader(pipe.fileno(), worker.stop, grace)
        budget = (
            asyncio.create_task(
                _budget(max_duration, worker.stop, p.options.budget_grace, p.fetcher)
            )
            if max_duration > 0
            else None
        )
        try:
            await worker.run()
        finally:
            loop.remove_reader(pipe.fileno())
            if budget is not None:
                budget.cancel()
            report(worker.counters, final=True)


async def _budget(
    seconds: float, stop: Callable[[float], None], grace: float, fetcher: Fetcher
) -> None:
    """As the starting process's budget (`runs.work`): stop claiming, in-flight pages get
    `grace`, requests still waiting for their polite turn go back to the queue now."""
    await asyncio.sleep(seconds)
    stop(grace)
    fetcher.cancel_waiting()
