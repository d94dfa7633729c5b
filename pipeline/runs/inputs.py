"""Reading DOI lists: one DOI a line, in any of the contract's spellings.

A UTF-8 BOM and CRLF line ends are fine, blank lines and `#` comments are skipped (a
whole line, or the end of a line after whitespace: `10.1234/x  # why`), and a bad line is
reported with its number and why, while the rest go on. Bad lines are those that are not
valid UTF-8 (read with `surrogateescape`, see `open_input`), that hold a control or
invisible format character (NUL, escape, zero-width space...; a tab is whitespace), that
are not a DOI, or whose DOI has a `.`/`..` path segment (plain or percent-encoded), which
would lead a report address out of `/reports/`.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sqlite3
import sys
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO

from pipeline.errors import ConfigError
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
    if text.isascii() and text.isprintable():  # a flag and one C pass: the usual line
        return None
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


@contextlib.contextmanager
def open_input(name: str, stdin: IO[str] | None = None) -> Iterator[IO[str]]:
    """A DOI list by name: a file, or `-` for standard input. A missing or unreadable
    file is a configuration error, raised before any store is opened or created."""
    if name == "-":
        raw = getattr(sys.stdin, "buffer", None)
        if stdin is not None or raw is None:  # given, or a text-only stand-in: as it is
            yield stdin if stdin is not None else sys.stdin
            return
        # stdin's own encoding is the locale's, strict: a stray byte would end the run
        wrapped = io.TextIOWrapper(
            raw, encoding="utf-8-sig", errors="surrogateescape", newline=None
        )
        try:
            yield wrapped
        finally:
            wrapped.detach()  # leave sys.stdin usable (and open)
        return
    try:
        with open(name, "rb") as head:
            refuse_binary(name, head.read(BINARY_SNIFF))
        # surrogateescape: a line that is not UTF-8 is reported as such by its number
        # (`inputs.read_doi_lines`), not silently turned into U+FFFD and requested
        f = open(name, encoding="utf-8-sig", errors="surrogateescape", newline=None)  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"input {name}: {exc.strerror}") from None
    with f:
        yield f


BINARY_SNIFF = 8192  # bytes looked at to tell a binary file from a DOI list


def refuse_binary(name: str, head: bytes) -> None:
    """A DOI list is text: NUL bytes near the start mean binary data (an archive, an
    executable, a database, UTF-16), which is one error, not a bad line for every line of
    it. Binary: NULs that are not in UTF-8 text, or dense ones (one byte in eight or more,
    as in UTF-16). A stray NUL in clean UTF-8 text is a bad line with its number instead
    (`inputs.line_problem`)."""
    at = head.find(b"\x00")
    if at < 0:
        return
    whole = head[: head.rfind(b"\n") + 1] or head  # no multi-byte character cut at the end
    try:
        whole.decode("utf-8")
        dense = whole.count(b"\x00") * 8 >= len(whole)
    except UnicodeDecodeError:
        dense = True
    if dense:
        raise ConfigError(f"input {name}: binary data, not a DOI list (a NUL byte at offset {at})")
