"""The Store protocol, as roles a driver implements one by one (see docs/store.md).

- `JobQueue`: the work queue (enqueue, atomic claims with leases, failures, refresh).
- `ResultSink`: `complete`, one transaction covering "rows written" and "job done", which is
  what makes a crash harmless.
- `StoreStats`: counts for `status`, dead jobs by reason, `export`.
- `RunRegistry`: the citepipe processes working on the store.
- `HostLedger`: shared politeness: request bookings, 429/503 pauses, robots.txt records.
- `PageArchive`: fetched pages kept (compressed) for `citepipe reparse`.
- `ResultReader`: one paper at a glance (`citepipe show`) and full-text search.
- `StoreTransfer`: the last key and bulk import that `copy-store` moves a store with.
- `ChangeLog`: what changed in a window of time (`citepipe changes`), and which runs'
  digests were sent (`--notify`).

`Store` is their union plus `open`/`close`. Implementations: `sqlite.SQLiteStore` (a file,
or `":memory:"`, which also serves as the in-memory store for tests) and
`postgres.PostgresStore` (one database for many machines). Times
cross this interface as aware UTC `datetime`s; no caller may depend on a dialect detail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pipeline.models import (
    Completion,
    DeadJob,
    DigestRecord,
    Job,
    KeptPage,
    NewJob,
    PaperView,
    Requeued,
    RobotsRecord,
    RunInfo,
    RunRecord,
    SearchHit,
    StatementType,
    Stats,
    StoredPage,
    WindowChanges,
)
from pipeline.store.export_sql import ExportFilter

# Tables a user may export (the public interface of docs/store.md, plus the queue).
EXPORT_TABLES = (
    "papers",
    "authors",
    "tallies",
    "tally_history",
    "facets",
    "statements",
    "notices",
    "jobs",
    "provenance",
    "citations",  # a view: who cites whom, statements counted by type
)
# What `copy-store` moves (and `stats` counts): the tables, kept pages included, parents
# before children (authors, tallies, facets, statements reference papers; pages jobs).
COPY_TABLES = (
    "papers",
    "authors",
    "tallies",
    "tally_history",
    "facets",
    "statements",
    "notices",
    "jobs",
    "pages",
    "provenance",
)


@dataclass(frozen=True, slots=True)
class LeasedJob:
    """A job leased right now: the job as its claim gave it, who holds it (the worker
    name, `host:pid` for a citepipe process) and when the lease runs out (None only for a
    row leased without an end, which no claim makes)."""

    job: Job
    worker: str
    lease_until: datetime | None


class JobQueue(Protocol):
    """The work queue: jobs are `(doi, page)`; states queued, leased, done, failed, dead."""

    async def enqueue(self, jobs: Iterable[NewJob]) -> int:
        """Queue new jobs; return how many were added or requeued.

        A job whose `(doi, page)` is already queued, leased or done does nothing, unless
        the new job's `round` is higher than the stored one and the stored job is finished
        (done or dead), which queues it again (a refresh). A waiting (queued/failed) job
        takes the higher round without being counted.
        """

    async def claim(self, worker: str, limit: int, lease_seconds: float) -> list[Job]:
        """Atomically lease up to `limit` due jobs (queued or failed, `not_before` passed),
        oldest `not_before` first; expired leases are taken back first.

        Bumps `attempts`. Two claimers never get the same job.
        """

    async def extend_leases(
        self, worker: str, job_ids: Sequence[int], lease_seconds: float
    ) -> None:
        """Heartbeat: push out the leases this worker still holds."""

    async def release(self, jobs: Sequence[Job]) -> None:
        """Give leased jobs back unworked (graceful stop): queued again, attempt refunded."""

    async def fail(self, job: Job, error: str, retry_at: datetime | None) -> None:
        """Record a failure: `failed` with `not_before=retry_at`, or `dead` when None (and
        its report's paper marked incomplete)."""

    async def requeue_expired(self) -> int:
        """Put jobs whose lease ran out back in the queue; return how many."""

    async def enqueue_stale(
        self, now: datetime, address: Callable[[str, str], str] | None = None
    ) -> int:
        """Queue page 1 again for every report whose refresh time has come (cron crawl).

        Uses a new round (max stored round + 1) so that the follow-up pages, which
        inherit it, are fetched again too. `address(doi, stored_url)` gives the address
        to fetch (the current site's, after a change of `base_url`); None keeps the
        stored one. Returns how many reports were queued.
        """

    async def enqueue_due_batches(
        self, now: datetime, batches: Callable[[Sequence[str], int], Sequence[NewJob]]
    ) -> int:
        """Queue batch jobs for every paper whose refresh time has come (cron crawl with
        the API as a source), in one transaction.

        `batches(dois, round)` makes the jobs for the due DOIs (in DOI order); `round` is
        one above every stored batch job's, so that a batch already done runs again.
        Returns how many jobs were queued.
        """

    async def requeue_dead(
        self,
        address: Callable[[DeadJob], str | None],
        *,
        reason: str | None = None,
        dois: Sequence[str] | None = None,
    ) -> Requeued:
        """Queue dead jobs again, due now, attempts reset (`citepipe retry`), in one
        transaction. `reason` keeps those whose reason contains it (any case), `dois`
        those of these DOIs; both None means every dead job. `address(job)` gives each
        job's address on the current site (None keeps it dead, counted as `kept`)."""

    async def leased_jobs(self) -> list[LeasedJob]:
        """The jobs leased now, by id: what a rerun looks at to give back the leases of a
        run whose process is gone (`release`) and to name the wait for the others."""

    async def pending(self) -> int:
        """Jobs not yet finished: queued, leased or failed."""

    async def next_due(self) -> datetime | None:
        """The earliest `not_before` among queued/failed jobs, or None if none wait."""

    async def purge_done(self, before: datetime, *, chunk: int = 10_000) -> int:
        """Retention: delete `done` jobs of pages after the first not updated since
        `before`; return how many. Page-1 jobs stay: they recognise a DOI already crawled
        and start its refresh (which queues the later pages again)."""


class ResultSink(Protocol):
    """Where finished pages go."""

    async def complete(self, completion: Completion) -> None:
        """Upsert the page's rows, enqueue its follow-ups and mark the job done: one commit.

        Returns only once committed (an acknowledged job is a committed job). Completions
        may be batched with others into one transaction; back-pressure when behind. A
        completion for a job whose round moved on writes its rows but does not mark the
        newer round done.
        """


class StoreStats(Protocol):
    """Reading the store: status counts and exports."""

    async def stats(self) -> Stats:
        """Counts for `citepipe status`."""

    async def dead_among(self, dois: Sequence[str]) -> dict[str, int]:
        """The dead jobs (any page) of these DOIs, counted by reason.

        A backfill asks this of its input, so that a DOI that died in an earlier run still
        makes its exit code 1, and dead jobs of other inputs in the same store do not.
        """

    def export(
        self, table: str, *, after: Sequence[Any] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream a table's rows as dicts, columns in `tables.COLUMNS` order, in primary-key
        order (any size), from just past the key `after` if given. Timestamps are ISO 8601
        UTC text, `YYYY-MM-DDTHH:MM:SS.ffffffZ`, and flags 0/1, whatever the driver
        stores: an export is the same from every driver."""

    def export_pages(
        self, table: str, where: ExportFilter | None = None
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        """Stream the rows of an exported table (`EXPORT_TABLES`) that `where` keeps, in
        pages of tuples: the values of `export`, in its column and key order. The filter
        runs in the database with its values bound (`export_sql`); a column that is not
        the table's is a StoreError."""


class StoreTransfer(Protocol):
    """Moving a store to another engine (`citepipe copy-store`, `store/copy.py`)."""

    async def last_key(self, table: str) -> tuple[Any, ...] | None:
        """The highest key of an exported table (where a resumed copy goes on), or None."""

    async def import_rows(self, table: str, rows: Sequence[dict[str, Any]]) -> int:
        """Insert rows in `export`'s shape, ids kept, in one transaction; a row whose key
        is already there is left alone (so a copy can be resumed). Returns len(rows)."""


class RunRegistry(Protocol):
    """The citepipe processes working on this store (overlap warnings, `status`)."""

    async def start_run(self, kind: str, host: str, pid: int) -> int:
        """Register a running citepipe process; return its run id."""

    async def heartbeat_run(self, run_id: int) -> None:
        """Mark the run alive now."""

    async def finish_run(self, run_id: int, summary: dict[str, Any]) -> None:
        """Mark the run finished, with its summary."""

    async def active_runs(self, stale_after: float) -> list[RunInfo]:
        """Runs not finished whose heartbeat is younger than `stale_after` seconds."""


class HostLedger(Protocol):
    """Politeness shared by every process on the store, one row per host.

    `host` is `scheme://host:port` (`pipeline.crawl.politeness.host_key`). See docs/store.md,
    "Politeness".
    """

    async def book_request(self, host: str, delay: float) -> datetime:
        """Book the next request start to `host`, atomically across processes: returns
        `start = max(next_at, paused_until, now)` and sets `next_at = start + delay`
        (`rules.book_request`). The caller waits until `start`, then sends."""

    async def pause_host(self, host: str, until: datetime) -> None:
        """Nobody starts a request to `host` before `until` (a 429/503 Retry-After).
        A pause only ever lengthens."""

    async def paused_until(self, host: str) -> datetime | None:
        """The host's pause, or None if the host has no row yet (it may be in the past)."""

    async def load_robots(self, host: str) -> RobotsRecord | None:
        """The host's last robots.txt record, or None if it was never fetched."""

    async def save_robots(self, host: str, record: RobotsRecord) -> None:
        """Keep a robots.txt record for every process (an older fetch never overwrites a
        newer one)."""


class PageArchive(Protocol):
    """Fetched pages kept in the store, zlib-compressed, one per job `(doi, page)`.

    Broken pages are kept always; with `keep_pages = "all"` every page comes with its
    completion (`Completion.kept`, written in the same transaction), and a completion
    without one forgets the job's broken page (it parsed now). See docs/store.md.
    """

    async def keep_page(self, page: KeptPage) -> None:
        """Keep (or replace) the page of job `(page.doi, page.page)`; the job must exist."""

    def kept_pages(
        self, *, broken_only: bool = False, dois: Sequence[str] | None = None
    ) -> AsyncIterator[StoredPage]:
        """Stream kept pages with their jobs, in `(doi, page)` order (any number): only
        broken ones with `broken_only`, only these DOIs' with `dois`."""

    async def settle_reparsed(self, dois: Sequence[str]) -> int:
        """After a reparse completed dead jobs of these reports: a report none of whose
        jobs is dead any more is whole again (`incomplete` back to 0), as a fresh crawl
        would have left it. Returns how many papers changed."""


class ResultReader(Protocol):
    """Reading results for people: one paper, and full-text search over statements."""

    async def paper_view(self, doi: str, *, statements: int = 1000) -> PaperView | None:
        """One paper's metadata, authors, tallies with their history (oldest first),
        facets and up to `statements` statements citing it; None if the store has no
        such paper."""

    async def search(
        self, query: str, *, type: StatementType | None = None, limit: int = 20
    ) -> list[SearchHit]:
        """Statements whose snippet matches `query` (SQLite FTS5 query syntax: words,
        "phrases", OR, NOT, prefix*), best first; a bad query raises StoreError."""

    async def provenance(self) -> dict[str, dict[str, int]]:
        """Which input DOIs brought each paper into a crawl, and how many citing steps
        away: doi -> {seed: depth}; a seed is its own at depth 0, a paper reached from
        two seeds has both. Papers crawled before provenance was kept have none."""


class ChangeLog(Protocol):
    """What changed between two times, read off the rows' own times (statements'
    `first_seen_at`, `tally_history`, notices' `first_seen_at`), and the digests of runs
    (`digests`, migration 10). See docs/changes.md."""

    async def run_record(self, run_id: int) -> RunRecord | None:
        """One run (finished or not), or None if the store has no such run."""

    async def last_fetching_run(self, kinds: Sequence[str]) -> RunRecord | None:
        """The latest finished run of these kinds whose summary counts a page fetched."""

    async def changes_in(
        self, since: datetime, until: datetime, *, dois: Sequence[str] | None = None
    ) -> WindowChanges:
        """Statements and notices first seen in [since, until] (both included), and the
        tallies of each paper with a tally history row in it: the last row before the
        window and the last inside it. `dois` narrows it to these cited papers."""

    async def claim_digests(self, run_ids: Sequence[int]) -> list[int]:
        """Take these runs' digests in hand for sending (state `sending`): those never
        recorded, or whose sending failed. Returns the runs taken, in id order; a run
        sent, empty or being sent is not taken again (each digest goes out at most once)."""

    async def settle_digests(
        self, run_ids: Sequence[int], state: str, *, attempts: int = 0, error: str | None = None
    ) -> None:
        """How the sending of digests taken in hand ended: `sent`, `empty` or `failed`
        (`error` kept, `attempts` added)."""

    async def failed_digests(self) -> list[int]:
        """Runs whose digest failed to send (the next run's notification sends them)."""

    async def digest_record(self, run_id: int) -> DigestRecord | None:
        """How a run's digest was sent, or None if it was never taken in hand."""


class Store(
    JobQueue,
    ResultSink,
    StoreStats,
    StoreTransfer,
    RunRegistry,
    HostLedger,
    PageArchive,
    ResultReader,
    ChangeLog,
    Protocol,
):
    """The whole store: every role. All methods are coroutines; `open` before, `close`
    after (or `async with`)."""

    async def open(self) -> None:
        """Create or migrate the schema and start any background writer."""

    async def close(self) -> None:
        """Flush pending completions and release the database."""
