"""scite's API as a second source: its endpoints, its batch jobs and its JSON, read purely.

The API answers up to 500 DOIs per request (docs/api.md, as scite documents it):

- `POST {api_url}/tallies` -> `{"tallies": {doi: {"doi", "total", "supporting",
  "contradicting", "mentioning", "unclassified", "citingPublications"}}}`
- `POST {api_url}/papers` -> `{"papers": {doi: {"doi", "title", "abstract", "authors":
  [{"family", "given", ...}], "year", "journal", ..., "retracted", "editorialNotices":
  [{"status", "date", "doi", "urls"}]}}}`
- `POST {api_url}/tallies/cited-by-sections` -> `{"tallies": {doi: {"doi", "total",
  "introduction", "methods", "results", "discussion", "other"}}}`

A DOI the API has no data for is absent from the answer (`ApiResult.missing`). The API
says *contradicting* where the report page says contrasting; `total` counts citation
statements and `citingPublications` distinct citing papers. Values of the wrong type are
read as unknown (None), never guessed; an answer that is not the documented object raises
ParseError (a broken answer, like a broken page).

No I/O here: the requests go through `pipeline.crawl.api`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.config import Settings
from pipeline.errors import ParseError
from pipeline.models import BATCH_PREFIX, ApiPaper, ApiResult, Facet, NewJob, Notice, Tally
from pipeline.normalise import doi_or_none

# endpoint name -> its path under api_url
ENDPOINTS: Mapping[str, str] = {
    "tallies": "/tallies",
    "papers": "/papers",
    "sections": "/tallies/cited-by-sections",
}
BACKFILL_ENDPOINTS = ("tallies", "papers", "sections")  # a new DOI: everything
REFRESH_ENDPOINTS = ("tallies", "papers")  # a due paper: its counts and its notices
SECTION_FIELDS = ("introduction", "methods", "results", "discussion", "other")
SECTION_FACET = "section"


def _count(value: Any) -> int | None:
    """A count as the API writes it: a non-negative integer, else unknown."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _label(value: Any) -> str | None:
    """A volume, issue or page: text as the API writes it (a bare number taken as its
    digits), else unknown."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(value)


def _entries(data: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(data, dict) or not isinstance(data.get(key), dict):
        raise ParseError(f"API answer is not an object with {key!r}")
    entries: Mapping[str, Any] = data[key]
    return entries


def _found(entries: Mapping[str, Any], dois: Sequence[str]) -> Iterator[tuple[str, Any]]:
    """(asked DOI, its entry) for each asked DOI the answer holds (keys in any case)."""
    by_doi = {str(k).lower(): v for k, v in entries.items() if isinstance(v, dict)}
    for doi in dois:
        entry = by_doi.get(doi)
        if entry is not None:
            yield doi, entry


def parse_tallies(data: Any, dois: Sequence[str]) -> dict[str, Tally]:
    """`/tallies`: per DOI its Tally; `contradicting` is stored as contrasting."""
    out: dict[str, Tally] = {}
    for doi, t in _found(_entries(data, "tallies"), dois):
        out[doi] = Tally(
            supporting=_count(t.get("supporting")),
            mentioning=_count(t.get("mentioning")),
            contrasting=_count(t.get("contradicting")),
            citing_publications=_count(t.get("citingPublications")),
            citation_statements=_count(t.get("total")),
        )
    return out


def _author_name(author: Any) -> str | None:
    if not isinstance(author, dict):
        return None
    name = " ".join(p for p in (_text(author.get("given")), _text(author.get("family"))) if p)
    return name or None


def _authors(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    people = [a for a in value if isinstance(a, dict)]
    people.sort(key=lambda a: _count(a.get("authorSequenceNumber")) or 0)  # stable
    return tuple(n for n in (_author_name(a) for a in people) if n)


def _notices(value: Any) -> tuple[Notice, ...]:
    if not isinstance(value, list):
        return ()
    out: dict[tuple[str, str, str], Notice] = {}  # one per key, first wins
    for n in value:
        if not isinstance(n, dict) or not _text(n.get("status")):
            continue
        urls = [u for u in n.get("urls") or () if isinstance(u, str) and u.strip()]
        notice = Notice(
            status=_text(n.get("status")) or "",
            date=_text(n.get("date")) or "",
            notice_doi=(doi_or_none(n["doi"]) or "") if isinstance(n.get("doi"), str) else "",
            url=urls[0].strip() if urls else None,
        )
        out.setdefault((notice.status, notice.date, notice.notice_doi), notice)
    return tuple(out.values())


def parse_papers(data: Any, dois: Sequence[str]) -> dict[str, ApiPaper]:
    """`/papers`: per DOI its metadata, retraction flag and editorial notices."""
    out: dict[str, ApiPaper] = {}
    for doi, p in _found(_entries(data, "papers"), dois):
        retracted = p.get("retracted")
        year = _count(p.get("year"))
        out[doi] = ApiPaper(
            doi=doi,
            title=_text(p.get("title")),
            year=year if year is not None and 1000 <= year <= 9999 else None,
            journal=_text(p.get("journal")),
            abstract=_text(p.get("abstract")),
            authors=_authors(p.get("authors")),
            retracted=retracted if isinstance(retracted, bool) else None,
            notices=_notices(p.get("editorialNotices")),
            volume=_label(p.get("volume")),
            issue=_label(p.get("issue")),
            pages=_label(p.get("page")),
        )
    return out


def parse_sections(data: Any, dois: Sequence[str]) -> dict[str, tuple[Facet, ...]]:
    """`/tallies/cited-by-sections`: per DOI a `section` facet row per section."""
    out: dict[str, tuple[Facet, ...]] = {}
    for doi, t in _found(_entries(data, "tallies"), dois):
        out[doi] = tuple(Facet(SECTION_FACET, name, _count(t.get(name))) for name in SECTION_FIELDS)
    return out


def batch_key(endpoint: str, dois: Sequence[str]) -> str:
    """A batch job's identity: its endpoint and a digest of its DOIs, so that the same
    batch queued again (a backfill run twice, or resumed) is the same job."""
    digest = hashlib.sha1("\n".join(dois).encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return f"{BATCH_PREFIX}{endpoint}:{digest}"


@dataclass(frozen=True, slots=True)
class SciteApi:
    """The API's addresses and answers, built from the settings."""

    base: str  # api_url without a trailing slash
    batch: int  # DOIs per request
    name: str = "api"

    @classmethod
    def from_settings(cls, settings: Settings) -> SciteApi:
        return cls(settings.api_base, settings.api_batch)

    def url(self, endpoint: str) -> str:
        return self.base + ENDPOINTS[endpoint]

    def paper_url(self, doi: str) -> str:
        """The single-DOI address of a paper (what a not-found DOI's job names)."""
        return f"{self.base}/papers/{doi}"

    def jobs(self, dois: Sequence[str], endpoints: Iterable[str], round: int = 0) -> list[NewJob]:
        """One batch job per endpoint for these DOIs (at most `batch` of them)."""
        return [
            NewJob(doi=batch_key(e, dois), url=self.url(e), round=round, batch=tuple(dois))
            for e in endpoints
        ]

    def split(self, job_dois: Sequence[str], endpoint: str, round: int) -> tuple[NewJob, ...]:
        """A batch the API refused as too large (422), as two halves."""
        half = (len(job_dois) + 1) // 2
        parts = (job_dois[:half], job_dois[half:])
        return tuple(
            NewJob(doi=batch_key(endpoint, p), url=self.url(endpoint), round=round, batch=tuple(p))
            for p in parts
            if p
        )

    def parse(self, endpoint: str, dois: Sequence[str], data: Any) -> ApiResult:
        """An endpoint's answer for these DOIs; raises ParseError for a broken answer."""
        if endpoint == "tallies":
            tallies = parse_tallies(data, dois)
            return ApiResult(endpoint, tallies=tallies, missing=_missing(dois, tallies))
        if endpoint == "papers":
            papers = parse_papers(data, dois)
            return ApiResult(endpoint, papers=papers, missing=_missing(dois, papers))
        if endpoint == "sections":
            sections = parse_sections(data, dois)
            return ApiResult(endpoint, sections=sections, missing=_missing(dois, sections))
        raise ParseError(f"unknown API endpoint {endpoint!r}")


def _missing(dois: Sequence[str], found: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(d for d in dois if d not in found)
