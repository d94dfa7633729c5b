"""A pathological page ends as a broken page over its parse budget; the others parse.

The real parser in real worker processes, under a small budget so that the test is quick;
the outcome is asserted (a reason), never a time (issue 20, point 2).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.crawl.parsing import ParseBudget, ProcessBudgetParser
from pipeline.crawl.retry import RetryPolicy
from pipeline.crawl.worker import Worker, WorkerOptions
from pipeline.models import NewJob, Page, Validators
from pipeline.sources.report import ReportSource
from pipeline.store.memory import MemoryStore

BASE = "http://site.test"
SAMPLE = Path(__file__).parents[1] / "fixtures" / "samples" / "seed-report-page1.html"


def unclosed_b(tags: int) -> bytes:
    """~`tags` unclosed `<b>` tags (under the 50,000-tag guard): quadratic to build."""
    return ("<html><body>" + "".join(f"<b id={i}>x" for i in range(tags))).encode()


def cloned_b(tags: int) -> bytes:
    """Unclosed `<b>` tags with a paragraph after each: every one is cloned into every
    later paragraph, hundreds of MB for a 30 KB page."""
    return ("<html><body>" + "".join(f"<b id={i}><p>x" for i in range(tags))).encode()


@dataclass
class PagesFetcher:
    bodies: dict[str, bytes]

    async def fetch(self, url: str, validators: Validators | None = None) -> Page:
        return Page(url=url, final_url=url, status=200, body=self.bodies[url])

    def cancel_waiting(self) -> int:
        return 0

    async def close(self) -> None:
        return None


@pytest.mark.parametrize(
    ("body", "over"),
    [(unclosed_b(48_000), "CPU time"), (cloned_b(2_000), "memory")],
    ids=["cpu", "memory"],
)
async def test_a_page_over_its_parse_budget_is_a_kept_broken_page(body: bytes, over: str) -> None:
    good = SAMPLE.read_bytes()
    source = ReportSource(base_url=BASE)
    bad_url, good_url = f"{BASE}/reports/10.1/bad", f"{BASE}/reports/10.1/good"
    store = MemoryStore()
    await store.open()
    await store.enqueue([NewJob("10.1/bad", bad_url), NewJob("10.1/good", good_url)])
    parser = ProcessBudgetParser(source, ParseBudget(cpu_seconds=1, memory_mb=64), processes=2)
    options = WorkerOptions(concurrency=4, base_url=BASE, lease_seconds=5)
    policy = RetryPolicy(max_attempts=1, base=0.01, cap=0.02, quick_retries=0)
    fetcher = PagesFetcher({bad_url: body, good_url: good})
    worker = Worker(store, fetcher, source, policy, options, parser=parser)
    try:
        counters = await asyncio.wait_for(worker.run(), 120)
    finally:
        parser.close()
    [(reason, n)] = counters.dead.items()
    assert n == 1 and reason.startswith("broken page: parse budget exceeded: more than ")
    assert over in reason
    kept = [s async for s in store.kept_pages(broken_only=True)]
    assert [(s.kept.doi, s.kept.body == body) for s in kept] == [("10.1/bad", True)]
    assert counters.pages_done == 1  # the good page, parsed beside it, is not blamed
    await store.close()
