"""`citepipe export`: a table streamed as CSV, JSON lines or Parquet, with row filters
(`--where`, `--since`); and Datasette's metadata for a SQLite store.

Filters run in the store, as SQL (`store.export_sql`): the column a `--where` names must
be one of the table's (`tables.COLUMNS`), its operator one of `= != < <= > >=`, and its
value is bound as a parameter, so no text from the command line ever reaches SQL as SQL,
and an index on the column serves. Numbers compare as numbers, the rest as text; a row
whose column is NULL never matches. `--since` keeps rows new or changed since a time (any
of each table's time columns: `SINCE_COLUMNS`). The rows come from the store in pages of
tuples (`export_pages`), written as they come.

Parquet needs pyarrow (the optional `parquet` extra); columns get their types from
`column_type` (integers, floats, UTC timestamps, text), so every file of a table has the
same schema whatever its rows; each page of rows is one record batch.
"""

from __future__ import annotations

import csv
import json
import math
import operator
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
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
from pipeline.store.export_sql import Comparison, ExportFilter
from pipeline.store.sqlite_file import sqlite_path
from pipeline.store.tables import COLUMNS, column_type

# The time columns `--since` looks at (any of them at or after the time): when a row was
# written or last changed.
SINCE_COLUMNS: dict[str, tuple[str, ...]] = {
    "papers": ("first_seen_at", "last_crawled_at"),
    "tallies": ("observed_at",),
    "tally_history": ("observed_at",),
    "statements": ("last_seen_at",),
    "jobs": ("updated_at",),
}

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


@dataclass(frozen=True, slots=True)
class Condition:
    """One validated `--where`: column, operator, the value in the column's type.

    `matches` is the meaning of a filter, stated on an exported row; the store runs the
    same comparison in SQL (`store.export_sql`), and the tests hold the two equal."""

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

    def comparison(self) -> Comparison:
        return Comparison(self.column, self.op, self.value)


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
            if not math.isfinite(value):
                raise ValueError(raw)
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
    """Every `--where` must hold, and the row must be new or changed since `since`.

    Calling it on an exported row says whether the row is kept (the reference meaning);
    an export hands it to the store as SQL (`store_filter`)."""

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

    def store_filter(self) -> ExportFilter:
        """The same filter as the store runs it: comparisons with bound values."""
        since = self.since
        return ExportFilter(
            all_of=tuple(c.comparison() for c in self.conditions),
            any_of=()
            if since is None
            else tuple(Comparison(c, ">=", since) for c in self.since_columns),
        )


Pages = AsyncIterator[list[tuple[Any, ...]]]


async def as_dicts(pages: Pages, table: str) -> AsyncIterator[dict[str, Any]]:
    """Export pages as one dict a row (for the bibliography formats)."""
    columns = COLUMNS[table]
    async for page in pages:
        for row in page:
            yield dict(zip(columns, row, strict=True))


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


def _arrow_values(column: str, values: Sequence[Any]) -> list[Any]:
    """A page's values of one column in the column's Parquet type."""
    kind = column_type(column)
    converters: dict[str, Callable[[Any], Any]] = {"time": _time_value, "int": int, "float": float}
    convert = converters.get(kind, str)
    return [None if v is None else convert(v) for v in values]


def _time_value(value: Any) -> datetime:
    return parse_time(str(value))


async def write_parquet(pages: Pages, table: str, path: Path) -> int:
    """Stream export pages into a Parquet file, one record batch (and row group) a page;
    return the rows written. Written through `output.replacing`: a failure leaves the
    old file as it was."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(
            "--format parquet needs pyarrow: "
            "pip install -e '.[parquet]' in the checkout (or make extras)"
        ) from None
    schema = arrow_schema(table)
    columns = COLUMNS[table]
    n = 0
    with replacing(path) as target, pq.ParquetWriter(str(target), schema) as writer:
        async for page in pages:
            values = list(zip(*page, strict=True))
            arrays = [
                pa.array(_arrow_values(c, values[i]), type=schema.field(i).type)
                for i, c in enumerate(columns)
            ]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=schema))
            n += len(page)
        if n == 0:  # an empty file still has the table's schema and one (empty) group
            writer.write_table(schema.empty_table())
    return n


async def write_rows(pages: Pages, fmt: str, out: IO[str], table: str) -> int:
    """CSV or JSON lines, to a text stream; rows written. CSV has its header (the table's
    columns, `COLUMNS`) even when no row matches, and `\n` line ends, as Unix tools and
    pandas expect (RFC 4180's CRLF only in the `csv` module's default). A page of rows
    goes to the `csv` writer (or the JSON encoder) as it came from the store: no dict a
    row for CSV, one write a page for JSON lines."""
    n = 0
    columns = COLUMNS[table]
    if fmt == "jsonl":
        encode = json.JSONEncoder(ensure_ascii=False).encode
        async for page in pages:
            out.write("".join([encode(dict(zip(columns, r, strict=True))) + "\n" for r in page]))
            n += len(page)
        return n
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    async for page in pages:
        writer.writerows(page)
        n += len(page)
    return n


async def export(p: Pipeline, table: str, fmt: str, output: str | None, keep: RowFilter) -> int:
    """`citepipe export`: the table's rows that `keep` keeps (filtered in the store, in
    SQL), to `output` (standard output when None); the number of rows written."""
    pages = p.store.export_pages(table, keep.store_filter())
    if fmt in bibliography.FORMATS:  # records for reference managers, from `papers`
        if table != "papers":
            raise ConfigError(f"--format {fmt}: exports --table papers only")
        return await _to_output(
            partial(bibliography.write_bibliography, p.store, as_dicts(pages, table), fmt),
            output,
        )
    if fmt == "parquet" and output:
        try:
            return await write_parquet(pages, table, Path(output))
        except OSError as exc:
            raise ConfigError(f"--output {output}: {_unchanged(output, exc)}") from None
    return await _to_output(partial(write_rows, pages, fmt, table=table), output)


async def _to_output(write: Callable[[IO[str]], Awaitable[int]], output: str | None) -> int:
    """Run `write` on standard output, or on `output` through `replacing`."""
    if not output:
        return await write(sys.stdout)
    try:
        with (
            replacing(Path(output)) as target,
            open(target, "w", encoding="utf-8", newline="") as out,  # noqa: ASYNC230
        ):
            return await write(out)
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
