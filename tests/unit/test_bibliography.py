"""export --format ris|bibtex|csl-json, read back by independent readers (rispy,
bibtexparser 2, json), from a real SQLite store holding awkward titles and names."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import bibtexparser
import pytest
import rispy
from bibtexparser.middlewares import LatexDecodingMiddleware

from pipeline.app import open_pipeline
from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.ops import bibliography
from pipeline.ops import export as exporting
from pipeline.store.sqlite import SQLiteStore
from pipeline.store.tables import COLUMNS

WHEN = "2026-12-01T08:30:00.000000Z"
PAPERS: dict[str, dict[str, Any]] = {
    "10.1000/braces": {
        "title": 'The {TP53} gene & its “friends”: a 50% "quoted" test',
        "year": 2019,
        "journal": "Journal of Things & Stuff",
        "authors": ["Müller, Jürgen", "O'Brien, J", "van der Berg, Anna"],
        "retracted": 1,
        "volume": "12",
        "issue": "3",
        "pages": "100–109",  # an en dash, as publishers write ranges
    },
    "10.1000/accents": {
        "title": "Éléments de théorie: Ångström, Łódź, naïve façade — $x^2$ #1 ~_\\",
        "year": 2001,
        "journal": None,
        "authors": ["Zhang Wei", "Smith, Jr., John"],
        "retracted": 0,
        "volume": "Suppl 2",
        "pages": "e1234",  # an article number: one page, no end
    },
    "10.1000/x_y%z(1)": {  # a DOI with characters no BibTeX key may hold
        "title": "Line\nbreaks\tand   spaces",
        "year": None,
        "journal": "J",
        "authors": [],
        "retracted": 1,  # scite's flag without a notice listed
    },
    "10.1000/untitled": {"title": None, "year": 2000, "journal": None, "authors": ["X, Y"]},
}
# Editorial notices: two of the braces paper (one with a date and DOI, one with a URL
# only), and an erratum of the accents paper, which is not retracted.
NOTICES = [
    ("10.1000/braces", "Retracted", "2018-07-25", "10.1000/braces.notice1", None),
    ("10.1000/braces", "Has expression of concern", "", "", "https://example.org/eoc/1"),
    ("10.1000/accents", "Has erratum", "2002-01-05", "", None),
]
BRACES_NOTES = [
    "Has expression of concern, notice https://example.org/eoc/1",
    "Retracted (2018-07-25), notice 10.1000/braces.notice1",
]
TALLY_NOTE = "scite: 3 supporting, 40 mentioning, 1 contrasting (2026-12-01)"
ONE_LINE = {
    doi: " ".join(p["title"].split()) for doi, p in PAPERS.items() if p["title"] is not None
}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(str(tmp_path / "b.sqlite"))
    await s.open()
    papers, authors = [], []
    for doi, p in PAPERS.items():
        row = dict.fromkeys(COLUMNS["papers"])
        row.update(doi=doi, title=p["title"], year=p["year"], journal=p["journal"])
        row.update(first_seen_at=WHEN, incomplete=0, retracted=p.get("retracted"))
        row.update(volume=p.get("volume"), issue=p.get("issue"), pages=p.get("pages"))
        papers.append(row)
        authors += [{"doi": doi, "position": i, "name": n} for i, n in enumerate(p["authors"], 1)]
    await s.import_rows("papers", papers)
    await s.import_rows("authors", authors)
    tally = dict.fromkeys(COLUMNS["tallies"])
    tally.update(doi="10.1000/braces", supporting=3, mentioning=40, contrasting=1)
    tally.update(observed_at=WHEN)
    await s.import_rows("tallies", [tally])
    notices = []
    for doi, status, date, notice_doi, url in NOTICES:
        row = dict.fromkeys(COLUMNS["notices"])
        row.update(doi=doi, status=status, date=date, notice_doi=notice_doi, url=url)
        row.update(first_seen_at=WHEN, last_seen_at=WHEN)
        notices.append(row)
    await s.import_rows("notices", notices)
    yield s
    await s.close()


async def exported(store: SQLiteStore, fmt: str, path: Path, *where: str) -> str:
    keep = exporting.RowFilter.build("papers", where, None, now=exporting.parse_time(WHEN))
    async with open_pipeline(Settings(), store=store) as p:
        n = await exporting.export(p, "papers", fmt, str(path), keep)
    text = path.read_text(encoding="utf-8")
    assert n == (len(ONE_LINE) if not where else n)
    return text


async def test_ris_reads_back_with_every_titled_paper(store: SQLiteStore, tmp_path: Path) -> None:
    text = await exported(store, "ris", tmp_path / "p.ris")
    refs = {r["doi"]: r for r in rispy.loads(text)}
    assert set(refs) == set(ONE_LINE)  # the untitled paper is no reference
    assert {d: r["title"] for d, r in refs.items()} == ONE_LINE
    braces = refs["10.1000/braces"]
    assert braces["authors"] == ["Müller, Jürgen", "O'Brien, J", "van der Berg, Anna"]
    assert braces["year"] == "2019" and braces["secondary_title"] == "Journal of Things & Stuff"
    # one N1 per notice, then scite's tallies
    assert braces["notes"] == [*BRACES_NOTES, TALLY_NOTE]
    assert braces["urls"] == ["https://doi.org/10.1000/braces"]
    assert (braces["volume"], braces["number"]) == ("12", "3")
    assert (braces["start_page"], braces["end_page"]) == ("100", "109")
    accents = refs["10.1000/accents"]
    assert accents["authors"] == ["Wei, Zhang", "Smith, Jr., John"]
    assert accents["notes"] == ["Has erratum (2002-01-05)"]  # no tallies read: no such note
    assert (accents["volume"], accents["start_page"]) == ("Suppl 2", "e1234")
    assert "number" not in accents and "end_page" not in accents  # unknown: no tag
    odd = refs["10.1000/x_y%z(1)"]
    assert odd["notes"] == ["Retracted"]  # scite's flag, no notice listed
    assert not {"volume", "number", "start_page"} & set(odd)
    assert not text.startswith("1.")  # no numbering line before a record


async def test_bibtex_reads_back_with_every_titled_paper(
    store: SQLiteStore, tmp_path: Path
) -> None:
    text = await exported(store, "bibtex", tmp_path / "p.bib")
    raw = bibtexparser.parse_string(text)
    assert not raw.failed_blocks
    by_doi = {e["doi"]: e for e in raw.entries}
    assert set(by_doi) == set(ONE_LINE)  # DOIs verbatim, as biblatex reads them
    decoded = bibtexparser.parse_string(
        text, append_middleware=[LatexDecodingMiddleware(keep_braced_groups=False)]
    )
    titles = {by_key["doi"]: by_key["title"] for by_key in _decoded(decoded, raw)}
    assert titles["10.1000/braces"] == ONE_LINE["10.1000/braces"]
    assert titles["10.1000/x_y%z(1)"] == ONE_LINE["10.1000/x_y%z(1)"]
    # pylatexenc reads LaTeX's \textasciicircum (a ^) back as U+02C6, its look-alike
    assert titles["10.1000/accents"] == ONE_LINE["10.1000/accents"].replace("^", "\u02c6")
    braces = by_doi["10.1000/braces"]
    assert braces.entry_type == "article" and by_doi["10.1000/accents"].entry_type == "misc"
    assert r"\{TP53\} gene \& its" in braces["title"] and r"50\%" in braces["title"]
    assert braces["author"] == "Müller, Jürgen and O'Brien, J and van der Berg, Anna"
    # BibTeX has one note field: the notices, then the tallies, joined by "; "
    assert braces["note"] == "; ".join([*BRACES_NOTES, TALLY_NOTE])
    assert (braces["volume"], braces["number"], braces["pages"]) == ("12", "3", "100--109")
    accents = by_doi["10.1000/accents"]
    assert accents["note"] == "Has erratum (2002-01-05)"
    assert (accents["volume"], accents["pages"]) == ("Suppl 2", "e1234")
    assert "number" not in accents.fields_dict
    assert by_doi["10.1000/x_y%z(1)"]["note"] == "Retracted"
    keys = {e["doi"]: e.key for e in raw.entries}
    assert keys["10.1000/braces"] == "10.1000/braces"
    assert (
        keys["10.1000/x_y%z(1)"].startswith("10.1000/x_y-z-1-")
        and "%" not in keys["10.1000/x_y%z(1)"]
    )
    again = await exported(store, "bibtex", tmp_path / "again.bib")
    assert again == text  # the same store, the same file: keys are stable


def _decoded(decoded: Any, raw: Any) -> list[dict[str, str]]:
    """Decoded titles paired with the raw DOIs (the decoder also reads `%` in a DOI as a
    LaTeX comment: DOIs are compared raw)."""
    return [
        {"doi": r["doi"], "title": d["title"]}
        for d, r in zip(decoded.entries, raw.entries, strict=True)
    ]


async def test_csl_json_reads_back(store: SQLiteStore, tmp_path: Path) -> None:
    items = json.loads(await exported(store, "csl-json", tmp_path / "p.json"))
    by_doi = {i["DOI"]: i for i in items}
    assert {d: i["title"] for d, i in by_doi.items()} == ONE_LINE
    braces = by_doi["10.1000/braces"]
    assert braces["author"][0] == {"family": "Müller", "given": "Jürgen"}
    assert braces["author"][2] == {"family": "van der Berg", "given": "Anna"}
    assert braces["issued"] == {"date-parts": [[2019]]}
    assert braces["container-title"] == "Journal of Things & Stuff"
    assert braces["type"] == "article-journal" and by_doi["10.1000/accents"]["type"] == "article"
    assert by_doi["10.1000/x_y%z(1)"]["id"].startswith("10.1000/x_y-z-1-")
    # CSL has one note: a line each (Zotero reads it into Extra, line by line)
    assert braces["note"] == "\n".join([*BRACES_NOTES, TALLY_NOTE])
    assert (braces["volume"], braces["issue"], braces["page"]) == ("12", "3", "100-109")
    accents = by_doi["10.1000/accents"]
    assert (accents["volume"], accents["page"], "issue" in accents) == ("Suppl 2", "e1234", False)
    assert by_doi["10.1000/x_y%z(1)"]["note"] == "Retracted"


async def test_filters_apply_and_an_empty_export_is_valid(
    store: SQLiteStore, tmp_path: Path
) -> None:
    text = await exported(store, "ris", tmp_path / "old.ris", "year<2010")
    assert [r["doi"] for r in rispy.loads(text)] == ["10.1000/accents"]
    none = await exported(store, "csl-json", tmp_path / "none.json", "year>3000")
    assert json.loads(none) == []
    assert (
        bibtexparser.parse_string(
            await exported(store, "bibtex", tmp_path / "none.bib", "year>3000")
        ).entries
        == []
    )


async def test_only_papers_make_records(store: SQLiteStore, tmp_path: Path) -> None:
    async with open_pipeline(Settings(), store=store) as p:
        with pytest.raises(ConfigError, match="--format ris: exports --table papers only"):
            await exporting.export(
                p, "statements", "ris", str(tmp_path / "x"), exporting.RowFilter()
            )


def test_many_records_are_written_in_chunks() -> None:
    """More records than one chunk: still one valid document of each kind."""
    records = [
        bibliography.Record(f"10.1/{i:04d}", f"T {i}", ("A, B",), 2000, "J", None)
        for i in range(bibliography.CHUNK * 2 + 3)
    ]

    async def rows() -> AsyncIterator[dict[str, Any]]:
        for r in records:
            yield {"doi": r.doi, "title": r.title, "year": r.year, "journal": r.journal}

    class Empty:
        async def export(self, table: str) -> AsyncIterator[dict[str, Any]]:
            for _ in ():
                yield {}

    import asyncio
    import io

    for fmt, count in (
        ("ris", lambda t: len(rispy.loads(t))),
        ("bibtex", lambda t: len(bibtexparser.parse_string(t).entries)),
        ("csl-json", lambda t: len(json.loads(t))),
    ):
        out = io.StringIO()
        n = asyncio.run(bibliography.write_bibliography(Empty(), rows(), fmt, out))  # type: ignore[arg-type]
        assert n == len(records) and count(out.getvalue()) == len(records), fmt
