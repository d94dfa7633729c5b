"""robots.txt per RFC 9309 against the local site over loopback, kept in a real SQLite store
that two fetchers ("processes") share: 5xx and unreachable disallow all and are tried again
later, 4xx allows all, the rules bind, and nothing is requested that robots.txt forbids."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from citesite.dataset import SiteReport
from citesite.generator import generate
from citesite.server import CitationSite
from pipeline.config import Settings
from pipeline.crawl.fetcher import AiohttpFetcher
from pipeline.crawl.politeness import host_key
from pipeline.errors import PermanentFetchError, TransientFetchError
from pipeline.store import SQLiteStore

REPORTS: dict[str, SiteReport] = {r.doi: r for r in generate(3, 7)}
DOI = next(iter(REPORTS))


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
async def site() -> AsyncIterator[CitationSite]:
    async with CitationSite(REPORTS) as s:
        yield s


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStore, SQLiteStore]]:
    """Two stores on one file: what two processes see."""
    path = tmp_path / "s.sqlite"
    async with SQLiteStore(path) as a, SQLiteStore(path) as b:
        yield a, b


def fetcher(site: CitationSite, store: SQLiteStore, clock: Clock) -> AiohttpFetcher:
    s = Settings(base_url=site.base_url, request_delay=0.0, timeout=2.0, respect_robots=True)
    return AiohttpFetcher(replace(s, connect_timeout=2.0), hosts=store, clock=clock)


def paths(site: CitationSite) -> list[str]:
    return [r.path_qs.split("?")[0] for r in site.requests]


@pytest.mark.parametrize("status", [500, 503, None], ids=["500", "503", "unreachable"])
async def test_unavailable_robots_disallows_all_for_every_process_until_it_is_back(
    site: CitationSite, stores: tuple[SQLiteStore, SQLiteStore], status: int | None
) -> None:
    site.robots_status = status
    clock = Clock()
    a, b = fetcher(site, stores[0], clock), fetcher(site, stores[1], clock)
    url = site.url_for(DOI)
    try:
        with pytest.raises(TransientFetchError, match=r"robots\.txt") as refused:
            await a.fetch(url)
        assert refused.value.reason == "robots.txt unavailable"
        assert refused.value.retry_after is not None and refused.value.retry_after >= 1
        # (aiohttp itself retries a GET once when the server hangs up: 1 or 2 requests)
        tries = len(paths(site))
        with pytest.raises(TransientFetchError):  # the other process reads the same verdict
            await b.fetch(url)
        assert paths(site) == ["/robots.txt"] * tries  # not fetched again, no report requested
        record = await stores[1].load_robots(host_key(site.base_url))
        assert record is not None and (record.status, record.failures) == (status, 1)

        site.robots_status = 200
        clock.advance(refused.value.retry_after)
        page = await b.fetch(url)  # tried again after the backoff: allowed now
        assert page.status == 200
        assert paths(site)[: tries + 1] == ["/robots.txt"] * (tries + 1)
        assert any(p.startswith("/reports/") for p in paths(site))
    finally:
        await a.close()
        await b.close()


@pytest.mark.parametrize("status", [404, 403])
async def test_robots_4xx_allows_all(
    site: CitationSite, stores: tuple[SQLiteStore, SQLiteStore], status: int
) -> None:
    site.robots_status = status
    f = fetcher(site, stores[0], Clock())
    try:
        assert (await f.fetch(site.url_for(DOI))).status == 200
    finally:
        await f.close()


async def test_robots_rules_bind_and_are_fetched_again_after_a_day(
    site: CitationSite, stores: tuple[SQLiteStore, SQLiteStore]
) -> None:
    clock = Clock()
    f = fetcher(site, stores[0], clock)
    try:
        with pytest.raises(PermanentFetchError, match="robots"):
            await f.fetch(site.base_url + "/login")  # Disallow: /login
        assert (await f.fetch(site.url_for(DOI))).status == 200
        clock.advance(86400 - 1)
        await f.fetch(site.url_for(DOI))
        assert paths(site).count("/robots.txt") == 1
        clock.advance(1)
        await f.fetch(site.url_for(DOI))
        assert paths(site).count("/robots.txt") == 2
        assert "/login" not in paths(site)
    finally:
        await f.close()
