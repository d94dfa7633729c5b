"""Reading DOI lists: one DOI a line, in any of the contract's spellings.

A UTF-8 BOM and CRLF line ends are fine, blank lines and `#` comments are skipped (a
whole line, or the end of a line after whitespace: `10.1234/x  # why`), and a line that is
not a DOI is reported with its number while the rest go on.
"""

from __future__ import annotations

import json
import re
import sqlite3
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


class InputDois:
    """The distinct DOIs of a run's input, kept out of memory: a private temporary SQLite
    file (deleted on close), a small page cache, so a run over millions of DOIs keeps a
    flat resident size (a Python set of a million DOIs is about 100 MB).

    The input survey at the end of a run reads them back in chunks and asks membership
    while it streams the jobs table.
    """

    CACHE_KIB = 2048  # page cache of the temporary file

    def __init__(self) -> None:
        # "" is SQLite's private temporary on-disk database, removed when it is closed
        self._db = sqlite3.connect("", isolation_level=None)
        self._db.execute(f"PRAGMA cache_size = -{self.CACHE_KIB}")
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("CREATE TABLE dois (doi TEXT PRIMARY KEY) WITHOUT ROWID")
        self._count = 0

    def update(self, dois: Iterable[str]) -> None:
        cursor = self._db.executemany(
            "INSERT OR IGNORE INTO dois (doi) VALUES (?)", ((d,) for d in dois)
        )
        self._count += max(cursor.rowcount, 0)

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __contains__(self, doi: object) -> bool:
        row = self._db.execute("SELECT 1 FROM dois WHERE doi = ?", (doi,)).fetchone()
        return row is not None

    def members(self, dois: list[str]) -> set[str]:
        """Those of `dois` that are in the input: one query for the lot."""
        rows = self._db.execute(
            "SELECT doi FROM dois WHERE doi IN (SELECT value FROM json_each(?))",
            (json.dumps(dois),),
        )
        return {doi for (doi,) in rows}

    def __iter__(self) -> Iterator[str]:
        """Every DOI once, in DOI order (read in pages: no snapshot held in memory)."""
        last = ""
        while True:
            rows = self._db.execute(
                "SELECT doi FROM dois WHERE doi > ? ORDER BY doi LIMIT 1000", (last,)
            ).fetchall()
            for (doi,) in rows:
                yield doi
            if len(rows) < 1000:
                return
            last = rows[-1][0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> InputDois:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
