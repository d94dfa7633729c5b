"""The Store contract (docs/store.md), one test per rule, run against every store: a SQLite
file, MemoryStore (SQLite `:memory:`, which must work with its one shared connection), and
PostgreSQL (a fresh schema per test, tests/conftest.py).
Exported timestamps are ISO text in every driver, hence `iso` here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace as dataclasses_replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ConfigError, StoreError
from pipeline.models import (
    ApiPaper,
    ApiResult,
    Chain,
    Completion,
    DeadJob,
    Facet,
    Job,
    KeptPage,
    NewJob,
    Notice,
    Paper,
    ParseResult,
    Requeued,
    RobotsRecord,
    Statement,
    Tally,
)
from pipeline.normalise import snippet_hash
from pipeline.ops.export import SINCE_COLUMNS, RowFilter
from pipeline.store import MemoryStore, PostgresStore, SQLiteStore, Store, sql
from pipeline.store.base import EXPORT_TABLES
from pipeline.store.export_sql import OPS, Comparison, ExportFilter
from pipeline.store.sqlite import iso
from pipeline.store.tables import COLUMNS

DAY = 86400.0
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class Clock:
    """A settable clock, so lease expiry and refresh times need no sleeping."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[Store]:
    opts: dict[str, Any] = {
        "clock": clock,
        "refresh_interval": 4 * DAY,
        "refresh_min": DAY,
        "refresh_max": 16 * DAY,
    }
    s: Store
    if request.param == "memory":
        s = MemoryStore(**opts)
    elif request.param == "sqlite":
        s = SQLiteStore(tmp_path / "store.sqlite", **opts)
    else:  # a fresh schema of its own (tests/conftest.py)
        s = PostgresStore(request.getfixturevalue("pg_url"), **opts)
    await s.open()
    yield s
    await s.close()


# ---------------------------------------------------------------- builders


def new(doi: str = "10.1/a", page: int = 1, **kw: Any) -> NewJob:
    return NewJob(doi=doi, url=f"http://site/reports/{doi}?page={page}", page=page, **kw)


def stmt(citing: str, snippet: str, **kw: Any) -> Statement:
    return Statement(citing_doi=citing, snippet=snippet, **kw)


def result(
    doi: str = "10.1/a",
    statements: tuple[Statement, ...] = (),
    tally: Tally | None = None,
    next_url: str | None = None,
    **paper: Any,
) -> ParseResult:
    fields: dict[str, Any] = {
        "title": "Full title",
        "year": 2020,
        "journal": "J. Full",
        "authors": ("Ada", "Bob"),
    } | paper
    return ParseResult(
        paper=Paper(doi=doi, **fields),
        tallies=tally or Tally(supporting=1, mentioning=2, contrasting=0),
        facets=(Facet("section", "Intro", 2),),
        statements=statements,
        next_page_url=next_url,
    )


async def rows(store: Store, table: str) -> list[dict[str, Any]]:
    return [row async for row in store.export(table)]


async def job_row(store: Store, doi: str = "10.1/a", page: int = 1) -> dict[str, Any]:
    return next(r for r in await rows(store, "jobs") if r["doi"] == doi and r["page"] == page)


async def paper(store: Store, doi: str) -> dict[str, Any]:
    return next(r for r in await rows(store, "papers") if r["doi"] == doi)


async def claim_one(store: Store, doi: str = "10.1/a", page: int = 1) -> Job:
    jobs = await store.claim("w1", 100, 30)
    picked = [j for j in jobs if j.doi == doi and j.page == page]
    assert picked, f"{doi} p{page} not claimable"
    others = [j for j in jobs if j not in picked]
    if others:
        await store.release(others)
    return picked[0]


async def crawl(
    store: Store, res: ParseResult | None, doi: str = "10.1/a", page: int = 1, **kw: Any
) -> Job:
    """Enqueue (if needed), claim and complete one page."""
    await store.enqueue([new(doi, page)])
    job = await claim_one(store, doi, page)
    await store.complete(Completion(job=job, result=res, **kw))
    return job


# ---------------------------------------------------------------- queue


async def test_enqueue_dedups_on_doi_and_page(store: Store) -> None:
    assert await store.enqueue([new(), new(), new(page=2), new("10.1/b")]) == 3
    assert await store.enqueue([new(), new(page=2)]) == 0
    await claim_one(store)  # leased
    assert await store.enqueue([new()]) == 0
    assert len(await rows(store, "jobs")) == 3


async def test_enqueue_streams_a_large_iterable(store: Store) -> None:
    added = await store.enqueue(new(f"10.2/{i}") for i in range(12_000))
    assert added == 12_000
    assert await store.pending() == 12_000


async def test_higher_round_requeues_finished_jobs_only(store: Store, clock: Clock) -> None:
    await crawl(store, result(), etag='"v1"')
    await store.enqueue([new("10.1/b")])  # stays queued
    clock.advance(5)
    assert await store.enqueue([new(round=0), new("10.1/b", round=0)]) == 0
    assert await store.enqueue([new(round=1), new("10.1/b", round=1)]) == 1
    again = await job_row(store)
    assert (again["state"], again["attempts"], again["round"]) == ("queued", 0, 1)
    assert again["etag"] == '"v1"'  # validators kept: the refresh can be conditional
    waiting = await job_row(store, "10.1/b")
    assert (waiting["state"], waiting["round"]) == ("queued", 1)  # round bumped, not re-added


async def test_dead_job_is_requeued_by_a_higher_round(store: Store) -> None:
    await store.enqueue([new()])
    await store.fail(await claim_one(store), "http 404", None)
    assert await store.enqueue([new()]) == 0
    assert await store.enqueue([new(round=1)]) == 1
    row = await job_row(store)
    assert (row["state"], row["last_error"]) == ("queued", None)


async def test_claim_leases_bumps_attempts_and_respects_not_before(
    store: Store, clock: Clock
) -> None:
    later = T0 + timedelta(minutes=5)
    await store.enqueue([new("10.1/late", not_before=later), new("10.1/a"), new("10.1/b")])
    jobs = await store.claim("w1", 10, 600)
    assert [j.doi for j in jobs] == ["10.1/a", "10.1/b"]
    assert all(j.attempts == 1 for j in jobs)
    row = await job_row(store)
    assert (row["state"], row["worker"]) == ("leased", "w1")
    assert row["lease_until"] == iso(T0 + timedelta(seconds=600))
    assert await store.claim("w2", 10, 30) == []  # leased jobs are not claimable
    assert await store.next_due() == later
    clock.advance(300)
    assert [j.doi for j in await store.claim("w2", 10, 30)] == ["10.1/late"]


async def test_claim_respects_limit(store: Store) -> None:
    await store.enqueue(new(f"10.1/{i}") for i in range(10))
    first = await store.claim("w1", 4, 30)
    second = await store.claim("w2", 100, 30)
    assert len(first) == 4 and len(second) == 6
    assert not {j.id for j in first} & {j.id for j in second}


async def test_expired_lease_is_requeued_keeping_attempts(store: Store, clock: Clock) -> None:
    await store.enqueue([new()])
    await store.claim("w1", 1, 30)
    clock.advance(29)
    assert await store.requeue_expired() == 0
    clock.advance(2)
    assert await store.requeue_expired() == 1
    row = await job_row(store)
    assert (row["state"], row["attempts"], row["worker"]) == ("queued", 1, None)
    assert (await store.claim("w2", 1, 30))[0].attempts == 2


async def test_claim_takes_back_expired_leases_itself(store: Store, clock: Clock) -> None:
    await store.enqueue([new()])
    await store.claim("dead-worker", 1, 30)
    clock.advance(31)
    assert [j.attempts for j in await store.claim("w2", 1, 30)] == [2]


