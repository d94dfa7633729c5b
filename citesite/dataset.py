"""The local citation site's data: report records, JSONL I/O, slugs and DOIs, ground truth.

A `SiteReport` is everything the site knows about one report; its text fields hold
*normalised* text (what a correct parser recovers), the renderer adds the markup. The
reports themselves are made in `citesite.generator` (the generator and the demo set).

- `load_dataset` / `iter_dataset` / `write_dataset`: one JSON object per report a line.
- `demo_dataset_path()`: the bundled demo set (the 37 real reports, the seed paper as on
  the sample page, and three reports with awkward DOIs; `citesite.generator` builds it).
- `expected_page(report, page, base_url, per_page)`: what a correct parser returns for a page.
- `generated_doi`, `generated_short_id`, ... : the generator's DOIs and slugs, which the
  site reads back (`GeneratedReports.by_slug`) without building the report.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from citesite.corpus import (
    DATA_DIR,
)
from citesite.style import report_style, stable_hash

SiteType = Literal["supporting", "mentioning", "contrasting"]
TEST_PREFIX = "10.5555"
DEMO_PATH = DATA_DIR / "demo.jsonl"
SEED_DOI = "10.1038/bmt.2012.184"
DEFAULT_PER_PAGE = 25
MAX_STATEMENTS = 120

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_BITS = 40
_ID_MASK = (1 << _ID_BITS) - 1
_ID_MUL = 0x9E3779B97F & _ID_MASK | 1
_ID_INV = pow(_ID_MUL, -1, 1 << _ID_BITS)
_GEN_DOI_RE = re.compile(r"^10\.5555/cp(\d+)-(\d+)")
_WORD_RE = re.compile(r"[a-z0-9]+")
# Awkward DOI suffixes (percent-encoding, HTML escaping, non-ASCII); index 0 = none.
_ODD_SUFFIXES: tuple[str, ...] = (
    "(sici)1097-4571(199806)49:8<693::aid-asi4>3.0.co;2-o",
    "#suppl",
    "?ver=2",
    "[erratum]",
    "/é.v2",
    ":v2;rev",
    "_a&b",
    "'s-note",
)


@dataclass(frozen=True, slots=True)
class SiteTally:
    """A report's counts as the site shows them. None means the page does not say one."""

    supporting: int | None = None
    mentioning: int | None = None
    contrasting: int | None = None
    citing_publications: int | None = None
    citation_statements: int | None = None
    references_count: int | None = None


@dataclass(frozen=True, slots=True)
class SiteFacet:
    """One facet count in a report's sidebar (`facet` is its group, `label` its entry)."""

    facet: str
    label: str
    count: int | None


@dataclass(frozen=True, slots=True)
class SiteStatement:
    """A citation statement as the site holds it; `snippet` is the normalised text."""

    citing_doi: str
    citing_title: str | None
    citing_year: int | None
    citing_journal: str | None
    snippet: str
    section: str | None
    type: SiteType
    confidence: float | None


@dataclass(frozen=True, slots=True)
class SiteReport:
    """One report: header, tallies, facets, the full statement list, and its update time."""

    doi: str
    slug: str
    title: str
    authors: tuple[str, ...]
    journal: str | None
    publication_date: str | None
    year: int | None
    abstract: str | None
    abstract_truncated: bool | None
    tallies: SiteTally
    facets: tuple[SiteFacet, ...]
    statements: tuple[SiteStatement, ...]
    updated_at: str


# --------------------------------------------------------------------------- JSONL I/O


def report_to_dict(report: SiteReport) -> dict[str, Any]:
    """The JSON object of a report (one line of a data set)."""
    return {
        "doi": report.doi,
        "slug": report.slug,
        "title": report.title,
        "authors": list(report.authors),
        "journal": report.journal,
        "publication_date": report.publication_date,
        "year": report.year,
        "abstract": report.abstract,
        "abstract_truncated": report.abstract_truncated,
        "tallies": asdict(report.tallies),
        "facets": [[f.facet, f.label, f.count] for f in report.facets],
        "statements": [asdict(s) for s in report.statements],
        "updated_at": report.updated_at,
    }


def report_from_dict(d: Mapping[str, Any]) -> SiteReport:
    """A report from its JSON object; raises ValueError on a bad record."""
    try:
        t = d["tallies"] or {}
        return SiteReport(
            doi=str(d["doi"]).lower(),
            slug=str(d["slug"]),
            title=str(d["title"]),
            authors=tuple(str(a) for a in d.get("authors") or ()),
            journal=d.get("journal"),
            publication_date=d.get("publication_date"),
            year=d.get("year"),
            abstract=d.get("abstract"),
            abstract_truncated=d.get("abstract_truncated"),
            tallies=SiteTally(
                supporting=t.get("supporting"),
                mentioning=t.get("mentioning"),
                contrasting=t.get("contrasting"),
                citing_publications=t.get("citing_publications"),
                citation_statements=t.get("citation_statements"),
                references_count=t.get("references_count"),
            ),
            facets=tuple(SiteFacet(str(f), str(lbl), c) for f, lbl, c in d.get("facets") or ()),
            statements=tuple(
                SiteStatement(
                    citing_doi=str(s["citing_doi"]).lower(),
                    citing_title=s.get("citing_title"),
                    citing_year=s.get("citing_year"),
                    citing_journal=s.get("citing_journal"),
                    snippet=str(s["snippet"]),
                    section=s.get("section"),
                    type=site_type(s["type"]),
                    confidence=s.get("confidence"),
                )
                for s in d.get("statements") or ()
            ),
            updated_at=str(d["updated_at"]),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"bad report record: {exc!r}") from exc


