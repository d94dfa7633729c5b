"""Retry policy as data, used at two levels.

1. In-process: a few quick retries with exponential backoff and jitter (tenacity), for
   blips that clear in a second (a reset, a 502).
2. In the queue: `next_retry_at` gives the job's `not_before` for longer waits, honouring a
   `Retry-After` exactly; after `max_attempts` the job is dead (None).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from pipeline.config import Settings
from pipeline.errors import HostUnreachableError, TransientFetchError

T = TypeVar("T")


def _quickly_retryable(exc: BaseException) -> bool:
    """A transient error without a Retry-After: the site asked for no particular wait."""
    return (
        isinstance(exc, TransientFetchError)
        and exc.retry_after is None
        and not isinstance(exc, HostUnreachableError)  # the run stops working that host
    )


_DEFAULTS = Settings()  # the one place defaults live


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry. Times in seconds."""

    max_attempts: int = _DEFAULTS.max_attempts
    base: float = _DEFAULTS.retry_base
    cap: float = _DEFAULTS.retry_cap
    quick_retries: int = _DEFAULTS.quick_retries
    quick_base: float = 0.1
    quick_cap: float = 2.0

    @classmethod
    def from_settings(cls, s: Settings) -> RetryPolicy:
        return cls(
            max_attempts=s.max_attempts,
            base=s.retry_base,
            cap=s.retry_cap,
            quick_retries=s.quick_retries,
            quick_base=min(0.1, s.retry_base),
            quick_cap=min(2.0, s.retry_cap),
        )

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Exponential backoff with full jitter for the `attempt`-th failure (1-based)."""
        ceiling = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        return (rng or random).uniform(ceiling / 2, ceiling)

    def next_retry_at(
        self, attempts: int, retry_after: float | None = None, now: datetime | None = None
    ) -> datetime | None:
        """When to try the job again after its `attempts`-th failed attempt; None = dead."""
        if attempts >= self.max_attempts:
            return None
        now = now or datetime.now(UTC)
        wait = retry_after if retry_after is not None else self.backoff(attempts)
        return now + timedelta(seconds=wait)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run `fn` with the quick in-process retries; re-raise the last error."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.quick_retries + 1),
            wait=wait_random_exponential(multiplier=self.quick_base, max=self.quick_cap),
            retry=retry_if_exception(_quickly_retryable),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await fn()
        raise AssertionError("unreachable: tenacity re-raises")  # pragma: no cover
