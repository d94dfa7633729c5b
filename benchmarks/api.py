"""scite's API as a source: tallies, metadata and section counts for many DOIs from the
local site (in its own process), with the limits lifted by a token. Prints requests sent,
wall time, CPU, peak RSS, and the computed time for 1 M DOIs at the free 40 requests a
minute. A script, never a test.

    .venv/bin/python benchmarks/api.py [--dois 100000] [--batch 500]
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
import urllib.request
from pathlib import Path

from citesite.dataset import generated_doi
from pipeline.cli import main as citepipe
from pipeline.crawl.api import LIMIT_MARGIN

TOKEN = "benchmark-token"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dois", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    site = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "citesite.server",
            "--generate",
            str(args.dois),
            "--seed",
            str(args.seed),
            "--port",
            str(port),
            "--api-token",
            TOKEN,
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert site.stdout is not None
        site.stdout.readline()  # "citation site at ..."
        with tempfile.TemporaryDirectory() as tmp:
            dois = Path(tmp) / "dois.txt"
            dois.write_text("".join(generated_doi(args.seed, i) + "\n" for i in range(args.dois)))
            os.environ.update(
                {
                    "CITEPIPE_API_TOKEN": TOKEN,
                    "CITEPIPE_API_URL": base,
                    "CITEPIPE_BASE_URL": base,
                    "CITEPIPE_API_BATCH": str(args.batch),
                    "CITEPIPE_DB": str(Path(tmp) / "store.sqlite"),
                    "CITEPIPE_LOG_LEVEL": "warning",
                    "CITEPIPE_PROGRESS": "false",
                }
            )
            cpu0, t0 = cpu_seconds(), time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                code = citepipe(["backfill", str(dois), "--source", "api"])
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        with urllib.request.urlopen(base + "/__site/stats") as resp:
            stats = json.load(resp)
    finally:
        site.terminate()
        site.wait()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    requests = stats["requests"]
    per_endpoint = -(-1_000_000 // 500)
    spacing = 60 / 40 * LIMIT_MARGIN
    out = {
        "dois": args.dois,
        "exit_code": code,
        "requests": requests,
        "by_status": stats["by_status"],
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mb": round(rss),
        "dois_per_s": round(args.dois / wall),
        "1M_at_40_per_min_h (tallies+papers)": round(2 * per_endpoint * spacing / 3600, 2),
        "1M_at_40_per_min_h (+sections)": round(3 * per_endpoint * spacing / 3600, 2),
    }
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
