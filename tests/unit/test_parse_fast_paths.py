"""The report parser's shortcuts give what the plain rules give.

The parser remembers the readings of short, repeated texts (`_memo`); these tests check
that a remembered reading is the normaliser's, that long texts bypass the cache, and that
a reading that raises raises every time.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import ParseError
from pipeline.normalise import parse_confidence, parse_count, parse_year, strip_label
from pipeline.sources import report

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
