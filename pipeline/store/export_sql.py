"""Filtered exports as SQL: `--where` and `--since` run in the database, with bound values.

A filter (`ExportFilter`) is a few `Comparison`s, each a column of the table, an operator
of `OPS` and a value already in the column's type (`tables.column_type`). `export_query`
writes the keyset page of a table with the filter in its WHERE (HAVING for the grouped
`citations` view): the column names in that SQL are `tables.COLUMNS`' own strings, the
operators `OPS`' own, and every value a bound parameter (`:w0`, `:w1`, ...), so no text a
user typed ever reaches SQL as SQL. A column that is not the table's is refused here too
(`StoreError`), whoever calls.

The comparisons mean exactly what the exported values compare as: numbers as numbers
(PostgreSQL compares in double precision, as the exported float would), text as text in
code point order (UTF-8 byte order: SQLite's BINARY, PostgreSQL's `COLLATE "C"`), times
as times (SQLite stores `rules.iso` text, whose order is time order), a NULL never
matches. A plain comparison of a column keeps to the column, so an index on it serves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from pipeline.errors import StoreError
from pipeline.store.tables import COLUMNS, KEYS, column_type

OPS = ("=", "!=", "<", "<=", ">", ">=")
Value = int | float | str | datetime

# PostgreSQL stores these flags as boolean; an export writes them 0/1 (as SQLite stores them).
PG_FLAGS = frozenset({"abstract_truncated", "incomplete", "retracted", "broken"})
# Exported and compared as text (`column_type`), stored as numbers: compared as their text.
NUMBERS_AS_TEXT = frozenset({"retracted", "api_statements", "broken", "size"})
# The `citations` view's columns, computed from statements grouped by (cited, citing).
CITATIONS = {
    "citing_doi": "citing_doi",
    "cited_doi": "cited_doi",
    "statements": "count(*)",
    "supporting": "count(*) FILTER (WHERE type = 'supporting')",
    "mentioning": "count(*) FILTER (WHERE type = 'mentioning')",
    "contrasting": "count(*) FILTER (WHERE type = 'contrasting')",
}


@dataclass(frozen=True, slots=True)
class Comparison:
    """`column op value`, the value in the column's type (`tables.column_type`)."""

    column: str
    op: str
    value: Value


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """Rows where every one of `all_of` holds and, when `any_of` is given, at least one of
    it (`--since` over a table's several time columns)."""

    all_of: tuple[Comparison, ...] = ()
    any_of: tuple[Comparison, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.all_of or self.any_of)

    def shape(self) -> tuple[tuple[tuple[str, str, str], ...], int]:
        """What the SQL depends on (not the values): a cache key for `export_query`."""
        every = (*self.all_of, *self.any_of)
        return tuple((c.column, c.op, _number_kind(c.value)) for c in every), len(self.all_of)


def _number_kind(value: Value) -> str:
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "int" if value.is_integer() else "float"
    return "other"


def check(table: str, where: ExportFilter) -> None:
    """StoreError unless every comparison names a column of `table` and an operator of OPS."""
    for c in (*where.all_of, *where.any_of):
        if c.column not in COLUMNS.get(table, ()):
            raise StoreError(f"export filter: {table} has no column {c.column!r}")
        if c.op not in OPS:
            raise StoreError(f"export filter: unknown operator {c.op!r}")


def bound_params(where: ExportFilter) -> dict[str, Value]:
    """The values as the SQL takes them: a whole number compared with an integer column
    as an int (so an index on the column serves), the other numbers as floats."""
    every = (*where.all_of, *where.any_of)
    out: dict[str, Value] = {}
    for i, c in enumerate(every):
        value = c.value
        if isinstance(value, int | float):
            whole = column_type(c.column) == "int" and _number_kind(value) == "int"
            value = int(value) if whole else float(value)
        out[f"w{i}"] = value
    return out


def _expression(dialect: str, table: str, column: str) -> str:
    """The column as the export writes it (PostgreSQL's flags as 0/1)."""
    expr = CITATIONS[column] if table == "citations" else column
    if dialect == "postgres" and column in PG_FLAGS:
        return f"{expr}::integer"
    return expr


def _comparison(dialect: str, table: str, column: str, op: str, kind: str, name: str) -> str:
    expr = _expression(dialect, table, column)
    typed = column_type(column)
    if typed == "text":
        if column in NUMBERS_AS_TEXT:
            expr = f"({expr})::text" if dialect == "postgres" else f"CAST({expr} AS TEXT)"
        if dialect == "postgres" and op not in ("=", "!="):
            expr = f'{expr} COLLATE "C"'
        return f"{expr} {op} :{name}"
    if dialect == "postgres" and typed in ("int", "float"):
        cast = "bigint" if kind == "int" and typed == "int" else "double precision"
        return f"{expr} {op} :{name}::{cast}"
    return f"{expr} {op} :{name}"


@cache
def _query(
    dialect: str, table: str, shape: tuple[tuple[tuple[str, str, str], ...], int], after: bool
) -> str:
    comparisons, n_all = shape
    columns, keys = COLUMNS[table], KEYS[table]
    select = ", ".join(
        c if _expression(dialect, table, c) == c else f"{_expression(dialect, table, c)} AS {c}"
        for c in columns
    )
    parts = [
        _comparison(dialect, table, column, op, kind, f"w{i}")
        for i, (column, op, kind) in enumerate(comparisons)
    ]
    filters = parts[:n_all]
    if parts[n_all:]:
        filters.append("(" + " OR ".join(parts[n_all:]) + ")")
    keyset = []
    if after:
        left = ", ".join(keys)
        right = ", ".join(f":after_{k}" for k in keys)
        keyset = [f"({left}) > ({right})" if len(keys) > 1 else f"{left} > {right}"]
    order = ", ".join(keys)
    if table == "citations":
        sql = f"SELECT {select} FROM statements"
        if keyset:
            sql += " WHERE " + keyset[0]
        sql += f" GROUP BY {order}"
        if filters:
            sql += " HAVING " + " AND ".join(filters)
    else:
        sql = f"SELECT {select} FROM {table}"
        if keyset or filters:
            sql += " WHERE " + " AND ".join(keyset + filters)
    return f"{sql} ORDER BY {order} LIMIT :limit"


def export_query(dialect: str, table: str, where: ExportFilter, *, after: bool) -> str:
    """One keyset page of `table`'s rows that `where` keeps, in key order: parameters
    `:limit`, `:after_<key>` when `after`, and `bound_params(where)`."""
    check(table, where)
    if table not in KEYS:
        raise StoreError(f"unknown table {table!r}")
    return _query(dialect, table, where.shape(), after)


def key_positions(table: str) -> Sequence[int]:
    """Where the key columns are in a row of `COLUMNS[table]` (the next page's start)."""
    return [COLUMNS[table].index(k) for k in KEYS[table]]
