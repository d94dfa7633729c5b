"""Reading DOI lists: one DOI a line, in any of the contract's spellings.

A UTF-8 BOM and CRLF line ends are fine, blank lines and `#` comments are skipped (a
whole line, or the end of a line after whitespace: `10.1234/x  # why`), and a line that is
not a DOI is reported with its number while the rest go on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from pipeline.normalise import doi_or_none

# a comment at the end of a line starts at a `#` after whitespace (a `#` inside a DOI
# does not: DOI suffixes may hold one)
_TRAILING_COMMENT = re.compile(r"\s+#.*$")


@dataclass(frozen=True, slots=True)
class InputLine:
    """One meaningful input line: `doi` is None when the line is bad."""

    lineno: int
    raw: str
    doi: str | None


def read_doi_lines(lines: Iterable[str]) -> Iterator[InputLine]:
    """Stream the DOI lines of an input (file object, list, stdin) without loading it all."""
    for lineno, line in enumerate(lines, start=1):
        text = line.lstrip("\ufeff") if lineno == 1 else line
        text = _TRAILING_COMMENT.sub("", text.strip())
        if not text or text.startswith("#"):
            continue
        yield InputLine(lineno, text, doi_or_none(text))
