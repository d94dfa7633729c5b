"""Per-host politeness slots: concurrency, spacing, robots.txt, Retry-After pauses.

One slot per host (Scrapy's downloader slots): at most `per_host_concurrency` requests in
flight, request starts spaced by `request_delay` (or the robots.txt `Crawl-delay` when that
is longer), and a `pause` when the host says 429/503 — the whole host waits, not just the
URL that was refused. robots.txt is fetched once per host and read with Protego.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiolimiter import AsyncLimiter
from protego import Protego

from pipeline.errors import PermanentFetchError

RobotsGetter = Callable[[str], Awaitable[str | None]]


def host_key(url: str) -> str:
    """`scheme://host:port`, the unit of politeness."""
    p = urlsplit(url)
    port = p.port or (443 if p.scheme == "https" else 80)
    return f"{p.scheme}://{(p.hostname or '').lower()}:{port}"


@dataclass
class HostSlot:
    """The politeness state of one host."""

    semaphore: asyncio.Semaphore
    delay: float
    limiter: AsyncLimiter | None = None
    paused_until: float = 0.0  # time.monotonic()
    robots: Protego | None = None
    robots_ready: bool = False
    robots_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def set_delay(self, delay: float) -> None:
        self.delay = delay
        self.limiter = AsyncLimiter(1, delay) if delay > 0 else None


class Politeness:
    """Hands out per-host slots; `slot(url)` is held around every request to that host."""

    def __init__(
        self,
        *,
        per_host_concurrency: int,
        request_delay: float,
        user_agent: str,
        respect_robots: bool,
        get_robots: RobotsGetter | None = None,
    ) -> None:
        self._concurrency = per_host_concurrency
        self._delay = request_delay
        self._user_agent = user_agent
        self._respect_robots = respect_robots and get_robots is not None
        self._get_robots = get_robots
        self._slots: dict[str, HostSlot] = {}

    def _slot(self, url: str) -> HostSlot:
        key = host_key(url)
        slot = self._slots.get(key)
        if slot is None:
            slot = HostSlot(asyncio.Semaphore(self._concurrency), 0.0)
            slot.set_delay(self._delay)
            self._slots[key] = slot
        return slot

    async def _load_robots(self, url: str, slot: HostSlot) -> None:
        async with slot.robots_lock:
            if slot.robots_ready or self._get_robots is None:
                return
            text = await self._get_robots(host_key(url) + "/robots.txt")
            if text is not None:
                slot.robots = Protego.parse(text)
                crawl_delay = slot.robots.crawl_delay(self._user_agent)
                if crawl_delay and float(crawl_delay) > slot.delay:
                    slot.set_delay(float(crawl_delay))
            slot.robots_ready = True

    async def check_allowed(self, url: str) -> None:
        """Raise PermanentFetchError when robots.txt disallows `url` for our user agent."""
        if not self._respect_robots:
            return
        slot = self._slot(url)
        if not slot.robots_ready:
            await self._load_robots(url, slot)
        if slot.robots is not None and not slot.robots.can_fetch(url, self._user_agent):
            raise PermanentFetchError(
                f"disallowed by robots.txt: {url}", url=url, reason="disallowed by robots.txt"
            )

    def pause(self, url: str, seconds: float) -> None:
        """Hold every request to this host for `seconds` from now (a 429/503)."""
        slot = self._slot(url)
        slot.paused_until = max(slot.paused_until, time.monotonic() + max(0.0, seconds))

    @asynccontextmanager
    async def slot(self, url: str) -> AsyncIterator[None]:
        """Wait for robots, a free place, the end of any pause and the spacing; then go."""
        await self.check_allowed(url)
        slot = self._slot(url)
        async with slot.semaphore:
            while True:
                # a deadline that later 429s may push out, so re-check after each sleep
                while (wait := slot.paused_until - time.monotonic()) > 0:  # noqa: ASYNC110
                    await asyncio.sleep(wait)
                if slot.limiter is not None:
                    await slot.limiter.acquire()
                if slot.paused_until <= time.monotonic():
                    break
            yield
