"""Per-host politeness: concurrency, request spacing, 429/503 pauses and robots.txt.

What several processes must agree on lives in the store (`store.base.HostLedger`, one row
per host, see docs/store.md "Politeness"), so that N processes on one store together keep a
host's limits, not N times them:

- Spacing: every request start is *booked* on the host's row (`book_request`): the store
  hands out start times `delay` apart, atomically, to whichever process asks; the caller
  sleeps until its start. `delay` is `request_delay`, or robots.txt's `Crawl-delay` when
  that is longer. With no delay nothing is booked (no store write per request).
- Pauses: a 429/503 holds the whole host for its `Retry-After` (`pause`), for every
  process: bookings start after the pause, and a request that was booked before a pause
  came in looks again after its sleep.
- robots.txt (RFC 9309): fetched by whichever process needs it first and kept in the store
  with the time to fetch it again; every process reads that record. 2xx: its rules; other
  4xx: allow all; 429, 5xx or unreachable: disallow all (never fail open) and fetch again
  after a backoff; a good copy is fetched again after `robots_ttl` (24 h).

In flight per host (`per_host_concurrency`) is counted per process. Every wait is an
`asyncio.sleep`, so a stop (Ctrl-C) cancels it at once. The clock and the sleep can be
injected (tests).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import structlog
from protego import Protego

from pipeline.errors import (
    HostUnreachableError,
    PermanentFetchError,
    StoreError,
    TransientFetchError,
)
from pipeline.models import RobotsRecord
from pipeline.store import rules
from pipeline.store.base import HostLedger
from pipeline.urls import host_key as host_key  # the unit of politeness, re-exported

UNREACHABLE_AFTER = 3  # failures in a row, with no answer this run, that end a host's run
UNREACHABLE_PAUSE = 0.5  # seconds before robots.txt is tried again on a silent host (x tries)
UNREACHABLE_HOLD = 60.0  # seconds a host found unreachable is not tried (a long-lived process)
ROBOTS_TTL = 86400.0  # a robots.txt is fetched again at least this often (RFC 9309: 24 h)
ROBOTS_RETRY_BASE = 60.0  # first wait after a 5xx/unreachable robots.txt, doubling
ROBOTS_RETRY_CAP = 3600.0  # longest wait between two tries of an unavailable robots.txt
PAUSE_RECHECK = 1.0  # without bookings, how long a process trusts its last look at a pause
MAX_WAIT = 86400.0  # longest spacing or pause honoured (a day); longer asks are capped to it

log = structlog.get_logger("citepipe.politeness")

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
Verdict = Literal["rules", "allow", "disallow"]


@dataclass(frozen=True, slots=True)
class RobotsAnswer:
    """What fetching robots.txt gave: the final HTTP status (None = unreachable: connection
    error, timeout), the body of a 2xx, and for the log what went wrong."""

    status: int | None
    text: str | None = None
    error: str | None = None
    no_answer: bool = False  # no connection could be made or nothing came back in time


RobotsGetter = Callable[[str], Awaitable[RobotsAnswer]]


def bounded_wait(seconds: float) -> float:
    """A wait a site or a setting asked for, made safe for time arithmetic: NaN and
    negatives are 0, and anything longer than MAX_WAIT (a hostile `Crawl-delay: 1e999`,
    infinity) is MAX_WAIT."""
    if seconds != seconds or seconds <= 0:  # NaN compares unequal to itself
        return 0.0
    return min(seconds, MAX_WAIT)


def robots_verdict(status: int | None) -> Verdict:
    """RFC 9309 section 2.3.1: what a robots.txt status means for the whole host.

    2xx: obey its rules. 3xx here means the redirects could not be followed to an answer
    (more than five, or off the site): unavailable, like 4xx: allow all. 429 is treated
    like a server error (the site is overloaded, not saying "no file"). 5xx, 429 and
    unreachable: disallow all.
    """
    if status is None:
        return "disallow"
    if 200 <= status < 300:
        return "rules"
    if 300 <= status < 500 and status != 429:
        return "allow"
    return "disallow"


def robots_backoff(failures: int, base: float, cap: float) -> float:
    """Seconds before trying an unavailable robots.txt again after `failures` in a row."""
    return float(min(cap, base * 2.0 ** max(0, failures - 1)))


@dataclass(slots=True)
class _Robots:
    """A record and what this process made of it."""

    record: RobotsRecord
    verdict: Verdict
    parser: Protego | None
    crawl_delay: float = 0.0


@dataclass(slots=True)
class _Host:
    """This process's view of one host."""

    semaphore: asyncio.Semaphore
    robots: _Robots | None = None
    robots_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pause_seen: tuple[datetime, datetime | None] | None = None  # (looked at, paused until)
    answered: bool = False  # the host has answered this run (any HTTP response)
    no_answer: int = 0  # failures before any answer since the last answer
    unreachable: tuple[str, datetime] | None = None  # (cause, until): not tried till then


