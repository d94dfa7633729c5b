"""An in-memory Store with the SQLite store's semantics, for unit tests of other parts.

Tables are dicts of row dicts (rows are replaced, never mutated, so a transaction is a
shallow snapshot of the tables, restored on error: all or nothing). Completions run the
same `rules.WritePlan` as the SQLite store; the schema's constraints (foreign keys, CHECKs,
unique keys) are checked here too, raising `StoreError`. Completions are committed at once:
`writer_batch` and `queue_size` are accepted for a common constructor and ignored.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pipeline.errors import StoreError
from pipeline.models import (
    JOB_STATES,
    RUN_STALE_AFTER,
    Completion,
    DeadReason,
    Job,
    NewJob,
    RunInfo,
    Stats,
)
from pipeline.store import rules
from pipeline.store.base import EXPORT_TABLES

T = TypeVar("T")
Row = dict[str, Any]
STATEMENT_TYPES = (None, "supporting", "mentioning", "contrasting")
WAITING = ("queued", "failed")
# the columns a statement row takes from the write plan; the rest are id and timestamps
_STATEMENT_FIELDS = tuple(
    c for c in rules.COLUMNS["statements"] if c not in ("id", "first_seen_at", "last_seen_at")
)


def _coalesce(first: Any, second: Any) -> Any:
    return first if first is not None else second


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise StoreError(f"constraint failed: {message}")


class MemoryStore:
    """The Store protocol on dicts. Same constructor keywords as `SQLiteStore`."""

    def __init__(
        self,
        *,
        writer_batch: int = 100,
        queue_size: int = 1000,
        refresh_interval: float = rules.DEFAULT_REFRESH_INTERVAL,
        refresh_min: float = rules.DEFAULT_REFRESH_MIN,
        refresh_max: float = rules.DEFAULT_REFRESH_MAX,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if writer_batch < 1 or queue_size < 1:
            raise StoreError("writer_batch and queue_size must be >= 1")
        self._policy = rules.RefreshPolicy(refresh_interval, refresh_min, refresh_max)
        self._clock = clock or rules.utcnow
        self.tables: dict[str, dict[Any, Row]] = {t: {} for t in (*EXPORT_TABLES, "runs")}
        self._job_ids: dict[tuple[str, int], int] = {}
        self._statement_ids: dict[tuple[str, str, str], int] = {}
        self._next_id: dict[str, int] = {"jobs": 1, "statements": 1, "tally_history": 1, "runs": 1}
        self._open = False

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def __aenter__(self) -> MemoryStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _now(self) -> str:
        return rules.iso(self._clock())

    def _transaction(self, body: Callable[[], T]) -> T:
        """All or nothing: snapshot the tables and indexes, restore them on error."""
        if not self._open:
            raise StoreError("store is not open")
        saved = (
            {k: dict(v) for k, v in self.tables.items()},
            dict(self._job_ids),
            dict(self._statement_ids),
            dict(self._next_id),
        )
        try:
            return body()
        except Exception as exc:
            self.tables, self._job_ids, self._statement_ids, self._next_id = saved
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot store: {exc!r}") from exc

    def _new_id(self, table: str) -> int:
        value = self._next_id[table]
        self._next_id[table] = value + 1
        return value

    def _update(self, table: str, key: Any, **changes: Any) -> None:
        self.tables[table][key] = {**self.tables[table][key], **changes}

    # ------------------------------------------------------------ queue

    async def enqueue(self, jobs: Iterable[NewJob]) -> int:
        return self._transaction(lambda: self._enqueue_rows(list(jobs)))

    def _enqueue_rows(self, jobs: Sequence[NewJob]) -> int:
        now = self._now()
        return sum(self._enqueue_one(rules.enqueue_params(job, now)) for job in jobs)

    def _enqueue_one(self, p: rules.Params) -> int:
        _check(p["page"] >= 1, "jobs.page >= 1")
        key = (p["doi"], p["page"])
        job_id = self._job_ids.get(key)
        if job_id is None:
            job_id = self._new_id("jobs")
            self._job_ids[key] = job_id
            self.tables["jobs"][job_id] = {
                "id": job_id,
                "doi": p["doi"],
                "url": p["url"],
                "page": p["page"],
                "state": "queued",
                "attempts": 0,
                "not_before": p["not_before"],
                "lease_until": None,
                "last_error": None,
                "depth": p["depth"],
                "created_at": p["now"],
                "updated_at": p["now"],
                "round": p["round"],
                "worker": None,
                "etag": None,
                "last_modified": None,
                "content_hash": None,
                "next_url": None,
            }
            return 1
        job = self.tables["jobs"][job_id]
        if p["round"] <= job["round"]:
            return 0
        if job["state"] in WAITING:
            self._update("jobs", job_id, round=p["round"], updated_at=p["now"])
        elif job["state"] in ("done", "dead"):
            self._update(
                "jobs",
                job_id,
                state="queued",
                attempts=0,
                round=p["round"],
                url=p["url"],
                depth=p["depth"],
                not_before=p["not_before"],
                lease_until=None,
                worker=None,
                last_error=None,
                updated_at=p["now"],
            )
            return 1
        return 0

    async def claim(self, worker: str, limit: int, lease_seconds: float) -> list[Job]:
        """Like SQLite: expired leases back first, then due jobs by (not_before, id)."""
        now = self._clock()

        def body() -> list[Job]:
            self._requeue_expired(rules.iso(now))
            jobs = self.tables["jobs"]
            due = sorted(
                (
                    j
                    for j in jobs.values()
                    if j["state"] in WAITING and j["not_before"] <= rules.iso(now)
                ),
                key=lambda j: (j["not_before"], j["id"]),
            )[: max(limit, 0)]
            until = rules.iso(now + timedelta(seconds=lease_seconds))
            for j in due:
                self._update(
                    "jobs",
                    j["id"],
                    state="leased",
                    attempts=j["attempts"] + 1,
                    lease_until=until,
                    worker=worker,
                    updated_at=rules.iso(now),
                )
            return [rules.job_from_row(jobs[j["id"]]) for j in due]

        return self._transaction(body)

    async def extend_leases(
        self, worker: str, job_ids: Sequence[int], lease_seconds: float
    ) -> None:
        now = self._clock()
        until = rules.iso(now + timedelta(seconds=lease_seconds))

        def body() -> None:
            for job_id in job_ids:
                job = self.tables["jobs"].get(job_id)
                if job and job["worker"] == worker and job["state"] == "leased":
                    self._update("jobs", job_id, lease_until=until, updated_at=rules.iso(now))

        self._transaction(body)

    async def release(self, jobs: Sequence[Job]) -> None:
        now = self._now()

        def body() -> None:
            for j in jobs:
                row = self.tables["jobs"].get(j.id)
                if row and row["round"] == j.round and row["state"] == "leased":
                    self._update(
                        "jobs",
                        j.id,
                        state="queued",
                        lease_until=None,
                        worker=None,
                        attempts=max(row["attempts"] - 1, 0),
                        updated_at=now,
                    )

        self._transaction(body)

    async def fail(self, job: Job, error: str, retry_at: datetime | None) -> None:
        now = self._now()

        def body() -> None:
            row = self.tables["jobs"].get(job.id)
            if row is None or row["round"] != job.round:
                return
            self._update(
                "jobs",
                job.id,
                state="dead" if retry_at is None else "failed",
                not_before=rules.iso(retry_at) if retry_at is not None else row["not_before"],
                last_error=error,
                lease_until=None,
                worker=None,
                updated_at=now,
            )
            if retry_at is None and job.doi in self.tables["papers"]:
                self._update("papers", job.doi, incomplete=1)

        self._transaction(body)

    async def requeue_expired(self) -> int:
        return self._transaction(lambda: self._requeue_expired(self._now()))

    def _requeue_expired(self, now: str) -> int:
        expired = [
            j
            for j in self.tables["jobs"].values()
            if j["state"] == "leased" and j["lease_until"] < now
        ]
        for j in expired:
            self._update(
                "jobs", j["id"], state="queued", lease_until=None, worker=None, updated_at=now
            )
        return len(expired)

    async def enqueue_stale(self, now: datetime) -> int:
        cutoff = rules.iso(now)

        def body() -> int:
            due = sorted(
                (
                    p
                    for p in self.tables["papers"].values()
                    if p["last_crawled_at"] is not None
                    and p["next_refresh_at"] is not None
                    and p["next_refresh_at"] <= cutoff
                ),
                key=lambda p: (p["next_refresh_at"], p["doi"]),
            )
            jobs: list[NewJob] = []
            for paper in due:
                page_one = self._job_ids.get((paper["doi"], 1))
                if page_one is None:
                    continue
                row = self.tables["jobs"][page_one]
                top = max(
                    j["round"] for j in self.tables["jobs"].values() if j["doi"] == paper["doi"]
                )
                jobs.append(NewJob(row["doi"], row["url"], 1, row["depth"], top + 1))
            return self._enqueue_rows(jobs)

        return self._transaction(body)

    # ------------------------------------------------------------ completions

    async def complete(self, completion: Completion) -> None:
        self._transaction(lambda: self._write_pages([completion]))

    def _write_pages(self, items: list[Completion]) -> None:
        states = {
            doi: rules.ReportState(
                self.tables["papers"][doi]["refresh_interval"],
                self._tally_tuple(doi),
            )
            for doi in rules.page_one_dois(items)
            if doi in self.tables["papers"]
        }
        plan = rules.plan_completions(items, states, self._clock(), self._policy)
        for name, rows in plan.steps():
            write = getattr(self, f"_w_{name}")
            for row in rows:
                write(row)
        self._enqueue_rows(plan.follow_ups)
        for row in plan.mark_done:
            self._w_mark_done(row)

    def _tally_tuple(self, doi: str) -> tuple[int | None, ...] | None:
        row = self.tables["tallies"].get(doi)
        return tuple(row[f] for f in rules.TALLY_FIELDS) if row else None

    def _require_paper(self, doi: str, what: str) -> None:
        _check(doi in self.tables["papers"], f"{what} references unknown paper {doi!r}")

    def _w_upsert_paper(self, p: rules.Params) -> None:
        fields = (
            "title",
            "year",
            "publication_date",
            "journal",
            "abstract",
            "abstract_truncated",
            "report_url",
        )
        _check(p["abstract_truncated"] in (None, 0, 1), "papers.abstract_truncated")
        old = self.tables["papers"].get(p["doi"])
        if old is None:
            self.tables["papers"][p["doi"]] = self._new_paper(p, fields)
        else:
            merged = {f: _coalesce(p[f], old[f]) for f in fields}
            self._update("papers", p["doi"], **merged)

    def _w_upsert_partial_paper(self, p: rules.Params) -> None:
        fields = ("title", "year", "journal")
        old = self.tables["papers"].get(p["doi"])
        if old is None:
            self.tables["papers"][p["doi"]] = self._new_paper(p, fields)
        else:
            merged = {f: _coalesce(old[f], p[f]) for f in fields}
            self._update("papers", p["doi"], **merged)

    def _new_paper(self, p: rules.Params, fields: Sequence[str]) -> Row:
        row: Row = dict.fromkeys(rules.COLUMNS["papers"])
        row.update({f: p[f] for f in fields}, doi=p["doi"], first_seen_at=p["now"], incomplete=0)
        return row

    def _w_record_visit(self, p: rules.Params) -> None:
        if p["doi"] in self.tables["papers"]:
            self._update(
                "papers",
                p["doi"],
                last_crawled_at=p["crawled_at"],
                incomplete=0,
                refresh_interval=p["refresh_interval"],
                next_refresh_at=p["next_refresh_at"],
            )

    def _w_delete_authors(self, p: rules.Params) -> None:
        authors = self.tables["authors"]
        for key in [k for k in authors if k[0] == p["doi"]]:
            del authors[key]

    def _w_insert_author(self, p: rules.Params) -> None:
        self._require_paper(p["doi"], "authors")
        key = (p["doi"], p["position"])
        _check(key not in self.tables["authors"], "authors primary key")
        self.tables["authors"][key] = dict(p)

    def _w_insert_tally_history(self, p: rules.Params) -> None:
        self._require_paper(p["doi"], "tally_history")
        row_id = self._new_id("tally_history")
        self.tables["tally_history"][row_id] = {"id": row_id, **p}

    def _w_upsert_tallies(self, p: rules.Params) -> None:
        self._require_paper(p["doi"], "tallies")
        _check(all(p[f] is None or p[f] >= 0 for f in rules.TALLY_FIELDS), "tallies >= 0")
        self.tables["tallies"][p["doi"]] = dict(p)

    def _w_delete_facets(self, p: rules.Params) -> None:
        facets = self.tables["facets"]
        for key in [k for k in facets if k[0] == p["doi"]]:
            del facets[key]

    def _w_insert_facet(self, p: rules.Params) -> None:
        self._require_paper(p["doi"], "facets")
        _check(p["count"] is None or p["count"] >= 0, "facets.count >= 0")
        self.tables["facets"][(p["doi"], p["facet"], p["label"])] = dict(p)

    def _w_upsert_statement(self, p: rules.Params) -> None:
        self._require_paper(p["cited_doi"], "statements.cited_doi")
        self._require_paper(p["citing_doi"], "statements.citing_doi")
        _check(bool(p["snippet"]), "statements.snippet not empty")
        _check(p["type"] in STATEMENT_TYPES, "statements.type")
        _check(p["confidence"] is None or 0 <= p["confidence"] <= 1, "statements.confidence")
        key = (p["cited_doi"], p["citing_doi"], p["snippet_hash"])
        row_id = self._statement_ids.get(key)
        if row_id is None:
            row_id = self._new_id("statements")
            self._statement_ids[key] = row_id
            self.tables["statements"][row_id] = {
                "id": row_id,
                **{k: p[k] for k in _STATEMENT_FIELDS},
                "first_seen_at": p["now"],
                "last_seen_at": p["now"],
            }
            return
        old = self.tables["statements"][row_id]
        self._update(
            "statements",
            row_id,
            last_seen_at=p["now"],
            **{f: _coalesce(p[f], old[f]) for f in ("section", "type", "confidence")},
        )

    def _w_mark_done(self, p: rules.Params) -> None:
        job = self.tables["jobs"].get(p["id"])
        if job is None or job["round"] != p["round"]:
            return
        self._update(
            "jobs",
            p["id"],
            state="done",
            lease_until=None,
            worker=None,
            last_error=None,
            url=_coalesce(p["final_url"], job["url"]),
            etag=_coalesce(p["etag"], job["etag"]),
            last_modified=_coalesce(p["last_modified"], job["last_modified"]),
            content_hash=_coalesce(p["content_hash"], job["content_hash"]),
            next_url=p["next_url"] if p["has_result"] else job["next_url"],
            updated_at=p["now"],
        )

    # ------------------------------------------------------------ reads

    def _jobs(self) -> Iterable[Row]:
        return self.tables["jobs"].values()

    async def pending(self) -> int:
        return sum(1 for j in self._jobs() if j["state"] in ("queued", "leased", "failed"))

    async def next_due(self) -> datetime | None:
        waiting = [j["not_before"] for j in self._jobs() if j["state"] in WAITING]
        return rules.from_iso(min(waiting)) if waiting else None

    def _dead_reasons(self, dois: Sequence[str] | None = None) -> dict[str, int]:
        """Dead jobs counted by reason: all of them, or those of `dois`."""
        wanted = None if dois is None else set(dois)
        return dict(
            Counter(
                j["last_error"] or ""
                for j in self._jobs()
                if j["state"] == "dead" and (wanted is None or j["doi"] in wanted)
            )
        )

    async def dead_among(self, dois: Sequence[str]) -> dict[str, int]:
        return self._dead_reasons(dois)

    async def stats(self) -> Stats:
        now = self._clock()
        by_state: dict[str, int] = dict.fromkeys(JOB_STATES, 0)
        for j in self._jobs():
            by_state[j["state"]] += 1
        reasons = self._dead_reasons()
        return Stats(
            jobs_by_state=by_state,
            dead_by_reason=tuple(
                DeadReason(r, n) for r, n in sorted(reasons.items(), key=lambda x: (-x[1], x[0]))
            ),
            incomplete_reports=len({j["doi"] for j in self._jobs() if j["state"] == "dead"}),
            rows_by_table={t: len(self.tables[t]) for t in EXPORT_TABLES},
            pages_last_minute=self._done_since(now - timedelta(minutes=1)),
            pages_last_hour=self._done_since(now - timedelta(hours=1)),
            active_runs=tuple(await self.active_runs(RUN_STALE_AFTER)),
        )

    def _done_since(self, since: datetime) -> int:
        cutoff = rules.iso(since)
        return sum(1 for j in self._jobs() if j["state"] == "done" and j["updated_at"] >= cutoff)

    async def export(self, table: str) -> AsyncIterator[dict[str, Any]]:
        if table not in EXPORT_TABLES:
            raise StoreError(f"unknown table {table!r}; one of {', '.join(EXPORT_TABLES)}")
        columns, keys = rules.COLUMNS[table], rules.KEYS[table]
        rows = sorted(self.tables[table].values(), key=lambda r: tuple(r[k] for k in keys))
        for row in rows:
            yield {c: row[c] for c in columns}

    # ------------------------------------------------------------ runs

    async def start_run(self, kind: str, host: str, pid: int) -> int:
        now = self._now()
        run_id = self._new_id("runs")
        self.tables["runs"][run_id] = {
            "id": run_id,
            "kind": kind,
            "host": host,
            "pid": pid,
            "started_at": now,
            "heartbeat_at": now,
            "finished_at": None,
            "summary": None,
        }
        return run_id

    async def heartbeat_run(self, run_id: int) -> None:
        if run_id in self.tables["runs"]:
            self._update("runs", run_id, heartbeat_at=self._now())

    async def finish_run(self, run_id: int, summary: dict[str, Any]) -> None:
        if run_id in self.tables["runs"]:
            now = self._now()
            self._update(
                "runs",
                run_id,
                heartbeat_at=now,
                finished_at=now,
                summary=json.dumps(summary, default=str, sort_keys=True),
            )

    async def active_runs(self, stale_after: float) -> list[RunInfo]:
        since = rules.iso(self._clock() - timedelta(seconds=stale_after))
        return [
            RunInfo(r["id"], r["kind"], r["host"], r["pid"], r["started_at"], r["heartbeat_at"])
            for r in sorted(self.tables["runs"].values(), key=lambda r: r["id"])
            if r["finished_at"] is None and r["heartbeat_at"] >= since
        ]
