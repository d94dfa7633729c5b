"""The worker against the in-memory store, with fakes at the fetcher and source seams."""

from __future__ import annotations

import asyncio
import io
import json
from collections import Counter
from dataclasses import dataclass, field

import pytest
import structlog

from pipeline.crawl.retry import RetryPolicy
from pipeline.crawl.worker import Worker, WorkerOptions, crash_site
from pipeline.errors import (
    ParseError,
    PermanentFetchError,
    StoreDataError,
    StoreError,
    TransientFetchError,
)
from pipeline.logs import configure_logging
from pipeline.models import (
    Completion,
    NewJob,
    Page,
    Paper,
    ParseResult,
    Statement,
    Tally,
    Validators,
)
from pipeline.sources.report import ReportSource
from pipeline.store.memory import MemoryStore

BASE = "http://site.test"


def result_for(url: str, next_url: str | None = None, citers: tuple[str, ...] = ()) -> ParseResult:
    doi = url.split("/reports/", 1)[1].split("?")[0]
    return ParseResult(
        paper=Paper(doi=doi, title=f"Title of {doi}"),
        tallies=Tally(mentioning=1),
        statements=tuple(Statement(citing_doi=c, snippet=f"cites {doi}") for c in citers),
        next_page_url=next_url,
    )


@dataclass
class FakeFetcher:
    """Scripted outcomes per URL: a list of exceptions to raise before succeeding."""

    failures: dict[str, list[Exception]] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    validators: dict[str, Validators | None] = field(default_factory=dict)

    async def fetch(self, url: str, validators: Validators | None = None) -> Page:
        self.calls[url] += 1
        self.validators[url] = validators
        await asyncio.sleep(0)
        queue = self.failures.get(url)
        if queue:
            raise queue.pop(0)
        return Page(url=url, final_url=url, status=200, body=url.encode(), etag='"e"')

    def cancel_waiting(self) -> int:
        return 0

    async def close(self) -> None:
        return None


@dataclass
class FakeSource:
    name: str = "fake"
    pages: dict[str, ParseResult] = field(default_factory=dict)
    broken: set[str] = field(default_factory=set)

    addresses: ReportSource = field(default_factory=lambda: ReportSource(base_url=BASE))

    def address(self, doi: str) -> str:
        return self.addresses.address(doi)

    def in_scope(self, url: str) -> bool:
        return self.addresses.in_scope(url)

    def relocate(self, url: str) -> str | None:
        return self.addresses.relocate(url)

    def parse(self, page: Page) -> ParseResult:
        if page.url in self.broken:
            raise ParseError("missing doi", missing=("doi",))
        return self.pages.get(page.url) or result_for(page.url)


def make_worker(
    store: MemoryStore, fetcher: FakeFetcher, source: FakeSource, **opts: object
) -> Worker:
    policy = RetryPolicy(max_attempts=3, base=0.01, cap=0.02, quick_retries=0)
    options = WorkerOptions(concurrency=4, base_url=BASE, lease_seconds=5, **opts)  # type: ignore[arg-type]
    return Worker(store, fetcher, source, policy, options)


async def states(store: MemoryStore) -> dict[str, int]:
    return {k: v for k, v in (await store.stats()).jobs_by_state.items() if v}


async def test_burst_drains_follows_next_pages_and_records_failures() -> None:
    store = MemoryStore()
    await store.open()
    a1, a2 = f"{BASE}/reports/10.1/a", f"{BASE}/reports/10.1/a?page=2"
    b, c, d = (f"{BASE}/reports/10.1/{x}" for x in "bcd")
    fetcher = FakeFetcher(
        failures={
            b: [TransientFetchError("503", reason="http 503")],  # retried, then fine
            c: [PermanentFetchError("404", reason="not found (404)")],
        }
    )
    source = FakeSource(pages={a1: result_for(a1, next_url=a2)}, broken={d})
    await store.enqueue([NewJob(doi=f"10.1/{x}", url=f"{BASE}/reports/10.1/{x}") for x in "abcd"])
    worker = make_worker(store, fetcher, source)
    counters = await asyncio.wait_for(worker.run(), 10)
    assert await states(store) == {"done": 3, "dead": 2}
    assert fetcher.calls[a2] == 1 and fetcher.calls[b] == 2 and fetcher.calls[c] == 1
    assert counters.pages_done == 3 and counters.retries == 1
    assert set(counters.dead) == {"not found (404)", "broken page: missing doi"}
    reasons = {r.reason for r in (await store.stats()).dead_by_reason}
    assert reasons == {"not found (404)", "broken page: missing doi"}