async def test_heartbeat_extends_only_own_leases(store: Store, clock: Clock) -> None:
    await store.enqueue([new()])
    job = (await store.claim("w1", 1, 30))[0]
    clock.advance(20)
    await store.extend_leases("other", [job.id], 30)
    await store.extend_leases("w1", [job.id], 30)
    clock.advance(20)
    assert await store.requeue_expired() == 0
    assert (await job_row(store))["lease_until"] == iso(T0 + timedelta(seconds=50))


async def test_leased_jobs_are_the_jobs_leased_now_with_holder_and_lease_end(
    store: Store, clock: Clock
) -> None:
    await store.enqueue([new(doi=f"10.1/{i}") for i in range(3)])
    assert await store.leased_jobs() == []
    first = await store.claim("host-a:11", 2, 30)
    clock.advance(5)
    second = await store.claim("host-b:22", 1, 60)
    leased = await store.leased_jobs()
    assert [lease.job for lease in leased] == sorted(first + second, key=lambda j: j.id)
    assert {(lease.job.id, lease.worker, lease.lease_until) for lease in leased} == {
        *((j.id, "host-a:11", T0 + timedelta(seconds=30)) for j in first),
        *((j.id, "host-b:22", T0 + timedelta(seconds=65)) for j in second),
    }
    await store.release(first)  # given back: no longer leased
    assert [lease.job.id for lease in await store.leased_jobs()] == [second[0].id]


async def test_release_refunds_the_attempt(store: Store) -> None:
    await store.enqueue([new()])
    jobs = await store.claim("w1", 1, 30)
    await store.release(jobs)
    row = await job_row(store)
    assert (row["state"], row["attempts"], row["lease_until"]) == ("queued", 0, None)


async def test_fail_with_retry_at_persists_backoff(store: Store, clock: Clock) -> None:
    await store.enqueue([new()])
    retry_at = T0 + timedelta(seconds=90)
    await store.fail(await claim_one(store), "http 503", retry_at)
    row = await job_row(store)
    assert (row["state"], row["not_before"], row["last_error"]) == (
        "failed",
        iso(retry_at),
        "http 503",
    )
    assert await store.pending() == 1
    assert await store.next_due() == retry_at
    clock.advance(89)
    assert await store.claim("w1", 1, 30) == []
    clock.advance(1)
    assert [j.attempts for j in await store.claim("w1", 1, 30)] == [2]


async def test_permanent_failure_is_dead_with_reason(store: Store) -> None:
    await store.enqueue([new(), new("10.1/b"), new("10.1/c")])
    for doi, reason in [("10.1/a", "http 404"), ("10.1/b", "http 404"), ("10.1/c", "parse")]:
        await store.fail(await claim_one(store, doi), reason, None)
    stats = await store.stats()
    assert stats.jobs_by_state["dead"] == 3
    assert [(d.reason, d.count) for d in stats.dead_by_reason] == [("http 404", 2), ("parse", 1)]
    assert await store.pending() == 0
    assert await store.next_due() is None
    assert await store.dead_among(["10.1/a", "10.1/c", "10.1/other"]) == {
        "http 404": 1,
        "parse": 1,
    }
    assert await store.dead_among(["10.1/other"]) == {}
    assert await store.dead_among([]) == {}


async def test_dead_page_marks_report_incomplete(store: Store) -> None:
    await crawl(store, result(next_url="p2"), follow_ups=(new(page=2),))
    assert (await paper(store, "10.1/a"))["incomplete"] == 0
    await store.fail(await claim_one(store, page=2), "http 410", None)
    assert (await paper(store, "10.1/a"))["incomplete"] == 1
    assert (await paper(store, "10.1/a"))["incomplete_reason"] == "dead page: page 2: http 410"
    stats = await store.stats()
    assert stats.incomplete_reports == 1
    assert [(d.reason, d.count) for d in stats.incomplete_by_reason] == [("dead page", 1)]
    # A new pass over the report (page 1 again, new round) clears the flag.
    await store.enqueue([new(round=1)])
    job = await claim_one(store)
    await store.complete(Completion(job=job, result=result()))
    assert (await paper(store, "10.1/a"))["incomplete"] == 0
    assert (await paper(store, "10.1/a"))["incomplete_reason"] is None


async def test_a_dead_page_one_is_not_an_incomplete_report(store: Store) -> None:
    """A report that could not be read at all (404, a wall) is a dead job, not a paper
    stored in part; a 404 is counted as not found."""
    await crawl(store, result(statements=(stmt("10.1/b", "cites a"),)))  # 10.1/b: a citer
    await store.enqueue([new("10.1/b"), new("10.1/c")])
    await store.fail(await claim_one(store, "10.1/b"), "not found (404)", None)
    await store.fail(await claim_one(store, "10.1/c"), "blocked: captcha wall", None)
    assert (await paper(store, "10.1/b"))["incomplete"] == 0
    stats = await store.stats()
    assert stats.incomplete_reports == 0 and stats.not_found == 1


async def test_a_completion_cut_short_keeps_its_reason_on_the_paper(store: Store) -> None:
    await store.enqueue([new()])
    job = await claim_one(store)
    reason = "pagination cycle: page 1 links back to http://site/reports/10.1/a"
    await store.complete(Completion(job=job, result=result(), incomplete=reason))
    row = await paper(store, "10.1/a")
    assert (row["incomplete"], row["incomplete_reason"]) == (1, reason)
    stats = await store.stats()
    assert [(d.reason, d.count) for d in stats.incomplete_by_reason] == [("pagination cycle", 1)]


async def test_a_next_page_carries_its_chain_and_a_page_what_it_held(store: Store) -> None:
    chain = Chain(seen=("http://site/reports/10.1/a",), counted=49, per_page=20, got=20)
    await store.enqueue([new()])
    job = await claim_one(store)
    done = Completion(
        job=job,
        result=result(next_url="p2"),
        follow_ups=(new(page=2, chain=chain),),
        page_statements=20,
        page_counted=49,
    )
    await store.complete(done)
    second = await claim_one(store, page=2)
    assert second.chain == chain
    await store.enqueue([new(round=1)])  # a refresh: page 1 again, with what it held
    again = await claim_one(store)
    assert (again.page_statements, again.page_counted, again.chain) == (20, 49, None)


# ---------------------------------------------------------------- completions


async def test_complete_writes_the_page_rows_and_marks_done(store: Store) -> None:
    statements = (
        stmt(
            "10.9/c1",
            "first claim",
            citing_title="C1",
            citing_year=2021,
            section="Intro",
            type="supporting",
            confidence=0.9,
        ),
        stmt("10.9/c2", "second claim", citing_journal="J2", type="mentioning"),
    )
    res = result(
        statements=statements,
        tally=Tally(3, 4, 0, 7, 9, None),
        next_url="p2",
        abstract="Abs",
        abstract_truncated=True,
    )
    await crawl(store, res, etag='"e"', last_modified="Mon", content_hash="h1")
    p = await paper(store, "10.1/a")
    assert (p["title"], p["year"], p["abstract_truncated"]) == ("Full title", 2020, 1)
    assert p["report_url"] == "http://site/reports/10.1/a?page=1"
    assert p["last_crawled_at"] == iso(T0) and p["first_seen_at"] == iso(T0)
    assert [(a["position"], a["name"]) for a in await rows(store, "authors")] == [
        (1, "Ada"),
        (2, "Bob"),
    ]
    (tally,) = await rows(store, "tallies")
    assert (tally["supporting"], tally["references_count"]) == (3, None)  # unknown is NULL
    assert len(await rows(store, "tally_history")) == 1
    assert [(f["facet"], f["label"], f["count"]) for f in await rows(store, "facets")] == [
        ("section", "Intro", 2)
    ]
    got = await rows(store, "statements")
    assert [(s["citing_doi"], s["snippet"], s["type"]) for s in got] == [
        ("10.9/c1", "first claim", "supporting"),
        ("10.9/c2", "second claim", "mentioning"),
    ]
    assert got[0]["snippet_hash"] == snippet_hash("first claim")
    c1 = await paper(store, "10.9/c1")
    assert (c1["title"], c1["year"], c1["last_crawled_at"]) == ("C1", 2021, None)
    row = await job_row(store)
    assert (
        row["state"],
        row["etag"],
        row["last_modified"],
        row["content_hash"],
        row["next_url"],
    ) == ("done", '"e"', "Mon", "h1", "p2")
    assert (await store.stats()).pages_last_minute == 1


