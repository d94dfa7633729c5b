"""Reading the store after a crawl: `show` (one paper), `search` (statement snippets),
and `parse` (a saved page read with the report profile, no store at all). The one rule for
a DOI named on the command line (`doi_argument`) lives here."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pipeline.app import Pipeline
from pipeline.config import Settings
from pipeline.errors import BadInputError, ConfigError, NotFoundError, StoreError, UsageError
from pipeline.models import Page, PaperView, SearchHit, StatementType, result_to_dict
from pipeline.normalise import normalise_doi
from pipeline.sources.report import ReportSource, load_selectors


def read_stdin_or_file(name: str, stdin: IO[bytes] | None = None) -> bytes:
    """The bytes of a file, or of standard input for `-` (for `parse`)."""
    if name == "-":
        return (stdin or sys.stdin.buffer).read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: {exc.strerror}") from None


def parse_page(
    settings: Settings, name: str, *, url: str | None = None, stdin: IO[bytes] | None = None
) -> dict[str, Any]:
    """`citepipe parse`: read a saved page (a file, or `-` for standard input) with the
    report profile and return it as a JSON-able dict; a broken page raises ParseError."""

    body = read_stdin_or_file(name, stdin)
    where = url or ("file:///dev/stdin" if name == "-" else Path(name).resolve().as_uri())
    source = ReportSource(load_selectors(settings.selectors or None))
    result = source.parse(Page(url=where, final_url=where, status=200, body=body))
    parsed: dict[str, Any] = result_to_dict(result)
    return parsed


# ---------------------------------------------------------------------------- after the crawl


async def show(p: Pipeline, doi: str, *, statements: int = 1000) -> PaperView:
    """`citepipe show`: one paper at a glance; an unknown DOI is a clear error."""
    if statements < 0:
        raise ConfigError(f"--statements: must be 0 or more, got {statements}")
    key = doi_argument(doi)
    view = await p.store.paper_view(key, statements=statements)
    if view is None:
        raise NotFoundError(f"{key}: no such paper in {p.settings.db}")
    return view


@dataclass(frozen=True, slots=True)
class SearchResults:
    """The best `limit` hits, and whether more statements matched than were returned."""

    hits: tuple[SearchHit, ...]
    more: bool


async def search(
    p: Pipeline, query: str, *, type: StatementType | None = None, limit: int = 20
) -> SearchResults:
    """`citepipe search`: statements whose snippet matches, best first. SQLite reads the
    query as FTS5 syntax with every term holding punctuation quoted (`store/fts.py`:
    `COVID-19`, `T-cells` and `it's` work); PostgreSQL as `websearch_to_tsquery`. One
    more hit than `limit` is asked for, to say whether more matched."""
    if not query.strip():
        raise UsageError("search: the query is empty")
    if limit < 1:
        raise UsageError(f"--limit: must be at least 1, got {limit}")
    try:
        hits = await p.store.search(query, type=type, limit=limit + 1)
    except StoreError as exc:
        raise UsageError(
            f'{exc} (search syntax: words, "a phrase", OR, NOT, prefix*, NEAR(a b))'
        ) from None
    return SearchResults(tuple(hits[:limit]), more=len(hits) > limit)


def doi_argument(text: str, flag: str | None = None) -> str:
    """A DOI named on the command line (`show`'s argument, `--doi` of retry and reparse),
    normalised: the one rule for them all. Not a DOI is a usage error (exit 2)."""
    try:
        return normalise_doi(text)
    except BadInputError as exc:
        raise ConfigError(f"{flag}: {exc}" if flag else str(exc)) from None
