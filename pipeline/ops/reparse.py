"""`citepipe reparse`: derive rows again from the pages kept in the store, no request.

After a selector fix, the pages a crawl kept (`keep_pages`: the broken ones always, every
page with `all`) are read again with the current parser and selectors. A page that parses
now is completed exactly as the crawl would have completed it (`Worker.completion`: the
same rows by the same identities, the same follow-ups), through the store's one
`complete` (rows, follow-ups and "done" in one transaction): a broken job becomes done and
its report's next page is queued for the next `crawl` or `worker` to fetch. A page still
broken stays dead, its kept error updated. Jobs another process holds (queued, leased,
failed) are left alone: their next fetch will parse with the current selectors anyway.
Pages fetched from another site than `base_url` are not reparsed (their next pages would
look off-site and be dropped); the summary names the site to pass as `--base-url`.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from pipeline.app import Pipeline
from pipeline.crawl.politeness import host_key
from pipeline.crawl.worker import Worker
from pipeline.errors import ParseError, PipelineError
from pipeline.models import Completion, Page, StoredPage
from pipeline.ops.read import doi_argument

log = structlog.get_logger("citepipe.reparse")

IN_FLIGHT = 200  # completions handed to the store at once (it commits them in batches)
REPARSABLE = ("done", "dead")  # job states reparse may complete again


@dataclass
class ReparseSummary:
    """What a reparse did, for the printed summary and the exit code."""

    pages: int = 0  # kept pages read
    completed: int = 0  # broken (dead) jobs that parse now: done
    rewritten: int = 0  # done jobs whose rows were derived again
    still_broken: Counter[str] = field(default_factory=Counter)  # by error
    skipped: int = 0  # jobs in another state (queued, leased, failed): left alone
    store_errors: int = 0
    other_site: Counter[str] = field(default_factory=Counter)  # kept from another base_url
    queued_after: int = 0  # jobs waiting in the queue at the end (next pages, among others)

    @property
    def exit_code(self) -> int:
        """0 when every page read parsed and was stored; 1 when some are still broken or
        could not be stored (docs: "Exit codes")."""
        return 1 if self.still_broken or self.store_errors or self.other_site else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "pages": self.pages,
            "completed": self.completed,
            "rewritten": self.rewritten,
            "still_broken": dict(self.still_broken),
            "skipped": self.skipped,
            "store_errors": self.store_errors,
            "other_site": dict(self.other_site),
            "queued": self.queued_after,
        }

    def render(self) -> str:
        lines = [
            f"reparse: {self.pages} kept page{'s' if self.pages != 1 else ''} read, "
            "no request made",
            f"  broken jobs now done: {self.completed}",
            f"  done jobs rewritten:  {self.rewritten}",
        ]
        if self.still_broken:
            total = sum(self.still_broken.values())
            reasons = "; ".join(f"{r}: {n}" for r, n in self.still_broken.most_common(5))
            lines.append(f"  still broken:         {total} ({reasons})")
        if self.skipped:
            lines.append(f"  left alone (in the queue or in flight): {self.skipped}")
        for site, n in self.other_site.items():
            lines.append(
                f"  not reparsed: {n} page{'s' if n != 1 else ''} fetched from {site}, not "
                "from base_url (run it with --base-url of that site)"
            )
        if self.store_errors:
            lines.append(f"  not stored (store errors, see the log): {self.store_errors}")
        if self.queued_after:
            lines.append(
                f"  {self.queued_after} job{'s' if self.queued_after != 1 else ''} queued "
                "(next pages among them): `citepipe worker --burst` or `crawl` fetches them"
            )
        return "\n".join(lines)


async def reparse(
    worker: Worker,
    *,
    keep_all: bool,
    broken_only: bool = False,
    dois: Sequence[str] | None = None,
) -> ReparseSummary:
    """Reparse the kept pages (only the broken ones, only these DOIs' if asked) with the
    worker's source. `keep_all` (keep_pages = "all") keeps the page after it parsed."""
    store = worker.store
    summary = ReparseSummary()
    slots = asyncio.Semaphore(IN_FLIGHT)
    tasks: set[asyncio.Task[None]] = set()
    revived: set[str] = set()  # reports with a dead job done now

    async def commit(completion: Completion, was_dead: bool) -> None:
        try:
            await store.complete(completion)
        except PipelineError as exc:
            summary.store_errors += 1
            log.error("reparsed page not stored", doi=completion.job.doi, error=str(exc))
        else:
            if was_dead:
                summary.completed += 1
                revived.add(completion.job.doi)
            else:
                summary.rewritten += 1
        finally:
            slots.release()

    site = host_key(worker.options.base_url)
    async for stored in store.kept_pages(broken_only=broken_only, dois=dois):
        summary.pages += 1
        page_site = host_key(stored.kept.url)
        if page_site != site:  # its next pages would look off-site: say so, never drop them
            summary.other_site[page_site] += 1
            continue
        if stored.state not in REPARSABLE:
            summary.skipped += 1
            continue
        try:
            completion = await _completion(worker, stored, keep_all)
        except ParseError as exc:
            summary.still_broken[f"broken page: {exc}"] += 1
            if stored.kept.broken and stored.kept.error != str(exc):
                await store.keep_page(dataclasses.replace(stored.kept, error=str(exc)))
            continue
        await slots.acquire()
        task = asyncio.create_task(commit(completion, stored.state == "dead"))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    if revived:
        await store.settle_reparsed(sorted(revived))
    summary.queued_after = await store.pending()
    return summary


async def _completion(worker: Worker, stored: StoredPage, keep_all: bool) -> Completion:
    """The completion a crawl would build for this page, dated when it was fetched."""
    kept = stored.kept
    job = dataclasses.replace(stored.job, content_hash=None)  # parse even if unchanged
    # as fetched: asked for at the job's address, the body from where redirects led
    page = Page(
        url=stored.job.url,
        final_url=kept.url,
        status=200,
        body=kept.body,
        media_type=kept.media_type,
        charset=kept.charset,
    )
    completion = await worker.completion(job, page)
    keep = keep_all or not kept.broken  # a page kept as good stays kept
    return dataclasses.replace(
        completion,
        fetched_at=kept.fetched_at,
        kept=dataclasses.replace(kept, broken=False, error=None) if keep else None,
    )


async def reparse_store(
    p: Pipeline, *, broken_only: bool = False, dois: Sequence[str] | None = None
) -> ReparseSummary:
    """`citepipe reparse`: rows derived again from the kept pages with the current
    selectors, no request (`pipeline.ops.reparse`)."""
    keys = None if dois is None else [doi_argument(d, "--doi") for d in dois]
    return await reparse(
        p.worker(burst=True),
        keep_all=p.settings.keep_pages == "all",
        broken_only=broken_only,
        dois=keys,
    )
