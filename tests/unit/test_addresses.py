"""The Source owns its site's addresses: built for a DOI, they never leave `/reports/`,
whatever a server decodes or normalises, and they never carry credentials."""

from __future__ import annotations

import posixpath
from urllib.parse import unquote, urlsplit

import pytest

from citesite.generator import GeneratedReports
from citesite.render import render_page
from pipeline.errors import BadInputError
from pipeline.models import Page
from pipeline.normalise import doi_or_none
from pipeline.sources.report import ReportSource
from pipeline.urls import dot_segment, has_userinfo, path_within, strip_userinfo

BASE = "http://site.test:8080"

ESCAPING = [
    "10.1038/../../private/x",
    "10.1038/./x",
    "10.1038/a/..",
    "10.1038/%2E%2E/%2E%2E/private/x",
    "10.1038/%2e%2e/admin",
    "10.1038/%252E%252E/%252E%252E/private",  # decoded twice by some servers
    "10.1038/..%2F..%2Fprivate",
    "10.1038/..\\..\\private",  # `\` read as `/` by some servers
    "10.1038/..;jsessionid=1/private",  # `;params` dropped by some servers
    "10.1038/\uff0e\uff0e/private",  # fullwidth dots, NFKC-normalised by some
]


def server_view(url: str) -> str:
    """What a server that decodes (repeatedly) and normalises paths would serve."""
    path = urlsplit(url).path
    for _ in range(4):
        path = unquote(path)
    return posixpath.normpath(path.replace("\\", "/"))


@pytest.mark.parametrize("doi", ESCAPING)
def test_a_doi_with_dot_segments_gets_no_address(doi: str) -> None:
    source = ReportSource(base_url=BASE)
    with pytest.raises(BadInputError, match="path segment"):
        source.address(doi)


@pytest.mark.parametrize(
    "raw",
    [
        "10.1038/../../private/x",
        "https://doi.org/10.1038/%2E%2E/%2E%2E/private/x",
        "doi:10.1038/%2e%2e/x",
    ],
)
def test_every_spelling_of_an_escaping_doi_is_refused(raw: str) -> None:
    doi = doi_or_none(raw)
    assert doi is not None  # still a DOI by its syntax...
    with pytest.raises(BadInputError):  # ...but no address can be built for it
        ReportSource(base_url=BASE).address(doi)


@pytest.mark.parametrize(
    "doi",
    ["10.1038/bmt.2012.184", "10.1000/a..b", "10.1000/.hidden", "10.1000/x<y>?#%", "10.1/a/b/c"],
)
def test_ordinary_dois_stay_under_reports_after_any_normalisation(doi: str) -> None:
    url = ReportSource(base_url=BASE + "/").address(doi)
    assert url.startswith(f"{BASE}/reports/")
    assert server_view(url).startswith("/reports/")
    assert unquote(urlsplit(url).path) == f"/reports/{doi}"


def test_the_address_never_carries_credentials_of_base_url() -> None:
    source = ReportSource(base_url="http://user:secret@site.test:8080/")
    url = source.address("10.1000/a")
    assert url == f"{BASE}/reports/10.1000/a"
    assert source.in_scope(url)


def test_in_scope_is_the_site_s_report_pages_only() -> None:
    source = ReportSource(base_url=BASE)
    assert source.in_scope(f"{BASE}/reports/slug?page=2")
    assert not source.in_scope("http://other.test:8080/reports/slug?page=2")
    assert not source.in_scope("https://site.test:8080/reports/slug")
    assert not source.in_scope(f"{BASE}/login?next=/reports/x")
    assert not source.in_scope(f"{BASE}/reports/x/%2E%2E/%2E%2E/admin")
    assert not source.in_scope(f"{BASE}/reports/../admin")
    assert not source.in_scope("http://site.test:99999/reports/x")  # bad port


def test_a_base_url_with_a_path_keeps_its_reports_under_it() -> None:
    source = ReportSource(base_url="http://site.test/mirror/")
    assert source.address("10.1000/a") == "http://site.test/mirror/reports/10.1000/a"
    assert source.in_scope("http://site.test/mirror/reports/a?page=2")
    assert not source.in_scope("http://site.test/reports/a?page=2")


def test_parsed_links_lose_their_credentials() -> None:
    """A page whose canonical and next links carry `user:pw@` (a hostile site)."""
    creds = "http://user:pw@site.test:8080"
    seen_next = 0
    for report in list(GeneratedReports(30, 3).values()):
        if len(report.statements) < 2:
            continue
        body = render_page(report, 1, creds, per_page=1)
        url = f"{creds}/reports/{report.slug}"
        result = ReportSource(base_url=BASE).parse(Page(url, url, 200, body))
        assert result.paper.report_url is not None
        assert not has_userinfo(result.paper.report_url)
        assert result.next_page_url is not None
        assert not has_userinfo(result.next_page_url)
        assert result.next_page_url.startswith(f"{BASE}/reports/")
        seen_next += 1
    assert seen_next >= 10


def test_strip_userinfo_and_dot_segments() -> None:
    assert strip_userinfo("http://u:p@h:1/a?b#c") == "http://h:1/a?b#c"
    assert strip_userinfo("http://u@h/a") == "http://h/a"
    assert strip_userinfo("http://h/a@b") == "http://h/a@b"  # an @ in the path stays
    assert dot_segment("/reports/a..b/.c") is None
    assert dot_segment("/reports/%25252e%25252e/x") == ".."
    assert not path_within("http://h/reports/%2e/x", "/reports/")
