"""Reading DOI lists: one DOI a line, in any of the contract's spellings.

A UTF-8 BOM and CRLF line ends are fine, blank lines and `#` comments are skipped (a
whole line, or the end of a line after whitespace: `10.1234/x  # why`), and a bad line is
reported with its number and why, while the rest go on. Bad lines are those that are not
valid UTF-8 (read with `surrogateescape`, see `runs.open_input`), that hold a control or
invisible format character (NUL, escape, zero-width space...; a tab is whitespace), that
are not a DOI, or whose DOI has a `.`/`..` path segment (plain or percent-encoded), which
would lead a report address out of `/reports/`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pipeline.normalise import doi_or_none, doi_problem

_ALLOWED_CONTROLS = frozenset("\t")

# a comment at the end of a line starts at a `#` after whitespace (a `#` inside a DOI
# does not: DOI suffixes may hold one)
_TRAILING_COMMENT = re.compile(r"\s+#.*$")


@dataclass(frozen=True, slots=True)
class InputLine:
    """One meaningful input line: `doi` is None when the line is bad, and `problem` says
    why. `raw` is the line as it can be shown (undecodable bytes as `\\xNN`)."""

    lineno: int
    raw: str
    doi: str | None
    problem: str | None = None


def read_doi_lines(lines: Iterable[str]) -> Iterator[InputLine]:
    """Stream the DOI lines of an input (file object, list, stdin) without loading it all."""
    for lineno, line in enumerate(lines, start=1):
        text = line.lstrip("\ufeff") if lineno == 1 else line
        text = _TRAILING_COMMENT.sub("", text.strip())
        if not text or text.startswith("#"):
            continue
        problem = line_problem(text)
        if problem is not None:
            yield InputLine(lineno, printable(text), None, problem)
            continue
        doi = doi_or_none(text)
        if doi is None:
            yield InputLine(lineno, text, None, "not a DOI")
            continue
        problem = doi_problem(doi)
        yield InputLine(lineno, text, None if problem else doi, problem)


def line_problem(text: str) -> str | None:
    """Why a line's characters cannot be a DOI line, or None: bytes that were not UTF-8
    (surrogate escapes), or a control or format character."""
    for i, ch in enumerate(text):
        if "\udc80" <= ch <= "\udcff":
            return f"not valid UTF-8 (byte 0x{ord(ch) - 0xDC00:02X} at column {i + 1})"
        if ch in _ALLOWED_CONTROLS:
            continue
        kind = unicodedata.category(ch)
        if kind in ("Cc", "Cs"):
            return f"control character U+{ord(ch):04X} at column {i + 1}"
        if kind == "Cf":
            return f"invisible format character U+{ord(ch):04X} at column {i + 1}"
    return None


def printable(text: str) -> str:
    """`text` with undecodable bytes (surrogate escapes) written as `\\xNN`, and any
    other lone surrogate as `\\uNNNN`, so that it can be printed and logged."""
    if all(ch < "\ud800" or ch > "\udfff" for ch in text):
        return text
    return "".join(
        (f"\\x{ord(ch) - 0xDC00:02x}" if ch >= "\udc80" else f"\\u{ord(ch):04x}")
        if "\ud800" <= ch <= "\udfff"
        else ch
        for ch in text
    )