class Politeness:
    """Hands out per-host turns; `slot(url)` is held around every request to that host."""

    def __init__(
        self,
        *,
        hosts: HostLedger,
        per_host_concurrency: int,
        request_delay: float,
        user_agent: str,
        respect_robots: bool,
        get_robots: RobotsGetter | None = None,
        clock: Clock = rules.utcnow,
        sleep: Sleep = asyncio.sleep,
        robots_ttl: float = ROBOTS_TTL,
        robots_retry_base: float = ROBOTS_RETRY_BASE,
        robots_retry_cap: float = ROBOTS_RETRY_CAP,
        key: Callable[[str], str] = host_key,
    ) -> None:
        """`key` names the ledger row a URL's requests are counted on (its host; the API
        client counts its requests on a row of their own, `crawl/api.py`)."""
        self._key = key
        self._ledger = hosts
        self._concurrency = per_host_concurrency
        self._delay = request_delay
        self._user_agent = user_agent
        self._respect_robots = respect_robots and get_robots is not None
        self._get_robots = get_robots
        self._clock = clock
        self._sleep = sleep
        self._robots_ttl = robots_ttl
        self._retry_base = robots_retry_base
        self._retry_cap = robots_retry_cap
        self._hosts: dict[str, _Host] = {}
        self._waiting: set[asyncio.Task[Any]] = set()

    def cancel_waiting(self) -> int:
        """Cancel every request still waiting for its turn (robots.txt, a place, a pause or
        its booked start); requests already sent go on. A run out of time calls this so
        that it ends within one request timeout of its budget, not after a queue of
        politeness waits. Returns how many were cancelled."""
        waiting = [task for task in self._waiting if not task.done()]
        for task in waiting:
            task.cancel()
        return len(waiting)

    # ------------------------------------------------------------ reachability

    def new_run(self) -> None:
        """A run begins (a scheduler's next crawl): every host must answer again before
        its silence is taken for an outage rather than a wrong address."""
        for host in self._hosts.values():
            host.answered, host.no_answer, host.unreachable = False, 0, None

    def answered(self, url: str) -> None:
        """The host sent an HTTP response (any status): it is reachable."""
        host = self._host(host_key(url))
        host.answered, host.no_answer, host.unreachable = True, 0, None

    def no_answer(self, url: str, cause: str) -> None:
        """A request to the host failed before any answer (`cause`: connection refused,
        TLS error, timeout...). The rule: `UNREACHABLE_AFTER` such failures in a row, with
        no answer from the host this run, make it unreachable, HostUnreachableError, now
        and for every request to it during `UNREACHABLE_HOLD`."""
        key = host_key(url)
        host = self._host(key)
        host.no_answer += 1
        if not host.answered and host.no_answer >= UNREACHABLE_AFTER:
            until = self._clock() + timedelta(seconds=UNREACHABLE_HOLD)
            host.unreachable = (cause, until)
            raise HostUnreachableError(key, cause, host.no_answer, url=url)

    def check_reachable(self, url: str) -> None:
        """HostUnreachableError while the host is held as unreachable."""
        key = host_key(url)
        host = self._host(key)
        if host.unreachable is None:
            return
        cause, until = host.unreachable
        if until <= self._clock():  # tried again, from a clean count
            host.unreachable, host.no_answer = None, 0
            return
        raise HostUnreachableError(key, cause, host.no_answer, url=url)

    def _host(self, key: str) -> _Host:
        host = self._hosts.get(key)
        if host is None:
            host = _Host(asyncio.Semaphore(self._concurrency))
            self._hosts[key] = host
        return host

    def delay_for(self, url: str) -> float:
        """Seconds between request starts to this host: `request_delay`, or the robots.txt
        `Crawl-delay` for our user agent when that is longer."""
        robots = self._host(self._key(url)).robots
        crawl_delay = robots.crawl_delay if robots is not None else 0.0
        return bounded_wait(max(bounded_wait(self._delay), bounded_wait(crawl_delay)))

    # ------------------------------------------------------------ robots.txt

    async def check_allowed(self, url: str) -> None:
        """Raise unless robots.txt lets us fetch `url`.

        PermanentFetchError when its rules disallow the URL; TransientFetchError (with
        `retry_after` = when robots.txt will be tried again) while robots.txt is
        unavailable (5xx, 429, unreachable): disallow all, for now.
        """
        if not self._respect_robots:
            return
        key = self._key(url)
        robots = await self._robots(key)
        if robots.verdict == "allow":
            return
        if robots.verdict == "disallow":
            wait = (robots.record.expires_at - self._clock()).total_seconds()
            status = robots.record.status
            why = f"http {status}" if status is not None else "unreachable"
            raise TransientFetchError(
                f"robots.txt of {key} is unavailable ({why}): not fetching {url} yet",
                url=url,
                reason="robots.txt unavailable",
                retry_after=max(1.0, wait),
            )
        if robots.parser is not None and not robots.parser.can_fetch(url, self._user_agent):
            raise PermanentFetchError(
                f"disallowed by robots.txt: {url}", url=url, reason="disallowed by robots.txt"
            )

    async def _robots(self, key: str) -> _Robots:
        """The host's robots.txt as this process knows it; from the store, or fetched when
        the store has none that is still valid. One fetch at a time per process."""
        host = self._host(key)
        current = host.robots
        if current is not None and current.record.expires_at > self._clock():
            return current
        async with host.robots_lock:
            current = host.robots
            now = self._clock()
            if current is not None and current.record.expires_at > now:
                return current  # another task of this process refreshed it meanwhile
            stored = await self._ledger.load_robots(key)
            if stored is not None and stored.expires_at > now:
                host.robots = self._understand(stored)
                return host.robots
            record = await self._fetch_robots(key, stored)
            await self._ledger.save_robots(key, record)
            host.robots = self._understand(record)
            return host.robots

    async def _fetch_robots(self, key: str, previous: RobotsRecord | None) -> RobotsRecord:
        """Fetch robots.txt; a host that has not answered this run is asked again at
        once (a moment apart) until it answers or is found unreachable."""
        assert self._get_robots is not None  # _respect_robots guarantees it
        self.check_reachable(key)
        answer = await self._get_robots(key + "/robots.txt")
        host = self._host(key)
        while answer.no_answer and not host.answered:
            self.no_answer(key, answer.error or "no answer")  # raises when unreachable
            await self._sleep(UNREACHABLE_PAUSE * host.no_answer)
            answer = await self._get_robots(key + "/robots.txt")
        now = self._clock()
        if robots_verdict(answer.status) == "disallow":
            failures = (previous.failures if previous is not None else 0) + 1
            wait = robots_backoff(failures, self._retry_base, self._retry_cap)
            return RobotsRecord(answer.status, None, now, now + timedelta(seconds=wait), failures)
        text = answer.text if robots_verdict(answer.status) == "rules" else None
        return RobotsRecord(answer.status, text, now, now + timedelta(seconds=self._robots_ttl), 0)

    def _understand(self, record: RobotsRecord) -> _Robots:
        verdict = robots_verdict(record.status)
        if verdict != "rules":
            return _Robots(record, verdict, None)
        parser = Protego.parse(record.text or "")
        crawl_delay = parser.crawl_delay(self._user_agent)
        return _Robots(record, verdict, parser, float(crawl_delay) if crawl_delay else 0.0)

    # ------------------------------------------------------------ spacing and pauses

    async def pause(self, url: str, seconds: float) -> None:
        """Hold every request to this host, in every process, for `seconds` from now.

        If the store cannot take it (busy), this process still keeps the pause."""
        key = self._key(url)
        until = self._clock() + timedelta(seconds=bounded_wait(seconds))
        self._host(key).pause_seen = (self._clock(), until)
        try:
            await self._ledger.pause_host(key, until)
        except StoreError as exc:
            log.warning("host pause kept in this process only", host=key, error=str(exc))

    async def _paused_until(self, key: str, *, fresh: bool) -> datetime | None:
        """The host's pause; a look less than PAUSE_RECHECK old is reused unless `fresh`."""
        host = self._host(key)
        now = self._clock()
        seen = host.pause_seen
        if not fresh and seen is not None and (now - seen[0]).total_seconds() < PAUSE_RECHECK:
            return seen[1]
        until = await self._ledger.paused_until(key)
        if seen is not None and seen[1] is not None and (until is None or seen[1] > until):
            until = seen[1]  # our own pause, not yet visible to a lagging reader
        host.pause_seen = (now, until)
        return until

    async def _wait_turn(self, key: str, delay: float) -> None:
        """Wait for this request's start: booked in the store when there is a delay, else
        only the end of any pause. Looks at the pause again after a sleep."""
        fresh = False
        while True:
            if delay > 0:
                start = await self._ledger.book_request(key, delay)
            else:
                start = await self._paused_until(key, fresh=fresh) or self._clock()
            wait = (start - self._clock()).total_seconds()
            if wait <= 0:
                return
            await self._sleep(wait)
            fresh = True
            paused = await self._paused_until(key, fresh=True)
            if paused is None or paused <= self._clock():
                return

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        """Wait for robots.txt, a free place, the end of any pause and our booked turn.

        A store that cannot answer (busy, gone) is a transient failure of this request:
        the job is retried, never sent without its turn, never killed for it."""
        key = self._key(url)
        semaphore = self._host(key).semaphore
        task = asyncio.current_task()
        if task is not None:
            self._waiting.add(task)
        try:
            self.check_reachable(url)
            await self.check_allowed(url)
            async with contextlib.AsyncExitStack() as waiting:
                await semaphore.acquire()
                waiting.callback(semaphore.release)  # released unless we get our turn
                await self._wait_turn(key, self.delay_for(url))
                waiting.pop_all()
        except StoreError as exc:
            raise TransientFetchError(
                f"politeness state of {key} unavailable: {exc}",
                url=url,
                reason="store busy (politeness)",
            ) from exc
        finally:
            self._waiting.discard(task)
        try:
            yield
        finally:
            semaphore.release()


class LocalHosts:
    """A `HostLedger` in this process's memory, for a fetcher used without a store.

    Applies the same booking rule as the stores (`rules.book_request`); nothing is shared
    with other processes.
    """

    def __init__(self, clock: Clock = rules.utcnow) -> None:
        self._clock = clock
        self._next: dict[str, datetime] = {}
        self._paused: dict[str, datetime] = {}
        self._robots: dict[str, RobotsRecord] = {}

    async def book_request(self, host: str, delay: float) -> datetime:
        now = self._clock()
        start, self._next[host] = rules.book_request(
            self._next.get(host, now), self._paused.get(host, now), now, delay
        )
        return start

    async def pause_host(self, host: str, until: datetime) -> None:
        self._paused[host] = max(until, self._paused.get(host, until))

    async def paused_until(self, host: str) -> datetime | None:
        return self._paused.get(host)

    async def load_robots(self, host: str) -> RobotsRecord | None:
        return self._robots.get(host)

    async def save_robots(self, host: str, record: RobotsRecord) -> None:
        old = self._robots.get(host)
        if old is None or old.fetched_at <= record.fetched_at:
            self._robots[host] = record
