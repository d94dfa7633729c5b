"""The performance race: citepipe against Scrapy and the bare loop, side by side, one run.

    make bench                      # or:
    .venv/bin/python benchmarks/race.py [--reports 1500] [--rounds 2] [--concurrency 32]
                                        [--tools citepipe,citepipe-p2,scrapy-parsel,...]

One local site (`citesite`, pre-rendered, its own process) serves every contestant the
same reports; politeness is off and 32 pages are in flight. Each round runs every tool
once, each in a fresh child process with a fresh SQLite file, and the order turns from
round to round (alternating), so a slow spell of the shared machine does not fall on one
tool. The table gives medians over the rounds of:

- pages/s: pages stored / wall time of the crawl (process start-up excluded);
- CPU-ms/page: user + system CPU of the tool's process and its children, per page;
- peak RSS: the largest resident set of the tool's process (or of any of its children);
- the site's CPU-ms/page: what serving the tool cost the site's process, per page. The
  site shares the machine's cores with the tool, so a tool's pages/s is bounded by both.

Every tool must have stored the same pages and the same statements (cited DOI, citing
DOI, snippet): the race says so, or names the tool that differs, and exits 1.

Contestants: `citepipe` (`citepipe backfill`, one process), `citepipe-p2` (`--processes
2`), `scrapy-parsel` (a Scrapy spider with parsel, what a Scrapy user writes),
`scrapy-citepipe` (the same spider with citepipe's parser), `bare` (`benchmarks/bare.py`:
aiohttp + the parser + aiosqlite, nothing else). The Scrapy ones need the `bench` extra.
A script that prints figures, never a timed test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from e2e import site_cpu, start_site  # noqa: E402

from citesite.generator import generate  # noqa: E402

TOOLS = ("citepipe", "citepipe-p2", "scrapy-parsel", "scrapy-citepipe", "bare")
REFERENCE = ("scrapy-parsel", "scrapy-citepipe", "bare")  # ratios of citepipe against these


def usage() -> tuple[float, float]:
    """(CPU seconds of this process and its waited-for children, peak RSS in MB)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    return cpu, max(me.ru_maxrss, kids.ru_maxrss) / 1024


def statements_digest(db: Path, pages_sql: str) -> dict[str, Any]:
    """What a tool stored: pages, distinct statements and a digest of them."""
    con = sqlite3.connect(db)
    try:
        pages = int(con.execute(pages_sql).fetchone()[0])
        rows = con.execute("SELECT DISTINCT cited_doi, citing_doi, snippet FROM statements")
        lines = sorted(f"{a}\t{b}\t{hashlib.sha1(c.encode()).hexdigest()}" for a, b, c in rows)
    finally:
        con.close()
    digest = hashlib.sha1("\n".join(lines).encode()).hexdigest()[:12]
    return {"pages": pages, "statements": len(lines), "digest": digest}


# ------------------------------------------------------------------- one tool, one child


def run_citepipe(base: str, dois: list[str], tmp: Path, concurrency: int, processes: int) -> Path:
    from pipeline.cli import main as citepipe  # imported by `child` before the clock starts

    inp = tmp / "dois.txt"
    inp.write_text("".join(d + "\n" for d in dois))
    db = tmp / "citepipe.sqlite"
    os.environ.update(
        {
            "CITEPIPE_BASE_URL": base,
            "CITEPIPE_DB": str(db),
            "CITEPIPE_REQUEST_DELAY": "0",
            "CITEPIPE_CONCURRENCY": str(concurrency),
            "CITEPIPE_PER_HOST_CONCURRENCY": str(concurrency),
            "CITEPIPE_LOG_LEVEL": "warning",
            "CITEPIPE_PROGRESS": "false",
        }
    )
    args = ["backfill", str(inp)]
    if processes > 1:
        args += ["--processes", str(processes)]
    with contextlib.redirect_stdout(io.StringIO()):
        code = citepipe(args)
    if code != 0:
        raise SystemExit(f"citepipe backfill exited {code}")
    return db


