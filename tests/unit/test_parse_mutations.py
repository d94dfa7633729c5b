"""Mangled pages: the parser either returns a sound result or raises ParseError.

The sample page and a few variants are mutated at random (elements deleted or
duplicated, the HTML cut short, garbage and invalid UTF-8 inserted, bytes flipped), with
a seeded RNG so a failure is reproducible, and with hypothesis for open-ended inputs.
Nothing but ParseError may escape, and what is returned must never be a half-empty
paper. The timeouts catch a parse that hangs.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import astuple
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from pipeline.errors import ParseError
from pipeline.models import result_to_dict
from pipeline.normalise import DOI_RE
from pipeline.sources.report import MAX_TAGS, parse_report

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "samples" / "seed-report-page1.html"
URL = "https://scite.ai/reports/mesenchymal-sct-ameliorates-refractory-cytopenia-14Lxay"
STATEMENT = re.compile(r'<li class="statement" data-citing-doi="10\.5555/cite\.\d+">.*?</li>', re.S)
GARBAGE = [
    b"\xff",
    b"\xfe\xff",
    b"\x00",
    b"\xc3",
    b"\xed\xa0\x80",
    b"<",
    b">",
    b"</",
    b"<!--",
    b"-->",
    b"&",
    b"&#x110000;",
    b"&hellip",
    b'"',
    b"'",
    b"<script>",
    b"<style>",
    b"<br>",
    b"</ol>",
    b"<ol class=statements>",
    b"<li class=statement data-citing-doi=10.1/x>",
    b"<![CDATA[",
    b"<template>",
    b"<table>",
    b"\r\n",
    "\u2026\u201c".encode(),
]


def _sample() -> str:
    if not SAMPLE.is_file():
        pytest.fail(f"fixture {SAMPLE} not found: it ships in tests/fixtures/samples")
    return SAMPLE.read_text("utf-8")


def _variants() -> dict[str, bytes]:
    """The sample, the sample without meta tags, and a 25-statement page."""
    html = _sample()
    statements = STATEMENT.findall(html)
    assert len(statements) == 5
    many = "\n".join(s.replace("cite.000", f"cite.{i:03d}x") for i in range(5) for s in statements)
    long_page = STATEMENT.sub("", html).replace(
        '<ol class="statements">', f'<ol class="statements">{many}', 1
    )
    no_meta = re.sub(r'<meta name="citation_[a-z_]+" content="[^"]*">', "", html)
    return {"sample": html.encode(), "no-meta": no_meta.encode(), "long": long_page.encode()}


VARIANTS = _variants()


def check(body: bytes | str) -> bool:
    """Parse `body`; True for a result (which must be sound), False for ParseError."""
    try:
        result = parse_report(body, URL)
    except ParseError as e:
        assert str(e)
        return False
    paper = result.paper
    assert DOI_RE.match(paper.doi)
    assert paper.title and paper.title == paper.title.strip()
    assert paper.report_url and paper.report_url.startswith("https://")
    for s in result.statements:
        assert DOI_RE.match(s.citing_doi)
        assert s.snippet and "  " not in s.snippet
        assert s.type in (None, "supporting", "mentioning", "contrasting")
        assert s.confidence is None or 0.0 <= s.confidence <= 1.0
    for value in astuple(result.tallies):
        assert value is None or value >= 0
    if result.next_page_url is not None:
        assert result.next_page_url.startswith(("http://", "https://"))
    json.dumps(result_to_dict(result))
    return True


# --- mutations ------------------------------------------------------------------------

Mutation = Callable[[random.Random, bytes], bytes]


def _elements(body: bytes) -> tuple[str, list[str]]:
    tree = LexborHTMLParser(body)
    doc = tree.html or ""
    return doc, [n.html or "" for n in tree.css("body *")]


def delete_element(rng: random.Random, body: bytes) -> bytes:
    doc, elements = _elements(body)
    if not elements:
        return body
    victim = rng.choice(elements)
    return doc.replace(victim, "", 1).encode("utf-8", "replace")


def duplicate_element(rng: random.Random, body: bytes) -> bytes:
    doc, elements = _elements(body)
    if not elements:
        return body
    twin = rng.choice(elements)
    return doc.replace(twin, twin * rng.randint(2, 4), 1).encode("utf-8", "replace")


def cut(rng: random.Random, body: bytes) -> bytes:
    return body[: rng.randrange(len(body) + 1)]


def insert_garbage(rng: random.Random, body: bytes) -> bytes:
    for _ in range(rng.randint(1, 8)):
        at = rng.randrange(len(body) + 1)
        junk = rng.choice(GARBAGE) if rng.random() < 0.7 else rng.randbytes(rng.randint(1, 16))
        body = body[:at] + junk + body[at:]
    return body


def flip_bytes(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    for _ in range(rng.randint(1, 50)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def delete_span(rng: random.Random, body: bytes) -> bytes:
    start = rng.randrange(len(body))
    return body[:start] + body[start + rng.randint(1, 2000) :]


MUTATIONS: list[Mutation] = [
    delete_element,
    duplicate_element,
    cut,
    insert_garbage,
    flip_bytes,
    delete_span,
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_random_mutations_parse_or_raise_parse_error(variant: str) -> None:
    rng = random.Random(f"citepipe-{variant}")
    outcomes = {True: 0, False: 0}
    for case in range(130):
        body = VARIANTS[variant]
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            if body:
                body = rng.choice(MUTATIONS)(rng, body)
        try:
            outcomes[check(body)] += 1
        except Exception as e:  # pragma: no cover - the failure report
            pytest.fail(f"{variant} case {case}: {type(e).__name__}: {e}")
    # The mutations are mild enough that many pages still parse, and harsh enough that
    # some do not: both paths were exercised.
    assert outcomes[True] > 20, outcomes
    assert outcomes[False] > 5, outcomes


@pytest.mark.timeout(60)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_hypothesis_splices(data: st.DataObject) -> None:
    body = VARIANTS[data.draw(st.sampled_from(sorted(VARIANTS)))]
    at = data.draw(st.integers(0, len(body)))
    end = data.draw(st.integers(at, min(len(body), at + 500)))
    junk = data.draw(st.binary(max_size=64) | st.sampled_from(GARBAGE))
    check(body[:at] + junk + body[end:])


@pytest.mark.timeout(60)
@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=4000) | st.text(max_size=2000))
def test_random_input_is_not_a_report(raw: bytes | str) -> None:
    with pytest.raises(ParseError):
        parse_report(raw, URL)


# --- specific hostile inputs ----------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xef\xbb\xbf",
        b"\x00" * 1000,
        "\ud800 lone surrogate <html>",
        b"<div>" * 40_000,
        b"<b>" * (MAX_TAGS + 1),
        b"<" * 100_000,
        b"<!--" + b"x" * 100_000,
        b"<script>" + b"<h1 class=report-title>x</h1>" * 1000,
        b'<meta name="citation_doi" content="10.1234/x"><meta name="citation_title" content="T">',
    ],
    ids=[
        "empty",
        "bom",
        "nuls",
        "surrogate",
        "deep-divs",
        "too-many-tags",
        "lt-storm",
        "open-comment",
        "open-script",
        "meta-only",
    ],
)
def test_hostile_inputs_raise_parse_error(body: bytes | str) -> None:
    with pytest.raises(ParseError):
        parse_report(body, URL)


@pytest.mark.timeout(60)
def test_duplicated_report_still_parses_once() -> None:
    html = VARIANTS["sample"].decode()
    start, end = html.index('<main id="report"'), html.index("</main>") + len("</main>")
    doubled = html[:end] + html[start:end] + html[end:]
    result = parse_report(doubled, URL)
    assert len(result.statements) == 5


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "href", ["http://[::1", "javascript:alert(1)", "mailto:x@y", "//", "", "/reports/relative"]
)
def test_unusable_canonical_href_falls_back_to_final_url(href: str) -> None:
    html = VARIANTS["sample"].decode()
    page = html.replace(
        '<link rel="canonical" href="https://scite.ai/reports/mesenchymal-sct-ameliorates-'
        'refractory-cytopenia-14Lxay">',
        f'<link rel="canonical" href="{href}">',
    )
    assert page != html
    assert parse_report(page, "https://scite.ai/final").paper.report_url == "https://scite.ai/final"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("href", ["http://[::1", "javascript:alert(1)", "mailto:x@y", "//"])
def test_unusable_next_href_means_no_next_page(href: str) -> None:
    html = VARIANTS["sample"].decode()
    page = html.replace('<a rel="next" href="?page=2">', f'<a rel="next" href="{href}">')
    assert page != html
    assert parse_report(page, URL).next_page_url is None
