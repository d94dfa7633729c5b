"""The site's own DOI and text code (`citesite.doi`, `citesite.text`) agrees with the
crawler's (`pipeline.normalise`) on ordinary and odd input.

The two are written apart on purpose (issue 8), so a slip in one shows up here as a
disagreement instead of being made the same way on both sides.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import citesite
from citesite.doi import quote_doi, report_url, site_doi
from citesite.generator import generate
from citesite.text import clean_text as site_clean_text
from pipeline.normalise import clean_text, doi_or_none, doi_path, report_address

RAW_DOIS = (
    "10.1038/bmt.2012.184",
    "  10.1038/BMT.2012.184\n",
    "doi:10.1038/bmt.2012.184",
    "DOI: 10.1038/bmt.2012.184",
    "doi:   10.1000/xyz",
    "https://doi.org/10.1038/bmt.2012.184",
    "http://dx.doi.org/10.1038/bmt.2012.184",
    "HTTPS://WWW.DOI.ORG/10.1038/BMT.2012.184",
    "doi.org/10.1000/abc",
    "dx.doi.org/10.1000/abc",
    "https://doi.org/10.1002%2F%28sici%291097-4571%28199806%2949%3A8%3C693%3A%3Aaid-asi4%3E3.0.co%3B2-o",
    "10.1002/(SICI)1097-4571(199806)49:8<693::AID-ASI4>3.0.CO;2-O",
    "10.5555/cp1-2/é.v2",
    "10.5555/caf%C3%A9",
    "10.5555/ｆｕｌｌｗｉｄｔｈ",
    "10.5555/a b",
    "10.5555/a%20b",
    "10.5555/a%0A",
    "10.5555/x\u00a0y",
    "10.5555/tab\there",
    "10.5555/#suppl",
    "10.5555/?ver=2",
    "10.5555/[erratum]",
    "10.5555/_a&b",
    "10.5555/'s-note",
    "10.5555/:v2;rev",
    "10.5555/../../etc",
    "10.5555/%2E%2E",
    "10.123/too-short",
    "10.1234567890/too-long",
    "10.١٢٣٤/arabic-digits",
    "10.1234/",
    "10.1234",
    "11.1234/x",
    "doi:https://doi.org/10.1000/x",
    "https://example.org/10.1000/x",
    "ftp://doi.org/10.1000/x",
    "",
    "   ",
    "not a doi",
)


@pytest.mark.parametrize("raw", RAW_DOIS)
def test_the_site_reads_a_doi_as_the_crawler_does(raw: str) -> None:
    assert site_doi(raw) == doi_or_none(raw)


def test_the_odd_cases_are_not_all_rejected() -> None:
    # both sides saying None to everything would agree too: the list must hold real DOIs
    read = [site_doi(raw) for raw in RAW_DOIS]
    assert sum(d is not None for d in read) >= 20 and sum(d is None for d in read) >= 10
    assert site_doi("doi: 10.1038/BMT.2012.184") == "10.1038/bmt.2012.184"
    assert site_doi("10.5555/caf%C3%A9") == "10.5555/café"


@pytest.mark.parametrize("raw", RAW_DOIS)
def test_the_site_quotes_a_doi_into_a_path_as_the_crawler_does(raw: str) -> None:
    doi = doi_or_none(raw) or raw.strip().lower()
    assert quote_doi(doi) == doi_path(doi)
    for base in ("http://127.0.0.1:8765", "http://127.0.0.1:8765/", "https://scite.ai"):
        assert report_url(base, doi) == report_address(base, doi)


def test_quoting_keeps_slashes_and_encodes_the_rest_as_utf8() -> None:
    assert quote_doi("10.5555/a b<c>é/#?%") == "10.5555/a%20b%3Cc%3E%C3%A9/%23%3F%25"


def test_generated_dois_agree() -> None:
    for r in generate(300, seed=11):
        for doi in (r.doi, *(s.citing_doi for s in r.statements)):
            assert site_doi(doi) == doi_or_none(doi) == doi
            assert quote_doi(doi) == doi_path(doi)


@pytest.mark.parametrize(
    "text",
    [None, "", "   ", "a  b", " a\tb\n", "Cafe\u0301", "x\u00a0y\u2003z", "\u3000", "plain"],
)
def test_the_site_cleans_text_as_the_crawler_does(text: str | None) -> None:
    assert site_clean_text(text) == clean_text(text)


def test_the_site_package_imports_nothing_from_the_crawler() -> None:
    found = []
    for path in sorted(Path(citesite.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            found += [(path.name, n) for n in names if n.split(".")[0] == "pipeline"]
    assert len(list(Path(citesite.__file__).parent.glob("*.py"))) >= 8
    assert found == []