def child(tool: str, port: int, reports: int, seed: int, concurrency: int, out: Path) -> None:
    """Run one tool once; write its figures as JSON to `out`."""
    base = f"http://127.0.0.1:{port}"
    dois = [r.doi for r in generate(reports, seed)]
    with tempfile.TemporaryDirectory() as tmpname:
        tmp = Path(tmpname)
        if tool.startswith("citepipe"):
            import pipeline.cli  # noqa: F401  start-up is not timed, as for the other tools

            processes = 2 if tool == "citepipe-p2" else 1
            started, (cpu0, _) = time.perf_counter(), usage()
            db = run_citepipe(base, dois, tmp, concurrency, processes)
            pages_sql = "SELECT count(*) FROM jobs WHERE state = 'done'"
        elif tool.startswith("scrapy"):
            from scrapy_race import run_scrapy

            db = tmp / "scrapy.sqlite"
            started, (cpu0, _) = time.perf_counter(), usage()
            run_scrapy(base, dois, db, concurrency, tool.removeprefix("scrapy-"))
            pages_sql = "SELECT count(*) FROM pages"
        elif tool == "bare":
            from bare import crawl

            db = tmp / "bare.sqlite"
            started, (cpu0, _) = time.perf_counter(), usage()
            pages, _ = asyncio.run(crawl(base, dois, db, concurrency))
            pages_sql = f"SELECT {pages}"
        else:
            raise SystemExit(f"unknown tool {tool!r}; one of {', '.join(TOOLS)}")
        wall = time.perf_counter() - started
        cpu, rss = usage()
        stored = statements_digest(db, pages_sql)
    figures = {
        "tool": tool,
        "wall": wall,
        "cpu": cpu - cpu0,
        "rss_mb": rss,
        **stored,
        "pages_per_s": stored["pages"] / wall,
        "cpu_ms_per_page": (cpu - cpu0) * 1000 / max(stored["pages"], 1),
    }
    out.write_text(json.dumps(figures))


# ------------------------------------------------------------------- the race


def race(args: argparse.Namespace) -> int:
    tools = [t for t in args.tools.split(",") if t]
    site, port = start_site(args.reports, args.seed)
    results: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for rnd in range(args.rounds):
                order = tools if rnd % 2 == 0 else tools[::-1]
                for tool in order:
                    out = Path(tmp) / f"{tool}-{rnd}.json"
                    cmd = [
                        *(sys.executable, __file__, "--child", tool, "--port", str(port)),
                        *("--reports", str(args.reports), "--seed", str(args.seed)),
                        *("--concurrency", str(args.concurrency), "--out", str(out)),
                    ]
                    site_before = site_cpu(site.pid)
                    subprocess.run(cmd, check=True)
                    figures = json.loads(out.read_text())
                    site_ms = (site_cpu(site.pid) - site_before) * 1000
                    figures["site_ms_per_page"] = site_ms / max(figures["pages"], 1)
                    results[tool].append(figures)
                    print(
                        f"round {rnd + 1} {tool:>16}: {figures['pages_per_s']:6.0f} pages/s "
                        f"{figures['cpu_ms_per_page']:6.2f} CPU-ms/page "
                        f"{figures['rss_mb']:5.0f} MB  site {figures['site_ms_per_page']:.2f} "
                        f"CPU-ms/page  ({figures['pages']} pages, "
                        f"{figures['statements']} statements)",
                        flush=True,
                    )
    finally:
        site.terminate()
        site.wait(10)
    return report(args, results)


def report(args: argparse.Namespace, results: dict[str, list[dict[str, Any]]]) -> int:
    med = {
        tool: {
            k: statistics.median(r[k] for r in runs)
            for k in ("pages_per_s", "cpu_ms_per_page", "rss_mb", "site_ms_per_page")
        }
        for tool, runs in results.items()
    }
    print(
        f"\n{args.reports} reports, {args.concurrency} in flight, politeness off, "
        f"{args.rounds} rounds alternating; medians\n"
    )
    print(
        "| tool | pages/s | CPU-ms/page | peak RSS | the site's CPU-ms/page |\n"
        "| --- | --- | --- | --- | --- |"
    )
    for tool, m in med.items():
        print(
            f"| {tool} | {m['pages_per_s']:.0f} | {m['cpu_ms_per_page']:.2f} "
            f"| {m['rss_mb']:.0f} MB | {m['site_ms_per_page']:.2f} |"
        )
    print()
    for lead in ("citepipe", "citepipe-p2"):
        if lead not in med:
            continue
        for other in (*REFERENCE, "citepipe"):
            if other in med and other != lead:
                ratio = med[lead]["pages_per_s"] / med[other]["pages_per_s"]
                print(f"{lead} / {other}: {ratio:.2f}x pages/s")
    if "bare" in med:  # the floor: what the same stack does with no crawler around it
        for other in ("scrapy-parsel", "scrapy-citepipe"):
            if other in med:
                ratio = med["bare"]["pages_per_s"] / med[other]["pages_per_s"]
                print(f"bare / {other}: {ratio:.2f}x pages/s (the floor's own ratio)")
    stored = {(r["pages"], r["statements"], r["digest"]) for runs in results.values() for r in runs}
    if len(stored) == 1:
        pages, statements, digest = stored.pop()
        print(f"\nevery tool stored the same {pages} pages and {statements} statements ({digest})")
        return 0
    print("\nthe tools did NOT store the same rows:")
    for tool, runs in results.items():
        for r in runs:
            print(f"  {tool}: {r['pages']} pages, {r['statements']} statements ({r['digest']})")
    return 1


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--reports", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.port, args.reports, args.seed, args.concurrency, args.out)
        return
    sys.exit(race(args))


if __name__ == "__main__":
    main()
