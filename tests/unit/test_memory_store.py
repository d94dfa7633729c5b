"""The in-memory store's own guarantees (SQLite `:memory:`), and the pure rules every store
shares. The Store contract itself is tested against every store in
tests/integration/test_store_contract.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.errors import StoreError
from pipeline.models import Completion, Job, NewJob, Paper, ParseResult, Statement, Tally
from pipeline.store import EXPORT_TABLES, MemoryStore, Store
from pipeline.store.rules import (
    RefreshPolicy,
    ReportState,
    book_request,
    plan_completions,
)
from pipeline.store.sqlite import from_iso, iso

T0 = datetime(2024, 5, 1, tzinfo=UTC)
DAY = 86400.0


def job(doi: str = "10.1/a", page: int = 1, job_id: int = 1) -> Job:
    return Job(id=job_id, doi=doi, url=f"u/{doi}", page=page, attempts=1, depth=0)


def result(tally: Tally, authors: tuple[str, ...] = ("A",), doi: str = "10.1/a") -> ParseResult:
    return ParseResult(paper=Paper(doi=doi, title="T", authors=authors), tallies=tally)


# ---------------------------------------------------------------- MemoryStore


async def everything(store: Store) -> dict[str, list[dict[str, object]]]:
    return {t: [row async for row in store.export(t)] for t in EXPORT_TABLES}


async def test_failed_completion_restores_every_table() -> None:
    store = MemoryStore()
    await store.open()
    await store.enqueue([NewJob("10.1/a", "u")])
    (claimed,) = await store.claim("w", 1, 30)
    bad_follow_up = NewJob("10.1/a", "u", page=0)  # violates jobs.page >= 1
    res = ParseResult(
        paper=Paper("10.1/a", "T", authors=("A",)),
        tallies=Tally(1),
        statements=(Statement("10.9/c", "s"),),
    )
    before = await everything(store)
    with pytest.raises(StoreError, match="page"):
        await store.complete(Completion(claimed, res, (bad_follow_up,)))
    assert await everything(store) == before
    # Ids are not burnt either: the next statement gets id 1.
    await store.complete(Completion(claimed, res))
    assert [s["id"] async for s in store.export("statements")] == [1]


@pytest.mark.parametrize(
    "statement",
    [
        Statement("10.9/c", "s", confidence=1.01),
        Statement("10.9/c", "s", type="bogus"),  # type: ignore[arg-type]
        Statement("10.9/c", ""),
    ],
)
async def test_memory_store_checks_the_schema_constraints(statement: Statement) -> None:
    store = MemoryStore()
    await store.open()
    await store.enqueue([NewJob("10.1/a", "u")])
    (claimed,) = await store.claim("w", 1, 30)
    with pytest.raises(StoreError, match="constraint"):
        await store.complete(
            Completion(claimed, ParseResult(Paper("10.1/a", "T"), Tally(), statements=(statement,)))
        )


async def test_memory_store_must_be_open() -> None:
    with pytest.raises(StoreError, match="not open"):
        await MemoryStore().enqueue([NewJob("10.1/a", "u")])


# ---------------------------------------------------------------- rules


def test_sqlite_timestamps_have_one_shape_so_text_order_is_time_order() -> None:
    a = datetime(2024, 1, 1, 0, 0, 0, tzinfo=UTC)
    b = a + timedelta(microseconds=1)
    assert iso(a) == "2024-01-01T00:00:00.000000Z"
    assert iso(a) < iso(b)
    assert iso(datetime(2024, 1, 1)) == iso(a)  # naive means UTC
    eastern = datetime.fromisoformat("2024-01-01T05:00:00+05:00")
    assert iso(eastern) == iso(a)
    assert from_iso(iso(b)) == b


def test_refresh_policy_halves_on_change_and_doubles_otherwise() -> None:
    p = RefreshPolicy(interval=4 * DAY, minimum=DAY, maximum=16 * DAY)
    assert p.next(None, changed=True) == 4 * DAY
    assert p.next(4 * DAY, changed=False) == 8 * DAY
    assert p.next(12 * DAY, changed=False) == 16 * DAY
    assert p.next(4 * DAY, changed=True) == 2 * DAY
    assert p.next(1.5 * DAY, changed=True) == DAY
    assert RefreshPolicy(interval=100 * DAY, minimum=DAY, maximum=2 * DAY).next(None, True) == (
        2 * DAY
    )
    with pytest.raises(StoreError):
        RefreshPolicy(interval=DAY, minimum=3 * DAY, maximum=2 * DAY)


def test_plan_composes_two_visits_of_one_report_in_one_batch() -> None:
    policy = RefreshPolicy(interval=4 * DAY, minimum=DAY, maximum=16 * DAY)
    states = {"10.1/a": ReportState(4 * DAY, (1, None, None, None, None, None))}
    items = [
        Completion(job(), result(Tally(1), authors=("A", "B"))),  # unchanged: 8 days
        Completion(job(), result(Tally(2), authors=("C",))),  # changed: 4 days
        Completion(job(), None),  # 304: 8 days
    ]
    plan = plan_completions(items, states, T0, policy)
    assert [v["refresh_interval"] / DAY for v in plan.record_visit] == [8, 4, 8]
    assert [h["supporting"] for h in plan.insert_tally_history] == [2]
    assert plan.delete_authors == [{"doi": "10.1/a"}]  # replaced once, by the last list
    assert [a["name"] for a in plan.insert_author] == ["C"]
    assert plan.record_visit[-1]["next_refresh_at"] == T0 + timedelta(days=8)
    assert states["10.1/a"] == ReportState(8 * DAY, (2, None, None, None, None, None))


def test_plan_skips_the_visit_of_a_report_never_stored() -> None:
    plan = plan_completions([Completion(job(), None)], {}, T0, RefreshPolicy())
    assert plan.record_visit == [] and len(plan.mark_done) == 1
    assert plan.mark_done[0]["has_result"] is False


def test_plan_uses_the_fetch_time_when_given() -> None:
    fetched = T0 - timedelta(minutes=3)
    plan = plan_completions(
        [Completion(job(), result(Tally(1)), fetched_at=fetched)], {}, T0, RefreshPolicy()
    )
    assert plan.record_visit[0]["crawled_at"] == fetched
    assert plan.upsert_tallies[0]["observed_at"] == fetched
    assert plan.mark_done[0]["now"] == T0  # the commit time: "pages in the last minute"


def test_plan_rows_carry_datetimes_not_text() -> None:
    """Times are datetimes inside the code; only a driver turns them into its own type."""
    plan = plan_completions([Completion(job(), result(Tally(1)))], {}, T0, RefreshPolicy())
    for _, rows in plan.steps():
        for row in rows:
            assert not any(isinstance(v, str) and v.endswith("Z") for v in row.values()), row
    assert isinstance(plan.record_visit[0]["next_refresh_at"], datetime)


def test_book_request_spaces_starts_and_waits_out_pauses() -> None:
    delay = 0.2
    start, next_at = book_request(T0, T0, T0, delay)
    assert (start, next_at) == (T0, T0 + timedelta(seconds=0.2))
    # a second booking at the same moment goes after the first
    start2, next2 = book_request(next_at, T0, T0, delay)
    assert (start2, next2) == (T0 + timedelta(seconds=0.2), T0 + timedelta(seconds=0.4))
    # an idle host: now wins over an old next_at
    later = T0 + timedelta(hours=1)
    assert book_request(next2, T0, later, delay)[0] == later
    # a pause wins over both
    paused = T0 + timedelta(seconds=30)
    assert book_request(next2, paused, T0, delay) == (paused, paused + timedelta(seconds=0.2))
    # no spacing: next_at stays at the start
    assert book_request(T0, T0, T0, 0.0) == (T0, T0)


async def test_memory_store_is_sqlite_memory_with_one_shared_connection() -> None:
    store = MemoryStore()
    async with store:
        assert store.path == ":memory:"
        await store.enqueue([NewJob("10.1/a", "u")])
        assert await store.pending() == 1  # a read sees the write: same database
    async with MemoryStore() as fresh:
        assert await fresh.pending() == 0  # each one is private