async def answer_papers(store: Store, n: int, *papers: ApiPaper) -> None:
    """Complete one `/papers` batch job (the `n`th: each its own key) with these papers."""
    dois = tuple(p.doi for p in papers)
    key = f"api:papers:{n}"
    await store.enqueue([NewJob(doi=key, url="http://api/papers", batch=dois)])
    job = await claim_one(store, key)
    api = ApiResult("papers", papers={p.doi: p for p in papers})
    await store.complete(Completion(job=job, result=None, api=api))


async def test_api_papers_fill_volume_issue_and_pages(store: Store) -> None:
    """`volume`, `issue`, `pages` only come from the API: its latest value is kept, an
    answer without one keeps what the store has, and a report page never clears them."""
    await answer_papers(
        store, 1, ApiPaper("10.1/a", title="A", volume="12", issue="3", pages="5-9")
    )
    p = await paper(store, "10.1/a")
    assert (p["title"], p["volume"], p["issue"], p["pages"]) == ("A", "12", "3", "5-9")
    await answer_papers(store, 2, ApiPaper("10.1/a", volume="13"))  # issue, pages unknown
    p = await paper(store, "10.1/a")
    assert (p["volume"], p["issue"], p["pages"]) == ("13", "3", "5-9")
    await crawl(store, result())  # the report page of the same paper
    p = await paper(store, "10.1/a")
    assert (p["title"], p["volume"], p["issue"], p["pages"]) == ("Full title", "13", "3", "5-9")


async def test_complete_is_all_or_nothing(store: Store) -> None:
    await store.enqueue([new()])
    job = await claim_one(store)
    bad = result(statements=(stmt("10.9/c1", "fine"), stmt("10.9/c2", "bad", confidence=1.5)))
    with pytest.raises(StoreError):
        await store.complete(Completion(job=job, result=bad, follow_ups=(new(page=2),)))
    for table in ("papers", "authors", "tallies", "tally_history", "facets", "statements"):
        assert await rows(store, table) == [], table
    assert [(r["page"], r["state"]) for r in await rows(store, "jobs")] == [(1, "leased")]


async def test_follow_ups_are_enqueued_with_the_completion(store: Store) -> None:
    await crawl(store, result(next_url="p2"), follow_ups=(new(page=2, depth=1), new("10.9/citer")))
    state = {(r["doi"], r["page"]): (r["state"], r["depth"]) for r in await rows(store, "jobs")}
    assert state == {
        ("10.1/a", 1): ("done", 0),
        ("10.1/a", 2): ("queued", 1),
        ("10.9/citer", 1): ("queued", 0),
    }


async def test_provenance_follows_the_seeds_through_their_citers(store: Store) -> None:
    """Two seeds cite-reached by one paper record both; a citer of a citer is one step
    further; the fewest steps are kept; a job that is no seed records nothing itself."""
    await store.enqueue([new("10.1/a", seed=True), new("10.1/b", seed=True), new("10.1/z")])
    assert await store.provenance() == {"10.1/a": {"10.1/a": 0}, "10.1/b": {"10.1/b": 0}}
    both = stmt("10.9/c", "c cites a")
    for seed in ("10.1/a", "10.1/b"):
        job = await claim_one(store, seed)
        others = (stmt("10.9/self", "x"),) if seed == "10.1/b" else ()
        res = result(seed, (both, *others, stmt(seed, "cites itself")))
        await store.complete(Completion(job=job, result=res))
    await crawl(store, result("10.9/c", (stmt("10.9/d", "d cites c"),)), doi="10.9/c")
    # a shorter way to d: from b directly (kept), then a longer one again (ignored)
    await crawl(store, result("10.1/b", (stmt("10.9/d", "d cites b"),)), doi="10.1/b", page=2)
    await crawl(store, result("10.9/c", (stmt("10.9/d", "d again"),)), doi="10.9/c", page=2)
    assert await store.provenance() == {
        "10.1/a": {"10.1/a": 0},
        "10.1/b": {"10.1/b": 0},
        "10.9/c": {"10.1/a": 1, "10.1/b": 1},
        "10.9/self": {"10.1/b": 1},
        "10.9/d": {"10.1/a": 2, "10.1/b": 1},
    }
    await store.enqueue([new("10.1/a", seed=True)])  # seeded again: nothing changes
    assert (await store.provenance())["10.1/a"] == {"10.1/a": 0}


async def test_later_pages_write_statements_but_not_the_header(store: Store) -> None:
    await crawl(store, result(tally=Tally(1, 1, 1)))
    later = result(
        statements=(stmt("10.9/c9", "page two"),),
        tally=Tally(9, 9, 9),
        title="Other title",
        authors=("Zed",),
    )
    await crawl(store, later, page=2)
    assert (await paper(store, "10.1/a"))["title"] == "Full title"
    assert [a["name"] for a in await rows(store, "authors")] == ["Ada", "Bob"]
    assert (await rows(store, "tallies"))[0]["supporting"] == 1
    assert [s["snippet"] for s in await rows(store, "statements")] == ["page two"]


async def test_statement_seen_again_is_the_same_row(store: Store, clock: Clock) -> None:
    await crawl(store, result(statements=(stmt("10.9/c1", "a claim", section="Intro"),)))
    (before,) = await rows(store, "statements")
    clock.advance(3600)
    await store.enqueue([new(round=1)])
    job = await claim_one(store)
    again = result(
        statements=(
            stmt("10.9/c1", "a claim", section="Discussion", type="contrasting", confidence=0.5),
        )
    )
    await store.complete(Completion(job=job, result=again))
    (after,) = await rows(store, "statements")
    assert after["id"] == before["id"]
    assert after["first_seen_at"] == before["first_seen_at"] == iso(T0)
    assert after["last_seen_at"] == iso(T0 + timedelta(hours=1))
    assert (after["section"], after["type"], after["confidence"]) == (
        "Discussion",
        "contrasting",
        0.5,
    )


async def test_same_snippet_from_two_citers_is_two_rows(store: Store) -> None:
    same = "Widely cited result."
    await crawl(store, result(statements=(stmt("10.9/c1", same), stmt("10.9/c2", same))))
    assert [s["citing_doi"] for s in await rows(store, "statements")] == ["10.9/c1", "10.9/c2"]


async def _refresh(store: Store, clock: Clock, tally: Tally | None, rnd: int) -> None:
    clock.advance(DAY)
    await store.enqueue([new(round=rnd)])
    job = await claim_one(store)
    await store.complete(Completion(job=job, result=None if tally is None else result(tally=tally)))


async def test_tally_history_only_on_change(store: Store, clock: Clock) -> None:
    await crawl(store, result(tally=Tally(1, 2, 3)))
    await _refresh(store, clock, Tally(1, 2, 3), 1)
    await _refresh(store, clock, None, 2)  # 304
    await _refresh(store, clock, Tally(1, 5, 3), 3)
    await _refresh(store, clock, Tally(1, 5, 3, references_count=8), 4)  # unknown -> known
    history = await rows(store, "tally_history")
    assert [(h["mentioning"], h["references_count"]) for h in history] == [
        (2, None),
        (5, None),
        (5, 8),
    ]
    (latest,) = await rows(store, "tallies")
    assert latest["observed_at"] == iso(T0 + timedelta(days=4))


