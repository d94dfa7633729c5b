"""The Datasette metadata of a store: title, table and column descriptions, full-text
search on statements (`citepipe export --datasette-metadata`).

Datasette finds the foreign keys (declared in the schema) and the FTS table
(`statements_fts`, external content `content="statements"`) by itself; this file adds the
words people need to read the tables. The descriptions follow docs/store.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_TALLY_COLUMNS = {
    "supporting": "statements that support the paper (NULL: the page did not say)",
    "mentioning": "statements that mention it",
    "contrasting": "statements that contrast with it",
    "citing_publications": "publications citing it",
    "citation_statements": "citation statements in all",
    "references_count": "its references",
}

TABLES: dict[str, dict[str, Any]] = {
    "papers": {
        "description": "One row per paper: those whose report was read, and papers seen "
        "only as citers (partial rows: title, year, journal).",
        "columns": {
            "doi": "normalised DOI, lower case (the key)",
            "title": "title",
            "year": "publication year",
            "publication_date": "publication date as the page gave it",
            "journal": "journal",
            "abstract": "abstract",
            "abstract_truncated": "1 if the page showed only part of the abstract",
            "report_url": "address of its citation report",
            "first_seen_at": "when citepipe first stored it (UTC)",
            "last_crawled_at": "when its own report was last read (NULL: never, a citer)",
            "incomplete": "1 if its report is stored in part (see incomplete_reason)",
            "incomplete_reason": "why: a dead page, a cut pagination, fewer statements "
            "than the report counts",
            "refresh_interval": "seconds until its report is read again (adaptive)",
            "next_refresh_at": "when a crawl reads its report again",
            "retracted": "1 if scite's API says it is retracted, 0 if not, NULL unknown",
            "volume": "journal volume, as scite's API gives it (NULL unknown)",
            "issue": "journal issue, as scite's API gives it (NULL unknown)",
            "pages": "pages (a range such as 5-9, one page or an article number), "
            "as scite's API gives them (NULL unknown)",
        },
    },
    "authors": {
        "description": "Authors of a paper, in order.",
        "columns": {"doi": "the paper", "position": "1 for the first author", "name": "name"},
    },
    "tallies": {
        "description": "The latest citation tallies of each paper, from its report or scite's API.",
        "columns": {
            "doi": "the paper",
            **_TALLY_COLUMNS,
            "observed_at": "when they were read (UTC)",
            "source": "where the latest came from: api or report",
            "api_statements": "the API's count of citation statements (its `total`)",
        },
    },
    "tally_history": {
        "description": "A row each time a paper's tallies changed (`citepipe show --plot`).",
        "columns": {
            "id": "row id",
            "doi": "the paper",
            **_TALLY_COLUMNS,
            "observed_at": "when they were read (UTC)",
        },
    },
    "facets": {
        "description": "Breakdowns of a paper's citations (section, year, journal, ...).",
        "columns": {
            "doi": "the paper",
            "facet": "the breakdown",
            "label": "its value",
            "count": "citation statements with that value",
        },
    },
    "statements": {
        "description": "Citation statements: a snippet of the citing paper that cites the "
        "cited one. Full-text search: the search box (FTS5 syntax), or "
        "`citepipe search`.",
        "columns": {
            "id": "row id",
            "cited_doi": "the paper cited (whose report holds the statement)",
            "citing_doi": "the paper citing it",
            "snippet": "the text around the citation",
            "snippet_hash": "hash of the normalised snippet (identity with both DOIs)",
            "section": "section of the citing paper",
            "type": "supporting, mentioning or contrasting",
            "confidence": "the site's confidence in the type, 0 to 1",
            "first_seen_at": "first stored (UTC)",
            "last_seen_at": "last seen on its report (UTC)",
        },
        "fts_table": "statements_fts",
        "fts_pk": "id",
        "sort_desc": "last_seen_at",
    },
    "citations": {
        "description": "Who cites whom: one row per citing and cited paper, statements "
        "counted by type (a view over statements).",
        "columns": {
            "citing_doi": "the paper citing",
            "cited_doi": "the paper cited",
            "statements": "statements in all",
            "supporting": "supporting statements",
            "mentioning": "mentioning statements",
            "contrasting": "contrasting statements",
        },
    },
    "notices": {
        "description": "Editorial notices of a paper (retractions, expressions of concern, "
        "corrections), from scite's API; a notice seen again is one row.",
        "columns": {
            "doi": "the paper",
            "status": "as scite writes it: Retracted, Has expression of concern, Withdrawn, "
            "Has erratum, Has correction",
            "date": "the notice's date (YYYY-MM-DD), '' when unknown",
            "notice_doi": "the notice's own DOI, '' when none",
            "url": "where to read it",
            "first_seen_at": "first stored (UTC)",
            "last_seen_at": "last seen in an API answer (UTC)",
        },
    },
    "jobs": {
        "description": "The work queue: one row per page of a report to fetch, or per "
        "API request (a batch of DOIs, `batch`).",
        "columns": {
            "doi": "the report's paper",
            "url": "the page's address",
            "page": "page number",
            "state": "queued, leased, done, failed or dead",
            "last_error": "why it failed or died",
            "batch": "an API request's DOIs (JSON array); NULL for a page",
        },
    },
    "provenance": {
        "description": "Which input DOIs (seeds) brought each paper into a crawl, and how "
        "many citing steps away: one row per paper and seed.",
        "columns": {
            "doi": "the paper",
            "seed": "an input DOI whose crawl reached it",
            "depth": "citing steps from that seed (0: the seed itself)",
        },
    },
    "pages": {
        "description": "Fetched pages kept for `citepipe reparse` (zlib-compressed): the "
        "broken ones, or every page with keep_pages = all.",
        "columns": {
            "doi": "the report's paper",
            "page": "page number",
            "url": "where the page came from",
            "fetched_at": "when it was fetched (UTC)",
            "broken": "1 if it did not parse",
            "error": "why not",
            "size": "bytes before compression",
            "body": "the page, zlib-compressed",
            "media_type": "its Content-Type's media type, as served",
            "charset": "the character encoding it was decoded with",
        },
    },
}
HIDDEN = ("runs", "hosts", "schema_version", "search_bulk")  # bookkeeping, not results


def datasette_metadata(db_path: str | Path) -> dict[str, Any]:
    """Datasette's `metadata.json` for the store file `db_path` (its database name is the
    file name without its suffix, as Datasette names it)."""
    name = Path(db_path).stem
    tables: dict[str, Any] = {t: dict(spec) for t, spec in TABLES.items()}
    for t in HIDDEN:
        tables[t] = {"hidden": True}
    return {
        "title": "citepipe store",
        "description": "Citation reports harvested by citepipe. Tables and columns: "
        "docs/store.md; statements are searchable.",
        "databases": {name: {"tables": tables}},
    }
