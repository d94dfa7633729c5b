"""Politeness with an injected clock and sleep: spacing shared through one ledger (as two
processes share a store), pauses, Crawl-delay, robots.txt per RFC 9309, cancellation."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.crawl.politeness import (
    MAX_WAIT,
    LocalHosts,
    Politeness,
    RobotsAnswer,
    bounded_wait,
    host_key,
    robots_backoff,
    robots_verdict,
)
from pipeline.errors import PermanentFetchError, StoreError, TransientFetchError
from pipeline.store import MemoryStore
from pipeline.store.base import HostLedger

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SITE = "http://site.test"
HOST = "http://site.test:80"
RULES = "User-agent: *\nDisallow: /private\n"


class FakeTime:
    """A clock that only a sleep moves."""

    def __init__(self) -> None:
        self.now = T0
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += timedelta(seconds=seconds)
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def at(self) -> float:
        return (self.now - T0).total_seconds()


class Robots:
    """A robots.txt getter that answers from a list (the last answer repeats)."""

    def __init__(self, *answers: RobotsAnswer) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    async def __call__(self, url: str) -> RobotsAnswer:
        self.calls.append(url)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def polite(
    ledger: HostLedger,
    clock: FakeTime,
    *,
    delay: float = 0.2,
    robots: Robots | None = None,
    agent: str = "citepipe",
) -> Politeness:
    return Politeness(
        hosts=ledger,
        per_host_concurrency=2,
        request_delay=delay,
        user_agent=agent,
        respect_robots=robots is not None,
        get_robots=robots,
        clock=clock,
        sleep=clock.sleep,
        robots_retry_base=60,
        robots_retry_cap=600,
    )


async def request(p: Politeness, clock: FakeTime, path: str = "/reports/x") -> float:
    """Go through the slot; return when (seconds after T0) the request would start."""
    async with p.slot(SITE + path):
        return clock.at()


# ---------------------------------------------------------------- pure parts


def test_host_key_is_scheme_host_and_port() -> None:
    assert host_key("http://Site.Test/reports/a?page=2") == HOST
    assert host_key("https://site.test/x") == "https://site.test:443"
    assert host_key("http://site.test:8080/x") == "http://site.test:8080"


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "rules"),
        (204, "rules"),
        (301, "allow"),  # redirects that led nowhere: unavailable
        (401, "allow"),
        (403, "allow"),
        (404, "allow"),
        (410, "allow"),
        (429, "disallow"),
        (500, "disallow"),
        (503, "disallow"),
        (None, "disallow"),  # unreachable
    ],
)
def test_robots_verdict_follows_rfc_9309(status: int | None, verdict: str) -> None:
    assert robots_verdict(status) == verdict


def test_robots_backoff_doubles_up_to_the_cap() -> None:
    assert [robots_backoff(n, 60, 600) for n in (1, 2, 3, 4, 5, 9)] == [
        60,
        120,
        240,
        480,
        600,
        600,
    ]


# ---------------------------------------------------------------- spacing and pauses


@pytest.mark.parametrize("shared", [True, False])
async def test_two_processes_on_one_ledger_share_the_spacing(shared: bool) -> None:
    clock = FakeTime()
    ledger_a = LocalHosts(clock)
    ledger_b = ledger_a if shared else LocalHosts(clock)
    a, b = polite(ledger_a, clock), polite(ledger_b, clock)
    starts = [await request(p, clock) for p in (a, b, a, b, a, b)]
    if shared:
        assert starts == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    else:  # each process on its own: both go at once, twice the rate
        assert starts[:2] == [0.0, 0.0]


async def test_the_store_is_a_ledger_too() -> None:
    clock = FakeTime()
    async with MemoryStore(clock=clock) as store:
        a, b = polite(store, clock), polite(store, clock)
        starts = [await request(p, clock) for p in (a, b, b, a)]
    assert starts == pytest.approx([0.0, 0.2, 0.4, 0.6])


async def test_an_idle_host_goes_at_once() -> None:
    clock = FakeTime()
    p = polite(LocalHosts(clock), clock)
    await request(p, clock)
    clock.advance(10)
    assert await request(p, clock) == 10.0
    assert clock.slept == []


async def test_a_pause_holds_every_process_and_a_booked_request_looks_again() -> None:
    clock = FakeTime()
    ledger = LocalHosts(clock)
    a, b = polite(ledger, clock), polite(ledger, clock)
    assert await request(a, clock) == 0.0
    await b.pause(SITE + "/reports/y", 30)  # B got a 429 with Retry-After: 30
    assert await request(a, clock) == pytest.approx(30.0)
    # a request booked before a pause came in waits for the pause once it wakes
    ledger2 = LocalHosts(clock)
    c = polite(ledger2, clock, delay=5)
    await request(c, clock)  # next_at = now + 5
    booked = asyncio.create_task(request(c, clock))
    await asyncio.sleep(0)  # c booked its start (5 s on) and sleeps
    await ledger2.pause_host(HOST, clock.now + timedelta(seconds=60))
    start = await booked
    assert start >= 30.0 + 60.0


async def test_without_a_delay_nothing_is_booked_but_pauses_hold() -> None:
    clock = FakeTime()
    ledger = LocalHosts(clock)
    p = polite(ledger, clock, delay=0)
    assert [await request(p, clock) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await ledger.book_request(HOST, 0) == T0  # the ledger was never booked
    await p.pause(SITE + "/", 7)
    assert await request(p, clock) == pytest.approx(7.0)


async def test_crawl_delay_wins_when_longer() -> None:
    clock = FakeTime()
    robots = Robots(RobotsAnswer(200, "User-agent: *\nCrawl-delay: 2\n"))
    p = polite(LocalHosts(clock), clock, delay=0.5, robots=robots)
    starts = [await request(p, clock) for _ in range(3)]
    assert starts == pytest.approx([0.0, 2.0, 4.0])
    assert p.delay_for(SITE + "/") == 2.0


async def test_a_wait_is_cancelled_at_once() -> None:
    """Ctrl-C during a long pause: the real sleep is cancelled, nothing waits it out."""
    ledger = LocalHosts()
    p = Politeness(
        hosts=ledger,
        per_host_concurrency=1,
        request_delay=1.0,
        user_agent="citepipe",
        respect_robots=False,
    )
    await p.pause(SITE + "/", 3600)
    entered = asyncio.Event()

    async def go() -> None:
        async with p.slot(SITE + "/reports/x"):
            entered.set()

    task = asyncio.create_task(go())
    for _ in range(20):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not entered.is_set()


# ---------------------------------------------------------------- robots.txt


async def test_robots_rules_are_obeyed() -> None:
    clock = FakeTime()
    p = polite(LocalHosts(clock), clock, robots=Robots(RobotsAnswer(200, RULES)))
    await p.check_allowed(SITE + "/reports/a")
    with pytest.raises(PermanentFetchError, match="robots"):
        await p.check_allowed(SITE + "/private/a")


@pytest.mark.parametrize("status", [401, 403, 404, 410])
async def test_robots_4xx_allows_all(status: int) -> None:
    clock = FakeTime()
    p = polite(LocalHosts(clock), clock, robots=Robots(RobotsAnswer(status)))
    await p.check_allowed(SITE + "/private/a")


@pytest.mark.parametrize("status", [500, 503, 429, None])
async def test_robots_unavailable_disallows_all_and_is_tried_again_with_backoff(
    status: int | None,
) -> None:
    clock = FakeTime()
    getter = Robots(RobotsAnswer(status), RobotsAnswer(status), RobotsAnswer(200, RULES))
    p = polite(LocalHosts(clock), clock, robots=getter)
    with pytest.raises(TransientFetchError, match="unavailable") as first:
        await p.check_allowed(SITE + "/reports/a")
    assert first.value.retry_after == pytest.approx(60)
    clock.advance(59)
    with pytest.raises(TransientFetchError):  # still within the backoff: not fetched again
        await p.check_allowed(SITE + "/reports/a")
    assert len(getter.calls) == 1
    clock.advance(1)
    with pytest.raises(TransientFetchError) as second:  # fetched again, still failing
        await p.check_allowed(SITE + "/reports/a")
    assert second.value.retry_after == pytest.approx(120)  # the backoff doubled
    clock.advance(120)
    await p.check_allowed(SITE + "/reports/a")  # it came back: its rules now
    with pytest.raises(PermanentFetchError):
        await p.check_allowed(SITE + "/private/a")
    assert len(getter.calls) == 3


async def test_robots_is_fetched_again_after_a_day() -> None:
    clock = FakeTime()
    getter = Robots(RobotsAnswer(200, RULES), RobotsAnswer(200, "User-agent: *\nDisallow: /\n"))
    p = polite(LocalHosts(clock), clock, robots=getter)
    await p.check_allowed(SITE + "/reports/a")
    clock.advance(86399)
    await p.check_allowed(SITE + "/reports/a")
    assert len(getter.calls) == 1
    clock.advance(1)
    with pytest.raises(PermanentFetchError):
        await p.check_allowed(SITE + "/reports/a")
    assert len(getter.calls) == 2


async def test_robots_is_fetched_once_for_every_process_on_the_ledger() -> None:
    clock = FakeTime()
    async with MemoryStore(clock=clock) as store:
        getter_a, getter_b = Robots(RobotsAnswer(503)), Robots(RobotsAnswer(200, RULES))
        a = polite(store, clock, robots=getter_a)
        b = polite(store, clock, robots=getter_b)
        with pytest.raises(TransientFetchError):
            await a.check_allowed(SITE + "/reports/a")
        # B sees A's verdict (disallow all, until the retry) without fetching itself
        with pytest.raises(TransientFetchError):
            await b.check_allowed(SITE + "/reports/a")
        assert (len(getter_a.calls), len(getter_b.calls)) == (1, 0)
        record = await store.load_robots(HOST)
        assert record is not None and (record.status, record.failures) == (503, 1)
        clock.advance(60)
        await b.check_allowed(SITE + "/reports/a")  # B's turn to fetch: it is back
        assert len(getter_b.calls) == 1
        with pytest.raises(PermanentFetchError):
            await a.check_allowed(SITE + "/private/a")  # and A reads B's record
        assert len(getter_a.calls) == 1


async def test_robots_for_another_agent_do_not_bind_us() -> None:
    clock = FakeTime()
    text = "User-agent: BadBot\nDisallow: /\n"
    p = polite(LocalHosts(clock), clock, robots=Robots(RobotsAnswer(200, text)))
    await p.check_allowed(SITE + "/reports/a")
    bad = polite(LocalHosts(clock), clock, robots=Robots(RobotsAnswer(200, text)), agent="BadBot")
    with pytest.raises(PermanentFetchError):
        await bad.check_allowed(SITE + "/reports/a")


class BusyLedger(LocalHosts):
    """A store that cannot answer: every write fails as a busy SQLite would."""

    async def book_request(self, host: str, delay: float) -> datetime:
        raise StoreError("book request: database is locked")

    async def pause_host(self, host: str, until: datetime) -> None:
        raise StoreError("pause host: database is locked")


async def test_a_busy_store_fails_the_request_transiently_and_frees_its_place() -> None:
    clock = FakeTime()
    p = polite(BusyLedger(clock), clock)
    for _ in range(3):  # per_host_concurrency is 2: a leaked place would block the third
        with pytest.raises(TransientFetchError, match="politeness") as info:
            await request(p, clock)
        assert info.value.retry_after is None  # quickly retried in process
    # a 429 whose pause the store cannot take still holds this process
    q = polite(BusyLedger(clock), clock, delay=0)
    await q.pause(SITE + "/", 30)
    assert await request(q, clock) == pytest.approx(30.0)


async def test_an_error_inside_the_slot_is_not_taken_for_politeness() -> None:
    clock = FakeTime()
    p = polite(LocalHosts(clock), clock)
    with pytest.raises(StoreError):
        async with p.slot(SITE + "/reports/x"):
            raise StoreError("from the request itself")
    assert await request(p, clock) == pytest.approx(0.2)  # its place was given back


@pytest.mark.parametrize("delay", [float("inf"), float("nan"), 1e308, -1.0])
async def test_an_absurd_request_delay_never_crashes_a_request(delay: float) -> None:
    """Settings refuse these (exit 2); a Politeness built without them must still not
    divide by zero or overflow the clock."""
    clock = FakeTime()
    p = polite(LocalHosts(clock), clock, delay=delay)
    starts = [await request(p, clock) for _ in range(2)]
    assert starts[0] == 0.0
    assert starts[1] in (0.0, MAX_WAIT)


@pytest.mark.parametrize("text", ["1e999", "inf", "99999999999999999999999", "nan"])
async def test_a_hostile_crawl_delay_is_capped(text: str) -> None:
    clock = FakeTime()
    robots = Robots(RobotsAnswer(200, f"User-agent: *\nCrawl-delay: {text}\n"))
    p = polite(LocalHosts(clock), clock, delay=0.5, robots=robots)
    starts = [await request(p, clock) for _ in range(2)]
    assert 0.5 <= p.delay_for(SITE + "/") <= MAX_WAIT
    assert starts[1] - starts[0] == pytest.approx(p.delay_for(SITE + "/"))


async def test_a_huge_pause_is_capped() -> None:
    clock = FakeTime()
    p = polite(LocalHosts(clock), clock, delay=0)
    await p.pause(SITE + "/", float("inf"))
    assert await request(p, clock) == MAX_WAIT


def test_bounded_wait() -> None:
    assert bounded_wait(float("nan")) == 0.0
    assert bounded_wait(-3) == 0.0
    assert bounded_wait(float("inf")) == MAX_WAIT
    assert bounded_wait(2.5) == 2.5