@pytest.mark.parametrize("full_first", [True, False])
async def test_partial_citer_never_overwrites_fuller_data(store: Store, full_first: bool) -> None:
    full = result(
        "10.9/x", title="Full X", year=2001, journal="Real Journal", abstract="Long abstract"
    )
    citing = result(
        "10.1/a",
        statements=(stmt("10.9/x", "cites x", citing_title="x (short)", citing_year=1999),),
    )
    order = [(full, "10.9/x"), (citing, "10.1/a")]
    for res, doi in order if full_first else reversed(order):
        await crawl(store, res, doi=doi)
    x = await paper(store, "10.9/x")
    assert (x["title"], x["year"], x["journal"], x["abstract"]) == (
        "Full X",
        2001,
        "Real Journal",
        "Long abstract",
    )
    assert x["last_crawled_at"] is not None


async def test_partial_citer_fills_unknown_columns(store: Store) -> None:
    await crawl(store, result("10.9/x", title="X", year=None, journal=None), doi="10.9/x")
    citing = result(
        statements=(stmt("10.9/x", "s", citing_title="x?", citing_year=1999, citing_journal="JX"),)
    )
    await crawl(store, citing)
    x = await paper(store, "10.9/x")
    assert (x["title"], x["year"], x["journal"]) == ("X", 1999, "JX")


async def test_not_modified_records_only_the_visit(store: Store, clock: Clock) -> None:
    await crawl(
        store,
        result(statements=(stmt("10.9/c1", "s1"),), next_url="p2"),
        etag='"v1"',
        content_hash="h1",
    )
    snapshot = {
        t: await rows(store, t)
        for t in ("authors", "tallies", "tally_history", "facets", "statements")
    }
    clock.advance(DAY)
    await store.enqueue([new(round=1)])
    job = await claim_one(store)
    assert (job.etag, job.next_url) == ('"v1"', "p2")
    await store.complete(Completion(job=job, result=None, follow_ups=(new(page=2),)))
    for table, before in snapshot.items():
        assert await rows(store, table) == before, table
    p = await paper(store, "10.1/a")
    assert p["last_crawled_at"] == iso(T0 + timedelta(days=1))
    row = await job_row(store)
    assert (row["state"], row["etag"], row["content_hash"], row["next_url"]) == (
        "done",
        '"v1"',
        "h1",
        "p2",
    )
    assert (await job_row(store, page=2))["state"] == "queued"


async def test_adaptive_refresh_interval(store: Store, clock: Clock) -> None:
    await crawl(store, result(tally=Tally(1, 1, 1)))

    async def interval() -> float:
        return float((await paper(store, "10.1/a"))["refresh_interval"]) / DAY

    assert await interval() == 4  # first crawl: refresh_interval
    p = await paper(store, "10.1/a")
    assert p["next_refresh_at"] == iso(T0 + timedelta(days=4))
    steps = [
        (Tally(1, 1, 1), 8),
        (None, 16),
        (None, 16),
        (Tally(2, 1, 1), 8),
        (Tally(3, 1, 1), 4),
        (Tally(4, 1, 1), 2),
        (Tally(5, 1, 1), 1),
        (Tally(6, 1, 1), 1),
    ]
    for rnd, (tally, expected) in enumerate(steps, start=1):
        await _refresh(store, clock, tally, rnd)
        assert await interval() == expected, (rnd, tally)


async def test_enqueue_stale_requeues_due_reports_with_a_new_round(
    store: Store, clock: Clock
) -> None:
    await crawl(store, result(next_url="p2"), follow_ups=(new(page=2),))
    await crawl(store, result(), page=2)
    await crawl(store, result("10.1/b"), doi="10.1/b")
    await store.enqueue([new("10.1/b", round=1)])
    await store.complete(Completion(job=await claim_one(store, "10.1/b"), result=result("10.1/b")))
    assert await store.enqueue_stale(T0 + timedelta(days=3)) == 0
    clock.advance(4 * DAY)
    # 10.1/b's tallies did not change on its second visit: its interval doubled (8 days).
    assert await store.enqueue_stale(T0 + timedelta(days=4)) == 1
    page_one = await job_row(store)
    assert (page_one["state"], page_one["round"]) == ("queued", 1)
    assert (await job_row(store, "10.1/b"))["state"] == "done"
    # The follow-up inherits the round, which brings page 2 back too.
    job = await claim_one(store)
    await store.complete(
        Completion(job=job, result=None, follow_ups=(new(page=2, round=job.round),))
    )
    assert (await job_row(store, page=2))["state"] == "queued"
    assert await store.enqueue_stale(T0 + timedelta(days=4)) == 0  # refreshed: next later


async def test_late_completion_of_an_older_round_does_not_finish_the_refresh(
    store: Store, clock: Clock
) -> None:
    await store.enqueue([new()])
    old = await claim_one(store)
    clock.advance(31)
    await store.requeue_expired()
    await store.enqueue([new(round=1)])  # queued: round bumped
    await store.complete(Completion(job=old, result=result()))
    assert (await job_row(store))["state"] == "queued"
    assert len(await rows(store, "papers")) == 1  # the rows themselves are fine to keep


# ---------------------------------------------------------------- reads and runs


async def test_export_streams_rows_in_key_order(store: Store) -> None:
    await store.enqueue(new(f"10.3/{i:05d}") for i in reversed(range(2500)))
    exported = await rows(store, "jobs")
    assert [r["id"] for r in exported] == list(range(1, 2501))
    assert list(exported[0]) == list(COLUMNS["jobs"])
    await crawl(store, result(authors=tuple(f"A{i}" for i in range(1500))), doi="10.3/02499")
    assert [a["position"] for a in await rows(store, "authors")] == list(range(1, 1501))


async def test_export_rejects_unknown_tables(store: Store) -> None:
    with pytest.raises(StoreError, match="unknown table"):
        await rows(store, "sqlite_master")


async def test_stats_counts_rows_and_recent_pages(store: Store, clock: Clock) -> None:
    await crawl(store, result(statements=(stmt("10.9/c", "s"),)))
    clock.advance(120)
    await crawl(store, result("10.1/b"), doi="10.1/b")
    stats = await store.stats()
    assert (stats.pages_last_minute, stats.pages_last_hour) == (1, 2)
    assert stats.rows_by_table["papers"] == 3 and stats.rows_by_table["statements"] == 1
    assert stats.jobs_by_state == {"queued": 0, "leased": 0, "done": 2, "failed": 0, "dead": 0}


async def test_runs_are_registered_and_go_stale(store: Store, clock: Clock) -> None:
    a = await store.start_run("crawl", "host1", 11)
    b = await store.start_run("worker", "host1", 12)
    clock.advance(50)
    await store.heartbeat_run(b)
    clock.advance(20)
    assert [r.id for r in await store.active_runs(60)] == [b]
    await store.finish_run(b, {"pages": 3})
    assert [r.id for r in await store.active_runs(3600)] == [a]


# ---------------------------------------------------------------- politeness (hosts)

HOST = "http://site:80"


async def test_bookings_are_spaced_by_the_delay(store: Store, clock: Clock) -> None:
    starts = [await store.book_request(HOST, 0.5) for _ in range(3)]
    assert starts == [T0, T0 + timedelta(seconds=0.5), T0 + timedelta(seconds=1)]
    assert await store.book_request("http://other:80", 0.5) == T0  # hosts are separate
    clock.advance(10)
    assert await store.book_request(HOST, 0.5) == T0 + timedelta(seconds=10)  # idle: now
    assert await store.book_request(HOST, 2.0) == T0 + timedelta(seconds=10.5)
    assert await store.book_request(HOST, 0) == T0 + timedelta(seconds=12.5)


async def test_a_pause_holds_bookings_and_only_grows(store: Store, clock: Clock) -> None:
    assert await store.paused_until(HOST) is None
    await store.pause_host(HOST, T0 + timedelta(seconds=30))
    await store.pause_host(HOST, T0 + timedelta(seconds=10))  # shorter: ignored
    assert await store.paused_until(HOST) == T0 + timedelta(seconds=30)
    assert await store.book_request(HOST, 1) == T0 + timedelta(seconds=30)
    assert await store.book_request(HOST, 1) == T0 + timedelta(seconds=31)


