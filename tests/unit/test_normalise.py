"""Properties of the normalisers: DOIs, text, numbers, confidence, dates, types."""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from urllib.parse import unquote

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from pipeline.errors import BadInputError, ParseError
from pipeline.normalise import (
    _DOI_PREFIX_RE,
    DOI_RE,
    clean_text,
    doi_or_none,
    doi_path,
    normalise_doi,
    parse_confidence,
    parse_count,
    parse_date,
    parse_int,
    parse_statement_type,
    parse_year,
    report_address,
    snippet_hash,
    strip_label,
    strip_snippet_quotes,
)

# A DOI suffix: anything printable without whitespace, including the characters that
# need percent-encoding in a URL (`<`, `>`, `#`, `?`, `%`) and non-ASCII letters.
_SUFFIX_CHARS = st.characters(
    blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
    blacklist_characters="\x85\x1c\x1d\x1e\x1f",
)
suffixes = st.text(_SUFFIX_CHARS, min_size=1, max_size=40).filter(
    lambda s: not any(c.isspace() for c in s)
)
prefixes = st.from_regex(r"10\.[0-9]{4,9}", fullmatch=True)


@st.composite
def dois(draw: st.DrawFn) -> str:
    """A valid DOI in normal form (lowercase)."""
    doi = f"{draw(prefixes)}/{draw(suffixes)}".lower()
    if not DOI_RE.match(doi):  # lowercasing can, rarely, produce whitespace-free oddities
        doi = f"{draw(prefixes)}/x"
    return doi


def _vary_case(doi: str, flips: list[bool]) -> str:
    flips = (flips + [False] * len(doi))[: len(doi)]
    return "".join(c.upper() if flip else c for c, flip in zip(doi, flips, strict=True))


# --- DOIs -----------------------------------------------------------------------------


@given(
    doi=dois(),
    prefix=st.sampled_from(
        ["", "doi:", "DOI: ", "https://doi.org/", "http://dx.doi.org/", "HTTPS://DOI.ORG/"]
    ),
    encode=st.booleans(),
    pad=st.sampled_from(["", " ", "\t", "  \n"]),
)
def test_doi_round_trips_through_prefixes_encoding_and_space(
    doi: str, prefix: str, encode: bool, pad: str
) -> None:
    # Unencoded, a `%` would be read as an escape: the contract percent-decodes always.
    assume(encode or "%" not in doi)
    written = doi_path(doi) if encode else doi
    assert normalise_doi(f"{pad}{prefix}{written}{pad}") == doi


@given(doi=dois(), flips=st.lists(st.booleans(), max_size=60))
def test_doi_is_case_insensitive(doi: str, flips: list[bool]) -> None:
    ascii_only = "".join(c for c in doi if c.isascii())
    assume(DOI_RE.match(ascii_only) and "%" not in ascii_only)
    assert doi_or_none(_vary_case(ascii_only, flips)) == ascii_only


@given(doi=dois())
def test_doi_path_then_unquote_gives_back_the_doi(doi: str) -> None:
    path = doi_path(doi)
    assert unquote(path) == doi
    assert path.count("/") == doi.count("/")  # `/` stays as it is
    assert path.isascii()
    assert not set("<>#? ") & set(path)
    assert re.fullmatch(r"(?:[^%]|%[0-9A-F]{2})*", path)  # every `%` is an escape


@given(doi=dois())
def test_report_address_contains_the_encoded_doi(doi: str) -> None:
    address = report_address("https://scite.ai/", doi)
    assert address == f"https://scite.ai/reports/{doi_path(doi)}"
    assert normalise_doi(address.removeprefix("https://scite.ai/reports/")) == doi


@given(st.text(max_size=40))
@example("10.1234/x\n")
@example("10.1234/x%0A")
@example("10.١٢٣٤/x")
def test_anything_returned_is_a_valid_doi(raw: str) -> None:
    doi = doi_or_none(raw)
    if doi is None:
        with pytest.raises(BadInputError):
            normalise_doi(raw)
    else:
        assert DOI_RE.match(doi)
        assert not any(c.isspace() for c in doi)
        assert doi == doi.lower()


