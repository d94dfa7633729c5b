"""Scale-out: pages/s and CPU with 1, 2 and 4 worker processes on PostgreSQL and on SQLite
against the local site, then the PostgreSQL store alone (completions, claim+complete with
1 k and 1 M jobs queued). A script that prints figures, never a test.

    .venv/bin/python benchmarks/scale.py [--reports 400] [--procs 1,2,4] [--big 1000000]
        [--pg postgresql://root@127.0.0.1:5432/postgres]

`--pg` is an admin URL (default `CITEPIPE_TEST_POSTGRES`, else the local server): each run
gets a fresh database, dropped afterwards. Every run is N `citepipe backfill` processes of
one input at once (they share the queue), politeness off, the site pre-rendered in its own
process. CPU is read from /proc: the workers (this script's children), the site, and the
PostgreSQL server (every `postgres` process, plus what its exited backends left in the
postmaster's children times), so the figures say where the cores went.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from e2e import site_cpu, start_site
from store import claim_complete_cost, completions

from citesite.generator import generate
from pipeline.store import PostgresStore

TICK = os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def postgres_cpu() -> float:
    """CPU seconds of the PostgreSQL server so far: its live processes, and the children
    times of the postmaster (backends of closed connections)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        if comm not in ("postgres", "postmaster"):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
        if fields[1] == "1" or _is_postmaster(entry):
            total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / TICK


def _is_postmaster(entry: Path) -> bool:
    try:
        parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
        pstat = Path(f"/proc/{parent}/stat").read_text()
    except (OSError, IndexError):
        return False
    return "(postgres)" not in pstat and "(postmaster)" not in pstat


async def admin(url: str, sql: str) -> None:
    conn: Any = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


async def fresh_pg(admin_url: str) -> tuple[str, str]:
    name = f"citepipe_bench_{uuid.uuid4().hex[:10]}"
    await admin(admin_url, f'CREATE DATABASE "{name}" TEMPLATE template0')
    return name, with_db(admin_url, name)


async def drop_pg(admin_url: str, name: str) -> None:
    await admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_backfills(db: str, port: int, dois: Path, procs: int, concurrency: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITEPIPE_")}
    env.update(
        {
            "CITEPIPE_BASE_URL": f"http://127.0.0.1:{port}",
            "CITEPIPE_DB": db,
            "CITEPIPE_REQUEST_DELAY": "0",
            "CITEPIPE_CONCURRENCY": str(concurrency),
            "CITEPIPE_PER_HOST_CONCURRENCY": str(concurrency),
            "CITEPIPE_LOG_LEVEL": "warning",
            "CITEPIPE_PROGRESS": "false",
        }
    )
    cpu0, pg0 = children_cpu(), postgres_cpu()
    started = time.perf_counter()
    running = [
        subprocess.Popen(
            [sys.executable, "-m", "pipeline", "backfill", str(dois)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(procs)
    ]
    for p in running:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"backfill exit {p.returncode}: {err.decode()[-800:]}")
    wall = time.perf_counter() - started
    return {"wall": wall, "workers": children_cpu() - cpu0, "pg": postgres_cpu() - pg0}


async def count_done(db: str) -> int:
    from pipeline.store import open_store

    async with open_store(db, create=False) as store:
        return (await store.stats()).jobs_by_state["done"]


async def scale(args: argparse.Namespace) -> None:
    site, port = start_site(args.reports, args.seed)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            dois = Path(tmp) / "dois.txt"
            dois.write_text("".join(r.doi + "\n" for r in generate(args.reports, args.seed)))
            print(
                f"backfill of {args.reports} reports by N processes at once "
                f"(concurrency {args.concurrency} each); CPU in seconds"
            )
            print(
                f"  {'engine':<9}{'procs':>5}{'pages':>7}{'pages/s':>9}{'wall s':>8}"
                f"{'workers':>9}{'site':>7}{'postgres':>9}"
            )
            for engine in ("postgres", "sqlite"):
                for procs in args.procs:
                    name = ""
                    if engine == "postgres":
                        name, db = await fresh_pg(args.pg)
                    else:
                        db = str(Path(tmp) / f"s{procs}.sqlite")
                    site0 = site_cpu(site.pid)
                    try:
                        got = await asyncio.to_thread(
                            run_backfills, db, port, dois, procs, args.concurrency
                        )
                        pages = await count_done(db)
                    finally:
                        if name:
                            await drop_pg(args.pg, name)
                    site_busy = site_cpu(site.pid) - site0
                    pg_busy = got["pg"] if engine == "postgres" else 0.0
                    print(
                        f"  {engine:<9}{procs:>5}{pages:>7}{pages / got['wall']:>9.0f}"
                        f"{got['wall']:>8.1f}{got['workers']:>9.1f}{site_busy:>7.1f}"
                        f"{pg_busy:>9.1f}"
                    )
    finally:
        site.terminate()
        site.wait(10)


async def store_alone(args: argparse.Namespace) -> None:
    print(f"PostgreSQL store alone: completions of 25-statement pages ({args.pages} pages)")
    for batch in (100, 1):
        name, url = await fresh_pg(args.pg)
        try:
            pps, rps = await completions(
                lambda url=url, batch=batch: PostgresStore(url, writer_batch=batch), args.pages
            )
        finally:
            await drop_pg(args.pg, name)
        print(f"  writer_batch={batch:<4} {pps:9,.0f} pages/s {rps:11,.0f} rows/s")
    print(f"claim(1) + complete(1 statement) on PostgreSQL, mean of {args.rounds}")
    for queued in (1000, args.big):
        name, url = await fresh_pg(args.pg)
        try:
            fill, claim_us, both_us = await claim_complete_cost(
                lambda url=url: PostgresStore(url), queued, args.rounds
            )
        finally:
            await drop_pg(args.pg, name)
        print(
            f"  {queued:>9,} queued: claim {claim_us:6.0f} µs, claim+complete "
            f"{both_us:6.0f} µs  (enqueue {fill:,.0f} jobs/s)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--reports", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--procs", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4])
    ap.add_argument("--pages", type=int, default=4000)
    ap.add_argument("--big", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=1000)
    ap.add_argument("--skip-scale", action="store_true", help="only the store figures")
    ap.add_argument("--skip-store", action="store_true", help="only the scale-out figures")
    ap.add_argument(
        "--pg",
        default=os.environ.get(
            "CITEPIPE_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/postgres"
        ),
    )
    args = ap.parse_args()
    if not args.skip_scale:
        asyncio.run(scale(args))
    if not args.skip_store:
        asyncio.run(store_alone(args))


if __name__ == "__main__":
    main()