async def test_robots_records_round_trip_and_a_newer_one_wins(store: Store) -> None:
    assert await store.load_robots(HOST) is None
    await store.book_request(HOST, 1)  # a host row without robots.txt yet
    assert await store.load_robots(HOST) is None
    good = RobotsRecord(200, "User-agent: *\nDisallow: /x\n", T0, T0 + timedelta(days=1), 0)
    await store.save_robots(HOST, good)
    assert await store.load_robots(HOST) == good
    older = RobotsRecord(None, None, T0 - timedelta(seconds=1), T0 + timedelta(minutes=1), 1)
    await store.save_robots(HOST, older)  # a slower process's older fetch
    assert await store.load_robots(HOST) == good
    newer = RobotsRecord(503, None, T0 + timedelta(hours=1), T0 + timedelta(hours=2), 1)
    await store.save_robots(HOST, newer)
    assert await store.load_robots(HOST) == newer
    assert await store.book_request(HOST, 1) == T0 + timedelta(seconds=1)  # spacing kept


# ---------------------------------------------------------------- kept pages (PageArchive)


def kept(
    doi: str = "10.1/a", page: int = 1, body: bytes = b"<html>x</html>", **kw: Any
) -> KeptPage:
    return KeptPage(doi, page, f"http://site/reports/{doi}?page={page}", T0, body, **kw)


async def test_a_broken_page_is_kept_compressed_and_read_back(store: Store) -> None:
    body = b"<html>" + b"statement " * 2000 + b"</html>"
    await store.enqueue([new("10.1/a"), new("10.1/b")])
    job = await claim_one(store, "10.1/a")
    await store.keep_page(kept("10.1/a", body=body, broken=True, error="no title"))
    await store.fail(job, "broken page: no title", None)
    got = [p async for p in store.kept_pages()]
    assert len(got) == 1
    assert got[0].kept == kept("10.1/a", body=body, broken=True, error="no title")
    assert (got[0].job.id, got[0].state) == (job.id, "dead")
    assert [p async for p in store.kept_pages(dois=["10.1/b"])] == []


async def test_a_page_is_kept_for_its_job_only(store: Store) -> None:
    with pytest.raises(StoreError):  # no job (doi, page): nothing to reparse it for
        await store.keep_page(kept("10.9/none"))


async def test_all_pages_kept_with_their_completion_and_filtered(store: Store) -> None:
    for i, doi in enumerate(("10.1/a", "10.1/b", "10.1/c")):
        await store.enqueue([new(doi)])
        job = await claim_one(store, doi)
        if i == 1:
            await store.keep_page(kept(doi, broken=True, error="e"))
            await store.fail(job, "broken page: e", None)
        else:
            await store.complete(Completion(job=job, result=result(doi), kept=kept(doi)))
    every = [(p.kept.doi, p.kept.broken, p.state) async for p in store.kept_pages()]
    assert every == [("10.1/a", False, "done"), ("10.1/b", True, "dead"), ("10.1/c", False, "done")]
    broken = [p.kept.doi async for p in store.kept_pages(broken_only=True)]
    assert broken == ["10.1/b"]
    some = [p.kept.doi async for p in store.kept_pages(dois=["10.1/c", "10.1/b"])]
    assert some == ["10.1/b", "10.1/c"]


async def test_a_completion_forgets_the_broken_page_of_its_job(store: Store, clock: Clock) -> None:
    await store.enqueue([new("10.1/a")])
    job = await claim_one(store)
    await store.keep_page(kept(broken=True, error="e"))
    await store.fail(job, "broken page: e", None)
    await store.enqueue([new("10.1/a", round=1)])
    job = await claim_one(store)
    await store.complete(Completion(job=job, result=result()))
    assert [p async for p in store.kept_pages()] == []


async def test_a_report_whose_dead_pages_completed_is_whole_again(store: Store) -> None:
    await crawl(store, result())
    await store.enqueue([new("10.1/a", 2)])
    job = await claim_one(store, "10.1/a", 2)
    await store.fail(job, "broken page: e", None)
    await store.enqueue([new("10.1/b")])
    await store.fail(await claim_one(store, "10.1/b"), "not found (404)", None)
    assert (await paper(store, "10.1/a"))["incomplete"] == 1
    assert await store.settle_reparsed(["10.1/a"]) == 0  # page 2 still dead
    await store.complete(Completion(job=job, result=result()))  # reparsed: done
    assert await store.settle_reparsed(["10.1/a", "10.1/b"]) == 1
    assert (await paper(store, "10.1/a"))["incomplete"] == 0


async def test_kept_pages_stream_past_one_chunk(store: Store) -> None:
    dois = [f"10.1/{i:04d}" for i in range(250)]
    await store.enqueue([new(d) for d in dois])
    for d in dois:
        await store.keep_page(kept(d, broken=True, error="e"))
    assert [p.kept.doi async for p in store.kept_pages(broken_only=True)] == dois


# ---------------------------------------------------------------- show and search


async def test_paper_view_gathers_one_paper(store: Store, clock: Clock) -> None:
    statements = (
        stmt("10.2/x", "Results agree with the earlier cohort", type="supporting"),
        stmt("10.2/y", "In contrast, the effect vanished", type="contrasting"),
    )
    await crawl(store, result(statements=statements, tally=Tally(1, 2, 0)))
    clock.advance(DAY)
    await store.enqueue([new("10.1/a", round=1)])
    job = await claim_one(store)
    await store.complete(Completion(job, result(statements=statements, tally=Tally(2, 2, 1))))
    view = await store.paper_view("10.1/a")
    assert view is not None
    assert view.paper["title"] == "Full title" and view.authors == ("Ada", "Bob")
    assert view.tallies is not None and view.tallies["supporting"] == 2
    assert [h["supporting"] for h in view.history] == [1, 2]
    assert view.facets == ({"facet": "section", "label": "Intro", "count": 2},)
    assert [s["citing_doi"] for s in view.statements] == ["10.2/x", "10.2/y"]
    assert view.citing_statements == 0
    assert await store.paper_view("10.9/none") is None


async def test_search_finds_statements_by_words_and_type(store: Store) -> None:
    await crawl(
        store,
        result(
            statements=(
                stmt("10.2/x", "Graft survival improved after transplantation", type="supporting"),
                stmt("10.2/y", "Transplanted grafts failed early", type="contrasting"),
                stmt("10.2/z", "Unrelated remark on methods", type="mentioning"),
            )
        ),
    )
    hits = await store.search("graft")  # porter stemming: grafts, graft
    assert {h.citing_doi for h in hits} == {"10.2/x", "10.2/y"}
    assert all("[" in h.highlighted and "[" in h.excerpt for h in hits)
    only = await store.search("graft", type="contrasting")
    assert [h.citing_doi for h in only] == ["10.2/y"]
    assert [h.citing_doi for h in await store.search('"survival improved"')] == ["10.2/x"]
    assert len(await store.search("graft", limit=1)) == 1
    if isinstance(store, SQLiteStore):  # FTS5 syntax; PostgreSQL's websearch reads any text
        with pytest.raises(StoreError, match="bad search query"):
            await store.search('"unbalanced')