async def test_gives_up_after_max_attempts() -> None:
    store = MemoryStore()
    await store.open()
    url = f"{BASE}/reports/10.1/x"
    fetcher = FakeFetcher(
        failures={url: [TransientFetchError("reset", reason="connection error") for _ in range(10)]}
    )
    await store.enqueue([NewJob(doi="10.1/x", url=url)])
    counters = await asyncio.wait_for(make_worker(store, fetcher, FakeSource()).run(), 10)
    assert fetcher.calls[url] == 3
    assert counters.dead == Counter({"gave up after 3 attempts: connection error": 1})


async def test_depth_enqueues_citing_papers_once() -> None:
    store = MemoryStore()
    await store.open()
    url = f"{BASE}/reports/10.1/root"
    source = FakeSource(pages={url: result_for(url, citers=("10.2/x", "10.2/y", "10.2/x"))})
    fetcher = FakeFetcher()
    await store.enqueue([NewJob(doi="10.1/root", url=url, depth=1)])
    await asyncio.wait_for(make_worker(store, fetcher, source).run(), 10)
    assert set(fetcher.calls) == {url, f"{BASE}/reports/10.2/x", f"{BASE}/reports/10.2/y"}
    assert all(n == 1 for n in fetcher.calls.values())


async def test_citing_dois_and_links_that_would_leave_reports_are_never_requested() -> None:
    """A hostile page lists a citing DOI with `..` segments and a next link off
    `/reports/`: the Source gives no address for either, so nothing is fetched there."""
    store = MemoryStore()
    await store.open()
    url = f"{BASE}/reports/10.1/root"
    evil = ("10.2/../../admin", "10.2/%2e%2e/%2e%2e/private", "10.2/ok")
    source = FakeSource(
        pages={url: result_for(url, next_url=f"{BASE}/reports/%2E%2E/login", citers=evil)}
    )
    fetcher = FakeFetcher()
    await store.enqueue([NewJob(doi="10.1/root", url=url, depth=1)])
    await asyncio.wait_for(make_worker(store, fetcher, source).run(), 10)
    assert set(fetcher.calls) == {url, f"{BASE}/reports/10.2/ok"}


async def test_unchanged_content_writes_nothing_but_the_visit() -> None:
    store = MemoryStore()
    await store.open()
    url = f"{BASE}/reports/10.1/a"
    fetcher = FakeFetcher()
    parsed: list[str] = []

    class CountingSource(FakeSource):
        def parse(self, page: Page) -> ParseResult:
            parsed.append(page.url)
            return super().parse(page)

    source = CountingSource()
    await store.enqueue([NewJob(doi="10.1/a", url=url)])
    await make_worker(store, fetcher, source).run()
    await store.enqueue([NewJob(doi="10.1/a", url=url, round=1)])  # refresh
    await make_worker(store, fetcher, source).run()
    assert fetcher.calls[url] == 2
    assert fetcher.validators[url] == Validators(etag='"e"', last_modified=None)
    assert parsed == [url]  # the second body hashed the same: not parsed again


async def test_stop_releases_unfinished_jobs() -> None:
    store = MemoryStore()
    await store.open()
    gate, fetching = asyncio.Event(), asyncio.Event()

    class SlowFetcher(FakeFetcher):
        async def fetch(self, url: str, validators: Validators | None = None) -> Page:
            fetching.set()
            await gate.wait()
            return await super().fetch(url, validators)

    await store.enqueue(
        [NewJob(doi=f"10.1/{i}", url=f"{BASE}/reports/10.1/{i}") for i in range(10)]
    )
    worker = make_worker(store, SlowFetcher(), FakeSource(), grace=0.2)
    task = asyncio.create_task(worker.run())
    await asyncio.wait_for(fetching.wait(), 5)  # jobs claimed, fetches in flight
    worker.stop()
    await asyncio.wait_for(task, 5)
    assert await states(store) == {"queued": 10}


