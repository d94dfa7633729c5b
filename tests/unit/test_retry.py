from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.crawl.retry import RetryPolicy
from pipeline.errors import PermanentFetchError, TransientFetchError

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_backoff_grows_exponentially_with_jitter_and_cap() -> None:
    p = RetryPolicy(base=1.0, cap=10.0)
    rng = random.Random(1)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (9, 10.0)]:
        samples = [p.backoff(attempt, rng) for _ in range(50)]
        assert all(ceiling / 2 <= s <= ceiling for s in samples)
        assert len(set(samples)) > 1  # jitter


def test_retry_after_is_honoured_exactly() -> None:
    p = RetryPolicy(max_attempts=5, base=100.0)
    assert p.next_retry_at(1, retry_after=7.0, now=NOW) == NOW + timedelta(seconds=7)


def test_dead_after_max_attempts() -> None:
    p = RetryPolicy(max_attempts=3)
    assert p.next_retry_at(2, now=NOW) is not None
    assert p.next_retry_at(3, now=NOW) is None


async def test_quick_retries_then_success() -> None:
    p = RetryPolicy(quick_retries=2, quick_base=0.001, quick_cap=0.01)
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise TransientFetchError("blip")
        return "ok"

    assert await p.call(flaky) == "ok"
    assert calls == 3


@pytest.mark.parametrize(
    "exc",
    [PermanentFetchError("gone"), TransientFetchError("wait", retry_after=30.0)],
)
async def test_no_quick_retry_for_permanent_or_retry_after(exc: Exception) -> None:
    p = RetryPolicy(quick_retries=3, quick_base=0.001)
    calls = 0

    async def fails() -> None:
        nonlocal calls
        calls += 1
        raise exc

    with pytest.raises(type(exc)):
        await p.call(fails)
    assert calls == 1
