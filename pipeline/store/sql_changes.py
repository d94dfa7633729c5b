"""What changed in a window (`citepipe changes`, the digests): the reads over runs,
new statements, tally history, notices and completeness history, and the digest records,
written once for every SQL engine as a mixin of `SQLStore` (store/sql.py) over the same
driver primitives.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pipeline.errors import StoreError
from pipeline.models import (
    DIGEST_STATES,
    Completeness,
    CompletenessChange,
    Counts,
    DigestRecord,
    NewNotice,
    NewStatement,
    RunRecord,
    TallyChange,
    WindowChanges,
)

Params = dict[str, Any]


class ChangeReads(ABC):
    """The Store's `ChangeLog` role, over the primitives `SQLStore`'s drivers fill."""

    @abstractmethod
    async def _read_all(self, name: str, params: Params | None = None) -> list[Any]:
        """The rows of the named query (see `SQLStore._read_all`)."""

    @abstractmethod
    async def _write_returning(
        self, what: str, name: str, params: Params, *, durable: bool = False
    ) -> list[Any]:
        """One named statement with RETURNING (see `SQLStore._write_returning`)."""

    @abstractmethod
    def _time(self, value: Any) -> datetime:
        """A stored time as an aware datetime."""

    @abstractmethod
    def _now(self) -> datetime:
        """The store's clock."""

    def _run_record(self, r: Any) -> RunRecord:
        finished = r["finished_at"]
        return RunRecord(
            id=int(r["id"]),
            kind=r["kind"],
            started_at=self._time(r["started_at"]),
            finished_at=None if finished is None else self._time(finished),
            pages=int(r["pages"] or 0),
        )

    async def run_record(self, run_id: int) -> RunRecord | None:
        """One run (`run_record`), finished or not."""
        rows = await self._read_all("run_record", {"id": run_id})
        return self._run_record(rows[0]) if rows else None

    async def last_fetching_run(self, kinds: Sequence[str]) -> RunRecord | None:
        """The latest finished run of these kinds that fetched a page (`last_fetching_run`)."""
        rows = await self._read_all("last_fetching_run", {"kinds": list(kinds)})
        return self._run_record(rows[0]) if rows else None

    async def changes_in(
        self, since: datetime, until: datetime, *, dois: Sequence[str] | None = None
    ) -> WindowChanges:
        """The `changes_*` queries over one window, and the titles of the papers named."""
        window: Params = {
            "since": since,
            "until": until,
            "dois": None if dois is None else list(dois),
        }
        statements = tuple(
            NewStatement(
                cited_doi=r["cited_doi"],
                citing_doi=r["citing_doi"],
                citing_title=r["citing_title"],
                type=r["type"],
                section=r["section"],
                confidence=None if r["confidence"] is None else float(r["confidence"]),
                snippet=r["snippet"],
            )
            for r in await self._read_all("changes_statements", window)
        )

        def counts(r: Any) -> Counts:
            return (r["supporting"], r["mentioning"], r["contrasting"])

        before = {
            r["doi"]: counts(r) for r in await self._read_all("changes_tallies_before", window)
        }
        tallies = tuple(
            TallyChange(r["doi"], before.get(r["doi"]), counts(r))
            for r in await self._read_all("changes_tallies_after", window)
        )
        notices = tuple(
            NewNotice(
                doi=r["doi"],
                status=r["status"],
                date=r["date"] or None,
                notice_doi=r["notice_doi"] or None,
                url=r["url"],
            )
            for r in await self._read_all("changes_notices", window)
        )
        completeness = tuple(
            change
            for change in (
                CompletenessChange(
                    r["doi"],
                    Completeness(bool(r["before_incomplete"]), r["before_reason"]),
                    Completeness(bool(r["after_incomplete"]), r["after_reason"]),
                )
                for r in await self._read_all("changes_completeness", window)
            )
            if change.before.differs(change.after)
        )
        named = sorted(
            {s.cited_doi for s in statements}
            | {t.doi for t in tallies}
            | {n.doi for n in notices}
            | {c.doi for c in completeness}
        )
        titles: dict[str, str | None] = dict.fromkeys(named)
        if named:
            for r in await self._read_all("changes_titles", {"dois": named}):
                titles[r["doi"]] = r["title"]
        return WindowChanges(statements, tallies, notices, titles, completeness)

    async def claim_digests(self, run_ids: Sequence[int]) -> list[int]:
        """`digest_claim`: the runs taken in hand, in id order."""
        if not run_ids:
            return []
        params: Params = {"run_ids": sorted(set(run_ids)), "now": self._now()}
        rows = await self._write_returning("claim digests", "digest_claim", params)
        return sorted(int(r[0]) for r in rows)

    async def settle_digests(
        self, run_ids: Sequence[int], state: str, *, attempts: int = 0, error: str | None = None
    ) -> None:
        """`digest_settle` on digests being sent."""
        if state not in DIGEST_STATES or state == "sending":
            raise StoreError(f"settle digests: {state!r} is not an end state")
        if not run_ids:
            return
        params: Params = {
            "run_ids": sorted(set(run_ids)),
            "state": state,
            "attempts": attempts,
            "error": error,
            "now": self._now(),
        }
        await self._write_returning("settle digests", "digest_settle", params)

    async def failed_digests(self) -> list[int]:
        """`digests_failed`."""
        return [int(r[0]) for r in await self._read_all("digests_failed")]

    async def digest_record(self, run_id: int) -> DigestRecord | None:
        """`digest_record`."""
        rows = await self._read_all("digest_record", {"run_id": run_id})
        if not rows:
            return None
        r = rows[0]
        sent = r["sent_at"]
        return DigestRecord(
            run_id=int(r["run_id"]),
            state=r["state"],
            attempts=int(r["attempts"]),
            last_error=r["last_error"],
            sent_at=None if sent is None else self._time(sent),
        )
