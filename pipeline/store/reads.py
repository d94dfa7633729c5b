"""Reads that every SQL driver answers with the same named queries, written once.

Each SQL driver runs a read as a named query of its own dialect and gets rows back; what
the rows mean, and how they become the Store protocol's values (`RunInfo`, `PaperView`,
`SearchHit`, export dicts, ...), is the same for SQLite and PostgreSQL. So the shaping
lives here, once, in `SQLReads`, over a few primitives that a driver supplies:

- `_read_all(name, params)`: run the named query, return its rows (indexable by position
  and by column name). Its parameters come as Python values: a list is a list of values
  (SQLite passes it as JSON text, PostgreSQL as an array), a datetime an aware time.
- `_time(value)`: a stored time as an aware datetime (SQLite stores ISO text, PostgreSQL
  `timestamptz`).
- `_text_row(row)`: a row as a dict with its times as ISO text (what `export` and `show`
  give, whatever the driver stores).
- `_now()`: the store's clock.

The status counts (`read_stats`) are assembled here too, from the same named queries.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pipeline.errors import StoreError
from pipeline.models import (
    JOB_STATES,
    RUN_STALE_AFTER,
    DeadReason,
    PaperView,
    RobotsRecord,
    RunInfo,
    SearchHit,
    StatementType,
    Stats,
    StoredPage,
)
from pipeline.store import rules
from pipeline.store.base import COPY_TABLES, EXPORT_TABLES
from pipeline.store.rules import Params

Rows = Callable[[str, Params | None], Awaitable[list[Any]]]

EXPORT_CHUNK = 1000  # rows per keyset page when exporting
PAGES_CHUNK = 100  # kept pages per keyset page when reading them back (bodies are big)


async def first_value(rows: Rows, name: str, params: Params | None = None) -> Any:
    """The first column of the first row of a named query, or None."""
    found = await rows(name, params)
    return found[0][0] if found else None


async def read_stats(rows: Rows, now: datetime, active_runs: Sequence[RunInfo]) -> Stats:
    """Counts for `citepipe status`, from the named queries `jobs_by_state`,
    `dead_by_reason`, `rows_by_table`, `incomplete_by_reason`, `not_found_reports` and
    `pages_done_since`."""
    by_state: dict[str, int] = dict.fromkeys(JOB_STATES, 0)
    by_state.update({r[0]: r[1] for r in await rows("jobs_by_state", None)})
    dead = tuple(DeadReason(r[0], r[1]) for r in await rows("dead_by_reason", None))
    counts = {r[0]: int(r[1]) for r in await rows("rows_by_table", None)}
    incomplete = tuple(DeadReason(r[0], r[1]) for r in await rows("incomplete_by_reason", None))

    async def done_since(ago: timedelta) -> int:
        return int(await first_value(rows, "pages_done_since", {"since": now - ago}))

    return Stats(
        jobs_by_state=by_state,
        dead_by_reason=dead,
        incomplete_reports=sum(d.count for d in incomplete),
        incomplete_by_reason=incomplete,
        not_found=int(await first_value(rows, "not_found_reports")),
        rows_by_table={t: counts[t] for t in COPY_TABLES},
        pages_last_minute=await done_since(timedelta(minutes=1)),
        pages_last_hour=await done_since(timedelta(hours=1)),
        active_runs=tuple(active_runs),
    )


class SQLReads(ABC):
    """The read methods of the Store protocol for a driver that runs named queries.

    A driver subclasses this and supplies the primitives (see the module docstring); the
    methods here never see a dialect's SQL or its stored types. Keyset reads (`export`,
    `kept_pages`) run each page as its own query, so no read transaction stays open while
    a slow consumer reads (in SQLite, nothing pins the WAL).
    """

    # ------------------------------------------------------------ driver primitives

    @abstractmethod
    async def _read_all(self, name: str, params: Params | None = None) -> list[Any]:
        """The rows of the named query run with these parameters (errors as StoreError)."""

    @abstractmethod
    def _time(self, value: Any) -> datetime:
        """A time as the driver reads it back, as an aware UTC datetime."""

    @abstractmethod
    def _text_row(self, row: Any) -> dict[str, Any]:
        """A row as a dict, columns in order, times as `rules.iso` text."""

    @abstractmethod
    def _now(self) -> datetime:
        """The store's clock."""

    async def _read_one(self, name: str, params: Params | None = None) -> Any:
        """The first column of the named query's first row, or None."""
        return await first_value(self._read_all, name, params)

    async def _search_rows(self, query: str, params: Params) -> list[Any]:
        """The rows of `search_statements`; a driver whose engine rejects bad queries says
        so here."""
        return await self._read_all("search_statements", params)

    # ------------------------------------------------------------ queue

    async def pending(self) -> int:
        """Jobs not yet finished (named query `pending`)."""
        return int(await self._read_one("pending"))

    async def next_due(self) -> datetime | None:
        """The earliest `not_before` of a waiting job, or None (`next_due`)."""
        value = await self._read_one("next_due")
        return None if value is None else self._time(value)

    # ------------------------------------------------------------ stats and export

    async def dead_among(self, dois: Sequence[str]) -> dict[str, int]:
        """Dead jobs of these DOIs by reason (`dead_among`): a backfill's exit code."""
        rows = await self._read_all("dead_among", {"dois": list(dois)})
        return {r[0]: r[1] for r in rows}

    async def stats(self) -> Stats:
        """Counts for `citepipe status` (`read_stats`), with the live runs."""
        runs = await self.active_runs(RUN_STALE_AFTER)
        return await read_stats(self._read_all, self._now(), runs)

    async def export(
        self, table: str, *, after: Sequence[Any] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Keyset pages in key order (named queries `export_<table>[_after]`), each its own
        query. `after`: start past this key (a resumed copy)."""
        if table not in EXPORT_TABLES and table not in COPY_TABLES:
            raise StoreError(f"unknown table {table!r}; one of {', '.join(EXPORT_TABLES)}")
        keys = rules.KEYS[table]
        params: Params = {"limit": EXPORT_CHUNK}
        name = f"export_{table}"
        if after is not None:
            name = f"export_{table}_after"
            params.update({f"after_{k}": v for k, v in zip(keys, after, strict=True)})
        while True:
            rows = await self._read_all(name, params)
            for row in rows:
                yield self._text_row(row)
            if len(rows) < EXPORT_CHUNK:
                return
            name = f"export_{table}_after"
            params = {"limit": EXPORT_CHUNK, **{f"after_{k}": rows[-1][k] for k in keys}}

    async def last_key(self, table: str) -> tuple[Any, ...] | None:
        """The highest key of an exported table, None when it is empty."""
        rows = await self._read_all(f"last_{table}")
        return tuple(rows[0]) if rows else None

    # ------------------------------------------------------------ runs

    async def active_runs(self, stale_after: float) -> list[RunInfo]:
        """Unfinished runs whose heartbeat is younger than `stale_after` seconds."""
        since = self._now() - timedelta(seconds=stale_after)
        rows = await self._read_all("active_runs", {"since": since})
        return [
            RunInfo(
                r["id"],
                r["kind"],
                r["host"],
                r["pid"],
                self._time(r["started_at"]),
                self._time(r["heartbeat_at"]),
            )
            for r in rows
        ]

    # ------------------------------------------------------------ politeness (hosts)

    async def paused_until(self, host: str) -> datetime | None:
        """The host's pause, or None when the host has no row yet."""
        value = await self._read_one("host_paused_until", {"host": host})
        return None if value is None else self._time(value)

    async def load_robots(self, host: str) -> RobotsRecord | None:
        """The host's last robots.txt record, or None if it was never fetched."""
        rows = await self._read_all("robots_load", {"host": host})
        if not rows:
            return None
        r = rows[0]
        return RobotsRecord(
            status=r["robots_status"],
            text=r["robots_text"],
            fetched_at=self._time(r["robots_fetched_at"]),
            expires_at=self._time(r["robots_expires_at"]),
            failures=r["robots_failures"],
        )

    # ------------------------------------------------------------ kept pages

    async def kept_pages(
        self, *, broken_only: bool = False, dois: Sequence[str] | None = None
    ) -> AsyncIterator[StoredPage]:
        """Keyset pages of `PAGES_CHUNK`, each its own query."""
        params: Params = {
            "broken_only": broken_only,
            "dois": None if dois is None else list(dois),
            "after_doi": "",
            "after_page": 0,
            "limit": PAGES_CHUNK,
        }
        while True:
            rows = await self._read_all("kept_pages", params)
            for row in rows:
                yield rules.stored_page_from_row(row, self._time(row["fetched_at"]))
            if len(rows) < PAGES_CHUNK:
                return
            params = {**params, "after_doi": rows[-1]["doi"], "after_page": rows[-1]["page"]}

    # ------------------------------------------------------------ show and search

    async def paper_view(self, doi: str, *, statements: int = 1000) -> PaperView | None:
        """One paper for `citepipe show` (the `show_*` queries), times as ISO text."""
        key = {"doi": doi}
        papers = await self._read_all("show_paper", key)
        if not papers:
            return None
        tallies = await self._read_all("show_tallies", key)
        shown = self._text_row
        return PaperView(
            paper=shown(papers[0]),
            authors=tuple(r[0] for r in await self._read_all("show_authors", key)),
            tallies=shown(tallies[0]) if tallies else None,
            history=tuple(shown(r) for r in await self._read_all("show_history", key)),
            facets=tuple(shown(r) for r in await self._read_all("show_facets", key)),
            statements=tuple(
                shown(r)
                for r in await self._read_all("show_statements", {**key, "limit": statements})
            ),
            citing_statements=int(await self._read_one("show_citing_count", key)),
        )

    async def search(
        self, query: str, *, type: StatementType | None = None, limit: int = 20
    ) -> list[SearchHit]:
        """Statements whose snippet matches `query`, best first (`search_statements`)."""
        params: Params = {"query": query, "type": type, "limit": limit}
        return [
            SearchHit(
                id=r["id"],
                cited_doi=r["cited_doi"],
                citing_doi=r["citing_doi"],
                type=r["type"],
                section=r["section"],
                snippet=r["snippet"],
                highlighted=r["highlighted"],
                excerpt=r["excerpt"],
                rank=float(r["rank"]),
            )
            for r in await self._search_rows(query, params)
        ]