async def test_search_takes_terms_with_punctuation_as_they_are(store: Store) -> None:
    """`COVID-19`, `T-cells`, `it's`, `e.g.` find their statements on every engine, and
    the explicit syntax still works (issue 25, point 14)."""
    await crawl(
        store,
        result(
            statements=(
                stmt("10.2/a", "COVID-19 patients had lower T-cells counts", type="supporting"),
                stmt("10.2/b", "it's known, e.g. from earlier cohorts", type="mentioning"),
                stmt("10.2/c", "influenza patients only; covid not studied", type="contrasting"),
                stmt("10.2/d", "cells of type T were counted in 19 patients"),
            )
        ),
    )

    async def found(query: str) -> set[str]:
        return {h.citing_doi for h in await store.search(query)}

    assert await found("COVID-19") == {"10.2/a"}  # "covid" then "19", next to each other
    assert await found("T-cells") == {"10.2/a"}
    # PostgreSQL's english configuration drops stop words: "it's" is "it" and "s", both
    # stop words, so it matches nothing there (and fails nowhere)
    assert await found("it's") == (set() if isinstance(store, PostgresStore) else {"10.2/b"})
    assert await found("e.g.") == {"10.2/b"}
    assert await found("COVID-19 patients") == {"10.2/a"}
    assert await found("covid OR influenza") == {"10.2/a", "10.2/c"}
    assert await found('"earlier cohorts"') == {"10.2/b"}
    if isinstance(store, SQLiteStore):  # FTS5's own operators (websearch has -word, or)
        assert await found("patients NOT influenza") == {"10.2/a", "10.2/d"}
        assert await found("infl*") == {"10.2/c"}
        assert await found("NEAR(covid studied, 3)") == {"10.2/c"}


async def test_the_citations_view_exports_the_same_on_every_engine(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "EXPORT_CHUNK", 2)  # keyset pages of 2: the _after query too
    await crawl(
        store,
        result(
            statements=(
                stmt("10.2/x", "one", type="supporting"),
                stmt("10.2/x", "two", type="contrasting"),
                stmt("10.2/y", "three", type="mentioning"),
                stmt("10.2/z", "four", type=None),
            )
        ),
    )
    rows = [r async for r in store.export("citations")]
    assert [tuple(r) for r in rows] == [COLUMNS["citations"]] * 3
    assert [tuple(r.values()) for r in rows] == [
        ("10.2/x", "10.1/a", 2, 1, 0, 1),
        ("10.2/y", "10.1/a", 1, 0, 1, 0),
        ("10.2/z", "10.1/a", 1, 0, 0, 0),
    ]


async def test_a_statement_seen_again_is_one_search_match(store: Store) -> None:
    await crawl(store, result(statements=(stmt("10.2/x", "unique wombat phrase"),)))
    assert len(await store.search("wombat")) == 1
    await store.enqueue([new("10.1/a", round=1)])
    job = await claim_one(store)
    await store.complete(
        Completion(job, result(statements=(stmt("10.2/x", "unique wombat phrase"),)))
    )
    assert len(await store.search("wombat")) == 1  # seen again: still one row, one match


# ---------------------------------------------------------------- retention and transfer


async def test_purge_done_drops_old_later_pages_only(store: Store, clock: Clock) -> None:
    await crawl(store, result(next_url="p2"), follow_ups=(new(page=2),))
    await store.complete(Completion(job=await claim_one(store, page=2), result=result()))
    await store.enqueue([new("10.1/b", page=2)])  # queued: never purged
    clock.advance(DAY)
    assert await store.purge_done(T0 - timedelta(seconds=1)) == 0  # nothing that old
    assert await store.purge_done(T0 + timedelta(seconds=1), chunk=1) == 1
    left = {(r["doi"], r["page"], r["state"]) for r in await rows(store, "jobs")}
    assert left == {("10.1/a", 1, "done"), ("10.1/b", 2, "queued")}
    assert await store.enqueue([new()]) == 0  # page 1 still recognises the report
    assert len(await rows(store, "papers")) == 1


async def test_import_keeps_ids_and_resumes_from_the_last_key(store: Store) -> None:
    assert await store.last_key("jobs") is None
    await store.enqueue(new(f"10.4/{i}") for i in range(5))
    exported = await rows(store, "jobs")
    assert await store.last_key("jobs") == (5,)
    assert [r["id"] for r in [row async for row in store.export("jobs", after=(3,))]] == [4, 5]
    copy = {**exported[0], "id": 10, "doi": "10.4/copied"}
    assert await store.import_rows("jobs", [copy, exported[1]]) == 2  # a known key: kept
    assert await store.last_key("jobs") == (10,)
    assert (await job_row(store, "10.4/copied")) == copy
    await store.enqueue([new("10.4/next")])
    assert (await job_row(store, "10.4/next"))["id"] > 10  # new ids after the copied ones


# ---------------------------------------------------------------- retry


async def test_requeue_dead_rebuilds_addresses_resets_attempts_and_filters(
    store: Store, clock: Clock
) -> None:
    await store.enqueue([new("10.1/a"), new("10.1/b"), new("10.1/c"), new("10.1/d")])
    for doi, reason in [
        ("10.1/a", "gave up after 5 attempts: connection error"),
        ("10.1/b", "not found (404)"),
        ("10.1/c", "gave up after 5 attempts: Connection Error"),
    ]:
        await store.fail(await claim_one(store, doi), reason, None)
    seen: list[DeadJob] = []

    def address(job: DeadJob) -> str | None:
        seen.append(job)
        return None if job.doi == "10.1/c" else f"http://new/reports/{job.doi}"

    clock.advance(60)
    done = await store.requeue_dead(address, reason="CONNECTION error")
    assert done == Requeued(jobs=1, reports=1, kept=1)
    assert {(j.doi, j.page, j.reason) for j in seen} == {
        ("10.1/a", 1, "gave up after 5 attempts: connection error"),
        ("10.1/c", 1, "gave up after 5 attempts: Connection Error"),
    }
    row = await job_row(store, "10.1/a")
    assert (row["state"], row["url"], row["attempts"], row["last_error"]) == (
        "queued",
        "http://new/reports/10.1/a",
        0,
        None,
    )
    assert row["not_before"] == iso(clock.now)  # due at once
    assert (await job_row(store, "10.1/c"))["state"] == "dead"  # no address: kept dead
    assert (await job_row(store, "10.1/b"))["state"] == "dead"  # another reason
    assert (await job_row(store, "10.1/d"))["state"] == "queued"  # never dead: untouched

    assert await store.requeue_dead(address, dois=["10.1/b", "10.1/x"]) == Requeued(1, 1, 0)
    assert (await job_row(store, "10.1/b"))["url"] == "http://new/reports/10.1/b"
    claimed = await store.claim("w1", 10, 30)
    assert {j.doi for j in claimed} == {"10.1/a", "10.1/b", "10.1/d"}
    assert all(j.attempts == 1 for j in claimed)  # attempts were reset


async def test_requeue_dead_of_everything_and_of_nothing(store: Store) -> None:
    await store.enqueue([new("10.1/a"), new("10.1/a", page=2)])
    assert await store.requeue_dead(lambda j: j.url) == Requeued(0, 0, 0)
    for page in (1, 2):
        await store.fail(await claim_one(store, "10.1/a", page), f"http 50{page}", None)
    assert await store.requeue_dead(lambda j: j.url) == Requeued(jobs=2, reports=1, kept=0)
    assert (await store.stats()).jobs_by_state["queued"] == 2


# ---------------------------------------------------------------- what changed (issue 22)


async def refresh(store: Store, res: ParseResult, doi: str, round: int) -> None:
    """Crawl page 1 of `doi` again in a new round (a refresh)."""
    await store.enqueue([new(doi, round=round)])
    await store.complete(Completion(job=await claim_one(store, doi), result=res))


