"""The local citation site over real sockets: addresses, validators, faults, request log."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime

import aiohttp
import pytest
from protego import Protego
from truth import expected
from yarl import URL

from citesite.dataset import SEED_DOI, SiteReport, demo_dataset_path, load_dataset, page_count
from citesite.faults import FaultSpec
from citesite.generator import GeneratedReports
from citesite.server import CitationSite
from citesite.style import report_style
from pipeline.errors import ParseError
from pipeline.models import ParseResult
from pipeline.normalise import report_address
from pipeline.sources.report import parse_report

DEMO = load_dataset(demo_dataset_path())
REDIRECTING = next(d for d, r in DEMO.items() if not report_style(d).direct and page_count(r) > 1)
DIRECT = next(d for d in DEMO if report_style(d).direct)


@pytest.fixture
async def site() -> AsyncIterator[CitationSite]:
    async with CitationSite(DEMO) as s:
        yield s


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def get(
    http: aiohttp.ClientSession, url: str, *, follow: bool = False, **headers: str
) -> tuple[int, bytes, aiohttp.ClientResponse]:
    async with http.get(URL(url, encoded=True), allow_redirects=follow, headers=headers) as r:
        return r.status, await r.read(), r


# --- addresses ------------------------------------------------------------------------


async def test_doi_address_redirects_to_slug(site: CitationSite, http: aiohttp.ClientSession):
    report = DEMO[REDIRECTING]
    status, _, resp = await get(http, site.url_for(REDIRECTING))
    assert status == report_style(REDIRECTING).redirect_status
    assert resp.headers["Location"] == f"/reports/{report.slug}"
    status, body, resp = await get(http, site.url_for(REDIRECTING), follow=True)
    assert status == 200 and str(resp.url) == f"{site.base_url}/reports/{report.slug}"
    assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
    assert parse_report(body, str(resp.url)) == expected(site, REDIRECTING, 1)


async def test_some_reports_answer_at_the_doi_address(
    site: CitationSite, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await get(http, site.url_for(DIRECT))
    assert status == 200
    assert parse_report(body, site.url_for(DIRECT)) == expected(site, DIRECT, 1)


async def test_every_demo_doi_resolves_however_awkward(
    site: CitationSite, http: aiohttp.ClientSession
) -> None:
    for doi in DEMO:
        status, body, resp = await get(http, report_address(site.base_url, doi), follow=True)
        assert status == 200, doi
        assert parse_report(body, str(resp.url)).paper.doi == doi
    # other spellings of the same DOI: upper case, '/' percent-encoded
    status, _, _ = await get(http, f"{site.base_url}/reports/10.1038/BMT.2012.184", follow=True)
    assert status == 200
    status, _, _ = await get(http, f"{site.base_url}/reports/10.1038%2Fbmt.2012.184", follow=True)
    assert status == 200


async def test_pagination_follows_rel_next(site: CitationSite, http: aiohttp.ClientSession):
    report = DEMO[REDIRECTING]
    url: str | None = site.url_for(REDIRECTING)
    seen = []
    while url is not None:
        status, body, resp = await get(http, url, follow=True)
        assert status == 200
        result = parse_report(body, str(resp.url))
        seen.append(result)
        url = result.next_page_url
    assert len(seen) == page_count(report)
    assert [s for r in seen for s in r.statements] == [
        s for p in range(1, len(seen) + 1) for s in expected(site, REDIRECTING, p).statements
    ]
    truth = expected(site, REDIRECTING, 1)
    assert all(r.tallies == truth.tallies and r.facets == truth.facets for r in seen)


# --- the public address ---------------------------------------------------------------


async def crawl_pages(
    http: aiohttp.ClientSession, site: CitationSite, start: str, **headers: str
) -> list[ParseResult]:
    """Follow a report's next links from `start` (connecting to the bound port whatever
    host the links name, as a compose network would); return the pages as parsed."""
    pages, url = [], start
    while True:
        bound = URL(url).with_host("127.0.0.1").with_port(site.port)
        async with http.get(bound, headers=headers) as r:
            assert r.status == 200, url
            result = parse_report(await r.read(), url)
        pages.append(result)
        if result.next_page_url is None:
            return pages
        url = result.next_page_url


async def test_links_name_the_host_the_request_was_sent_to(http: aiohttp.ClientSession) -> None:
    """A site bound to one address and reached by another name (a compose service name)
    links to that name: every page of the report is reachable under it."""
    report = DEMO[DIRECT]
    async with CitationSite(DEMO) as site:
        start = f"http://site:8080/reports/{report.slug}"
        pages = await crawl_pages(http, site, start, Host="site:8080")
        assert len(pages) == page_count(report) > 1
        assert pages == [
            expected(site, DIRECT, p, "http://site:8080") for p in range(1, len(pages) + 1)
        ]
        assert pages[0].paper.report_url == start
        # the same page asked for by its bound address names that address: no mix-up
        # in the page cache, and one ETag for both (validators never depend on the host)
        status, body, resp = await get(http, f"{site.base_url}/reports/{report.slug}")
        assert status == 200 and b"http://site:8080" not in body
        assert parse_report(body, str(resp.url)) == expected(site, DIRECT, 1)
        async with http.get(
            f"{site.base_url}/reports/{report.slug}", headers={"Host": "site:8080"}
        ) as r:
            assert r.headers["ETag"] == resp.headers["ETag"]


async def test_public_url_wins_over_the_host_header(http: aiohttp.ClientSession) -> None:
    report = DEMO[DIRECT]
    async with CitationSite(DEMO, public_url="https://cite.example.org/") as site:
        assert site.public_url == "https://cite.example.org"
        status, body, resp = await get(
            http, f"{site.base_url}/reports/{report.slug}", Host="site:8080"
        )
        assert status == 200
        result = parse_report(body, str(resp.url))
        assert result.paper.report_url == f"https://cite.example.org/reports/{report.slug}"
        assert result.next_page_url == f"https://cite.example.org/reports/{report.slug}?page=2"
        assert result == expected(site, DIRECT, 1)


@pytest.mark.parametrize("host", ["a b", 'x"><script>', "-bad-:80", "h:123456"])
async def test_an_odd_host_header_falls_back_to_the_bound_address(host: str) -> None:
    async with CitationSite(DEMO) as site:
        assert site.link_base(host) == site.base_url
        assert site.link_base(None) == site.base_url
        assert site.link_base("site:8080") == "http://site:8080"
        assert site.link_base("[::1]:8080") == "http://[::1]:8080"


@pytest.mark.parametrize("url", ["ftp://x", "http://", "site:8080", "http://x/path", "http://x?q"])
def test_a_bad_public_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="not an http"):
        CitationSite(DEMO, public_url=url)


@pytest.mark.parametrize(
    "path",
    [
        "/reports/10.1234/not-a-report",
        "/reports/no-such-slug-AAAAAAA",
        "/reports/mesenchymal-sct-ameliorates-refractory-cytopenia-14Lxay?page=3",
        "/reports/mesenchymal-sct-ameliorates-refractory-cytopenia-14Lxay?page=0",
        "/reports/mesenchymal-sct-ameliorates-refractory-cytopenia-14Lxay?page=x",
        "/reports/%FF%FE/x",
        "/login",
        "/",
    ],
)
async def test_not_found(site: CitationSite, http: aiohttp.ClientSession, path: str) -> None:
    status, _, _ = await get(http, site.base_url + path)
    assert status == 404


async def test_doi_address_with_page_redirects_to_that_page(
    site: CitationSite, http: aiohttp.ClientSession
) -> None:
    status, _, resp = await get(http, site.url_for(SEED_DOI) + "?page=2")
    assert status in (301, 302)
    assert resp.headers["Location"] == f"/reports/{DEMO[SEED_DOI].slug}?page=2"


async def test_robots_txt(http: aiohttp.ClientSession) -> None:
    async with CitationSite(DEMO) as plain, CitationSite(DEMO, crawl_delay=1.5) as slow:
        status, body, _ = await get(http, plain.base_url + "/robots.txt")
        assert status == 200 and b"Crawl-delay" not in body
        robots = Protego.parse(body.decode())
        assert robots.can_fetch(plain.url_for(SEED_DOI), "citepipe")
        assert not robots.can_fetch(plain.base_url + "/login", "citepipe")
        _, body, _ = await get(http, slow.base_url + "/robots.txt")
        assert Protego.parse(body.decode()).crawl_delay("citepipe") == 1.5


# --- validators -----------------------------------------------------------------------


async def test_etag_and_if_none_match(site: CitationSite, http: aiohttp.ClientSession):
    url = f"{site.base_url}/reports/{DEMO[SEED_DOI].slug}"
    status, _, resp = await get(http, url)
    etag, modified = resp.headers["ETag"], resp.headers["Last-Modified"]
    assert status == 200 and etag.startswith('"')
    status, body, resp = await get(http, url, **{"If-None-Match": etag})
    assert (status, body) == (304, b"") and resp.headers["ETag"] == etag
    for header in (f'W/{etag}, "other"', f'"x", {etag}', "*"):
        assert (await get(http, url, **{"If-None-Match": header}))[0] == 304
    # a stale ETag wins over a matching date: full page
    stale = {"If-None-Match": '"stale"', "If-Modified-Since": modified}
    assert (await get(http, url, **stale))[0] == 200
    page2 = await get(http, url + "?page=2")
    assert page2[2].headers["ETag"] != etag


async def test_if_modified_since(site: CitationSite, http: aiohttp.ClientSession) -> None:
    url = f"{site.base_url}/reports/{DEMO[SEED_DOI].slug}"
    _, _, resp = await get(http, url)
    modified = resp.headers["Last-Modified"]
    assert (await get(http, url, **{"If-Modified-Since": modified}))[0] == 304
    when = parsedate_to_datetime(modified).timestamp()
    earlier = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(when - 60))
    assert (await get(http, url, **{"If-Modified-Since": earlier}))[0] == 200
    assert (await get(http, url, **{"If-Modified-Since": "garbage"}))[0] == 200


async def test_set_report_changes_validators(site: CitationSite, http: aiohttp.ClientSession):
    old = DEMO[SEED_DOI]
    url = f"{site.base_url}/reports/{old.slug}"
    _, _, resp = await get(http, url)
    etag, modified = resp.headers["ETag"], resp.headers["Last-Modified"]
    stored = site.set_report(dataclasses.replace(old, statements=old.statements[:30]))
    assert stored.updated_at > old.updated_at
    status, body, resp = await get(http, url, **{"If-None-Match": etag})
    assert status == 200 and resp.headers["ETag"] != etag
    assert resp.headers["Last-Modified"] != modified
    assert (await get(http, url, **{"If-Modified-Since": modified}))[0] == 200
    assert len(parse_report(body, url).statements) == 25
    assert (await get(http, url + "?page=2"))[0] == 200
    assert len(parse_report((await get(http, url + "?page=2"))[1], url).statements) == 5
    assert site.remove_report(SEED_DOI)
    assert (await get(http, url))[0] == 404
    assert (await get(http, site.url_for(SEED_DOI)))[0] == 404
    assert SEED_DOI not in site.reports and len(site.reports) == len(DEMO) - 1
    site.set_report(old)
    assert (await get(http, url))[0] == 200


# --- faults ---------------------------------------------------------------------------


def slug_url(site: CitationSite, doi: str = SEED_DOI) -> str:
    return f"{site.base_url}/reports/{DEMO[doi].slug}"


@pytest.mark.parametrize("kind", ["500", "502", "503"])
async def test_status_faults(http: aiohttp.ClientSession, kind: str) -> None:
    async with CitationSite(DEMO, faults=f"{kind}=1") as site:
        status, _, resp = await get(http, slug_url(site))
        assert status == int(kind) and "Retry-After" not in resp.headers
        assert site.requests[-1].fault == kind


async def test_429_retry_after_seconds(http: aiohttp.ClientSession) -> None:
    async with CitationSite(DEMO, faults="429=1,retry-after=3") as site:
        status, _, resp = await get(http, slug_url(site))
        assert status == 429 and resp.headers["Retry-After"] == "3"
        record = site.requests[-1]
        assert record.retry_after_until == pytest.approx(record.time + 3, abs=0.1)


@pytest.mark.parametrize("kind", ["429-date", "503-date"])
async def test_retry_after_as_http_date(http: aiohttp.ClientSession, kind: str) -> None:
    async with CitationSite(DEMO, faults=f"{kind}=1,retry-after=2") as site:
        status, _, resp = await get(http, slug_url(site))
        assert status == int(kind[:3])
        when = parsedate_to_datetime(resp.headers["Retry-After"]).timestamp()
        assert time.time() + 1 <= when <= time.time() + 3.1
        assert site.requests[-1].retry_after_until == when


@pytest.mark.parametrize("kind", ["reset", "truncate"])
async def test_broken_bodies(http: aiohttp.ClientSession, kind: str) -> None:
    async with CitationSite(DEMO, faults=f"{kind}=1") as site:
        with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
            await get(http, slug_url(site))
        assert site.requests[-1].fault == kind and site.requests[-1].status == 200
        # the site keeps serving new connections
        with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
            await get(http, slug_url(site) + "?page=2")


async def test_slow(http: aiohttp.ClientSession) -> None:
    async with CitationSite(DEMO, faults="slow=1,delay=0.3") as site:
        start = time.perf_counter()
        status, body, _ = await get(http, slug_url(site))
        assert time.perf_counter() - start >= 0.3
        assert status == 200 and parse_report(body, slug_url(site)) == expected(site, SEED_DOI)


@pytest.mark.parametrize("kind", ["captcha", "login"])
async def test_walls(http: aiohttp.ClientSession, kind: str) -> None:
    async with CitationSite(DEMO, faults=f"{kind}=1") as site:
        status, body, resp = await get(http, site.url_for(SEED_DOI), follow=True)
        assert status == 200 and resp.content_type == "text/html"
        with pytest.raises(ParseError):
            parse_report(body, str(resp.url))
        assert site.dead() == {d: kind for d in DEMO}


@pytest.mark.parametrize(("kind", "ctype"), [("json", "application/json"), ("image", "image/png")])
async def test_not_html(http: aiohttp.ClientSession, kind: str, ctype: str) -> None:
    async with CitationSite(DEMO, faults=FaultSpec(permanent={SEED_DOI: kind})) as site:
        status, _, resp = await get(http, slug_url(site))
        assert status == 200 and resp.content_type == ctype
        other = next(d for d in DEMO if d != SEED_DOI)
        assert (await get(http, slug_url(site, other)))[2].content_type == "text/html"
        assert site.dead() == {SEED_DOI: kind}


async def test_offsite_redirect(http: aiohttp.ClientSession) -> None:
    async with CitationSite(DEMO, faults="offsite=1") as site:
        status, _, resp = await get(http, site.url_for(SEED_DOI))
        assert status == 302 and resp.headers["Location"] == "http://127.0.0.2:9/elsewhere"


async def test_redirect_loop(http: aiohttp.ClientSession) -> None:
    async with CitationSite(DEMO, faults="loop=1") as site:
        start = site.url_for(SEED_DOI) + "?page=2"
        url, seen = start, []
        for _ in range(4):
            status, _, resp = await get(http, url)
            assert status == 302
            seen.append(url)
            url = site.base_url + resp.headers["Location"]
        assert seen[2] == start and seen[1] != start
        assert {r.fault for r in site.requests} == {"loop"}


async def test_first_n_then_clean(http: aiohttp.ClientSession) -> None:
    async with CitationSite(DEMO, faults="500=0.5,503=0.5,first=2") as site:
        url = slug_url(site)
        statuses = [(await get(http, url))[0] for _ in range(4)]
        assert statuses[0] in (500, 503) and statuses[1] in (500, 503)
        assert statuses[2:] == [200, 200]
        assert [r.attempt for r in site.requests] == [1, 2, 3, 4]


async def test_faults_can_change_between_phases(http: aiohttp.ClientSession) -> None:
    async with CitationSite(DEMO, faults="500=1") as site:
        assert (await get(http, slug_url(site)))[0] == 500
        site.faults = site.faults.coerce(None)
        assert (await get(http, slug_url(site)))[0] == 200


# --- request log and admin endpoints --------------------------------------------------


async def test_request_log_and_admin(site: CitationSite, http: aiohttp.ClientSession) -> None:
    await get(http, site.url_for(REDIRECTING), follow=True, **{"User-Agent": "tester/1"})
    _, _, resp = await get(http, slug_url(site))
    await get(http, slug_url(site), **{"If-None-Match": resp.headers["ETag"]})
    log = site.requests
    assert [(r.status, r.user_agent) for r in log[:2]] == [
        (report_style(REDIRECTING).redirect_status, "tester/1"),
        (200, "tester/1"),
    ]
    assert log[1].path_qs == f"/reports/{DEMO[REDIRECTING].slug}"
    assert log[-1].status == 304 and log[-1].if_none_match == resp.headers["ETag"]
    async with http.get(site.base_url + "/__site/requests") as r:
        remote = await r.json()
    assert [x["path_qs"] for x in remote] == [r.path_qs for r in log]
    async with http.get(site.base_url + "/__site/requests?since=2") as r:
        assert len(await r.json()) == len(log) - 2
    async with http.get(site.base_url + "/__site/stats") as r:
        stats = await r.json()
    assert stats["requests"] == len(log) and stats["by_status"]["304"] == 1
    async with http.get(site.base_url + f"/__site/expected?doi={SEED_DOI}&page=2") as r:
        assert (await r.json())["paper"]["doi"] == SEED_DOI
    async with http.get(site.base_url + "/__site/reports") as r:
        assert len((await r.text()).splitlines()) == len(DEMO)
    async with http.get(site.base_url + "/__site/faults") as r:
        assert await r.json() == {"spec": "none", "dead": {}}
    assert len(site.requests) == len(log), "admin requests are not logged"
    site.clear_log()
    assert site.requests == [] and site.stats()["requests"] == 0


async def test_generated_set_is_served_lazily(http: aiohttp.ClientSession) -> None:
    reports = GeneratedReports(100_000, seed=3)
    async with CitationSite(reports) as site:
        doi = next(d for i, d in enumerate(reports) if i > 50_000 and "#" in d)
        status, body, resp = await get(http, site.url_for(doi), follow=True)
        assert status == 200
        assert parse_report(body, str(resp.url)) == expected(site, doi, 1)
        assert len(site.reports) == 100_000


async def test_custom_per_page(http: aiohttp.ClientSession) -> None:
    report: SiteReport = DEMO[SEED_DOI]
    async with CitationSite([report], per_page=10) as site:
        assert site.pages(SEED_DOI) == 5
        status, body, _ = await get(http, slug_url(site) + "?page=5")
        assert status == 200
        assert len(parse_report(body, slug_url(site)).statements) == 9
        assert (await get(http, slug_url(site) + "?page=6"))[0] == 404


async def test_warm_fills_the_cache(http: aiohttp.ClientSession) -> None:
    with pytest.raises(RuntimeError):
        CitationSite(DEMO).warm()
    async with CitationSite(DEMO, cache_size=4) as site:
        assert site.warm() == sum(page_count(r) for r in DEMO.values())
        status, body, _ = await get(http, slug_url(site) + "?page=2")
        assert status == 200 and parse_report(body, slug_url(site)) == expected(site, SEED_DOI, 2)


# --- the command ----------------------------------------------------------------------


def test_citepipe_site_command() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "site",
            "--port",
            "0",
            "--generate",
            "50",
            "--faults",
            "500=0.5,first=1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line and "50 reports" in line
        base = line.split()[3]

        async def probe() -> list[int]:
            async with aiohttp.ClientSession() as http:
                out = []
                for _ in range(3):  # first=1 per URL: the DOI address, then the slug one
                    async with http.get(base + "/reports/10.5555/cp0-000001") as r:
                        out.append(r.status)
                return out

        statuses = asyncio.run(probe())
        assert statuses[-1] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_citepipe_site_rejects_a_bad_fault_spec() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "site", "--faults", "500=2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "not between 0 and 1" in done.stderr


def test_citepipe_site_rejects_a_bad_public_url() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "site", "--public-url", "ftp://site"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "citepipe site: --public-url: 'ftp://site' is not an http(s) address such as "
        "http://site:8080"
    )


async def test_held_reports_wait_until_enough_requests_wait(http: aiohttp.ClientSession) -> None:
    """`hold_until_arrived`: report requests wait, unanswered, until that many have
    arrived; then they and every later one are answered (tests of several crawler
    processes see each process's work in flight this way, not by timing)."""
    async with CitationSite(DEMO, hold_until_arrived=3) as held:
        url = report_address(held.base_url, DIRECT)
        first = [asyncio.create_task(get(http, url, follow=True)) for _ in range(2)]
        for _ in range(1000):  # until both requests have reached the site
            if held.holding == 2:
                break
            await asyncio.sleep(0.01)
        assert held.holding == 2
        assert not any(task.done() for task in first)  # held, with no answer yet
        answers = await asyncio.gather(*first, get(http, url, follow=True))
        assert [status for status, _, _ in answers] == [200, 200, 200]
        status, _, _ = await get(http, url, follow=True)  # nothing is held any more
        assert status == 200
