"""What every SQL driver does alike, written once: the reads and the single-statement
writes of the Store protocol, over a few primitives that a driver supplies.

Each SQL driver runs a named query of its dialect (`queries.py`: the common ones and its
own) and gets rows back; what the rows mean, and how they become the Store protocol's
values (`RunInfo`, `PaperView`, `SearchHit`, export dicts, ...), is the same for SQLite
and PostgreSQL, and so is every write that is one statement run for a few rows (a lease
pushed out, a run's heartbeat, a kept page). So those live here, once, in `SQLStore`:

- `_read_all(name, params)`: run the named query, return its rows (indexable by position
  and by column name). Its parameters come as Python values: a list is a list of values
  (SQLite passes it as JSON text, PostgreSQL as an array), a datetime an aware time.
- `_write(what, name, rows, durable=)`: run a named statement once per row, in one
  transaction; `_write_returning(what, name, params, durable=)`: one statement with
  RETURNING, its rows back (`_write_one`: the first). Parameters as for `_read_all`.
  `durable` is the contract's word, not the engine's: a write acknowledged as stored (a
  kept page, an enqueue, a settled reparse) must survive a crash of the database server;
  a lease, run row or booking need not (a lost one only makes a lease run out). Each
  driver decides what it costs.
- `_enqueue_chunk(jobs)`: one chunk of an enqueue in one transaction (the rows of an
  enqueue differ by dialect; the chunking does not).
- `_time(value)`: a stored time as an aware datetime (SQLite stores ISO text, PostgreSQL
  `timestamptz`); `_text_row(row)`: a row as a dict with its times as ISO text (what
  `export` and `show` give, whatever the driver stores).

A driver keeps only the transactions whose bodies differ by engine: claims, failures, the
enqueue rows, refresh and dead-job requeues, bookings, completions and imports. The status
counts (`read_stats`) are assembled here too, from the same named queries.
"""

from __future__ import annotations

import json
import os
import socket
from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, Self, TypeVar

from pipeline.config import Settings
from pipeline.errors import StoreError
from pipeline.models import (
    JOB_STATES,
    RUN_STALE_AFTER,
    ApiCounts,
    DeadReason,
    Job,
    KeptPage,
    NewJob,
    PaperView,
    RobotsRecord,
    RunInfo,
    SearchHit,
    StatementType,
    Stats,
    StoredPage,
)
from pipeline.store import pages, rules, tables
from pipeline.store.base import COPY_TABLES, EXPORT_TABLES, LeasedJob
from pipeline.store.export_sql import ExportFilter, bound_params, export_query, key_positions
from pipeline.store.rules import Params
from pipeline.store.sql_changes import ChangeReads

T = TypeVar("T")
Clock = Callable[[], datetime]
Row = Any  # a driver's row: sqlite3.Row or asyncpg.Record, by position and by column name