async def test_changes_in_a_window(store: Store, clock: Clock) -> None:
    s1 = stmt("10.9/x", "first finding", type="supporting")
    await crawl(store, result("10.1/a", (s1,), Tally(1, 2, 0)), "10.1/a")
    await crawl(store, result("10.1/b", (stmt("10.9/y", "b's"),), Tally(0, 1, 0)), "10.1/b")
    clock.advance(10)
    since = clock.now
    clock.advance(1)
    s2 = stmt(
        "10.9/z", "a contrasting one", type="contrasting", section="Discussion", confidence=0.91
    )
    await refresh(store, result("10.1/a", (s1, s2), Tally(1, 3, 1)), "10.1/a", 1)
    await refresh(store, result("10.1/b", (stmt("10.9/y", "b's"),), Tally(0, 1, 0)), "10.1/b", 1)
    sc = stmt("10.9/x", "c's news", type="mentioning")
    await crawl(store, result("10.1/c", (sc,), Tally(2, 0, 0), title="Paper C"), "10.1/c")
    clock.advance(1)
    until = clock.now
    clock.advance(5)
    s3 = stmt("10.9/w", "too late")
    await refresh(store, result("10.1/a", (s1, s2, s3), Tally(1, 4, 1)), "10.1/a", 2)

    got = await store.changes_in(since, until)
    assert [
        (s.cited_doi, s.citing_doi, s.type, s.section, s.confidence, s.snippet)
        for s in got.statements
    ] == [
        ("10.1/a", "10.9/z", "contrasting", "Discussion", 0.91, "a contrasting one"),
        ("10.1/c", "10.9/x", "mentioning", None, None, "c's news"),
    ]
    assert got.statements[0].citing_title is None  # a citer the store knows no title of
    assert [(t.doi, t.before, t.after) for t in got.tallies] == [
        ("10.1/a", (1, 2, 0), (1, 3, 1)),  # b's tallies did not move: no row in the window
        ("10.1/c", None, (2, 0, 0)),  # new to the store
    ]
    assert got.notices == ()
    assert got.titles == {"10.1/a": "Full title", "10.1/c": "Paper C"}
    only_c = await store.changes_in(since, until, dois=["10.1/c"])
    assert [s.cited_doi for s in only_c.statements] == ["10.1/c"]
    assert [t.doi for t in only_c.tallies] == ["10.1/c"]
    assert (await store.changes_in(until + timedelta(seconds=1), clock.now)).tallies[0].before == (
        1,
        3,
        1,
    )


async def test_run_records_and_the_last_run_that_fetched(store: Store, clock: Clock) -> None:
    crawl_id = await store.start_run("crawl", "h", 1)
    clock.advance(2)
    await store.finish_run(crawl_id, {"pages": 3})
    idle = await store.start_run("worker", "h", 2)
    await store.finish_run(idle, {"pages": 0})  # fetched nothing: not a window
    running = await store.start_run("backfill", "h", 3)
    kinds = ("backfill", "crawl", "worker")
    last = await store.last_fetching_run(kinds)
    assert last is not None
    assert (last.id, last.kind, last.started_at, last.finished_at, last.pages) == (
        crawl_id,
        "crawl",
        T0,
        T0 + timedelta(seconds=2),
        3,
    )
    assert await store.last_fetching_run(("schedule",)) is None
    unfinished = await store.run_record(running)
    assert unfinished is not None and unfinished.finished_at is None and unfinished.pages == 0
    assert await store.run_record(running + 100) is None


async def test_each_runs_digest_is_taken_at_most_once(store: Store, clock: Clock) -> None:
    one = await store.start_run("crawl", "h", 1)
    two = await store.start_run("crawl", "h", 1)
    assert await store.claim_digests([one]) == [one]
    assert await store.claim_digests([one]) == []  # being sent: not again
    await store.settle_digests([one], "failed", attempts=4, error="HTTP 500")
    assert await store.failed_digests() == [one]
    record = await store.digest_record(one)
    assert record is not None
    assert (record.state, record.attempts, record.last_error, record.sent_at) == (
        "failed",
        4,
        "HTTP 500",
        None,
    )
    assert await store.claim_digests([one, two]) == [one, two]  # a failed one is taken again
    clock.advance(1)
    await store.settle_digests([one, two], "sent", attempts=1)
    assert await store.claim_digests([one, two]) == []
    assert await store.failed_digests() == []
    sent = await store.digest_record(one)
    assert sent is not None
    assert (sent.state, sent.attempts, sent.last_error, sent.sent_at) == (
        "sent",
        5,
        None,
        T0 + timedelta(seconds=1),
    )
    assert await store.digest_record(two + 100) is None
    with pytest.raises(StoreError):
        await store.settle_digests([one], "sending")


# ---------------------------------------------------------------- the API (batch jobs)


async def api_batch(
    store: Store, endpoint: str, dois: tuple[str, ...], api: ApiResult, round: int = 0
) -> Job:
    """Enqueue, claim and complete one batch job with the API's answer."""
    key = f"api:{endpoint}:{'-'.join(dois)}"
    await store.enqueue([NewJob(key, f"http://api/{endpoint}", round=round, batch=dois)])
    job = await claim_one(store, key)
    assert job.batch == dois
    await store.complete(Completion(job=job, result=None, api=api))
    return job


async def test_an_api_completion_writes_its_rows(store: Store, clock: Clock) -> None:
    retraction = Notice("Retracted", "2020-01-02", "10.1/a.notice1", "http://n/1")
    papers = ApiResult(
        "papers",
        papers={
            "10.1/a": ApiPaper(
                "10.1/a",
                "API title",
                2019,
                "J. API",
                "An abstract.",
                ("Ada", "Bob"),
                True,
                (retraction, Notice("Has erratum")),
            )
        },
        missing=("10.1/gone",),
        record_missing=True,
        missing_url="http://api/papers/",
    )
    await api_batch(store, "papers", ("10.1/a", "10.1/gone"), papers)
    tallies = ApiResult(
        "tallies",
        tallies={"10.1/a": Tally(3, 40, 2, citing_publications=30, citation_statements=49)},
        schedule=True,
    )
    await api_batch(store, "tallies", ("10.1/a",), tallies)
    sections = ApiResult("sections", sections={"10.1/a": (Facet("section", "methods", 7),)})
    await api_batch(store, "sections", ("10.1/a",), sections)
    p = await paper(store, "10.1/a")
    assert (p["title"], p["year"], p["journal"], p["abstract"], p["retracted"]) == (
        "API title",
        2019,
        "J. API",
        "An abstract.",
        1,
    )
    assert p["last_crawled_at"] is None  # no report page was read
    assert p["next_refresh_at"] == iso(T0 + timedelta(days=4))  # the API's tallies set it
    assert [(a["position"], a["name"]) for a in await rows(store, "authors")] == [
        (1, "Ada"),
        (2, "Bob"),
    ]
    (t,) = await rows(store, "tallies")
    assert (t["supporting"], t["mentioning"], t["contrasting"], t["citing_publications"]) == (
        3,
        40,
        2,
        30,
    )
    assert (t["citation_statements"], t["api_statements"], t["source"]) == (49, 49, "api")
    assert [(f["facet"], f["label"], f["count"]) for f in await rows(store, "facets")] == [
        ("section", "methods", 7)
    ]
    notices = [
        (n["status"], n["date"], n["notice_doi"], n["url"]) for n in await rows(store, "notices")
    ]
    assert sorted(notices) == [
        ("Has erratum", "", "", None),
        ("Retracted", "2020-01-02", "10.1/a.notice1", "http://n/1"),
    ]
    gone = await job_row(store, "10.1/gone")
    assert (gone["state"], gone["last_error"]) == ("dead", "not found (404)")
    # seen again a day later, in another batch: no notice twice, history only on change
    clock.advance(DAY)
    await api_batch(store, "papers", ("10.1/a",), dataclasses_replace(papers, missing=()))
    await api_batch(store, "tallies", ("10.1/a", "10.1/z"), tallies)
    assert len(await rows(store, "notices")) == 2
    assert len(await rows(store, "tally_history")) == 1
    assert (await paper(store, "10.1/a"))["refresh_interval"] == 8 * DAY  # unchanged: doubled


