"""The store's tables as the code knows them: each table's public columns in order
(`COLUMNS`: what export writes and copy-store moves), its key (`KEYS`: keyset pages and
resumed copies) and which are results (`RESULT_TABLES`). The schema itself is the
migrations' (`store/sql/<dialect>/`); tests check the two agree.
"""

from __future__ import annotations

TALLY_FIELDS = (
    "supporting",
    "mentioning",
    "contrasting",
    "citing_publications",
    "citation_statements",
    "references_count",
)

# Columns of every table a user may export, in schema order, and each table's key.
COLUMNS: dict[str, tuple[str, ...]] = {
    "papers": (
        "doi",
        "title",
        "year",
        "publication_date",
        "journal",
        "abstract",
        "abstract_truncated",
        "report_url",
        "first_seen_at",
        "last_crawled_at",
        "incomplete",
        "refresh_interval",
        "next_refresh_at",
        "incomplete_reason",
        "retracted",
        "volume",
        "issue",
        "pages",
    ),
    "authors": ("doi", "position", "name"),
    "tallies": ("doi", *TALLY_FIELDS, "observed_at", "source", "api_statements"),
    "tally_history": ("id", "doi", *TALLY_FIELDS, "observed_at"),
    "facets": ("doi", "facet", "label", "count"),
    "statements": (
        "id",
        "cited_doi",
        "citing_doi",
        "snippet",
        "snippet_hash",
        "section",
        "type",
        "confidence",
        "first_seen_at",
        "last_seen_at",
    ),
    "jobs": (
        "id",
        "doi",
        "url",
        "page",
        "state",
        "attempts",
        "not_before",
        "lease_until",
        "last_error",
        "depth",
        "created_at",
        "updated_at",
        "round",
        "worker",
        "etag",
        "last_modified",
        "content_hash",
        "next_url",
        "chain",
        "page_statements",
        "page_counted",
        "batch",
    ),
    "notices": (
        "doi",
        "status",
        "date",
        "notice_doi",
        "url",
        "first_seen_at",
        "last_seen_at",
    ),
    "provenance": ("doi", "seed", "depth"),
    # Kept pages (`copy-store` moves them; never exported as CSV: `body` is zlib bytes).
    "pages": (
        "doi",
        "page",
        "url",
        "fetched_at",
        "broken",
        "error",
        "size",
        "body",
        "media_type",
        "charset",
    ),
    # The `citations` view (export only), in its column order.
    "citations": (
        "citing_doi",
        "cited_doi",
        "statements",
        "supporting",
        "mentioning",
        "contrasting",
    ),
}
KEYS: dict[str, tuple[str, ...]] = {
    "papers": ("doi",),
    "authors": ("doi", "position"),
    "tallies": ("doi",),
    "tally_history": ("id",),
    "facets": ("doi", "facet", "label"),
    "statements": ("id",),
    "jobs": ("id",),
    "provenance": ("doi", "seed"),
    "notices": ("doi", "status", "date", "notice_doi"),
    "pages": ("doi", "page"),
    "citations": ("cited_doi", "citing_doi"),  # the order statements_identity serves
}
RESULT_TABLES = (
    "papers",
    "authors",
    "tallies",
    "tally_history",
    "facets",
    "statements",
    "notices",
)

# How each exported column compares in `--where` and is typed in Parquet (`column_type`).
INTEGER_COLUMNS = frozenset(
    {
        "id",
        "year",
        "abstract_truncated",
        "incomplete",
        "position",
        *TALLY_FIELDS,  # the tallies are counts
        "count",
        "statements",  # the citations view's count of statements
        "page",
        "attempts",
        "depth",
        "round",
        "page_statements",
        "page_counted",
    }
)
FLOAT_COLUMNS = frozenset({"refresh_interval", "confidence"})
TIME_COLUMNS = frozenset(
    {
        "first_seen_at",
        "last_crawled_at",
        "next_refresh_at",
        "observed_at",
        "last_seen_at",
        "not_before",
        "lease_until",
        "created_at",
        "updated_at",
        "fetched_at",
    }
)


def column_type(column: str) -> str:
    """`int`, `float`, `time` or `text`: how a column is compared and typed in Parquet."""
    if column in INTEGER_COLUMNS:
        return "int"
    if column in FLOAT_COLUMNS:
        return "float"
    if column in TIME_COLUMNS:
        return "time"
    return "text"