class FlakyStore(MemoryStore):
    """A store whose `complete` fails with a StoreError (database locked) a few times."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        super().__init__()
        self.failures = failures
        self.error = error or StoreError("complete: database is locked")

    async def complete(self, completion: Completion) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise self.error
        await super().complete(completion)


async def test_a_store_error_during_complete_retries_the_job_and_never_kills_it() -> None:
    store = FlakyStore(failures=5)  # more failures than max_attempts (3)
    await store.open()
    url = f"{BASE}/reports/10.1/s"
    await store.enqueue([NewJob(doi="10.1/s", url=url)])
    fetcher = FakeFetcher()
    counters = await asyncio.wait_for(make_worker(store, fetcher, FakeSource()).run(), 20)
    assert await states(store) == {"done": 1}
    assert counters.dead.total() == 0 and counters.retries == 5
    assert fetcher.calls[url] == 6


async def test_a_bug_kills_the_job_with_its_type_and_message_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class BuggySource(FakeSource):
        def parse(self, page: Page) -> ParseResult:
            raise ZeroDivisionError("division by zero")

    store = MemoryStore()
    await store.open()
    url = f"{BASE}/reports/10.1/bug"
    await store.enqueue([NewJob(doi="10.1/bug", url=url)])
    counters = await asyncio.wait_for(make_worker(store, FakeFetcher(), BuggySource()).run(), 10)
    reason = "internal error: ZeroDivisionError: division by zero"
    assert counters.dead == Counter({reason: 1})
    assert [(d.reason, d.count) for d in (await store.stats()).dead_by_reason] == [(reason, 1)]
    assert capsys.readouterr().out.count("Traceback (most recent call last)") == 1


async def test_a_bug_on_every_page_logs_its_traceback_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class BuggySource(FakeSource):
        def parse(self, page: Page) -> ParseResult:
            raise KeyError(page.url)  # one place, a different message each page

    store = MemoryStore()
    await store.open()
    await store.enqueue(
        [NewJob(doi=f"10.1/b{i}", url=f"{BASE}/reports/10.1/b{i}") for i in range(4)]
    )
    counters = await asyncio.wait_for(make_worker(store, FakeFetcher(), BuggySource()).run(), 10)
    assert counters.dead.total() == 4 and len(counters.dead) == 4  # each job, its own message
    out = capsys.readouterr().out
    assert out.count("job crashed") == 4
    assert out.count("Traceback (most recent call last)") == 1
    assert out.count("as logged before, at KeyError at ") == 3


def test_two_bugs_failing_in_one_shared_line_are_two_crash_sites() -> None:
    def shared(text: str) -> object:
        return json.loads(text)

    def first() -> object:
        return shared("")

    def second() -> object:
        return shared("<html>")

    sites = []
    for bug in (first, second, first):
        try:
            bug()
        except ValueError as exc:
            sites.append(crash_site(exc))
    assert sites[0] == sites[2] != sites[1]  # same path, same site; another path, another
    assert all(s.startswith("JSONDecodeError at ") for s in sites)


async def test_a_row_the_store_refuses_is_a_bug_not_a_retry() -> None:
    store = FlakyStore(failures=1, error=StoreDataError("CHECK constraint failed"))
    await store.open()
    await store.enqueue([NewJob(doi="10.1/c", url=f"{BASE}/reports/10.1/c")])
    counters = await asyncio.wait_for(make_worker(store, FakeFetcher(), FakeSource()).run(), 10)
    assert counters.dead == Counter({"internal error: StoreDataError: CHECK constraint failed": 1})


async def test_a_cut_pagination_is_done_and_counted_incomplete() -> None:
    store = MemoryStore()
    await store.open()
    p1, p2 = f"{BASE}/reports/10.1/z", f"{BASE}/reports/10.1/z?page=2"
    source = FakeSource(pages={p1: result_for(p1, next_url=p2), p2: result_for(p2, next_url=p1)})
    fetcher = FakeFetcher()
    await store.enqueue([NewJob(doi="10.1/z", url=p1)])
    counters = await asyncio.wait_for(make_worker(store, fetcher, source).run(), 10)
    assert fetcher.calls == Counter({p1: 1, p2: 1})
    assert counters.reports_done == 1 and counters.incomplete == Counter({"pagination cycle": 1})
    rows = [r async for r in store.export("papers") if r["doi"] == "10.1/z"]
    assert rows[0]["incomplete"] == 1
    assert rows[0]["incomplete_reason"] == f"pagination cycle: page 2 links back to {p1}"


async def test_crash_and_store_error_lines_name_their_job(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`job crashed` and `store error; ...` carry job_id, doi and url (issue 20, point 5)."""
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    try:

        class BuggySource(FakeSource):
            def parse(self, page: Page) -> ParseResult:
                if page.url.endswith("bug"):
                    raise KeyError(page.url)
                return super().parse(page)

        store = FlakyStore(failures=1)
        await store.open()
        jobs = [NewJob(doi=f"10.1/{n}", url=f"{BASE}/reports/10.1/{n}") for n in ("ok", "bug")]
        await store.enqueue(jobs)
        worker = make_worker(store, FakeFetcher(), BuggySource())
        await asyncio.wait_for(worker.run(), 20)
    finally:
        structlog.reset_defaults()
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    wanted = {"job crashed", "store error; the job will be tried again"}
    said = [r for r in records if r["event"] in wanted]
    assert {r["event"] for r in said} == wanted
    for r in said:
        assert r["job_id"] and r["doi"].startswith("10.1/") and r["url"].startswith(BASE)
