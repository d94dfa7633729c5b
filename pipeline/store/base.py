"""The Store protocol: the crawl's work queue and its results sink, behind one interface.

One transaction covers "rows written" and "job done" (`complete`), which is what makes a
crash harmless. Implementations: `sqlite.SQLiteStore` (the default, aiosqlite),
`memory.MemoryStore` (a fake for unit tests of other parts), PostgreSQL later. No caller
may depend on a dialect detail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from pipeline.models import Completion, Job, NewJob, RunInfo, Stats

# Tables a user may export (the public interface of store.md, plus the queue).
EXPORT_TABLES = (
    "papers",
    "authors",
    "tallies",
    "tally_history",
    "facets",
    "statements",
    "jobs",
)


class Store(Protocol):
    """The queue and the sink. All methods are coroutines; `open` before, `close` after."""

    async def open(self) -> None:
        """Create or migrate the schema and start any background writer."""

    async def close(self) -> None:
        """Flush pending completions and release the database."""

    async def enqueue(self, jobs: Iterable[NewJob]) -> int:
        """Queue new jobs; return how many were added or requeued.

        A job whose `(doi, page)` is already queued, leased or done does nothing, unless
        the new job's `round` is higher than the stored one and the stored job is finished
        (done or dead), which queues it again (a refresh).
        """

    async def claim(self, worker: str, limit: int, lease_seconds: float) -> list[Job]:
        """Atomically lease up to `limit` due jobs (queued or failed, `not_before` passed).

        Bumps `attempts`. Two claimers never get the same job.
        """

    async def extend_leases(
        self, worker: str, job_ids: Sequence[int], lease_seconds: float
    ) -> None:
        """Heartbeat: push out the leases this worker still holds."""

    async def release(self, jobs: Sequence[Job]) -> None:
        """Give leased jobs back unworked (graceful stop): queued again, attempt refunded."""

    async def complete(self, completion: Completion) -> None:
        """Upsert the page's rows, enqueue its follow-ups and mark the job done: one commit.

        Returns only once committed (an acknowledged job is a committed job). Completions
        may be batched with others into one transaction; back-pressure when behind.
        """

    async def fail(self, job: Job, error: str, retry_at: datetime | None) -> None:
        """Record a failure: `failed` with `not_before=retry_at`, or `dead` when None."""

    async def requeue_expired(self) -> int:
        """Put jobs whose lease ran out back in the queue; return how many."""

    async def enqueue_stale(self, now: datetime) -> int:
        """Queue page 1 again for every report whose refresh time has come (cron crawl).

        Uses a new round (max stored round + 1) so that the follow-up pages, which
        inherit it, are fetched again too. Returns how many reports were queued.
        """

    async def pending(self) -> int:
        """Jobs not yet finished: queued, leased or failed."""

    async def next_due(self) -> datetime | None:
        """The earliest `not_before` among queued/failed jobs, or None if none wait."""

    async def stats(self) -> Stats:
        """Counts for `citepipe status`."""

    async def dead_among(self, dois: Sequence[str]) -> dict[str, int]:
        """The dead jobs (any page) of these DOIs, counted by reason.

        A backfill asks this of its input, so that a DOI that died in an earlier run still
        makes its exit code 1, and dead jobs of other inputs in the same store do not.
        """

    async def export(self, table: str) -> AsyncIterator[dict[str, Any]]:
        """Stream a table's rows as dicts, in primary-key order (any size)."""
        yield {}

    async def start_run(self, kind: str, host: str, pid: int) -> int:
        """Register a running citepipe process; return its run id."""

    async def heartbeat_run(self, run_id: int) -> None:
        """Mark the run alive now."""

    async def finish_run(self, run_id: int, summary: dict[str, Any]) -> None:
        """Mark the run finished, with its summary."""

    async def active_runs(self, stale_after: float) -> list[RunInfo]:
        """Runs not finished whose heartbeat is younger than `stale_after` seconds."""
