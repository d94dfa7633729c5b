"""User search text as FTS5 (issue 25, point 14): punctuation quoted, the syntax kept."""

from __future__ import annotations

import pytest

from pipeline.errors import StoreError
from pipeline.store.fts import fts5_query


@pytest.mark.parametrize(
    ("text", "fts5"),
    [
        ("COVID-19", '"COVID-19"'),
        ("T-cells", '"T-cells"'),
        ("it's", '"it\'s"'),
        ("e.g.", '"e.g."'),
        ("T-cell*", '"T-cell"*'),
        ("graft survival", "graft survival"),
        ('"bone marrow" OR transplant*', '"bone marrow" OR transplant*'),
        ('"a b"  *', '"a b"*'),
        ("graft NOT host", "graft NOT host"),
        ("NEAR(graft host, 5)", "NEAR(graft host, 5)"),
        ("(a OR b) AND c", "( a OR b ) AND c"),
        ("snippet:graft", '"snippet:graft"'),  # no column filter from user text
        ("naïve Ø", "naïve Ø"),
    ],
)
def test_terms_with_punctuation_are_quoted_and_the_syntax_is_kept(text: str, fts5: str) -> None:
    assert fts5_query(text) == fts5


@pytest.mark.parametrize(("text", "why"), [('"open', "not closed"), ("* *", "no word")])
def test_a_query_with_nothing_to_search_is_bad(text: str, why: str) -> None:
    with pytest.raises(StoreError, match=why):
        fts5_query(text)
