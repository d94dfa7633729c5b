"""The report parser's shortcuts give what the plain rules give.

The parser remembers the readings of short, repeated texts (`_memo`); these tests check
that a remembered reading is the normaliser's, that long texts bypass the cache, and that
a reading that raises raises every time. It reads an element's text with lexbor's own
`text_lexbor()` (DOM text content), which must be what `text()` gives, on any markup.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser

from pipeline.errors import ParseError
from pipeline.normalise import parse_confidence, parse_count, parse_year, strip_label
from pipeline.sources import report

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "samples" / "seed-report-page1.html"

SHORT = st.text(
    st.sampled_from("0123456789.,% kKmMbB:()Confidence Section-\u00a0\u2009"), max_size=80
)


@given(SHORT)
def test_memoised_readings_are_the_normalisers(text: str) -> None:
    for _ in range(2):  # the second time from the cache
        assert report._confidence(text) == parse_confidence(text)
        assert report._year(text) == parse_year(text)
        assert report._strip_label(text, "Section") == strip_label(text, "Section")
        try:
            expected: int | ParseError | None = parse_count(text)
        except ParseError as e:
            expected = e
        if isinstance(expected, ParseError):
            with pytest.raises(ParseError):
                report._count(text)
        else:
            assert report._count(text) == expected


def test_memoised_readings_of_none_and_long_texts() -> None:
    long = "Confidence: " + " " * 100 + "42 %"
    assert len(long) > report._MEMO_MAX_LEN
    assert report._confidence(long) == parse_confidence(long) == 0.42
    assert report._confidence(None) is None
    assert report._count(None) is None
    assert report._strip_label(None, "Section") is None
    assert report._strip_label("Section: " + "x" * 100, "Section") == "x" * 100


def test_a_count_that_raises_raises_again() -> None:
    for _ in range(3):
        with pytest.raises(ParseError):
            report._count("1,2k")


# Markup pieces a hostile or broken page may hold: foreign content and CDATA, comments,
# templates, `<br>`, invalid UTF-8, NULs, entities, unclosed and misnested tags.
PIECES = [
    b"<p class=snippet>",
    b"</p>",
    b"<span>",
    b"</span>",
    b"text ",
    b"\xe2\x80\x9c\xe2\x80\xa6",
    b"<br>",
    b"<script>x<y</script>",
    b"<style>a{}</style>",
    b"<template>t<b>u</b></template>",
    b"<noscript>n</noscript>",
    b"<svg><![CDATA[c]]><title>s</title></svg>",
    b"<math><mi>m</mi></math>",
    b"<!-- c -->",
    b"<?pi x?>",
    b"\xff\xfe",
    b"\x00",
    b"&amp;&#0;&#x110000;&hellip",
    b"<table><td>cell",
    b"<select><option>o</select><selectedcontent></selectedcontent>",
    b"<textarea>ta</textarea>",
    b"<li class=statement>",
    b"</ol>",
]


def _texts_agree(html: bytes) -> None:
    tree = LexborHTMLParser(html)
    root = tree.root
    assert root is not None
    for prepared in (False, True):
        if prepared:
            report._prepare(root)
        for node in root.traverse():
            if node.is_element_node:  # the parser reads elements only (CSS matches)
                assert node.text_lexbor() == node.text(), node.html


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40))
def test_lexbor_text_content_is_text(pieces: list[bytes]) -> None:
    _texts_agree(b"<div id=report><ol class=statements>" + b"".join(pieces))


def test_lexbor_text_content_is_text_on_the_sample() -> None:
    _texts_agree(SAMPLE.read_bytes())
