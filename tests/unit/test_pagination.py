"""The pagination guard as a pure function: canonical addresses, cycles, counts, limits."""

from __future__ import annotations

import pytest

from pipeline.crawl.pagination import (
    BEYOND_COUNT,
    CYCLE,
    FEWER,
    OFF_SITE,
    TOO_MANY,
    canonical_url,
    next_step,
    pages_justified,
    reason_kind,
)
from pipeline.models import Chain, Job, Page, Paper, ParseResult, Statement, Tally
from pipeline.store.rules import chain_from_text, chain_text

SITE = "http://site.test:80"
BASE = "http://site.test/reports/slug"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("HTTP://Site.Test:80/reports/x?page=2", "http://site.test/reports/x?page=2"),
        ("https://site.test:443/a", "https://site.test/a"),
        ("http://site.test/reports/x?page=2#top", "http://site.test/reports/x?page=2"),
        ("http://site.test/reports/x?b=1&a=2", "http://site.test/reports/x?a=2&b=1"),
        ("http://site.test/reports/./y/../x", "http://site.test/reports/x"),
        ("http://site.test/reports/%7Ex%2f", "http://site.test/reports/~x%2F"),
        ("http://user:pw@site.test/reports/x", "http://site.test/reports/x"),
        ("http://site.test/reports/x?&page=2&", "http://site.test/reports/x?page=2"),
        ("http://site.test", "http://site.test/"),
    ],
)
def test_canonical_url_spells_one_resource_one_way(a: str, b: str) -> None:
    assert canonical_url(a) == canonical_url(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("http://site.test/reports/x?page=1", "http://site.test/reports/x"),
        ("http://site.test/reports/x", "http://site.test/reports/X"),
        ("http://site.test:8080/reports/x", "http://site.test/reports/x"),
        ("http://site.test/reports/x%2Fy", "http://site.test/reports/x/y"),
    ],
)
def test_canonical_url_keeps_different_resources_apart(a: str, b: str) -> None:
    assert canonical_url(a) != canonical_url(b)


def test_pages_justified_by_the_count_with_a_margin() -> None:
    assert pages_justified(49, 20) == 4  # 3 pages, and one more
    assert pages_justified(0, 20) == 2
    assert pages_justified(2000, 10) == 220  # a tenth more
    assert pages_justified(None, 20) is None
    assert pages_justified(49, 0) == 2  # pages without statements justify one page


def result(statements: int, counted: int | None, nxt: str | None) -> ParseResult:
    return ParseResult(
        paper=Paper(doi="10.1/a", title="A", report_url=BASE),
        tallies=Tally(citation_statements=counted),
        statements=tuple(Statement(f"10.2/{i}", f"s{i} {nxt}") for i in range(statements)),
        next_page_url=nxt,
    )


def job(page: int, url: str, chain: Chain | None = None, **kw: object) -> Job:
    return Job(id=page, doi="10.1/a", url=url, page=page, attempts=1, depth=0, chain=chain, **kw)  # type: ignore[arg-type]


def crawl(
    pages: dict[str, ParseResult],
    first: str = "http://site.test/reports/10.1/a",
    max_pages: int = 100,
    redirect: str | None = BASE,
) -> tuple[list[str], str | None]:
    """Follow a chain of pages through the guard; return the URLs fetched and the reason."""
    current = job(1, first)
    fetched = []
    while True:
        final = redirect if current.page == 1 and redirect else current.url
        fetched.append(current.url)
        page = Page(url=current.url, final_url=final, status=200, body=b"")
        step = next_step(current, page, pages[final], site=SITE, max_pages=max_pages)
        if step.follow is None:
            return fetched, step.incomplete
        f = step.follow
        current = job(f.page, f.url, f.chain)
        assert len(fetched) < 1000, "runaway"


def test_a_whole_report_is_followed_to_its_end() -> None:
    pages = {
        BASE: result(20, 49, f"{BASE}?page=2"),
        f"{BASE}?page=2": result(20, 49, f"{BASE}?page=3"),
        f"{BASE}?page=3": result(9, 49, None),
    }
    fetched, reason = crawl(pages)
    assert reason is None
    assert fetched[1:] == [f"{BASE}?page=2", f"{BASE}?page=3"]


@pytest.mark.parametrize(
    "links",
    [
        # p1 -> p2 -> p1 (relative ?page=1 is page 1 under another address: one more page)
        {BASE: f"{BASE}?page=2", f"{BASE}?page=2": f"{BASE}?page=1", f"{BASE}?page=1": BASE},
        # absolute link back to the canonical page 1, with a fragment and odd case
        {BASE: f"{BASE}?page=2", f"{BASE}?page=2": "HTTP://SITE.TEST:80/reports/slug#top"},
        # a long cycle, with reordered query parameters
        {
            BASE: f"{BASE}?page=2&x=1",
            f"{BASE}?page=2&x=1": f"{BASE}?page=3",
            f"{BASE}?page=3": f"{BASE}?x=1&page=2",
        },
        # back to the DOI address the crawl started from
        {BASE: f"{BASE}?page=2", f"{BASE}?page=2": "http://site.test/reports/10.1/a"},
        # a page linking to itself
        {BASE: BASE},
    ],
)
def test_cycles_of_any_length_are_cut_and_named(links: dict[str, str]) -> None:
    pages = {canonical_url(k): result(5, 100, v) for k, v in links.items()}
    fetched, reason = crawl(pages)
    assert reason is not None and reason_kind(reason) == CYCLE
    assert len({canonical_url(u) for u in fetched}) == len(fetched)  # nothing fetched twice


