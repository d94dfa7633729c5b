"""Store throughput: a script that prints figures, never a test.

1. Committed pages/s and rows/s for completions of 25-statement pages, batched by the
   writer (writer_batch=100) against one page per transaction (writer_batch=1).
2. claim+complete cost (µs) with 1k and with 1M jobs queued: it must not grow with the
   queue (the claim walks a partial index in order and stops at its limit).
3. The writer's own Python per page (`--plan`): a batch's write plan built and its rows
   encoded, no SQL; best of 30. It holds the GIL that the event loop wants too.
4. PostgreSQL writers (`--postgres URL --writers 1,2,4`): N processes, each with its own
   `PostgresStore` on one database, commit completions (`store.complete`, the real
   writer) of `--pages` pages each; committed pages/s of all of them together, from the
   moment they all start. Every page cites 20 papers of its own and 5 of a pool of 2,000
   shared by all (citing papers recur across reports), so batches overlap on rows. Each
   run gets a fresh schema, checked afterwards: every job done, every statement there.

    .venv/bin/python benchmarks/store.py [--pages 4000] [--big 1000000] [--plan]
    .venv/bin/python benchmarks/store.py --postgres postgresql://root@127.0.0.1/postgres \
        --writers 1,2,4 [--pages 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pipeline.models import Completion, Facet, Job, NewJob, Paper, ParseResult, Statement, Tally
from pipeline.store import PostgresStore, SQLiteStore, Store

STATEMENTS = 25
PAGES_PER_REPORT = 4
SHARED_CITERS = 5  # of a page's statements, cite a paper of the shared pool
SHARED_POOL = 2000


def citer(doi: str, page: int, i: int, shared: bool) -> str:
    if shared and i < SHARED_CITERS:
        return f"10.5555/shared-{hash((doi, page, i)) % SHARED_POOL}"
    return f"10.5555/{doi}-{page}-{i}"


def page_result(doi: str, page: int, shared: bool = False) -> ParseResult:
    return ParseResult(
        paper=Paper(
            doi=doi,
            title=f"Title of {doi}",
            year=2020,
            journal="J",
            authors=("Ada Lovelace", "Alan Turing", "Grace Hopper"),
        ),
        tallies=Tally(10, 200, 3, 150, 213, 40),
        facets=(Facet("section", "Introduction", 120), Facet("section", "Results", 40)),
        statements=tuple(
            Statement(
                citing_doi=citer(doi, page, i, shared),
                snippet=f"... as shown by earlier work on {doi} (page {page}, #{i}) ...",
                citing_title=f"Citing paper {i}",
                citing_year=2021,
                citing_journal="C",
                section="Introduction",
                type="mentioning",
                confidence=0.87,
            )
            for i in range(STATEMENTS)
        ),
        next_page_url=None,
    )


def rows_written(page: int) -> int:
    """Rows one page writes: statements and citer papers, plus the header on page 1
    (paper, 3 authors, tallies, tally history, 2 facets)."""
    return 2 * STATEMENTS + (8 if page == 1 else 1)


async def completions(make: Callable[[], Store], pages: int) -> tuple[float, float]:
    """Pages/s and rows/s for `pages` completions offered concurrently to `make()`."""
    async with make() as store:
        reports = pages // PAGES_PER_REPORT
        await store.enqueue(
            NewJob(f"10.1/{r}", f"u/{r}", p)
            for r in range(reports)
            for p in range(1, PAGES_PER_REPORT + 1)
        )
        jobs = await store.claim("bench", pages, 3600)
        done = [Completion(j, page_result(j.doi, j.page)) for j in jobs]
        start = time.perf_counter()
        await asyncio.gather(*(store.complete(c) for c in done))
        elapsed = time.perf_counter() - start
    rows = sum(rows_written(j.page) for j in jobs)
    return len(jobs) / elapsed, rows / elapsed


async def claim_complete_cost(
    make: Callable[[], Store], queued: int, rounds: int
) -> tuple[float, float, float]:
    """(enqueue jobs/s, µs per claim, µs per claim+complete) with `queued` jobs waiting."""
    async with make() as store:
        start = time.perf_counter()
        await store.enqueue(NewJob(f"10.2/{i}", f"u/{i}") for i in range(queued))
        fill_rate = queued / (time.perf_counter() - start)
        small = ParseResult(Paper("x", "t"), Tally(1), statements=(Statement("10.3/c", "s"),))
        claim_time = total_time = 0.0
        for n in range(rounds):
            await store.enqueue([NewJob(f"10.2/extra-{n}", "u")])  # keep the queue's size
            t0 = time.perf_counter()
            (job,) = await store.claim("bench", 1, 60)
            t1 = time.perf_counter()
            await store.complete(Completion(job, _with_doi(small, job)))
            t2 = time.perf_counter()
            claim_time += t1 - t0
            total_time += t2 - t0
    return fill_rate, claim_time / rounds * 1e6, total_time / rounds * 1e6


def plan_cost(batch: int = 50, rounds: int = 30) -> float:
    """µs per page to plan and encode a batch of completions (the SQLite writer's Python)."""
    from pipeline.store import rules
    from pipeline.store.sqlite import _encode_rows

    now = datetime.now(UTC)
    jobs = [Job(i, f"10.1/{i // 2}", f"u/{i}", 1 + i % 2, 1, 0) for i in range(batch)]
    items = [Completion(j, page_result(j.doi, j.page), fetched_at=now) for j in jobs]
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(10):
            plan = rules.plan_completions(items, {}, now, rules.RefreshPolicy())
            for _, rows in plan.steps():
                _encode_rows(rows)
            _encode_rows(plan.mark_done)
        best = min(best, (time.perf_counter() - start) / (10 * batch))
    return best * 1e6


def _with_doi(res: ParseResult, job: Job) -> ParseResult:
    return ParseResult(Paper(job.doi, "t"), res.tallies, statements=res.statements)


def with_search_path(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = "&".join(q for q in (parts.query, f"search_path={schema}") if q)
    return urlunsplit(parts._replace(query=query))


async def _writer(url: str, writer: int, pages: int, ready: object, go: object) -> int:
    """One writer process: claim its jobs, wait for the start, complete them all."""
    async with PostgresStore(url) as store:
        jobs: list[Job] = []
        while len(jobs) < pages:
            got = await store.claim(f"w{writer}", pages - len(jobs), 3600)
            mine = [j for j in got if j.doi.startswith(f"10.{writer + 10}/")]
            await store.release([j for j in got if j not in mine])
            jobs += mine
        done = [Completion(j, page_result(j.doi, j.page, shared=True)) for j in jobs]
        ready.put(writer)  # type: ignore[attr-defined]
        go.wait()  # type: ignore[attr-defined]
        await asyncio.gather(*(store.complete(c) for c in done))
    return len(done)


def _writer_process(url: str, writer: int, pages: int, ready: object, go: object) -> None:
    asyncio.run(_writer(url, writer, pages, ready, go))


async def _admin(url: str, sql: str) -> object:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def postgres_writers(admin: str, writers: int, pages: int) -> tuple[float, int]:
    """(pages/s of `writers` processes completing `pages` pages each, deadlocks seen)."""
    schema = f"bench_writers_{uuid.uuid4().hex[:10]}"
    await _admin(admin, f'CREATE SCHEMA "{schema}"')
    url = with_search_path(admin, schema)
    try:
        async with PostgresStore(url) as store:
            reports = pages // PAGES_PER_REPORT
            await store.enqueue(
                NewJob(f"10.{w + 10}/{r}", f"u/{w}/{r}", p)
                for w in range(writers)
                for r in range(reports)
                for p in range(1, PAGES_PER_REPORT + 1)
            )
        ctx = multiprocessing.get_context("spawn")
        ready, go = ctx.Queue(), ctx.Event()
        procs = [
            ctx.Process(
                target=_writer_process, args=(url, w, reports * PAGES_PER_REPORT, ready, go)
            )
            for w in range(writers)
        ]
        for proc in procs:
            proc.start()
        for _ in procs:
            ready.get(timeout=300)
        deadlocks = int(str(await _admin(admin, DEADLOCKS)))
        start = time.perf_counter()
        go.set()
        for proc in procs:
            proc.join()
        elapsed = time.perf_counter() - start
        deadlocks = int(str(await _admin(admin, DEADLOCKS))) - deadlocks
        if any(proc.exitcode for proc in procs):
            raise SystemExit("a writer process failed")
        total = writers * reports * PAGES_PER_REPORT
        done = int(str(await _admin(url, "SELECT count(*) FROM jobs WHERE state = 'done'")))
        stmts = int(str(await _admin(url, "SELECT count(*) FROM statements")))
        if done != total or stmts != total * STATEMENTS:
            raise SystemExit(f"lost writes: {done}/{total} done, {stmts} statements")
        return total / elapsed, deadlocks
    finally:
        await _admin(admin, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


DEADLOCKS = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=4000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--plan", action="store_true", help="only the writer's Python cost")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL writers mode: admin URL")
    parser.add_argument("--writers", default="1,2,4", help="writer processes, e.g. 1,2,4")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (the median)")
    args = parser.parse_args()
    if args.postgres:
        pages = min(args.pages, 2000)
        print(f"PostgreSQL writers, {pages} pages each ({STATEMENTS} statements a page), "
              f"median of {args.repeat}")  # fmt: skip
        for n in (int(w) for w in args.writers.split(",")):
            runs = [await postgres_writers(args.postgres, n, pages) for _ in range(args.repeat)]
            rates = sorted(r for r, _ in runs)
            print(
                f"  {n} writer{'s' if n > 1 else ' '} {rates[len(rates) // 2]:8,.0f} pages/s "
                f"(runs {', '.join(f'{r:,.0f}' for r in rates)}; "
                f"deadlocks {sum(d for _, d in runs)})"
            )
        return
    print(f"writer's plan + encode: {plan_cost():.1f} µs/page ({STATEMENTS} statements)")
    if args.plan:
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        print(f"completions of {STATEMENTS}-statement pages ({args.pages} pages)")
        for batch in (100, 1):
            path = base / f"c{batch}.sqlite"
            pps, rps = await completions(
                lambda path=path, batch=batch: SQLiteStore(path, writer_batch=batch), args.pages
            )
            print(f"  writer_batch={batch:<4} {pps:9,.0f} pages/s {rps:11,.0f} rows/s")
        print(f"claim(1) + complete(1 statement), mean of {args.rounds}")
        for queued in (1000, args.big):
            path = base / f"q{queued}.sqlite"
            fill, claim_us, both_us = await claim_complete_cost(
                lambda path=path: SQLiteStore(path), queued, args.rounds
            )
            print(
                f"  {queued:>9,} queued: claim {claim_us:6.0f} µs, claim+complete "
                f"{both_us:6.0f} µs  (enqueue {fill:,.0f} jobs/s)"
            )


if __name__ == "__main__":
    asyncio.run(main())