async def test_enqueue_due_batches_queues_due_papers_one_round_up(
    store: Store, clock: Clock
) -> None:
    tallies = ApiResult(
        "tallies", tallies={d: Tally(1, 1, 1) for d in ("10.1/a", "10.1/b")}, schedule=True
    )
    await api_batch(store, "tallies", ("10.1/a", "10.1/b"), tallies, round=2)
    await crawl(store, result("10.1/c"), doi="10.1/c")  # a report's visit schedules it too
    await api_batch(store, "tallies", ("10.1/n",), ApiResult("tallies", missing=("10.1/n",)))
    asked: list[tuple[list[str], int]] = []

    def batches(dois: Sequence[str], round: int) -> list[NewJob]:
        asked.append((list(dois), round))
        return [NewJob("api:tallies:a-b", "http://api/tallies", round=round, batch=tuple(dois))]

    assert await store.enqueue_due_batches(T0 + timedelta(days=3), batches) == 0
    assert asked == []
    clock.advance(4 * DAY)
    assert await store.enqueue_due_batches(clock.now, batches) == 1
    assert asked == [(["10.1/a", "10.1/b", "10.1/c"], 3)]  # due, in DOI order; round 2 + 1
    job = await job_row(store, "api:tallies:a-b")
    assert (job["state"], job["round"]) == ("queued", 3)  # the done batch runs again


async def test_fewer_statements_than_the_api_counts_marks_a_read_report(store: Store) -> None:
    two = (stmt("10.9/x", "one"), stmt("10.9/y", "two"))
    tallies = ApiResult("tallies", tallies={"10.1/a": Tally(1, 1, 0, citation_statements=2)})
    await api_batch(store, "tallies", ("10.1/a",), tallies)
    assert (await paper(store, "10.1/a"))["incomplete"] == 0  # no report read: not judged
    await crawl(store, result(statements=two, tally=Tally(1, 1, 0, citation_statements=2)))
    assert (await paper(store, "10.1/a"))["incomplete"] == 0  # 2 of 2
    more = ApiResult("tallies", tallies={"10.1/a": Tally(1, 4, 0, citation_statements=5)})
    await api_batch(store, "tallies", ("10.1/a", "10.1/b"), more)
    p = await paper(store, "10.1/a")
    assert (p["incomplete"], p["incomplete_reason"]) == (
        1,
        "fewer statements than the API counts: 2 of 5",
    )
    # page 1 read again with a next page waiting: the count is not judged until its end
    await store.enqueue([new(round=1)])
    job = await claim_one(store)
    await store.complete(
        Completion(
            job=job,
            result=result(statements=two, next_url="p2"),
            follow_ups=(new(page=2, round=1),),
        )
    )
    await api_batch(store, "tallies", ("10.1/a", "10.1/c"), more)
    assert (await paper(store, "10.1/a"))["incomplete"] == 0
    three = (stmt("10.9/z", "three"), stmt("10.9/w", "four"), stmt("10.9/v", "five"))
    await crawl(store, result(statements=three), page=2)
    assert (await paper(store, "10.1/a"))["incomplete"] == 0  # 5 of 5 at the report's end
    view = await store.paper_view("10.1/a")
    assert view is not None and view.collected_statements == 5
    assert view.tallies is not None and view.tallies["api_statements"] == 5
    counts = (await store.stats()).api_counts
    assert counts is not None and (counts.papers, counts.counted, counts.collected) == (1, 5, 5)


# ---------------------------------------------------------------- filtered exports (SQL)

INJECTIONS = ("x'; DROP TABLE statements; --", "' OR '1'='1", 'a" OR 1=1 --', "%_*\\")


async def seed_for_filters(store: Store, clock: Clock) -> None:
    """Reports crawled at different times, with statements of every kind, NULLs, text
    that sorts differently by code point and by locale, and injection strings."""
    snippets = ("zebra", "Zebra", "Ünïcode é", "apple", "émigré", *INJECTIONS)
    types: tuple[Any, ...] = ("supporting", "mentioning", "contrasting", None)
    for n in range(4):
        statements = tuple(
            stmt(
                f"10.2/{(n * 3 + i) % 7}",
                f"{snippets[(n + i) % len(snippets)]} {i}" if i else snippets[n],
                type=types[(n + i) % len(types)],
                confidence=None if i == 2 else round(0.1 + 0.2 * ((n + i) % 5), 2),
                section=None if i == 1 else f"S{i}",
            )
            for i in range(5)
        )
        await crawl(store, result(f"10.1/{n}", statements, year=2000 + n * 5), f"10.1/{n}")
        clock.advance(3600)
    literal = tuple(stmt("10.2/9", text, type="contrasting") for text in INJECTIONS)
    await crawl(store, result("10.1/x", literal), "10.1/x")
    await store.enqueue([new("10.1/late")])


async def export_dicts(store: Store, table: str, keep: Any = None) -> list[dict[str, Any]]:
    where = None if keep is None else keep.store_filter()
    return [
        dict(zip(COLUMNS[table], row, strict=True))
        async for page in store.export_pages(table, where)
        for row in page
    ]


async def test_export_pages_are_the_export_of_every_table(
    store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "EXPORT_PAGE", 3)  # keyset pages of 3: the later query too
    await seed_for_filters(store, clock)
    for table in EXPORT_TABLES:
        assert await export_dicts(store, table) == await rows(store, table), table


async def test_where_and_since_run_in_sql_as_the_reference_filter_does(
    store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every operator on every column (a value from the data), and --since, give the rows
    that the filter's own meaning (`RowFilter.__call__` on the exported rows) keeps."""
    monkeypatch.setattr(sql, "EXPORT_PAGE", 3)
    await seed_for_filters(store, clock)
    checked = 0
    for table in ("statements", "papers", "tallies", "jobs", "citations", "authors"):
        everything = await rows(store, table)
        for column in COLUMNS[table]:
            values = sorted({str(r[column]) for r in everything if r[column] is not None})
            for value in values[len(values) // 2 : len(values) // 2 + 1]:
                for op in OPS:
                    keep = RowFilter.build(table, [f"{column}{op}{value}"], now=clock.now)
                    want = [r for r in everything if keep(r)]
                    assert await export_dicts(store, table, keep) == want, (column, op, value)
                    checked += 1
        if table in SINCE_COLUMNS:
            for since in ("2h", "150m", "1d", "2024-05-01T13:00:00Z"):
                keep = RowFilter.build(table, ["id>0"] if "id" in COLUMNS[table] else [],
                                       since, now=clock.now)  # fmt: skip
                assert await export_dicts(store, table, keep) == [
                    r for r in everything if keep(r)
                ], (table, since)
    assert checked > 150
    type_only = RowFilter.build("statements", ["type=contrasting"], now=clock.now)
    found = await export_dicts(store, "statements", type_only)
    assert found and {r["type"] for r in found} == {"contrasting"}


async def test_filter_text_never_reaches_sql_as_sql(store: Store, clock: Clock) -> None:
    await seed_for_filters(store, clock)
    before = await rows(store, "statements")
    for text in INJECTIONS:  # as values: matched literally
        keep = RowFilter.build("statements", [f"snippet={text}"], now=clock.now)
        found = await export_dicts(store, "statements", keep)
        assert [r["snippet"] for r in found] == [text]
    for column in ("type; DROP TABLE statements", "1=1 OR type", "type) OR (1=1", "Type"):
        with pytest.raises(ConfigError):  # as column names: refused before any SQL
            RowFilter.build("statements", [f"{column}=x"], now=clock.now)
        with pytest.raises(StoreError, match="no column"):  # and by the store itself
            await export_dicts_raw(store, ExportFilter((Comparison(column, "=", "x"),)))
    with pytest.raises(StoreError, match="unknown operator"):
        await export_dicts_raw(store, ExportFilter((Comparison("type", "= 'x' OR 1=1 --", "x"),)))
    assert await rows(store, "statements") == before


async def export_dicts_raw(store: Store, where: ExportFilter) -> list[tuple[Any, ...]]:
    return [row async for page in store.export_pages("statements", where) for row in page]
