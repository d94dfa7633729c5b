"""`export --table papers --format ris|bibtex|csl-json`: records for reference managers.

One record per paper that has a title: DOI, title, authors in order, year, journal,
volume, issue and pages where known (scite's API gives them: `papers.volume`, `issue`,
`pages`; the report pages do not, so a `--source report` crawl has none and nothing is
guessed), a `https://doi.org/` link, a note per editorial notice (`notice_note`:
`Retracted (2018-07-25), notice 10.1000/xyz`, from table `notices`; `Retracted` alone when
scite flags the paper without listing a notice) and scite's tallies in a note (`scite: 3
supporting, 40 mentioning, 1 contrasting (2026-12-01)`, the date the tallies were read).
RIS has a repeatable note tag (one `N1` each); BibTeX and CSL-JSON have one note field, so
the notes are joined there ("; " in BibTeX, a line each in CSL-JSON, as Zotero's Extra).

Each format is written by a library that knows its rules: RIS by `rispy`, BibTeX by
`bibtexparser` 2 with the LaTeX special characters (`{ } % & $ # _ ~ ^ \\`) escaped by
`pylatexenc` (other characters stay UTF-8, which BibTeX 0.99d, biber, Zotero and JabRef
read), CSL-JSON by `json`. A record's key (BibTeX key, RIS `ID`, CSL `id`) is made from its
DOI alone, so it is the same from run to run whatever else the store learns.

Papers, authors, tallies and notices are read as four streams in DOI order (the store's exports
are in key order, byte order of the DOI in both dialects) and joined as they go, so a store
of any size is written in constant memory. rispy, bibtexparser and pylatexenc are the
optional `bibliography` extra.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import IO, Any

from pipeline.errors import ConfigError
from pipeline.models import RETRACTED
from pipeline.store.base import Store

FORMATS = ("ris", "bibtex", "csl-json")
CHUNK = 500  # records handed to the writing library at a time
_KEY_SAFE = re.compile(r"[a-z0-9./:_-]+")
_KEY_UNSAFE = re.compile(r"[^a-z0-9./:_-]+")
_SPACE = re.compile(r"\s+")
# a page range: two page labels and a dash between (hyphen, en or em dash); anything else
# (one page, an article number, "5-9, 12") is a first page alone
_RANGE = re.compile(r"([^\s\-\u2010-\u2015]+)\s*[-\u2010-\u2015]+\s*([^\s\-\u2010-\u2015]+)")
# BibTeX's special characters, as LaTeX text commands (everything else stays UTF-8).
LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "%": r"\%",
    "&": r"\&",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    '"': '{"}',  # a bare " ends a "-delimited value and is an accent with babel
}


def require(fmt: str) -> None:
    """A ConfigError naming the extra when the format's library is not installed."""
    try:
        import bibtexparser  # noqa: F401  (every format splits names by its rules)

        if fmt == "ris":
            import rispy  # noqa: F401
        elif fmt == "bibtex":
            import pylatexenc  # noqa: F401
    except ImportError:
        raise ConfigError(
            f"--format {fmt} needs the bibliography extra: pip install -e '.[bibliography]'"
        ) from None


@dataclass(frozen=True, slots=True)
class Name:
    """An author's name in parts (BibTeX's rules: `Last, First`, `First von Last`)."""

    given: str
    family: str
    suffix: str

    @classmethod
    def parse(cls, name: str) -> Name:
        from bibtexparser.middlewares.names import parse_single_name_into_parts

        try:
            parts = parse_single_name_into_parts(name, strict=False)
        except Exception:  # an unbalanced brace, say: the whole name as the family name
            return cls("", name, "")
        return cls(" ".join(parts.first), " ".join([*parts.von, *parts.last]), " ".join(parts.jr))

    def inverted(self) -> str:
        """`Family, Given` (RIS's author form), `Family, Suffix, Given` with a suffix."""
        return ", ".join(x for x in (self.family, self.suffix, self.given) if x)


@dataclass(frozen=True, slots=True)
class Record:
    """One paper as a reference manager sees it."""

    doi: str
    title: str
    authors: tuple[str, ...]
    year: int | None
    journal: str | None
    tallies: str | None  # the scite note
    volume: str | None = None
    issue: str | None = None
    pages: str | None = None  # as the store has it: "5-9", "5–9", "e1234"
    notices: tuple[str, ...] = ()  # a note per editorial notice (`notice_note`)

    @property
    def page_range(self) -> tuple[str | None, str | None]:
        """The first and last page (RIS `SP`/`EP`); a lone page or article number is a
        first page with no last."""
        if not self.pages:
            return None, None
        found = _RANGE.fullmatch(self.pages)
        return (found[1], found[2]) if found else (self.pages, None)

    def joined_pages(self, dash: str) -> str | None:
        """The pages with `dash` between a range's ends (BibTeX `--`, CSL `-`)."""
        first, last = self.page_range
        return f"{first}{dash}{last}" if last else first

    @property
    def notes(self) -> tuple[str, ...]:
        """Every note: the notices, then the tallies."""
        return (*self.notices, *((self.tallies,) if self.tallies else ()))

    @property
    def key(self) -> str:
        """From the DOI alone: the DOI itself when it is made of key-safe characters,
        else those characters and 8 hex digits of its hash (still unique)."""
        if _KEY_SAFE.fullmatch(self.doi):
            return self.doi
        digest = hashlib.blake2b(self.doi.encode("utf-8"), digest_size=4).hexdigest()
        return f"{_KEY_UNSAFE.sub('-', self.doi)}-{digest}"

    @property
    def url(self) -> str:
        return f"https://doi.org/{self.doi}"


