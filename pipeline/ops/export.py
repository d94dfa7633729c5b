"""`citepipe export`: a table streamed as CSV, JSON lines or Parquet, with row filters
(`--where`, `--since`); and Datasette's metadata for a SQLite store.

Filters are applied to the rows the store streams (`StoreStats.export`), in Python: no
text from the command line ever reaches SQL, so `--where` cannot inject anything. A
`--where` is `column OP value` with OP one of `= != < <= > >=`, the column one of the
table's (`tables.COLUMNS`); numbers compare as numbers, the rest as text; a row whose
column is NULL never matches. `--since` keeps rows new or changed since a time (each
table's time column: `SINCE_COLUMNS`).

Parquet needs pyarrow (the optional `parquet` extra); columns get their types from
`column_type` (integers, floats, UTC timestamps, text), so every file of a table has the
same schema whatever its rows.
"""

from __future__ import annotations

import csv
import json
import operator
import re
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, Any

from pipeline.app import Pipeline
from pipeline.errors import ConfigError
from pipeline.ops import bibliography
from pipeline.ops.datasette import datasette_metadata
from pipeline.ops.output import replacing
from pipeline.store.sqlite_file import sqlite_path
from pipeline.store.tables import COLUMNS, TALLY_FIELDS

# The time columns `--since` looks at (any of them at or after the time): when a row was
# written or last changed.
SINCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "papers": ("first_seen_at", "last_crawled_at"),
    "tallies": ("observed_at",),
    "tally_history": ("observed_at",),
    "statements": ("last_seen_at",),
    "jobs": ("updated_at",),
}
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
PARQUET_BATCH = 10_000  # rows per Parquet row group written

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_WHERE_RE = re.compile(r"^\s*(\w+)\s*(!=|<=|>=|=|<|>)\s*(.*?)\s*$", re.DOTALL)
_AGO_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def column_type(column: str) -> str:
    """`int`, `float`, `time` or `text`: how a column is compared and typed in Parquet."""
    if column in INTEGER_COLUMNS:
        return "int"
    if column in FLOAT_COLUMNS:
        return "float"
    if column in TIME_COLUMNS:
        return "time"
    return "text"


@dataclass(frozen=True, slots=True)
class Condition:
    """One validated `--where`: column, operator, the value in the column's type."""

    column: str
    op: str
    value: Any

    def matches(self, row: dict[str, Any]) -> bool:
        have = row.get(self.column)
        if have is None:
            return False
        kind = column_type(self.column)
        if kind in ("int", "float"):
            have = float(have)
        elif kind == "time":
            have = parse_time(str(have))
        else:
            have = str(have)
        return _OPS[self.op](have, self.value)


def parse_where(table: str, text: str) -> Condition:
    """`column OP value` for `table`, checked; a bad one is a ConfigError naming it."""
    m = _WHERE_RE.match(text)
    if m is None:
        raise ConfigError(
            f"--where {text!r}: expected COLUMN=VALUE (or != < <= > >=), e.g. type=contrasting"
        )
    column, op, raw = m.groups()
    if column not in COLUMNS[table]:
        raise ConfigError(
            f"--where {text!r}: {table} has no column {column!r} "
            f"(columns: {', '.join(COLUMNS[table])})"
        )
    kind = column_type(column)
    value: Any = raw
    try:
        if kind in ("int", "float"):
            value = float(raw)
        elif kind == "time":
            value = parse_time(raw)
    except ValueError:
        raise ConfigError(f"--where {text!r}: {raw!r} is not a {kind} value") from None
    return Condition(column, op, value)


def parse_time(text: str) -> datetime:
    """An ISO 8601 date or time (naive means UTC) as an aware datetime."""
    dt = datetime.fromisoformat(text.strip())
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def parse_since(text: str, now: datetime) -> datetime:
    """`--since`: an ISO 8601 date or time (UTC unless it says), or an age such as
    `36h` or `7d` (that long before now)."""
    m = _AGO_RE.match(text.strip().lower())
    if m:
        return now - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        return parse_time(text)
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: expected a date or time (2026-11-30, 2026-11-30T12:00Z) "
            "or an age (36h, 7d)"
        ) from None


@dataclass(frozen=True, slots=True)
class RowFilter:
    """Every `--where` must hold, and the row must be new or changed since `since`."""

    conditions: tuple[Condition, ...] = ()
    since_columns: tuple[str, ...] = ()
    since: datetime | None = None

    @classmethod
    def build(
        cls, table: str, where: Sequence[str] = (), since: str | None = None, *, now: datetime
    ) -> RowFilter:
        conditions = tuple(parse_where(table, w) for w in where)
        if since is None:
            return cls(conditions)
        columns = SINCE_COLUMNS.get(table)
        if columns is None:
            have = ", ".join(SINCE_COLUMNS)
            raise ConfigError(f"--since: {table} has no time column (tables with one: {have})")
        return cls(conditions, columns, parse_since(since, now))

    def __call__(self, row: dict[str, Any]) -> bool:
        if self.since is not None and not any(
            row.get(c) is not None and parse_time(str(row[c])) >= self.since
            for c in self.since_columns
        ):
            return False
        return all(c.matches(row) for c in self.conditions)


