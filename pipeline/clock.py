"""The clock a run reads: wall time for records, monotonic time for budgets and rates.

Injected through `app.open_pipeline(clock=...)` so that tests can move time instead of
sleeping: `ManualClock` advances only when told to (or, with `autojump`, whenever someone
waits on it), which makes budgets and schedules testable in milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What a run asks of time."""

    def now(self) -> datetime:
        """The current UTC time (for stored timestamps and schedules)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin that never go back (for budgets and rates)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait until this clock has moved on by `seconds` (for budgets and schedules)."""
        ...


def utcnow() -> datetime:
    """The current time as an aware UTC datetime: the default clock of every store and
    of the fetcher's politeness (drivers convert it to their own form)."""
    return datetime.now(UTC)


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ManualClock:
    """A clock that moves only when `advance` is called (tests).

    With `autojump=True`, `sleep` moves the clock forward by the time asked and returns at
    once: a scheduler that waits for tomorrow 03:00 gets there immediately.
    """

    def __init__(self, start: datetime | None = None, *, autojump: bool = False) -> None:
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._elapsed = 0.0
        self.autojump = autojump
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose time has come."""
        self._elapsed += max(0.0, seconds)
        while self._sleepers and self._sleepers[0][0] <= self._elapsed:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def sleep(self, seconds: float) -> None:
        if self.autojump:
            self.advance(seconds)
            await asyncio.sleep(0)
            return
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._elapsed + seconds, next(self._seq), fut))
        await fut