def one_line(text: str) -> str:
    """Whitespace runs (line breaks too) as one space: RIS is a line format."""
    return _SPACE.sub(" ", text).strip()


def tally_note(row: dict[str, Any] | None) -> str | None:
    """`scite: 3 supporting, 40 mentioning, 1 contrasting (2026-12-01)`, the counts known."""
    if row is None:
        return None
    known = [
        f"{row[k]} {k}" for k in ("supporting", "mentioning", "contrasting") if row[k] is not None
    ]
    if not known:
        return None
    return f"scite: {', '.join(known)} ({str(row['observed_at'])[:10]})"


def notice_note(row: dict[str, Any]) -> str:
    """`Retracted (2018-07-25), notice 10.1000/xyz`: a notice's status, its date when
    known, and its own DOI (else its URL) when known."""
    note = one_line(row["status"])
    if row["date"]:
        note += f" ({row['date']})"
    if row["notice_doi"] or row["url"]:
        note += f", notice {row['notice_doi'] or one_line(row['url'])}"
    return note


def notice_notes(retracted: object, notices: list[dict[str, Any]]) -> tuple[str, ...]:
    """A note per notice; `Retracted` alone when scite flags the paper (`retracted` 1)
    without a Retracted notice listed, so the record never hides a retraction."""
    notes = [notice_note(n) for n in notices]
    if retracted and not any(n["status"] == RETRACTED for n in notices):
        notes.insert(0, RETRACTED)
    return tuple(notes)


def _text(value: object) -> str | None:
    return one_line(value) or None if isinstance(value, str) else None