async def filtered(
    rows: AsyncIterator[dict[str, Any]], keep: RowFilter
) -> AsyncIterator[dict[str, Any]]:
    async for row in rows:
        if keep(row):
            yield row


def arrow_schema(table: str) -> Any:
    """The Parquet schema of a table: its columns in export order, typed."""
    import pyarrow as pa

    types = {
        "int": pa.int64(),
        "float": pa.float64(),
        "time": pa.timestamp("us", tz="UTC"),
        "text": pa.string(),
    }
    return pa.schema([(c, types[column_type(c)]) for c in COLUMNS[table]])


def _arrow_value(column: str, value: Any) -> Any:
    if value is None:
        return None
    kind = column_type(column)
    if kind == "time":
        return parse_time(str(value))
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    return str(value)


async def write_parquet(rows: AsyncIterator[dict[str, Any]], table: str, path: Path) -> int:
    """Stream rows into a Parquet file (row groups of `PARQUET_BATCH`); return how many.
    Written through `output.replacing`: a failure leaves the old file as it was."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            "--format parquet needs pyarrow: "
            "pip install -e '.[parquet]' in the checkout (or make extras)"
        ) from None
    schema = arrow_schema(table)
    columns = list(COLUMNS[table])
    n = 0
    with replacing(path) as target, pq.ParquetWriter(str(target), schema) as writer:
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            data = {c: [_arrow_value(c, r.get(c)) for r in batch] for c in columns}
            writer.write_table(pa.Table.from_pydict(data, schema=schema))
            batch.clear()

        async for row in rows:
            batch.append(row)
            n += 1
            if len(batch) >= PARQUET_BATCH:
                flush()
        if batch or n == 0:
            flush()
    return n


async def write_rows(
    rows: AsyncIterator[dict[str, Any]], fmt: str, out: IO[str], table: str
) -> int:
    """CSV or JSON lines, to a text stream; rows written. CSV has its header (the table's
    columns, `COLUMNS`) even when no row matches, and `\n` line ends, as Unix tools and
    pandas expect (RFC 4180's CRLF only in the `csv` module's default)."""
    n = 0
    writer: csv.DictWriter[str] | None = None
    if fmt != "jsonl":
        writer = csv.DictWriter(out, fieldnames=list(COLUMNS[table]), lineterminator="\n")
        writer.writeheader()
    async for row in rows:
        if writer is None:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            writer.writerow(row)
        n += 1
    return n


async def export(p: Pipeline, table: str, fmt: str, output: str | None, keep: RowFilter) -> int:
    """`citepipe export`: the table's rows that `keep` keeps, to `output` (standard output
    when None); the number of rows written."""
    rows = p.store.export(table)
    if keep.conditions or keep.since is not None:
        rows = filtered(rows, keep)
    write = partial(write_rows, table=table)
    if fmt in bibliography.FORMATS:  # records for reference managers, from `papers`
        if table != "papers":
            raise ConfigError(f"--format {fmt}: exports --table papers only")
        write = partial(bibliography.write_bibliography, p.store)
    if not output:
        return await write(rows, fmt, sys.stdout)
    try:
        if fmt == "parquet":
            return await write_parquet(rows, table, Path(output))
        with (
            replacing(Path(output)) as target,
            open(target, "w", encoding="utf-8", newline="") as out,  # noqa: ASYNC230
        ):
            return await write(rows, fmt, out)
    except OSError as exc:
        raise ConfigError(f"--output {output}: {_unchanged(output, exc)}") from None


def write_metadata(db: str, output: str | None) -> bool:
    """`export --datasette-metadata`: the store's metadata.json, to `output` or standard
    output; True when a file was written."""
    path = sqlite_path(db)
    if path is None:
        raise ConfigError("--datasette-metadata: Datasette reads SQLite stores only")
    text = json.dumps(datasette_metadata(path), indent=1, ensure_ascii=False) + "\n"
    if not output:
        sys.stdout.write(text)
        return False
    try:
        with replacing(Path(output)) as target:
            target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--output {output}: {_unchanged(output, exc)}") from None
    return True


def _unchanged(output: str, exc: OSError) -> str:
    """An output error, and (a file there before) that the file is as it was."""
    why = exc.strerror or str(exc)
    path = Path(output)
    return f"{why}; {output} left as it was" if path.is_file() else why
