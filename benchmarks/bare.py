"""The bare-loop anchor, measured on this machine in this run: aiohttp + the same parser +
aiosqlite, nothing else (no queue, retries, politeness, leases, upserts or refresh logic).
A script that prints figures, never a test.

    .venv/bin/python benchmarks/bare.py [--reports 1500] [--concurrency 32]

Run it next to `benchmarks/e2e.py` with the same `--reports`: the machine's speed varies
from day to day (twofold here), so the ratio of the two is the figure that travels. The
site is the same pre-rendered local site, started and waited for the same way.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urljoin

import aiohttp
import aiosqlite

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import cpu_seconds, crawl_args, start_site

from citesite.generator import generate
from pipeline.normalise import report_address
from pipeline.sources.report import parse_report

COMMIT_EVERY = 50  # pages per transaction


async def crawl(base: str, dois: list[str], db: Path, concurrency: int) -> tuple[int, int]:
    """Fetch every page, following rel=next; insert statements; (pages, statements)."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for doi in dois:
        queue.put_nowait(report_address(base, doi))
    pages = statements = uncommitted = 0
    async with (
        aiosqlite.connect(db) as conn,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http,
    ):
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute(
            "CREATE TABLE statements (cited_doi TEXT, citing_doi TEXT, snippet TEXT, "
            "section TEXT, type TEXT, confidence REAL)"
        )

        buffer: list[tuple[object, ...]] = []
        lock = asyncio.Lock()

        async def flush() -> None:
            async with lock:
                rows = buffer[:]
                buffer.clear()
                await conn.executemany("INSERT INTO statements VALUES (?, ?, ?, ?, ?, ?)", rows)
                await conn.commit()

        async def worker() -> None:
            nonlocal pages, statements, uncommitted
            while not queue.empty():
                url = queue.get_nowait()
                async with http.get(url) as resp:
                    body, final = await resp.read(), str(resp.url)
                result = parse_report(body, final)
                if result.next_page_url:
                    queue.put_nowait(urljoin(final, result.next_page_url))
                buffer.extend(
                    (result.paper.doi, s.citing_doi, s.snippet, s.section, s.type, s.confidence)
                    for s in result.statements
                )
                pages += 1
                statements += len(result.statements)
                uncommitted += 1
                if uncommitted >= COMMIT_EVERY:
                    uncommitted = 0
                    await flush()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        await flush()
    return pages, statements


def main() -> None:
    args = crawl_args(__doc__)
    site, port = start_site(args.reports, args.seed)
    try:
        dois = [r.doi for r in generate(args.reports, args.seed)]
        with tempfile.TemporaryDirectory() as tmp:
            started, cpu_before = time.perf_counter(), cpu_seconds()
            pages, statements = asyncio.run(
                crawl(f"http://127.0.0.1:{port}", dois, Path(tmp) / "bare.sqlite", args.concurrency)
            )
            wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu_before
    finally:
        site.terminate()
        site.wait(10)
    print(f"bare loop: reports {args.reports}, pages {pages}, statements {statements}")
    print(
        f"bare loop: {pages / wall:.0f} pages/s over {wall:.1f} s; "
        f"CPU {cpu / wall:.0%} of one core, {cpu / max(pages, 1) * 1e6:.0f} µs per page"
    )


if __name__ == "__main__":
    main()
