"""The report parser against the shared sample page and targeted variants of it.

The sample and its expected parse are the contract's (copied into `tests/fixtures/samples/`); every
variant below is the sample with one named edit, so each test shows one rule.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import BlockedError, ParseError
from pipeline.models import Page, result_to_dict
from pipeline.sources.report import (
    ReportSource,
    load_selectors,
    parse_report,
)

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"
URL = "https://scite.ai/reports/mesenchymal-sct-ameliorates-refractory-cytopenia-14Lxay"
FINAL = "https://scite.ai/reports/10.1038/bmt.2012.184"


def _sample_file(name: str) -> Path:
    path = SAMPLES / name
    if not path.is_file():
        pytest.fail(f"fixture {path} not found: it ships in tests/fixtures/samples")
    return path


@pytest.fixture(scope="module")
def html() -> str:
    return _sample_file("seed-report-page1.html").read_text("utf-8")


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        _sample_file("seed-report-page1.expected.json").read_text("utf-8")
    )
    data.pop("_note", None)
    return data


def edit(html: str, old: str, new: str, count: int = 1) -> str:
    """The page with `old` replaced; fails loudly if the sample no longer holds `old`."""
    assert html.count(old) >= count, f"sample does not contain {old!r}"
    return html.replace(old, new) if count == 0 else html.replace(old, new, count)


def drop(html: str, pattern: str) -> str:
    """The page without every match of the regex `pattern` (which must match)."""
    out, n = re.subn(pattern, "", html, flags=re.S)
    assert n, f"sample has no match for {pattern!r}"
    return out


def parse(html: str, url: str = URL) -> dict[str, Any]:
    return result_to_dict(parse_report(html, url))


NO_META = r'<meta name="citation_[a-z_]+" content="[^"]*">'
STATEMENT = r'<li class="statement" data-citing-doi="10\.5555/cite\.\d+">.*?</li>'


# --- the shared sample ----------------------------------------------------------------


def test_sample_parses_to_expected(html: str, expected: dict[str, Any]) -> None:
    assert parse(html) == expected


def test_source_parses_page_bytes_like_str(html: str, expected: dict[str, Any]) -> None:
    page = Page(url=FINAL, final_url=URL, status=200, body=html.encode("utf-8"))
    source = ReportSource()
    assert source.name == "report"
    assert result_to_dict(source.parse(page)) == expected


def test_result_is_json_ready(html: str) -> None:
    data = parse(html)
    assert json.loads(json.dumps(data)) == data


def test_decoys_outside_the_report_are_ignored(html: str) -> None:
    page = drop(html, NO_META)
    data = parse(page)
    assert data["doi"] == "10.1038/bmt.2012.184"  # not the 10.9999 in the script
    assert data["title"].startswith("Mesenchymal SCT")  # not the h1 in the JSON script
    assert all(not s["citing_doi"].startswith("10.9999") for s in data["statements"])
    assert len(data["statements"]) == 5


# --- fallbacks ------------------------------------------------------------------------


def test_no_meta_tags_falls_back_to_the_visible_header(html: str) -> None:
    data = parse(drop(html, NO_META))
    assert data["doi"] == "10.1038/bmt.2012.184"  # from #report[data-doi], lowercased
    assert data["title"] == (
        "Mesenchymal SCT ameliorates refractory cytopenia in patients with systemic lupus "
        "erythematosus"
    )
    assert data["authors"] == ["X Li", "D Wang", "J Liang", "H Zhang", "L Sun"]
    assert data["journal"] == "Bone Marrow Transplantation"
    assert data["year"] == 2012
    assert data["publication_date"] is None


def test_doi_from_data_attribute(html: str) -> None:
    page = drop(html, r'<meta name="citation_doi"[^>]*>')
    page = edit(page, 'data-doi="10.1038/BMT.2012.184"', 'data-doi="10.1038/BMT.2012.999"')
    assert parse(page)["doi"] == "10.1038/bmt.2012.999"


def test_doi_from_visible_text(html: str) -> None:
    page = drop(html, r'<meta name="citation_doi"[^>]*>')
    page = edit(page, ' data-doi="10.1038/BMT.2012.184"', "")
    page = edit(page, "DOI: 10.1038/bmt.2012.184</a>", "DOI: 10.1038/BMT.2012.777</a>")
    assert parse(page)["doi"] == "10.1038/bmt.2012.777"


def test_invalid_meta_doi_falls_through(html: str) -> None:
    page = edit(html, 'content="10.1038/bmt.2012.184"', 'content="not a doi"')
    assert parse(page)["doi"] == "10.1038/bmt.2012.184"


def test_first_non_empty_meta_wins(html: str) -> None:
    page = edit(
        html,
        '<meta name="citation_title"',
        '<meta name="citation_title" content=" "><meta name="citation_title" content="Second">'
        '<meta name="citation_title"',
    )
    assert parse(page)["title"] == "Second"


def test_meta_date_forms(html: str) -> None:
    for raw, year, date in (
        ("2012-09-10", 2012, "2012-09-10"),
        ("2012", 2012, None),
        ("2012/02/31", 2012, None),
    ):
        data = parse(edit(html, 'content="2012/09/10"', f'content="{raw}"'))
        assert (data["year"], data["publication_date"]) == (year, date), raw


def test_title_inline_markup_reads_as_text(html: str) -> None:
    page = drop(html, r'<meta name="citation_title"[^>]*>')
    page = re.sub(
        r'<h1 class="report-title">.*?</h1>',
        '<h1 class="report-title">Probiotic <i>Bacillus</i> species</h1>',
        page,
    )
    assert parse(page)["title"] == "Probiotic Bacillus species"
    escaped = edit(
        html,
        'content="Mesenchymal SCT ameliorates refractory cytopenia in patients with systemic '
        'lupus erythematosus"',
        'content="Probiotic &lt;i&gt;Bacillus&lt;/i&gt; species"',
    )
    assert parse(escaped)["title"] == "Probiotic Bacillus species"


def test_no_canonical_uses_final_url(html: str) -> None:
    page = drop(html, r'<link rel="canonical"[^>]*>')
    data = parse(page, FINAL)
    assert data["report_url"] == FINAL
    assert data["next_page_url"] == FINAL + "?page=2"


# --- abstract -------------------------------------------------------------------------


def test_abstract_absent_is_unknown(html: str) -> None:
    data = parse(drop(html, r'<div class="report-abstract".*?</div>'))
    assert data["abstract"] is None
    assert data["abstract_truncated"] is None


def test_abstract_whole(html: str) -> None:
    page = re.sub(
        r'<div class="report-abstract".*?</div>',
        '<div class="report-abstract">Abstract: We did it. '
        '<button class="show-more">Show more</button></div>',
        html,
        flags=re.S,
    )
    data = parse(page)
    assert data["abstract"] == "We did it."
    assert data["abstract_truncated"] is False


def test_abstract_trailing_ellipsis_means_truncated(html: str) -> None:
    page = re.sub(
        r'<div class="report-abstract".*?</div>',
        '<div class="report-abstract">We did it and then...</div>',
        html,
        flags=re.S,
    )
    data = parse(page)
    assert data["abstract"] == "We did it and then..."
    assert data["abstract_truncated"] is True


# --- tallies --------------------------------------------------------------------------


def test_cited_by_singular_forms(html: str) -> None:
    page = edit(
        html,
        "Cited by 71 publications <span>(49 citation statements)</span>",
        "Cited by 1 publication <span>(1 citation statement)</span>",
    )
    tallies = parse(page)["tallies"]
    assert (tallies["citing_publications"], tallies["citation_statements"]) == (1, 1)


def test_thousands_separators(html: str) -> None:
    page = edit(
        html, '<span class="tally-count">49</span>', '<span class="tally-count">1,234</span>'
    )
    page = edit(
        page,
        "Cited by 71 publications <span>(49 citation statements)</span>",
        "Cited by 12,345 publications <span>(1,234,567 citation statements)</span>",
    )
    page = edit(page, "References 22 publications", "References 2,022 publications")
    tallies = parse(page)["tallies"]
    assert tallies["mentioning"] == 1234
    assert tallies["citing_publications"] == 12345
    assert tallies["citation_statements"] == 1234567
    assert tallies["references_count"] == 2022


def test_missing_tallies_are_unknown_not_zero(html: str) -> None:
    page = drop(html, r'<div class="tally" data-type="contrasting">.*?</div>')
    page = drop(page, r'<p class="cited-by">.*?</p>')
    page = drop(page, r'<p class="references">.*?</p>')
    tallies = parse(page)["tallies"]
    assert tallies == {
        "supporting": 0,
        "mentioning": 49,
        "contrasting": None,
        "citing_publications": None,
        "citation_statements": None,
        "references_count": None,
    }


def test_contradicting_means_contrasting(html: str) -> None:
    page = edit(
        html,
        'data-type="contrasting"><span class="tally-label">Contrasting</span> '
        '<span class="tally-count">0</span>',
        'data-type="Contradicting"><span class="tally-label">Contradicting</span> '
        '<span class="tally-count">3</span>',
    )
    page = edit(
        page,
        '<span class="statement-type">Mentioning</span>',
        '<span class="statement-type">CONTRADICTING</span>',
    )
    data = parse(page)
    assert data["tallies"]["contrasting"] == 3
    assert data["statements"][1]["type"] == "contrasting"


# --- facets ---------------------------------------------------------------------------


def test_unknown_facets_are_kept_in_order(html: str) -> None:
    page = edit(
        html,
        '<div class="facet" data-facet="year">',
        '<div class="facet" data-facet="Funder"><ul><li><span class="facet-label">NIH</span>'
        '</li></ul></div><div class="facet" data-facet="year">',
    )
    facets = parse(page)["facets"]
    assert facets[6] == ["Funder", "NIH", None]
    assert facets[7] == ["year", "2014", 6]
    assert len(facets) == 13


# --- statements -----------------------------------------------------------------------


def test_br_reads_as_a_space(html: str) -> None:
    page = edit(
        html, "increased blood cell counts, which", "increased blood<br>cell<BR/>counts,<br />which"
    )
    snippet = parse(page)["statements"][0]["snippet"]
    assert "increased blood cell counts, which might" in snippet


def test_entities_nbsp_and_nfc(html: str) -> None:
    page = edit(html, "Lupus bone marrow MSCs", "Lupus&nbsp;&amp; bone marrow Me\u0301SCs", count=2)
    title = parse(page)["statements"][3]["citing_title"]
    assert title == "Lupus & bone marrow M\u00e9SCs and B cell suppression"


def test_scripts_inside_the_report_are_not_text(html: str) -> None:
    page = edit(html, "after MSC treatment", "after <script>var x = 1;</script>MSC treatment")
    assert "var x" not in parse(page)["statements"][0]["snippet"]


def test_optional_statement_parts_are_null(html: str) -> None:
    first = re.search(STATEMENT, html, re.S)
    assert first is not None
    bare = re.sub(
        r'<span class="(statement-confidence|statement-type|statement-section|citing-'
        r'year|citing-journal)">.*?</span>',
        "",
        first.group(0),
    )
    page = html.replace(first.group(0), bare)
    statement = parse(page)["statements"][0]
    assert statement["citing_doi"] == "10.5555/cite.0001"
    assert statement["citing_title"] == "Mesenchymal stromal cells in the treatment of cytopenias"
    for key in ("citing_year", "citing_journal", "section", "type", "confidence"):
        assert statement[key] is None, key


def test_statement_without_citing_doi_is_left_out(html: str) -> None:
    page = edit(html, ' data-citing-doi="10.5555/cite.0003"', "")
    dois = [s["citing_doi"] for s in parse(page)["statements"]]
    assert dois == [
        "10.5555/cite.0001",
        "10.5555/cite.0002",
        "10.5555/cite.0004",
        "10.5555/cite.0004",
    ]


def test_only_direct_children_of_the_list_count(html: str) -> None:
    nested = (
        '<div class="extra"><ol class="statements"><li class="statement" '
        'data-citing-doi="10.7777/nested"><blockquote class="snippet">x</blockquote></li>'
        "</ol></div>"
    )
    page = edit(
        html,
        '<span class="statement-type">Mentioning</span>',
        f'<span class="statement-type">Mentioning</span>{nested}',
    )
    assert [s["citing_doi"] for s in parse(page)["statements"]].count("10.7777/nested") == 0


def test_empty_statement_list_is_a_report(html: str) -> None:
    page = drop(html, STATEMENT)
    data = parse(page)
    assert data["statements"] == []
    assert data["doi"] == "10.1038/bmt.2012.184"


def test_invalid_utf8_bytes_still_parse(html: str, expected: dict[str, Any]) -> None:
    body = html.encode("utf-8").replace(b"Home", b"Ho\xff\xfeme")
    assert result_to_dict(parse_report(body, URL)) == expected


# --- next page ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("href", "expected_url"),
    [
        ("?page=2", URL + "?page=2"),
        ("/reports/other-slug?page=3", "https://scite.ai/reports/other-slug?page=3"),
        ("https://scite.ai/reports/abs?page=4", "https://scite.ai/reports/abs?page=4"),
        ("javascript:void(0)", None),
        ("", None),
        ("#", None),
    ],
)
def test_next_link(html: str, href: str, expected_url: str | None) -> None:
    page = edit(html, '<a rel="next" href="?page=2">', f'<a rel="next" href="{href}">')
    assert parse(page)["next_page_url"] == expected_url


def test_last_page_has_no_next(html: str) -> None:
    page = drop(html, r'<a rel="next"[^>]*>Next</a>')
    assert parse(page)["next_page_url"] is None


# --- broken pages ---------------------------------------------------------------------


def _no_doi(html: str) -> str:
    page = drop(html, r'<meta name="citation_doi"[^>]*>')
    page = edit(page, ' data-doi="10.1038/BMT.2012.184"', "")
    return drop(page, r'<a class="report-doi".*?</a>')


def _no_title(html: str) -> str:
    return drop(
        drop(html, r'<meta name="citation_title"[^>]*>'), r'<h1 class="report-title">.*?</h1>'
    )


@pytest.mark.parametrize(
    ("make", "missing"),
    [
        (_no_doi, ("doi",)),
        (_no_title, ("title",)),
        (lambda h: edit(h, 'class="report-tallies"', 'class="tallies-v2"'), ("tallies",)),
        (
            lambda h: edit(h, '<ol class="statements">', '<ol class="citations">'),
            ("statement list",),
        ),
        (
            lambda h: _no_title(_no_doi(h)),
            ("doi", "title"),
        ),
        (
            lambda h: "<html><body><form>Please log in</form></body></html>",
            ("doi", "title", "tallies", "statement list"),
        ),
        (lambda h: "", ("doi", "title", "tallies", "statement list")),
    ],
    ids=["no-doi", "no-title", "no-tallies", "no-statements", "no-doi-no-title", "login", "empty"],
)
def test_broken_page_names_what_is_missing(html: str, make: Any, missing: tuple[str, ...]) -> None:
    with pytest.raises(ParseError) as info:
        parse_report(make(html), URL)
    assert info.value.missing == missing
    for name in missing:
        assert name in str(info.value)


def test_statements_with_no_identity_at_all_are_drift(html: str) -> None:
    page = re.sub(r' data-citing-doi="10\.5555/cite\.\d+"', "", html)
    with pytest.raises(ParseError, match="citing DOI"):
        parse_report(page, URL)


# --- selectors from configuration -----------------------------------------------------


def test_selector_override_changes_what_is_parsed(html: str, tmp_path: Path) -> None:
    drifted = edit(html, '<ol class="statements">', '<ol class="citation-list">')
    drifted = edit(drifted, 'class="report-tallies"', 'class="counts"')
    with pytest.raises(ParseError):
        parse_report(drifted, URL)
    override = tmp_path / "selectors.toml"
    override.write_text(
        '[statements]\nlist = "ol.citation-list"\n[tallies]\nsection = "section.counts"\n'
    )
    source = ReportSource(load_selectors(str(override)))
    page = Page(url=URL, final_url=URL, status=200, body=drifted.encode())
    result = source.parse(page)
    assert len(result.statements) == 5
    assert result.tallies.mentioning == 49


def test_selector_override_can_point_elsewhere(html: str, tmp_path: Path) -> None:
    override = tmp_path / "selectors.toml"
    override.write_text('[statements]\nsnippet = ".citing-journal"\n')
    result = parse_report(html, URL, load_selectors(str(override)))
    # Statements 2 and 3 have no journal, so without a snippet they have no identity.
    assert [s.snippet for s in result.statements] == [
        "Stem Cell Reviews",
        "Journal of Immunology",
        "Journal of Immunology",
    ]


def test_example_deployment_file_parses_the_sample_the_same(
    html: str, expected: dict[str, Any]
) -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "selectors.toml"
    result = parse_report(html, URL, load_selectors(str(example)))
    assert result_to_dict(result) == expected


def test_selector_the_engine_rejects_is_a_parse_error(html: str) -> None:
    base = load_selectors()
    broken = replace(base, statements=replace(base.statements, snippet="[[["))
    with pytest.raises(ParseError, match="selector"):
        parse_report(html, URL, broken)


# --- data honesty: suffixed counts, walls -----------------------------------------------


def test_suffixed_counts_are_read_whole(html: str) -> None:
    page = edit(
        html, '<span class="tally-count">49</span>', '<span class="tally-count">1.2k</span>'
    )
    page = edit(page, "Cited by 71 publications", "Cited by 3.4M publications")
    page = edit(page, "(49 citation statements)", "(12k citation statements)")
    page = edit(page, "References 22 publications", "References 2 K publications")
    tallies = parse(page)["tallies"]
    assert tallies["mentioning"] == 1200
    assert tallies["citing_publications"] == 3_400_000
    assert tallies["citation_statements"] == 12_000
    assert tallies["references_count"] == 2000


@pytest.mark.parametrize("count", ["1.5", "1.2345k", "2.5 citations"])
def test_a_count_that_cannot_be_read_whole_is_a_parse_error(html: str, count: str) -> None:
    page = edit(
        html, '<span class="tally-count">49</span>', f'<span class="tally-count">{count}</span>'
    )
    with pytest.raises(ParseError, match="not a whole number"):
        parse(page)


@pytest.mark.parametrize(
    ("body", "wall"),
    [
        ('<html><body><div class="g-recaptcha" data-sitekey="x"></div></body></html>', "captcha"),
        ("<html><head><title>Just a moment...</title></head><body>…</body></html>", "captcha"),
        ("<html><body><p>Please verify you are human</p></body></html>", "captcha"),
        ('<html><body><form><input type="password" name="p"></form></body></html>', "login"),
        ("<html><body><h1>Sign in to see this report</h1></body></html>", "login"),
    ],
)
def test_a_captcha_or_login_wall_is_blocked_not_drift(body: str, wall: str) -> None:
    with pytest.raises(BlockedError) as info:
        parse_report(body, URL)
    assert info.value.reason == f"blocked: {wall} wall"


RECAPTCHA_FOOTER = (
    '<footer><form action="/feedback"><div class="g-recaptcha" data-sitekey="6Lc"></div>'
    "<p>This site is protected by reCAPTCHA and the Google Privacy Policy applies. "
    "Please complete the captcha to send feedback.</p></form></footer></body>"
)


def test_a_drifted_report_mentioning_recaptcha_is_drift_not_a_wall(html: str) -> None:
    """A report page whose statement list moved (a layout drift) and whose footer holds a
    reCAPTCHA feedback form is broken, kept for reparse, not "blocked: captcha wall"
    (issue 25, point 7): a wall is a short page."""
    page = edit(edit(html, '<ol class="statements">', '<ol class="citations">'), "</body>",
                RECAPTCHA_FOOTER)  # fmt: skip
    with pytest.raises(ParseError, match="no statement list") as info:
        parse(page)
    assert not isinstance(info.value, BlockedError)


def test_a_long_text_about_captcha_walls_is_not_one() -> None:
    """`citepipe parse README.md`: a document that explains captcha walls is no wall."""
    text = (
        "<html><body><pre>"
        + (
            "A page is `blocked: captcha wall` when the site sends a captcha (reCAPTCHA, "
            "hCaptcha, Turnstile) instead of the report; verify you are human, just a moment. "
        )
        * 30
        + "</pre></body></html>"
    )
    with pytest.raises(ParseError, match="not a report page") as info:
        parse_report(text, URL)
    assert not isinstance(info.value, BlockedError)


def test_a_report_with_a_login_form_in_its_header_is_still_a_report(html: str) -> None:
    page = edit(html, "<body>", '<body><form action="/login"><input type="password"></form>')
    assert parse(page)["doi"] == "10.1038/bmt.2012.184"


def test_a_page_that_links_to_itself_is_left_for_the_pagination_guard(html: str) -> None:
    page = edit(html, '<a rel="next" href="?page=2">', f'<a rel="next" href="{URL}">')
    assert parse(page)["next_page_url"] == URL
