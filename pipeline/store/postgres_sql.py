"""How citepipe's named queries run on asyncpg: `:name` parameters made positional
(`positional`, `statements`), the one order in which writes lock rows (`LOCK_ORDER`), and
the set writes that send a whole batch's rows as one statement through `unnest`
(`merge_statements`, `merge_partial_papers`). Pure functions: the driver is
`store/postgres.py`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from pipeline.store import rules
from pipeline.store.queries import queries
from pipeline.store.tables import COLUMNS, column_type

DIALECT = "postgres"

_PARAM_RE = re.compile(r"(?<![:\w]):(\w+)")

# The keys each write is sorted by, so that rows are locked in one order: completion
# batches are serialised by `lock_writes` anyway, but a page's rows also meet `fail`,
# `release` and enqueues of other transactions. Python's sort is stable: two rows of one
# key keep their order, so the later one still wins.
LOCK_ORDER: dict[str, tuple[str, ...]] = {
    "upsert_paper": ("doi",),
    "upsert_partial_paper": ("doi",),
    "delete_authors": ("doi",),
    "insert_author": ("doi", "position"),
    "insert_tally_history": ("doi",),
    "upsert_tallies": ("doi",),
    "delete_facets": ("doi",),
    "insert_facet": ("doi", "facet", "label"),
    "upsert_statement": ("cited_doi", "citing_doi", "snippet_hash"),
    "provenance_reach": ("doi", "via"),
    "record_visit": ("doi",),
    "keep_page": ("doi", "page"),
    "forget_broken_page": ("doi", "page"),
    "record_api_refresh": ("doi",),
    "mark_fewer_than_api": ("doi",),
    "mark_done": ("id",),
}


def as_columns(rows: list[rules.Params], names: Sequence[str]) -> rules.Params:
    """Rows as one array per column (for `unnest`)."""
    return {name: [r[name] for r in rows] for name in names}


def merge_partial_papers(rows: Sequence[rules.Params]) -> rules.Params:
    """`upsert_partial_paper` rows of a batch as one row per DOI, as if applied one by one:
    each column the first non-NULL value, `now` of the first row; in DOI order."""
    merged: dict[str, rules.Params] = {}
    for row in rows:
        kept = merged.setdefault(row["doi"], dict(row))
        for column in ("title", "year", "journal"):
            if kept[column] is None:
                kept[column] = row[column]
    ordered = [merged[doi] for doi in sorted(merged)]
    return as_columns(ordered, ("doi", "title", "year", "journal", "now"))


def merge_statements(rows: Sequence[rules.Params]) -> rules.Params:
    """`upsert_statement` rows of a batch as one row per identity, as if applied one by
    one: first_seen_at of the first, last_seen_at and non-NULL details of the latest."""
    merged: dict[tuple[str, str, str], rules.Params] = {}
    for row in rows:
        key = (row["cited_doi"], row["citing_doi"], row["snippet_hash"])
        kept = merged.get(key)
        if kept is None:
            merged[key] = {**row, "first_seen_at": row["now"], "last_seen_at": row["now"]}
            continue
        kept["last_seen_at"] = row["now"]
        kept["snippet"] = row["snippet"]
        for column in ("section", "type", "confidence"):
            if row[column] is not None:
                kept[column] = row[column]
    ordered = [merged[key] for key in sorted(merged)]
    names = (
        "cited_doi",
        "citing_doi",
        "snippet",
        "snippet_hash",
        "section",
        "type",
        "confidence",
        "first_seen_at",
        "last_seen_at",
    )
    return as_columns(ordered, names)


# Writes done for the whole batch in one statement (`<name>_set`, arrays through unnest):
# a page's citers and statements are most of its rows, and one statement instead of one
# execution per row is what makes a batch cheap.
SET_WRITES: dict[str, Callable[[Sequence[rules.Params]], rules.Params]] = {
    "upsert_partial_paper": merge_partial_papers,
    "upsert_statement": merge_statements,
}


@dataclass(frozen=True, slots=True)
class Statement:
    """A named query in asyncpg's form: `$n` placeholders, and the names they stand for."""

    sql: str
    names: tuple[str, ...]

    def args(self, params: rules.Params) -> tuple[Any, ...]:
        return tuple(params[name] for name in self.names)


def positional(sql: str) -> Statement:
    """`:name` placeholders to `$1, $2...` in order of first use (a repeated name is one
    parameter); `::type` casts and comment lines are left alone."""
    code = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    names: list[str] = []

    def number(m: re.Match[str]) -> str:
        if m.group(1) not in names:
            names.append(m.group(1))
        return f"${names.index(m.group(1)) + 1}"

    return Statement(_PARAM_RE.sub(number, code), tuple(names))


@cache
def statements() -> dict[str, Statement]:
    """The named queries of `sql/postgres/queries.sql`, ready for asyncpg."""
    return {name: positional(sql) for name, sql in queries(DIALECT).items()}


def status_count(status: str) -> int:
    """The row count of a command tag such as `UPDATE 3`."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def export_value(value: Any) -> Any:
    return rules.iso(value) if isinstance(value, datetime) else value


@cache
def positional_cached(sql: str) -> Statement:
    """`positional` of a generated query (an export page), made once."""
    return positional(sql)


@cache
def time_positions(table: str) -> tuple[int, ...]:
    """Where a table's time columns are in its export rows (`COLUMNS` order)."""
    return tuple(i for i, c in enumerate(COLUMNS[table]) if column_type(c) == "time")