def site_type(value: object) -> SiteType:
    if value == "supporting":
        return "supporting"
    if value == "contrasting":
        return "contrasting"
    if value == "mentioning":
        return "mentioning"
    raise ValueError(f"bad statement type {value!r}")


def iter_dataset(path: str | Path) -> Iterator[SiteReport]:
    """Stream the reports of a JSONL data set."""
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield report_from_dict(json.loads(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: {exc}") from exc


def load_dataset(path: str | Path) -> dict[str, SiteReport]:
    """A JSONL data set as a dict keyed by DOI."""
    return {r.doi: r for r in iter_dataset(path)}


def write_dataset(reports: Iterable[SiteReport], path: str | Path) -> int:
    """Write reports as JSONL; return how many."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as fh:
        for r in reports:
            fh.write(json.dumps(report_to_dict(r), ensure_ascii=False) + "\n")
            n += 1
    return n


def demo_dataset_path() -> Path:
    """The bundled demo data set (ships inside the package)."""
    return DEMO_PATH


# --------------------------------------------------------------------------- ground truth


def page_count(report: SiteReport, per_page: int = DEFAULT_PER_PAGE) -> int:
    """How many statement pages the report has (at least one, even with no statements)."""
    return max(1, math.ceil(len(report.statements) / per_page))


def canonical_url(base_url: str, report: SiteReport) -> str:
    """`{base}/reports/{slug}`: the report's canonical address."""
    return f"{base_url.rstrip('/')}/reports/{report.slug}"


def page_url(base_url: str, report: SiteReport, page: int) -> str:
    """The address of page `page` (page 1 has no query)."""
    url = canonical_url(base_url, report)
    return url if page == 1 else f"{url}?page={page}"


@dataclass(frozen=True, slots=True)
class ExpectedPaper:
    """The cited paper as a correct parser reads it off one page of its report."""

    doi: str
    title: str | None
    year: int | None
    publication_date: str | None
    journal: str | None
    abstract: str | None
    abstract_truncated: bool | None
    report_url: str
    authors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExpectedPage:
    """What a correct parser must read off one page of a report, in the site's own terms.

    Plain data on purpose: the site knows nothing of the crawler's models; the tests turn
    it into the crawler's `ParseResult` (`tests/truth.py`) to compare.
    """

    paper: ExpectedPaper
    tallies: SiteTally
    facets: tuple[SiteFacet, ...]
    statements: tuple[SiteStatement, ...]
    next_page_url: str | None


def expected_page(
    report: SiteReport, page: int, base_url: str, per_page: int = DEFAULT_PER_PAGE
) -> ExpectedPage:
    """What a correct parser must return for page `page` of `report` served at `base_url`."""
    pages = page_count(report, per_page)
    if not 1 <= page <= pages:
        raise ValueError(f"{report.doi} has {pages} page(s), not page {page}")
    style = report_style(report.doi)
    date_known = style.meta_date and style.date_format != "year"
    url = canonical_url(base_url, report)
    paper = ExpectedPaper(
        doi=report.doi,
        title=report.title,
        year=report.year,
        publication_date=report.publication_date if date_known else None,
        journal=report.journal,
        abstract=report.abstract,
        abstract_truncated=report.abstract_truncated if report.abstract else None,
        report_url=url,
        authors=report.authors,
    )
    return ExpectedPage(
        paper=paper,
        tallies=report.tallies,
        facets=report.facets,
        statements=report.statements[(page - 1) * per_page : page * per_page],
        next_page_url=f"{url}?page={page + 1}" if page < pages else None,
    )


# --------------------------------------------------------------------------- slugs and DOIs


def base62(x: int, width: int = 7) -> str:
    out = []
    for _ in range(width):
        x, r = divmod(x, 62)
        out.append(_BASE62[r])
    return "".join(reversed(out))


def _unbase62(s: str) -> int | None:
    x = 0
    for ch in s:
        i = _BASE62.find(ch)
        if i < 0:
            return None
        x = x * 62 + i
    return x


def slug_words(title: str, words: int = 5) -> str:
    """The first few words of a title, ASCII-folded, lower case, joined by `-`."""
    folded = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return "-".join(_WORD_RE.findall(folded)[:words]) or "report"


def make_slug(title: str, short_id: str) -> str:
    """`title-words-SHORTID`, like `mesenchymal-sct-ameliorates-refractory-cytopenia-14Lxay`."""
    return f"{slug_words(title)}-{short_id}"


def _id_offset(seed: int) -> int:
    return stable_hash("slug", seed) & _ID_MASK


def generated_short_id(seed: int, index: int) -> str:
    """The slug id of generated report `index`: a bijection of the index, base62."""
    return base62((index * _ID_MUL + _id_offset(seed)) & _ID_MASK)


def generated_index_from_slug(seed: int, slug: str) -> int | None:
    """Inverse of `generated_short_id` applied to a slug's last part."""
    x = _unbase62(slug.rsplit("-", 1)[-1])
    if x is None or x > _ID_MASK:
        return None
    return ((x - _id_offset(seed)) * _ID_INV) & _ID_MASK


def generated_doi(seed: int, index: int) -> str:
    """The DOI of generated report `index`; about one in ten has an awkward suffix."""
    h = stable_hash("doi", seed, index) % 80
    suffix = _ODD_SUFFIXES[h] if h < len(_ODD_SUFFIXES) else ""
    return f"{TEST_PREFIX}/cp{seed}-{index:06d}{suffix}"


def generated_index_from_doi(seed: int, doi: str) -> int | None:
    """The index encoded in a generated DOI (None if it is not one of this seed's)."""
    m = _GEN_DOI_RE.match(doi)
    if m is None or int(m.group(1)) != seed:
        return None
    return int(m.group(2))