@given(
    st.sampled_from(["", " ", "\t", "10.", "10.1234/", "doi:", "DOI: ", "https://doi.org/"]),
    st.text(max_size=30),
)
@example("", "10.1234/doi.org/x")
@example(" ", "10.1234/%41 ")
def test_doi_or_none_is_the_prefix_rule_for_every_text(head: str, tail: str) -> None:
    # `doi_or_none` skips the prefix regex for texts starting with `10.`: the same result.
    raw = head + tail
    s = _DOI_PREFIX_RE.sub("", raw.strip(), count=1).strip()
    s = unquote(s).lower()
    assert doi_or_none(raw) == (s if DOI_RE.match(s) else None)


@pytest.mark.parametrize(
    "raw", ["", "10.12/x", "11.1234/x", "10.1234/", "10.1234/a b", "doi:", "https://doi.org/"]
)
def test_not_dois(raw: str) -> None:
    assert doi_or_none(raw) is None


def test_doi_examples() -> None:
    assert normalise_doi(" doi:10.1038/BMT.2012.184 ") == "10.1038/bmt.2012.184"
    assert normalise_doi("https://doi.org/10.1002/%28SICI%291097") == "10.1002/(sici)1097"
    assert normalise_doi("https://www.doi.org/10.1000/X") == "10.1000/x"


# --- text -----------------------------------------------------------------------------


@given(st.text())
def test_clean_text_is_idempotent_and_folded(text: str) -> None:
    cleaned = clean_text(text)
    if cleaned is None:
        assert not text.strip()
        return
    assert clean_text(cleaned) == cleaned
    assert "  " not in cleaned
    assert cleaned == cleaned.strip()
    assert not any(c.isspace() and c != " " for c in cleaned)
    assert unicodedata.is_normalized("NFC", cleaned)


@given(st.text())
def test_clean_text_folds_exactly_what_regex_whitespace_matches(text: str) -> None:
    reference = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip() or None
    assert clean_text(text) == reference


@given(
    st.lists(
        st.sampled_from(
            [
                "word",
                "Wörd",
                "\u201c",
                "\u2026",
                " ",
                "  ",
                "\n",
                "\u00a0",
                "\u2003",
                "e\u0301",
                "\x1c",
                "\u00ad",
            ]
        ),
        min_size=20,
        max_size=60,
    )
)
def test_clean_text_long_texts_take_the_quick_check_and_agree(parts: list[str]) -> None:
    # Texts of 64 characters and more are first checked for being folded already.
    text = "".join(parts)
    reference = re.sub(r"\s+", " ", unicodedata.normalize("NFC", text)).strip() or None
    assert clean_text(text) == reference


def test_only_the_ascii_space_is_both_whitespace_and_printable() -> None:
    # What the quick check of `clean_text` relies on, on this Python's Unicode database.
    both = [c for c in map(chr, range(0x110000)) if c.isspace() and c.isprintable()]
    assert both == [" "]


def test_clean_text_examples() -> None:
    assert clean_text(None) is None
    assert clean_text(" \n\t ") is None
    assert clean_text("a\u00a0 b\n\nc") == "a b c"
    assert clean_text("Me\u0301SCs") == "M\u00e9SCs"


@given(st.text(st.characters(codec="utf-8"), min_size=1))
def test_snippet_quotes_stripped_ellipses_kept(inner: str) -> None:
    core = clean_text(inner.replace("\u201c", "").replace("\u201d", "").replace('"', ""))
    if core is None:
        return
    assert strip_snippet_quotes(f"\u201c\u2026{core}\u2026\u201d") == f"\u2026{core}\u2026"
    assert strip_snippet_quotes(f"\u201c{core}\u201d") == core


def test_snippet_quote_examples() -> None:
    assert strip_snippet_quotes('termed "MSC"') == 'termed "MSC"'
    assert strip_snippet_quotes('"quoted whole"') == "quoted whole"
    assert strip_snippet_quotes("\u201c\u2026cut at the end") == "\u2026cut at the end"