def test_endless_pagination_stops_at_the_count() -> None:
    pages = {BASE: result(20, 49, f"{BASE}?page=2")}
    for n in range(2, 200):
        pages[f"{BASE}?page={n}"] = result(20, 49, f"{BASE}?page={n + 1}")
    fetched, reason = crawl(pages)
    assert reason is not None and reason_kind(reason) == BEYOND_COUNT
    assert len(fetched) == 4  # 3 pages for 49 statements, and the margin


def test_endless_pagination_without_a_count_stops_at_max_pages() -> None:
    pages = {BASE: result(20, None, f"{BASE}?page=2")}
    for n in range(2, 200):
        pages[f"{BASE}?page={n}"] = result(20, None, f"{BASE}?page={n + 1}")
    fetched, reason = crawl(pages, max_pages=7)
    assert reason == f"{TOO_MANY}: 7" and len(fetched) == 7


def test_a_next_link_off_the_site_is_a_recorded_cut() -> None:
    pages = {BASE: result(5, 5, "http://0.0.0.0:8080/reports/slug?page=2")}
    fetched, reason = crawl(pages)
    assert reason is not None and reason.startswith(OFF_SITE) and "0.0.0.0:8080" in reason
    assert len(fetched) == 1


@pytest.mark.parametrize(
    "link",
    [
        "http://site.test/private/x",
        "http://site.test/reports/../private/x",
        "http://site.test/reports/%2E%2E/private/x",
        "http://site.test/reports/%2e%2e/%2e%2e/etc/passwd",
    ],
)
def test_a_next_link_out_of_the_reports_folder_is_not_followed(link: str) -> None:
    fetched, reason = crawl({BASE: result(5, 5, link)})
    assert reason is not None and reason.startswith(OFF_SITE) and "outside /reports/" in reason
    assert len(fetched) == 1


def test_pages_that_stop_early_are_flagged() -> None:
    pages = {BASE: result(25, 49, None)}
    assert crawl(pages)[1] == f"{FEWER}: 25 of 49"
    assert crawl({BASE: result(49, 49, None)})[1] is None
    assert crawl({BASE: result(3, None, None)})[1] is None  # no count: nothing to compare


def test_an_unchanged_page_uses_what_it_held_when_last_read() -> None:
    chain = Chain(seen=(BASE,), counted=49, per_page=20, got=20)
    j = job(2, f"{BASE}?page=2", chain, page_statements=5, page_counted=49, next_url=None)
    page = Page(url=j.url, final_url=j.url, status=304, body=b"")
    step = next_step(j, page, None, site=SITE, max_pages=10)
    assert step.follow is None and step.incomplete == f"{FEWER}: 25 of 49"
    j = job(2, f"{BASE}?page=2", chain, page_statements=5, next_url=BASE)  # a cycle, unchanged
    step = next_step(j, page, None, site=SITE, max_pages=10)
    assert step.incomplete is not None and reason_kind(step.incomplete) == CYCLE


def test_the_chain_survives_the_store_text() -> None:
    chain = Chain(seen=(BASE, f"{BASE}?page=2"), counted=None, per_page=20, got=None)
    assert chain_from_text(chain_text(chain)) == chain
    assert chain_text(None) is None and chain_from_text(None) is None
    assert chain_from_text("not json") is None


def test_a_next_page_of_another_report_is_not_stored_under_this_one() -> None:
    chain = Chain(seen=(BASE,), counted=10, per_page=5, got=5)
    j = job(2, f"{BASE}?page=2", chain)
    other = ParseResult(
        paper=Paper(doi="10.9/other", title="B"), tallies=Tally(), next_page_url=None
    )
    page = Page(url=j.url, final_url=j.url, status=200, body=b"")
    step = next_step(j, page, other, site=SITE, max_pages=10)
    assert step.follow is None and not step.keep
    assert step.incomplete == "next page is another report: page 2 is the report of 10.9/other"
    same = ParseResult(paper=Paper(doi="10.1/A", title="A"), tallies=Tally())
    assert next_step(j, page, same, site=SITE, max_pages=10).keep


def test_empty_pages_do_not_go_on_for_ever() -> None:
    pages = {BASE: result(0, 49, f"{BASE}?page=2")}
    for n in range(2, 50):
        pages[f"{BASE}?page={n}"] = result(0, 49, f"{BASE}?page={n + 1}")
    fetched, reason = crawl(pages)
    assert reason is not None and reason_kind(reason) == BEYOND_COUNT
    assert len(fetched) == 2


def test_a_page_that_repeats_an_earlier_page_is_a_cycle() -> None:
    """`?page=1&s=2` is page 1 again under a new address: its statements tell."""
    pages = {BASE: result(5, 100, f"{BASE}?page=2")}
    for n in range(2, 50):  # every next address is new, the content comes round again
        pages[f"{BASE}?page={n}"] = result(5, 100, f"{BASE}?page={n + 1}")
    same = result(5, 100, f"{BASE}?page=9")
    pages[f"{BASE}?page=3"] = ParseResult(
        same.paper, same.tallies, (), pages[BASE].statements, f"{BASE}?page=4"
    )
    fetched, reason = crawl(pages)
    assert reason == f"{CYCLE}: page 3 repeats the statements of an earlier page"
    assert len(fetched) == 3