class _Follow:
    """Another DOI-ordered stream, read forward alongside the papers: `take(doi)` gives
    its rows for that DOI (skipping those of papers left out)."""

    def __init__(self, rows: AsyncIterator[dict[str, Any]]) -> None:
        self._rows = rows
        self._next: dict[str, Any] | None = None
        self._done = False

    async def take(self, doi: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            if self._next is None:
                if self._done:
                    return found
                try:
                    self._next = await anext(self._rows)
                except StopAsyncIteration:
                    self._done = True
                    return found
            have = self._next["doi"]
            if have > doi:
                return found
            if have == doi:
                found.append(self._next)
            self._next = None


async def records(store: Store, papers: AsyncIterator[dict[str, Any]]) -> AsyncIterator[Record]:
    """The papers (rows of `export("papers")`, in DOI order, filtered or not) that have a
    title, with their authors, tallies and notices."""
    authors = _Follow(store.export("authors"))
    tallies = _Follow(store.export("tallies"))
    notices = _Follow(store.export("notices"))
    async for paper in papers:
        doi = paper["doi"]
        names = tuple(one_line(a["name"]) for a in await authors.take(doi))
        tally = await tallies.take(doi)
        listed = await notices.take(doi)
        title = one_line(paper["title"] or "")
        if not title:
            continue
        yield Record(
            doi=doi,
            title=title,
            authors=names,
            year=paper["year"],
            journal=one_line(paper["journal"]) if paper["journal"] else None,
            tallies=tally_note(tally[0] if tally else None),
            volume=_text(paper.get("volume")),
            issue=_text(paper.get("issue")),
            pages=_text(paper.get("pages")),
            notices=notice_notes(paper.get("retracted"), listed),
        )


async def write_bibliography(
    store: Store, papers: AsyncIterator[dict[str, Any]], fmt: str, out: IO[str]
) -> int:
    """The papers' records in `fmt` (one of `FORMATS`) to a text stream; records written."""
    require(fmt)
    write = {"ris": _ris, "bibtex": _bibtex, "csl-json": _csl_json}[fmt]
    n = 0
    chunk: list[Record] = []
    async for record in records(store, papers):
        chunk.append(record)
        if len(chunk) >= CHUNK:
            write(chunk, out, first=n == 0)
            n += len(chunk)
            chunk = []
    write(chunk, out, first=n == 0)
    n += len(chunk)
    if fmt == "csl-json":
        out.write("\n]\n" if n else "[]\n")
    return n


# ---------------------------------------------------------------- the formats


def _ris(chunk: Iterable[Record], out: IO[str], *, first: bool) -> None:
    import rispy

    class Writer(rispy.RisWriter):  # type: ignore[misc]
        def set_header(self, count: int) -> str:  # no "1." line before each record
            return ""

    refs = []
    for r in chunk:
        ref: dict[str, Any] = {
            "type_of_reference": "JOUR",
            "id": r.key,
            "title": r.title,
            "authors": [Name.parse(a).inverted() for a in r.authors],
        }
        if r.year is not None:
            ref["year"] = str(r.year)
        if r.journal:
            ref["secondary_title"] = r.journal  # T2: the journal of a JOUR (as Zotero)
        start, end = r.page_range
        for key, value in (("volume", r.volume), ("number", r.issue), ("start_page", start)):
            if value:  # VL, IS, SP
                ref[key] = value
        if end:
            ref["end_page"] = end  # EP
        ref["doi"] = r.doi
        ref["urls"] = [r.url]
        if r.notes:
            ref["notes"] = list(r.notes)  # one N1 each
        refs.append(ref)
    if refs:
        if not first:
            out.write("\n")
        rispy.dump(refs, out, implementation=Writer)


def latex(text: str) -> str:
    """Text with BibTeX's special characters escaped (`LATEX_SPECIALS`), via pylatexenc."""
    from pylatexenc.latexencode import (
        RULE_DICT,
        UnicodeToLatexConversionRule,
        UnicodeToLatexEncoder,
    )

    global _ENCODER
    if _ENCODER is None:
        rule = UnicodeToLatexConversionRule(
            RULE_DICT, {ord(k): v for k, v in LATEX_SPECIALS.items()}
        )
        _ENCODER = UnicodeToLatexEncoder(
            conversion_rules=[rule],
            unknown_char_policy="keep",
            unknown_char_warning=False,
            replacement_latex_protection="none",
        )
    encoded: str = _ENCODER.unicode_to_latex(text)
    return encoded


_ENCODER: Any = None


def _bibtex(chunk: Iterable[Record], out: IO[str], *, first: bool) -> None:
    from bibtexparser.entrypoint import write_string
    from bibtexparser.library import Library
    from bibtexparser.model import Entry, Field

    library = Library()
    for r in chunk:
        fields = [Field("title", latex(r.title))]
        if r.authors:
            # a name holding " and " would split in two: its braces keep it whole
            names = [f"{{{latex(a)}}}" if " and " in a else latex(a) for a in r.authors]
            fields.append(Field("author", " and ".join(names)))
        if r.year is not None:
            fields.append(Field("year", str(r.year)))
        if r.journal:
            fields.append(Field("journal", latex(r.journal)))
        pages = r.joined_pages("--")  # BibTeX's range dash
        for key, value in (("volume", r.volume), ("number", r.issue), ("pages", pages)):
            if value:
                fields.append(Field(key, latex(value)))
        fields.append(Field("doi", r.doi))  # verbatim (biblatex reads doi and url so)
        fields.append(Field("url", r.url))
        if r.notes:  # one note field: the notes joined
            fields.append(Field("note", latex("; ".join(r.notes))))
        library.add(Entry("article" if r.journal else "misc", r.key, fields))
    if library.entries:
        if not first:
            out.write("\n")
        out.write(write_string(library))


def csl_item(r: Record) -> dict[str, Any]:
    """One CSL-JSON item (citeproc's input, Zotero's and Pandoc's import)."""
    item: dict[str, Any] = {
        "id": r.key,
        "type": "article-journal" if r.journal else "article",
        "title": r.title,
        "DOI": r.doi,
        "URL": r.url,
    }
    if r.authors:
        item["author"] = [_csl_name(a) for a in r.authors]
    if r.year is not None:
        item["issued"] = {"date-parts": [[r.year]]}
    if r.journal:
        item["container-title"] = r.journal
    pages = r.joined_pages("-")
    for key, value in (("volume", r.volume), ("issue", r.issue), ("page", pages)):
        if value:
            item[key] = value
    if r.notes:  # one note: a line each (Zotero's Extra)
        item["note"] = "\n".join(r.notes)
    return item


def _csl_name(name: str) -> dict[str, str]:
    parts = Name.parse(name)
    if not parts.given:
        return {"literal": name}
    found = {"family": parts.family, "given": parts.given}
    if parts.suffix:
        found["suffix"] = parts.suffix
    return found


def _csl_json(chunk: Iterable[Record], out: IO[str], *, first: bool) -> None:
    for i, r in enumerate(chunk):
        out.write("[\n" if first and i == 0 else ",\n")
        out.write(json.dumps(csl_item(r), ensure_ascii=False))
