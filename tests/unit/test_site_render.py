"""The renderer: contract structure, weight, decoys, and the spread of markup variation."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from selectolax.lexbor import LexborHTMLParser

from citesite.dataset import SEED_DOI, demo_dataset_path, load_dataset, page_count
from citesite.generator import generate
from citesite.render import render_page
from citesite.static import CAPTCHA_PAGE, LOGIN_PAGE
from citesite.style import report_style
from pipeline.errors import ParseError
from pipeline.sources.report import parse_report

BASE = "http://127.0.0.1:8765"


@pytest.fixture(scope="module")
def pages() -> list[str]:
    """Every page of 300 generated reports, as text."""
    out = []
    for r in generate(300, seed=11):
        out += [render_page(r, p, BASE).decode() for p in range(1, page_count(r) + 1)]
    return out


def test_rendering_is_deterministic() -> None:
    r = next(iter(generate(1, seed=4)))
    assert render_page(r, 1, BASE) == render_page(r, 1, BASE)
    assert render_page(r, 1, BASE) != render_page(r, 1, "http://127.0.0.1:1")


def test_seed_page_looks_like_the_sample() -> None:
    seed = load_dataset(demo_dataset_path())[SEED_DOI]
    html = render_page(seed, 1, BASE).decode()
    tree = LexborHTMLParser(html)
    assert tree.css_first("link[rel=canonical]").attributes["href"] == (
        f"{BASE}/reports/mesenchymal-sct-ameliorates-refractory-cytopenia-14Lxay"
    )
    assert len(tree.css("ol.statements > li.statement")) == 25
    assert tree.css_first("a[rel=next]") is not None
    assert 30_000 < len(html.encode()) < 150_000, "page weight like a real report"
    for decoy in ('id="__state"', "10.9999/not-this-one", 'class="trending"', "<footer>"):
        assert decoy in html
    last = render_page(seed, 2, BASE).decode()
    assert len(LexborHTMLParser(last).css("ol.statements > li.statement")) == 24
    assert "rel=" not in re.sub(r'rel=["\']?(canonical|prev)', "", last.split("<body>")[1])
    with pytest.raises(ValueError):
        render_page(seed, 3, BASE)


def test_page_without_statements_still_has_the_list() -> None:
    demo = load_dataset(demo_dataset_path())
    empty = next(r for r in demo.values() if not r.statements)
    html = render_page(empty, 1, BASE).decode()
    assert LexborHTMLParser(html).css_first("ol.statements") is not None
    result = parse_report(html, f"{BASE}/reports/{empty.slug}")
    assert result.statements == () and result.tallies.supporting is None


@pytest.mark.parametrize(
    ("what", "pattern"),
    [
        ("entity quotes", r"&ldquo;"),
        ("literal quotes", "\u201c"),
        ("numeric quotes", r"&#8220;"),
        ("mark", r"<mark>"),
        ("em or i", r"<(em|i)>"),
        ("sup or sub", r"<su[pb]>"),
        ("br", r"<br/?>"),
        ("nbsp", r"&nbsp;"),
        ("hellip entity", r"&hellip;"),
        ("contradicting", r">contradicting<|>Contradicting<|>CONTRADICTING<"),
        ("upper-case type", r">MENTIONING<"),
        ("title-case type", r">Mentioning<"),
        ("thousands separators", r'class="tally-count">\d{1,3},\d{3}<'),
        ("singular publication", r"Cited by 1 publication\b"),
        ("single-quoted attributes", r"class='statement"),
        ("attribute order varies", r'<li data-citing-doi="[^"]+" class="statement'),
        ("extra classes", r'class="statement (card|is-|statement--)'),
        ("list wrapper", r'class="statements-wrapper"'),
        ("relative next", r'rel="next" href="\?page='),
        ("absolute next", r'href="http://127\.0\.0\.1:8765/reports/[^"]+\?page=\d+"'),
        ("upper-case citing DOI", r'data-citing-doi="10\.5555/CITE'),
        ("doi.org citing DOI", r'data-citing-doi="https://doi.org/'),
        ("no section", r'<span class="statement-type">'),
        ("confidence spacing", r"Confidence: \d+ %"),
        ("show more link", r'<a class="show-more"'),
        ("no abstract flag", r'class="report-abstract">'),
        ("comment decoy", r"commented-out"),
        ("time element", r"<time datetime="),
        ("markup written into the title tag", r"citation_title\" content=\"[^\"]*&lt;i&gt;"),
    ],
)
def test_variation_occurs(pages: list[str], what: str, pattern: str) -> None:
    rx = re.compile(pattern)
    assert any(rx.search(p) for p in pages), f"no page shows {what}"


def test_variation_is_per_page_not_global(pages: list[str]) -> None:
    lists = [p.split("<ol", 1)[1].split("</ol>", 1)[0] for p in pages]
    quoted = Counter("&ldquo;" in li for li in lists if "statement" in li)
    assert quoted[True] > 20 and quoted[False] > 20


def test_meta_tags_go_missing_for_some_reports() -> None:
    styles = [report_style(r.doi) for r in generate(400, seed=12)]
    assert any(not s.meta_date for s in styles) and any(not s.meta_authors for s in styles)
    assert any(s.date_format == "year" for s in styles)
    assert 0.1 < sum(s.direct for s in styles) / len(styles) < 0.5
    assert {s.redirect_status for s in styles} == {301, 302}


@pytest.mark.parametrize("body", [CAPTCHA_PAGE, LOGIN_PAGE])
def test_walls_are_not_reports(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_report(body, f"{BASE}/reports/x")
