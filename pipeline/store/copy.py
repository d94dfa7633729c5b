"""Moving a grown store to another engine: `citepipe copy-store SRC DST`.

Any store to any store (a SQLite file to a PostgreSQL URL, and back), through the Store
contract only: every exported table (results and queue, ids kept) and the kept pages
(`pages`, for `citepipe reparse`) are read from SRC with `export` and written to DST with
`import_rows`, in key order, `chunk` rows per transaction, tables in foreign-key order.
`runs`, `hosts` and `schema_version` are not copied (they describe processes and
politeness, not the crawl).

Into an empty store, or to finish its own copy; never a merge. Before anything is written,
every table of DST must be a prefix of SRC's (its rows equal to SRC's first rows, in key
order): an empty DST, or one a stopped copy of this same SRC left. A DST holding anything
else (another crawl, rows SRC changed since) is refused with a ConfigError naming the
first row that differs, and is left untouched. Merging two crawls is not offered: ids
(statements, tally history, jobs) would collide and the same paper's rows from two crawls
have no one right answer; copy each into a store of its own instead.

Resumable: each table goes on from DST's highest key (`last_key`). Chunks are committed in
key order, so DST always holds a prefix of every table and a killed copy resumes where it
stopped. Verified: at the end the row counts of every table (pages included) must be equal
in SRC and DST, or the copy fails naming the tables that differ.

Stop the workers of SRC first: rows written to SRC behind the copy's position are missed
(and the count check says so).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, cast

from pipeline.errors import ConfigError, StoreError
from pipeline.store.base import COPY_TABLES, Store
from pipeline.store.tables import KEYS

TABLE_ORDER = COPY_TABLES  # parents before children (declared once, in base.py)
DEFAULT_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class TableCopy:
    """One table's copy: rows written this time, and the counts the check compared."""

    table: str
    copied: int
    source_rows: int
    target_rows: int
    resumed: bool  # DST already held some of it

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows


@dataclass(frozen=True, slots=True)
class CopyReport:
    tables: tuple[TableCopy, ...]

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    @property
    def copied(self) -> int:
        return sum(t.copied for t in self.tables)


async def copy_store(
    src: Store,
    dst: Store,
    *,
    chunk: int = DEFAULT_CHUNK,
    on_table: Callable[[TableCopy], None] | None = None,
) -> CopyReport:
    """Copy every exported table of `src` into `dst` (both open); see the module doc.
    Raises StoreError when the counts differ afterwards."""
    if chunk < 1:
        raise StoreError("chunk must be >= 1")
    for table in TABLE_ORDER:  # all of them before the first write
        await check_prefix(src, dst, table)
    copies: list[TableCopy] = []
    for table in TABLE_ORDER:
        copied, resumed = await _copy_table(src, dst, table, chunk)
        copies.append(TableCopy(table, copied, 0, 0, resumed))
    source = (await src.stats()).rows_by_table
    target = (await dst.stats()).rows_by_table
    report = CopyReport(
        tuple(
            TableCopy(c.table, c.copied, source[c.table], target[c.table], c.resumed)
            for c in copies
        )
    )
    if on_table is not None:
        for t in report.tables:
            on_table(t)
    if not report.ok:
        wrong = ", ".join(
            f"{t.table} ({t.source_rows} in the source, {t.target_rows} in the target)"
            for t in report.tables
            if not t.ok
        )
        raise StoreError(
            f"copy-store: counts differ after the copy: {wrong}; was the source being "
            "written, or the target not empty?"
        )
    return report


async def check_prefix(src: Store, dst: Store, table: str) -> None:
    """ConfigError unless DST's rows of `table` are SRC's first rows, equal column for
    column (an empty table passes): DST is empty or a stopped copy of this SRC."""
    rows = cast(AsyncGenerator[dict[str, Any], None], src.export(table))  # each driver's is
    async with contextlib.aclosing(rows) as theirs:
        async for row in dst.export(table):
            other = await anext(theirs, None)
            if other == row:
                continue
            key = ", ".join(str(row[k]) for k in KEYS[table])
            what = "is not in the source" if other is None else "differs from the source's"
            raise ConfigError(
                f"copy-store: the target is not empty and not a copy of this source "
                f"({table} row {key} {what}); nothing was written. Copy into an empty "
                "store (copy-store merges nothing), or resume a copy of an unchanged source"
            )


async def _copy_table(src: Store, dst: Store, table: str, chunk: int) -> tuple[int, bool]:
    after = await dst.last_key(table)
    copied = 0
    batch: list[dict[str, Any]] = []
    async for row in src.export(table, after=after):
        batch.append(row)
        if len(batch) >= chunk:
            copied += await dst.import_rows(table, batch)
            batch = []
    if batch:
        copied += await dst.import_rows(table, batch)
    return copied, after is not None
