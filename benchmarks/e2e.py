"""End to end: the local site in its own process, a backfill of thousands of pages in this
one, politeness off. Prints pages/s, statements/s and peak RSS. A script, never a test.

    .venv/bin/python benchmarks/e2e.py [--reports 1500] [--seed 1] [--concurrency 32]

Anchors measured on the 2-core dev machine, same kind of page: Scrapy 2.19 ~192 pages/s;
a bare aiohttp+selectolax+aiosqlite loop ~1,000 pages/s; a tuned single process ~1,700.
The site runs pre-rendered (`--warm`) so the figure is the pipeline's, not the renderer's.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from citesite.generator import generate
from pipeline.cli import main as citepipe


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def site_cpu(pid: int) -> float:
    """The site process's CPU time so far (from /proc; 0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_site(proc: subprocess.Popen[bytes]) -> None:
    """Wait for the site's "citation site at …" line: printed once its cache is warm.

    Not the port: the site listens before it warms, and a crawl started then would time
    the renderer (seconds of it) instead of the pipeline.
    """
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if b"citation site at" not in line:
        raise SystemExit(f"the site did not start (exit {proc.poll()}): {line!r}")


def start_site(reports: int, seed: int) -> tuple[subprocess.Popen[bytes], int]:
    """The local site with `reports` generated reports, in its own process, warmed."""
    port = free_port()
    site = subprocess.Popen(
        [
            *(sys.executable, "-m", "pipeline", "site", "--port", str(port)),
            *("--generate", str(reports), "--seed", str(seed)),
            *("--warm", "--cache-size", str(reports * 6)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_site(site)
    except BaseException:
        site.kill()
        raise
    return site, port


def crawl_args(doc: str | None) -> argparse.Namespace:
    """The options both crawl benchmarks take, so that they can be run alike."""
    ap = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    ap.add_argument("--reports", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=32)
    return ap.parse_args()


def main() -> None:
    args = crawl_args(__doc__)

    site, port = start_site(args.reports, args.seed)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            dois = Path(tmp) / "dois.txt"
            dois.write_text("".join(r.doi + "\n" for r in generate(args.reports, args.seed)))
            db = Path(tmp) / "bench.sqlite"
            env = {
                "CITEPIPE_BASE_URL": f"http://127.0.0.1:{port}",
                "CITEPIPE_DB": str(db),
                "CITEPIPE_REQUEST_DELAY": "0",
                "CITEPIPE_CONCURRENCY": str(args.concurrency),
                "CITEPIPE_PER_HOST_CONCURRENCY": str(args.concurrency),
                "CITEPIPE_LOG_LEVEL": "warning",
                "CITEPIPE_PROGRESS": "false",
            }
            os.environ.update(env)
            out = io.StringIO()
            site_cpu_before = site_cpu(site.pid)
            started, cpu_before = time.perf_counter(), cpu_seconds()
            with contextlib.redirect_stdout(out):
                code = citepipe(["backfill", str(dois)])
            wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu_before
            site_busy = site_cpu(site.pid) - site_cpu_before
            line = next(x for x in out.getvalue().splitlines() if x.startswith("citepipe-summary "))
            summary = json.loads(line.removeprefix("citepipe-summary "))
    finally:
        site.terminate()
        site.wait(10)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    pages = summary["pages"]
    print(
        f"reports {args.reports}, pages {pages}, statements {summary['statements_stored']}, "
        f"exit {code}, dead {summary['jobs'].get('dead', 0)}"
    )
    print(
        f"crawl: {summary['pages_per_s']:.0f} pages/s "
        f"({summary['statements_stored'] / summary['elapsed_s']:.0f} statements/s) over "
        f"{summary['elapsed_s']:.1f} s; wall incl. start-up {wall:.1f} s"
    )
    print(
        f"CPU of the crawling process: {cpu:.1f} s = {cpu / wall * 100:.0f}% of one core, "
        f"{cpu / max(pages, 1) * 1e6:.0f} µs per page"
    )
    print(f"CPU of the site's process: {site_busy:.1f} s = {site_busy / wall:.0%} of one core")
    print(f"peak RSS of the crawling process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
