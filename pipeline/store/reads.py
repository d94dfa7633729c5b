"""Reads that every SQL driver answers with the same named queries, written once.

A driver passes its own `rows(name, params)` (run the named query of its dialect, return
the rows); what the rows mean is the same for SQLite and PostgreSQL, so the assembling
lives here and not twice in the drivers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pipeline.models import JOB_STATES, DeadReason, RunInfo, Stats
from pipeline.store.base import EXPORT_TABLES
from pipeline.store.rules import Params

Rows = Callable[[str, Params | None], Awaitable[list[Any]]]


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
        rows_by_table={t: counts[t] for t in EXPORT_TABLES},
        pages_last_minute=await done_since(timedelta(minutes=1)),
        pages_last_hour=await done_since(timedelta(hours=1)),
        active_runs=tuple(active_runs),
    )
