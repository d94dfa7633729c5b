"""Pure normalisers for what a report page says: DOIs, text, numbers, dates, types.

Every rule here is the contract's (`shared/spec/report-page.md`, Normalisation); the
parser and the input reader go through these functions. The local site has its own,
written apart (`citesite.doi`, `citesite.text`), and a test checks both agree. None of them
raises on odd input except `normalise_doi`, whose job is to reject what is not a DOI, and
`parse_count`, which refuses a count it cannot read whole rather than truncate it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import date
from urllib.parse import quote, unquote

from pipeline.errors import BadInputError, ParseError
from pipeline.models import StatementType
from pipeline.urls import dot_segment

# `[0-9]`, not `\d`: `\d` also matches other scripts' digits; `\Z`, not `$`: `$` accepts a
# trailing newline, which a percent-decoded `%0A` would smuggle in.
DOI_RE = re.compile(r"^10\.[0-9]{4,9}/\S+\Z")
_DOI_PREFIX_RE = re.compile(r"^(?:doi:\s*|(?:https?://)?(?:dx\.|www\.)?doi\.org/)", re.IGNORECASE)
# A grouped number (`1,234,567`) or a plain run of digits.
_INT_RE = re.compile(r"[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])|[0-9]+")
_INT_MAX = 2**63 - 1  # what the store's INTEGER columns hold
# A count as sites write it: `1,234`, `1234`, `1.2k`, `3.4M`, `2B` (k/M/B: thousand,
# million, billion; a space before the suffix is allowed). The digits may not touch other
# digits, dots or letters, so `v2.0` or `12abc` are not read as counts.
_COUNT_RE = re.compile(
    r"(?<![0-9A-Za-z.,])([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(\.[0-9]+)?(?:\s?([kKmMbB])(?![A-Za-z]))?"
)
_SUFFIXES = {"k": 1_000, "m": 1_000_000, "b": 1_000_000_000}
_COUNT_TAIL_RE = re.compile(r"[.,]?[0-9]")
_PERCENT_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*%")
_NUMBER_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_DATE_RE = re.compile(r"^\s*([0-9]{4})(?:[/-]([0-9]{1,2})(?:[/-]([0-9]{1,2}))?)?\s*\Z")
_YEAR_RE = re.compile(r"(?<![0-9])([0-9]{4})(?![0-9])")
_OPEN_QUOTES = "\u201c\u201e\u00ab"
_CLOSE_QUOTES = "\u201d\u00bb"
_TYPES: dict[str, StatementType] = {
    "supporting": "supporting",
    "mentioning": "mentioning",
    "contrasting": "contrasting",
    "contradicting": "contrasting",
}
_TYPE_WORD_RE = re.compile(r"\b(supporting|mentioning|contrasting|contradicting)\b")
# From this length on `clean_text` first checks whether a text is folded already (measured:
# below it, `" ".join(text.split())` is as cheap as the check).
_FOLD_CHECK_MIN = 64


def doi_or_none(raw: str) -> str | None:
    """The normalised DOI, or None when `raw` is not one."""
    s = raw.strip()
    # No prefix starts with `10.`, and most DOIs come bare (a statement's citing DOI):
    # the prefix regex is skipped for them, the same result for less work.
    if not s.startswith("10."):
        s = _DOI_PREFIX_RE.sub("", s, count=1).strip()
    s = unquote(s).lower()
    return s if DOI_RE.match(s) else None


def normalise_doi(raw: str) -> str:
    """Trim, drop `doi:`/resolver prefixes, percent-decode, lowercase; raise if not a DOI."""
    doi = doi_or_none(raw)
    if doi is None:
        raise BadInputError(f"not a DOI: {raw.strip()[:200]!r}")
    return doi


def doi_problem(doi: str) -> str | None:
    """Why a (normalised) DOI cannot be put into a report address, or None if it can.

    A `.` or `..` path segment, plain or percent-encoded, would let a server that decodes
    and normalises paths serve something outside `/reports/`; encoding the dots again
    would not help, since servers decode them.
    """
    segment = dot_segment(doi)
    if segment is not None:
        return f"a DOI with a {segment!r} path segment would leave /reports/"
    return None


def doi_path(doi: str) -> str:
    """The DOI as it goes into a report address: percent-encoded where needed, `/` kept."""
    return quote(doi, safe="/;:@&=+$,!*'()[]~-._")


def report_address(base_url: str, doi: str) -> str:
    """`{base}/reports/{doi}`, as the contract spells it (the local site and tests use
    it); the crawler asks its Source (`Source.address`), which also refuses unsafe DOIs."""
    return f"{base_url.rstrip('/')}/reports/{doi_path(doi)}"


def clean_text(text: str | None) -> str | None:
    """NFC, whitespace runs folded to one space, trimmed; empty becomes None."""
    if text is None:
        return None
    # str.split() splits on exactly what `\s` matches, and is several times faster. ASCII
    # text is NFC already, and `isascii` is a flag look-up: most texts skip the normaliser.
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    # Most long texts (snippets, abstracts) are folded already, and splitting them into
    # words only to join them again is the costly part. `isprintable` is False for every
    # whitespace character but the ASCII space (they are all Unicode separators or
    # controls; a test checks this over every code point), so a printable text without a
    # double space or a space at either end folds to itself. Short texts skip the checks,
    # which cost more than the fold there.
    if (
        len(text) >= _FOLD_CHECK_MIN
        and text.isprintable()
        and "  " not in text
        and text[0] != " "
        and text[-1] != " "
    ):
        return text
    return " ".join(text.split()) or None


def strip_snippet_quotes(text: str) -> str:
    """Remove the quotes the site wraps a snippet in; keep the ellipses that mark a cut.

    Typographic quotes are stripped at either end on their own (a cut snippet may lose
    one); straight `"` only when they wrap the whole text, since a snippet may end with
    a quotation of its own.
    """
    s = text.strip()
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        return s[1:-1].strip()
    if s[:1] in _OPEN_QUOTES:
        s = s[1:]
    if s[-1:] in _CLOSE_QUOTES:
        s = s[:-1]
    return s.strip()


def strip_label(text: str | None, label: str) -> str | None:
    """Drop a leading `Label:` (case-insensitive; the colon is required) and clean.

    The colon is what makes it a label: a section called `Sections of interest` keeps
    its first word.
    """
    if text is None:
        return None
    s = text.strip()
    head = label.strip().rstrip(":").rstrip()
    if head and s[: len(head)].lower() == head.lower():
        rest = s[len(head) :].lstrip()
        if rest.startswith(":"):
            s = rest[1:]
    return clean_text(s)


def parse_int(text: str | None) -> int | None:
    """The first integer in `text`, thousands separators allowed (`1,234`); None if none.

    Numbers beyond a 64-bit integer are not counts: None.
    """
    if not text:
        return None
    m = _INT_RE.search(text)
    if m is None:
        return None
    digits = m.group(0).replace(",", "")
    if len(digits) > 19:
        return None
    value = int(digits)
    return value if value <= _INT_MAX else None


def parse_count(text: str | None) -> int | None:
    """The first count in `text`, read whole: `1,234` -> 1234, `1.2k` -> 1200, `3.4M` ->
    3400000; None if the text holds no number.

    A number it cannot read as a whole count (`1.5` without a suffix, `1.2345k`) raises
    `ParseError`: a count is never truncated to its leading digits. Counts beyond a 64-bit
    integer are unknown (None), as in `parse_int`.
    """
    if not text:
        return None
    m = _COUNT_RE.search(text)
    if m is None:
        return None
    if _COUNT_TAIL_RE.match(text, m.end()):  # `1,2k`, `1,2345`: not a count as written
        raise ParseError(f"count {text.strip()[:40]!r} is not a whole number", missing=())
    whole, fraction, suffix = m.group(1).replace(",", ""), m.group(2) or "", m.group(3)
    if len(whole) + len(fraction) > 22:
        return None
    scale = _SUFFIXES[suffix.lower()] if suffix else 1
    digits = fraction[1:]
    value = int(whole + digits) * scale
    unit = 10 ** len(digits)
    if value % unit:
        raise ParseError(f"count {m.group(0).strip()!r} is not a whole number", missing=())
    value //= unit
    return value if value <= _INT_MAX else None


def parse_confidence(text: str | None) -> float | None:
    """`confidence: 90%` -> 0.9; a bare number <= 1 is taken as a fraction already."""
    if not text:
        return None
    m = _PERCENT_RE.search(text)
    if m is not None:
        value = float(m.group(1)) / 100.0
    else:
        n = _NUMBER_RE.search(text)
        if n is None:
            return None
        value = float(n.group(0))
        if value > 1:
            value /= 100.0
    if not 0.0 <= value <= 1.0:
        return None
    return round(value, 6)


def parse_statement_type(text: str | None) -> StatementType | None:
    """`Mentioning` -> `mentioning`; the older `contradicting` means `contrasting`."""
    if not text:
        return None
    key = text.strip().lower()
    found = _TYPES.get(key)
    if found is None:
        m = _TYPE_WORD_RE.search(key)
        found = _TYPES[m.group(1)] if m else None
    return found


def parse_date(text: str | None) -> tuple[int | None, str | None]:
    """(`year`, ISO date or None) from `YYYY/MM/DD`, `YYYY-MM-DD` or `YYYY`.

    A date that does not exist (`2012/02/31`) keeps its year and loses its day.
    """
    if not text:
        return None, None
    m = _DATE_RE.match(text)
    if m is None:
        return parse_year(text), None
    year = int(m.group(1))
    if m.group(2) and m.group(3):
        try:
            return year, date(year, int(m.group(2)), int(m.group(3))).isoformat()
        except ValueError:
            pass
    return year, None


def parse_year(text: str | None) -> int | None:
    """The first four-digit year in `text`."""
    if not text:
        return None
    m = _YEAR_RE.search(text)
    return int(m.group(1)) if m else None


def snippet_hash(snippet: str) -> str:
    """Stable hash of a snippet's normalised text: part of a statement's identity."""
    return hashlib.sha1(snippet.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------- durations (settings)

DAY = 86400.0
_DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([smhd]?)", re.IGNORECASE)
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY}


def parse_duration(text: str) -> float:
    """`90`, `90s`, `1.5m`, `2h`, `1d` -> seconds; ValueError for anything else (a sign,
    `nan`, `inf`, an exponent, an unknown unit)."""
    m = _DURATION_RE.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not a duration: {text!r} (try 90s, 15m, 2h)")
    return float(m.group(1)) * _UNITS[m.group(2).lower()]


_SPANS = ((DAY, "day", "days"), (3600.0, "hour", "hours"), (60.0, "minute", "minutes"))


def format_duration(seconds: float) -> str:
    """`30 s`, `1.5 minutes`, `2 hours`, `400 days`: seconds in the largest unit that
    leaves a number of at least 1 (at most 4 significant digits)."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    for size, one, many in _SPANS:
        if seconds >= size:
            n = seconds / size
            return f"{n:,.4g} {one if n == 1 else many}"
    return f"{seconds:.4g} s"