@pytest.mark.parametrize(
    ("text", "label", "expected"),
    [
        ("Section: Discussion", "Section", "Discussion"),
        ("section :  Methods ", "Section", "Methods"),
        ("Sections of interest", "Section", "Sections of interest"),
        ("Abstract: Our data", "Abstract:", "Our data"),
        ("Discussion", "Section", "Discussion"),
        ("Section:", "Section", None),
        (None, "Section", None),
    ],
)
def test_strip_label(text: str | None, label: str, expected: str | None) -> None:
    assert strip_label(text, label) == expected


# --- numbers --------------------------------------------------------------------------


@given(n=st.integers(min_value=0, max_value=2**63 - 1), grouped=st.booleans())
def test_parse_int_of_formatted_ints(n: int, grouped: bool) -> None:
    written = f"{n:,}" if grouped else str(n)
    assert parse_int(written) == n
    assert parse_int(f"Cited by {written} publications") == n


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", None),
        ("none", None),
        ("12,34", 12),
        ("1,234.5", 1234),
        (str(2**63), None),
        ("9" * 5000, None),
    ],
)
def test_parse_int_examples(text: str | None, expected: int | None) -> None:
    assert parse_int(text) == expected


@given(st.text())
def test_parse_confidence_is_a_fraction_or_none(text: str) -> None:
    value = parse_confidence(text)
    assert value is None or 0.0 <= value <= 1.0


@given(st.integers(min_value=0, max_value=100))
def test_parse_confidence_of_percentages(p: int) -> None:
    assert parse_confidence(f"confidence: {p}%") == pytest.approx(p / 100)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("confidence: 90%", 0.9), ("0.87", 0.87), ("87", 0.87), ("150%", None), ("n/a", None)],
)
def test_parse_confidence_examples(text: str, expected: float | None) -> None:
    assert parse_confidence(text) == expected


# --- dates and types ------------------------------------------------------------------


@given(st.dates(min_value=date(1000, 1, 1), max_value=date(9999, 12, 31)))
def test_parse_date_forms(d: date) -> None:
    assert parse_date(f"{d.year:04d}/{d.month:02d}/{d.day:02d}") == (d.year, d.isoformat())
    assert parse_date(d.isoformat()) == (d.year, d.isoformat())
    assert parse_date(f"{d.year}/{d.month}/{d.day}") == (d.year, d.isoformat())
    assert parse_date(f"{d.year:04d}") == (d.year, None)
    assert parse_year(f"Published {d.year:04d}.") == d.year


@given(st.text())
def test_parse_date_never_raises_and_dates_are_real(text: str) -> None:
    year, iso = parse_date(text)
    if iso is not None:
        assert date.fromisoformat(iso).year == year


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2012/02/31", (2012, None)), ("2012-13-01", (2012, None)), ("", (None, None))],
)
def test_parse_date_examples(text: str, expected: tuple[int | None, str | None]) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("supporting", "supporting"),
        (" Mentioning ", "mentioning"),
        ("CONTRASTING", "contrasting"),
        ("contradicting", "contrasting"),
        ("Contradicting citation", "contrasting"),
        ("neutral", None),
        (None, None),
    ],
)
def test_parse_statement_type(text: str | None, expected: str | None) -> None:
    assert parse_statement_type(text) == expected


def test_snippet_hash_is_stable() -> None:
    assert snippet_hash("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d"
    assert snippet_hash("abc") != snippet_hash("abd")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", None),
        ("none", None),
        ("1,234", 1234),
        ("1234", 1234),
        ("1.2k", 1200),
        ("1.2K", 1200),
        ("12 k", 12_000),
        ("3.4M", 3_400_000),
        ("2B", 2_000_000_000),
        ("Cited by 1.2k publications", 1200),
        ("12 kinds", 12),  # a word, not a suffix
        ("v2.0 has 7", 7),  # a version number is not a count
        (str(2**63), None),
    ],
)
def test_parse_count_reads_suffixes_whole(text: str | None, expected: int | None) -> None:
    assert parse_count(text) == expected


@pytest.mark.parametrize("text", ["1.5", "1.2345k", "0.5", "1,2k", "1,2345", "3.4.5"])
def test_parse_count_refuses_what_it_cannot_read_whole(text: str) -> None:
    with pytest.raises(ParseError):
        parse_count(text)
