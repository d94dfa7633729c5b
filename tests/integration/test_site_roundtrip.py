"""Round trip: every page the site serves parses to exactly its ground truth.

The parser is `pipeline.sources.report.parse_report`; the truth is
`citesite.dataset.expected_page` (as a `ParseResult`: `tests/truth.py`). Served over real
sockets (redirects, rel=next, faults with a retrying client) and rendered offline for
thousands of generated reports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin

import aiohttp
import pytest
from truth import expected, expected_page
from yarl import URL

from citesite.dataset import SiteReport, demo_dataset_path, load_dataset, page_count
from citesite.faults import PERMANENT_KINDS
from citesite.generator import generate
from citesite.render import render_page
from citesite.server import CitationSite
from pipeline.errors import ParseError
from pipeline.models import ParseResult
from pipeline.sources.report import parse_report

DEMO = load_dataset(demo_dataset_path())


class Dead(Exception):
    """The page cannot be had: wrong type, off-site, loop, not a report."""


async def fetch(http: aiohttp.ClientSession, site: CitationSite, url: str) -> tuple[bytes, str]:
    """GET with on-site redirects, retrying transient failures and honouring Retry-After."""
    for _ in range(12):
        current, seen = url, {url}
        try:
            for _hop in range(6):
                async with http.get(URL(current, encoded=True), allow_redirects=False) as r:
                    if r.status in (301, 302):
                        nxt = urljoin(current, r.headers["Location"])
                        if not nxt.startswith(site.base_url + "/") or nxt in seen:
                            raise Dead(f"redirect to {nxt}")
                        seen.add(nxt)
                        current = nxt
                        continue
                    if r.status in (429, 500, 502, 503):
                        await asyncio.sleep(retry_after(r.headers.get("Retry-After")))
                        break
                    if r.status == 404:
                        raise Dead("404")
                    if r.content_type != "text/html":
                        raise Dead(r.content_type)
                    return await r.read(), current
            else:
                raise Dead("too many redirects")
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            await asyncio.sleep(0.01)
    raise AssertionError(f"{url}: still failing after 12 attempts")


def retry_after(value: str | None) -> float:
    """Seconds to wait: Retry-After in seconds or as an HTTP date; a short pause without."""
    if value is None:
        return 0.01
    if value.isdigit():
        return float(value)
    return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())


async def crawl(
    site: CitationSite, dois: list[str], concurrency: int = 16
) -> tuple[dict[tuple[str, int], ParseResult], dict[str, str]]:
    """Every page of every report, by (doi, page); and the DOIs that ended dead, with why."""
    pages: dict[tuple[str, int], ParseResult] = {}
    dead: dict[str, str] = {}
    queue = list(reversed(dois))

    async def worker(http: aiohttp.ClientSession) -> None:
        while queue:
            doi = queue.pop()
            url: str | None = site.url_for(doi)
            page = 1
            try:
                while url is not None:
                    body, final = await fetch(http, site, url)
                    try:
                        result = parse_report(body, final)
                    except ParseError as exc:
                        raise Dead("not a report") from exc
                    pages[(doi, page)] = result
                    url, page = result.next_page_url, page + 1
            except Dead as exc:
                dead[doi] = str(exc)

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return pages, dead


def assert_all_pages(
    site: CitationSite, reports: Mapping[str, SiteReport], pages: dict[tuple[str, int], ParseResult]
) -> None:
    want = {(d, p) for d, r in reports.items() for p in range(1, page_count(r) + 1)}
    assert set(pages) == want
    for (doi, page), result in pages.items():
        assert result == expected(site, doi, page), (doi, page)


async def test_served_pages_parse_to_their_ground_truth() -> None:
    reports = {r.doi: r for r in generate(150, seed=21)} | DEMO
    async with CitationSite(reports) as site:
        pages, dead = await crawl(site, list(reports))
        assert dead == {}
        assert_all_pages(site, reports, pages)
        statuses = {r.status for r in site.requests}
        assert statuses == {200, 301, 302}


async def test_with_faults_a_retrying_client_gets_the_whole_set() -> None:
    spec = (
        "500=0.08,502=0.04,503=0.04,429=0.04,429-date=0.03,503-date=0.03,reset=0.05,"
        "truncate=0.05,slow=0.03,captcha=0.05,login=0.03,json=0.03,image=0.03,offsite=0.05,"
        "loop=0.05,first=2,delay=0.2,retry-after=1,seed=5"
    )
    reports = {r.doi: r for r in generate(60, seed=22)} | DEMO
    async with CitationSite(reports, faults=spec) as site:
        must_die = site.dead()
        assert must_die, "the spec kills some reports"
        pages, dead = await crawl(site, list(reports), concurrency=24)
        assert dead.keys() == must_die.keys()
        alive = {d: r for d, r in reports.items() if d not in must_die}
        assert_all_pages(site, alive, pages)
        log = site.requests
        kinds = {r.fault for r in log if r.fault}
        assert {"500", "429", "429-date", "reset", "truncate", "slow", "loop"} <= kinds
        # nobody came back to a URL before its Retry-After ran out
        until: dict[str, float] = {}
        for r in log:
            if r.path_qs in until:
                assert r.time >= until[r.path_qs] - 0.05, r
            if r.retry_after_until is not None:
                until[r.path_qs] = r.retry_after_until
        # first=2: from the third attempt on, a URL only shows permanent faults
        late = {r.fault for r in log if r.attempt > 2 and r.fault}
        assert late <= set(PERMANENT_KINDS), late


@pytest.mark.slow
def test_offline_render_parse_round_trip() -> None:
    base = "http://127.0.0.1:8765"
    checked = 0
    for report in [*generate(3000, seed=23), *DEMO.values()]:
        for page in range(1, page_count(report) + 1):
            url = f"{base}/reports/{report.slug}" + ("" if page == 1 else f"?page={page}")
            got = parse_report(render_page(report, page, base), url)
            assert got == expected_page(report, page, base), (report.doi, page)
            checked += 1
    assert checked > 4000


def test_offline_round_trip_with_other_page_sizes() -> None:
    base = "http://localhost:1"
    for per_page in (1, 7, 100):
        for report in generate(40, seed=24):
            for page in range(1, page_count(report, per_page) + 1):
                got = parse_report(
                    render_page(report, page, base, per_page),
                    f"{base}/reports/{report.slug}?page={page}",
                )
                assert got == expected_page(report, page, base, per_page)