def process_gone(pid: int) -> bool:
    """Whether no process with this id exists on this host (provably, not 'maybe'): its
    runs are over and its leases free, whatever their heartbeat says."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # it exists (someone else's), or we cannot tell: not provably gone
    return False


Rows = Callable[[str, Params | None], Awaitable[list[Any]]]

EXPORT_CHUNK = 1000  # rows per keyset page of `export` (dicts, for copy-store)
EXPORT_PAGE = 10_000  # rows per keyset page of `export_pages` (tuples, for export files)
PAGES_CHUNK = 100  # kept pages per keyset page when reading them back (bodies are big)
ENQUEUE_CHUNK = 5000  # jobs per transaction when streaming a backfill
PURGE_CHUNK = 10_000  # done jobs deleted per transaction by `purge_done`


def store_options(settings: Settings) -> dict[str, Any]:
    """The constructor keywords every SQL driver takes from the settings."""
    return {
        "writer_batch": settings.writer_batch,
        "refresh_interval": settings.refresh_interval,
        "refresh_min": settings.refresh_min,
        "refresh_max": settings.refresh_max,
    }


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last one shorter), without reading ahead."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def first_value(rows: Rows, name: str, params: Params | None = None) -> Any:
    """The first column of the first row of a named query, or None."""
    found = await rows(name, params)
    return found[0][0] if found else None


async def read_stats(rows: Rows, now: datetime, active_runs: Sequence[RunInfo]) -> Stats:
    """Counts for `citepipe status`, from the named queries `jobs_by_state`,
    `dead_by_reason`, `rows_by_table`, `incomplete_by_reason`, `not_found_reports`,
    `pages_done_since` and `api_completeness`."""
    by_state: dict[str, int] = dict.fromkeys(JOB_STATES, 0)
    by_state.update({r[0]: r[1] for r in await rows("jobs_by_state", None)})
    dead = tuple(DeadReason(r[0], r[1]) for r in await rows("dead_by_reason", None))
    counts = {r[0]: int(r[1]) for r in await rows("rows_by_table", None)}
    incomplete = tuple(DeadReason(r[0], r[1]) for r in await rows("incomplete_by_reason", None))
    api = (await rows("api_completeness", None))[0]

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
        api_counts=ApiCounts(int(api[0]), int(api[1]), int(api[2])) if api[0] else None,
    )


class SQLStore(ChangeReads):
    """The Store protocol's shared half for a driver that runs named queries.

    A driver subclasses this, sets `_clock`, and supplies the primitives (see the module
    docstring) and its own transactions; the methods here never see a dialect's SQL or its
    stored types. Keyset reads (`export`, `kept_pages`) run each page as its own query, so
    no read transaction stays open while a slow consumer reads (in SQLite, nothing pins
    the WAL).
    """

    _clock: Clock
    _dialect: str  # the SQL dialect of generated queries (`export_sql`)

    # ------------------------------------------------------------ driver primitives

    @abstractmethod
    async def open(self) -> None:
        """Connect, migrate the schema, start the completion writer."""

    @abstractmethod
    async def close(self) -> None:
        """Commit what is queued, stop the writer, disconnect."""

    @abstractmethod
    async def _read_all(self, name: str, params: Params | None = None) -> list[Any]:
        """The rows of the named query run with these parameters (errors as StoreError)."""

    @abstractmethod
    async def _write(
        self, what: str, name: str, rows: Sequence[Params], *, durable: bool = False
    ) -> int:
        """Run named statement `name` once per row, all in one transaction; the rows it
        affected. A driver that cannot count a pipelined batch (PostgreSQL's
        `executemany`) gives the number of rows sent for several rows: a caller that needs
        the count writes one row. `what` names the write in errors."""

    @abstractmethod
    async def _write_returning(
        self, what: str, name: str, params: Params, *, durable: bool = False
    ) -> list[Row]:
        """Named statement `name` (one with RETURNING) in its own transaction; its rows."""

    @abstractmethod
    async def _enqueue_chunk(self, jobs: Sequence[NewJob]) -> int:
        """One chunk of `enqueue` in one durable transaction; jobs added or requeued."""

    @abstractmethod
    async def _read_tuples(self, query: str, params: Params, table: str) -> list[tuple[Any, ...]]:
        """The rows of SQL `query` (`:name` parameters, as `_read_all`) as plain tuples, the
        times among `table`'s columns as `rules.iso` text: an export page."""

    @abstractmethod
    def _time(self, value: Any) -> datetime:
        """A time as the driver reads it back, as an aware UTC datetime."""

    @abstractmethod
    def _text_row(self, row: Any) -> dict[str, Any]:
        """A row as a dict, columns in order, times as `rules.iso` text."""

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _now(self) -> datetime:
        """The store's clock."""
        return self._clock()

    async def _write_one(
        self, what: str, name: str, params: Params, *, durable: bool = False
    ) -> Row | None:
        """`_write_returning`'s first row, or None."""
        rows = await self._write_returning(what, name, params, durable=durable)
        return rows[0] if rows else None

    async def _read_one(self, name: str, params: Params | None = None) -> Any:
        """The first column of the named query's first row, or None."""
        return await first_value(self._read_all, name, params)

    async def _search_rows(self, query: str, params: Params) -> list[Any]:
        """The rows of `search_statements`; a driver whose engine rejects bad queries says
        so here."""
        return await self._read_all("search_statements", params)

    # ------------------------------------------------------------ queue

    async def enqueue(self, jobs: Iterable[NewJob]) -> int:
        """Stream jobs in chunks of `ENQUEUE_CHUNK`, one transaction per chunk (a backfill
        may be huge: neither the whole input nor one giant transaction is held)."""
        total = 0
        for chunk in chunks(jobs, ENQUEUE_CHUNK):
            total += await self._enqueue_chunk(chunk)
        return total

    async def extend_leases(
        self, worker: str, job_ids: Sequence[int], lease_seconds: float
    ) -> None:
        """Push out this worker's leases (`extend_lease`, one row a job)."""
        if not job_ids:
            return
        now = self._now()
        until = now + timedelta(seconds=lease_seconds)
        rows = [{"id": i, "worker": worker, "lease_until": until, "now": now} for i in job_ids]
        await self._write("extend leases", "extend_lease", rows)

    async def release(self, jobs: Sequence[Job]) -> None:
        """Give leased jobs back unworked (`release`, one row a job)."""
        if not jobs:
            return
        now = self._now()
        rows = [{"id": j.id, "round": j.round, "now": now} for j in jobs]
        await self._write("release", "release", rows)

    async def requeue_expired(self) -> int:
        """Take back every expired lease (`requeue_expired`); how many."""
        return await self._write("requeue expired", "requeue_expired", [{"now": self._now()}])

    async def purge_done(self, before: datetime, *, chunk: int = PURGE_CHUNK) -> int:
        """Retention: delete done jobs of later pages (page > 1) not touched since `before`,
        in chunks (short transactions). Page-1 jobs stay: they are what recognises a DOI
        already queued and what refresh starts from. Returns how many were deleted."""
        total = 0
        while True:
            params = {"before": before, "limit": chunk}
            n = await self._write("purge done jobs", "purge_done", [params])
            total += n
            if n < chunk:
                return total

    async def leased_jobs(self) -> list[LeasedJob]:
        """The jobs leased now, by id, with their holder and lease end (`leased_jobs`)."""
        return [
            LeasedJob(
                job=rules.job_from_row(r),
                worker=r["worker"] or "",
                lease_until=None if r["lease_until"] is None else self._time(r["lease_until"]),
            )
            for r in await self._read_all("leased_jobs")
        ]

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
        keys = tables.KEYS[table]
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

    async def export_pages(
        self, table: str, where: ExportFilter | None = None
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The rows that `where` keeps, in pages of tuples (columns in `tables.COLUMNS`
        order, as `export`'s values), key order. Keyset pages of `EXPORT_PAGE` rows, each
        its own query; a filter runs in SQL (`export_sql`), its values bound."""
        if table not in EXPORT_TABLES:
            raise StoreError(f"unknown table {table!r}; one of {', '.join(EXPORT_TABLES)}")
        where = where or ExportFilter()
        first = export_query(self._dialect, table, where, after=False)
        later = export_query(self._dialect, table, where, after=True)
        keys, positions = tables.KEYS[table], key_positions(table)
        params: Params = {"limit": EXPORT_PAGE, **bound_params(where)}
        query = first
        while True:
            rows = await self._read_tuples(query, params, table)
            if rows:
                yield rows
            if len(rows) < EXPORT_PAGE:
                return
            last = rows[-1]
            params.update({f"after_{k}": last[i] for k, i in zip(keys, positions, strict=True)})
            query = later

    async def last_key(self, table: str) -> tuple[Any, ...] | None:
        """The highest key of an exported table, None when it is empty."""
        rows = await self._read_all(f"last_{table}")
        return tuple(rows[0]) if rows else None

    # ------------------------------------------------------------ runs

    async def start_run(self, kind: str, host: str, pid: int) -> int:
        """Register a run (`start_run`); its id."""
        params = {"kind": kind, "host": host, "pid": pid, "now": self._now()}
        row = await self._write_one("start run", "start_run", params)
        if row is None:
            raise StoreError("start_run returned no id")
        return int(row[0])

    async def heartbeat_run(self, run_id: int) -> None:
        """The run is alive (`heartbeat_run`)."""
        await self._write("heartbeat run", "heartbeat_run", [{"id": run_id, "now": self._now()}])

    async def finish_run(self, run_id: int, summary: dict[str, Any]) -> None:
        """The run ended, with its summary as JSON text (`finish_run`)."""
        text = json.dumps(summary, default=str, sort_keys=True)
        row = {"id": run_id, "now": self._now(), "summary": text}
        await self._write("finish run", "finish_run", [row])

    async def active_runs(self, stale_after: float) -> list[RunInfo]:
        """Unfinished runs whose heartbeat is younger than `stale_after` seconds, but for
        those of this host whose process is gone (a run that died a moment ago)."""
        since = self._now() - timedelta(seconds=stale_after)
        rows = await self._read_all("active_runs", {"since": since})
        host = socket.gethostname()
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
            if not (r["host"] == host and process_gone(r["pid"]))
        ]

    # ------------------------------------------------------------ politeness (hosts)

    async def pause_host(self, host: str, until: datetime) -> None:
        """Pause the host until `until`, unless it is paused longer already (`host_pause`)."""
        row = {"host": host, "now": self._now(), "until": until}
        await self._write("pause host", "host_pause", [row])

    async def save_robots(self, host: str, record: RobotsRecord) -> None:
        """The host's robots.txt record; an older fetch does not overwrite a newer one."""
        row = {
            "host": host,
            "status": record.status,
            "text": record.text,
            "fetched_at": record.fetched_at,
            "expires_at": record.expires_at,
            "failures": record.failures,
        }
        await self._write("save robots", "robots_save", [row])

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

    async def keep_page(self, page: KeptPage) -> None:
        """Keep a fetched page for reparse; acknowledged as stored, so durable."""
        await self._write("keep page", "keep_page", [pages.page_params(page)], durable=True)

    async def settle_reparsed(self, dois: Sequence[str]) -> int:
        """Reports a reparse made whole again (`settle_reparsed`); how many. Durable: the
        reparse reports them as settled."""
        rows = [{"dois": sorted(set(dois))}]
        return await self._write("settle reparsed", "settle_reparsed", rows, durable=True)

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

    # ------------------------------------------------------------ provenance

    async def provenance(self) -> dict[str, dict[str, int]]:
        """Every paper's seeds with their depth (`provenance_all`): doi -> {seed: depth}."""
        found: dict[str, dict[str, int]] = {}
        for r in await self._read_all("provenance_all"):
            found.setdefault(r["doi"], {})[r["seed"]] = int(r["depth"])
        return found

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
            collected_statements=int(await self._read_one("show_collected", key)),
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
