"""Two checkouts of citepipe in one race: this tree against another (say, main).

    git worktree add --detach /tmp/base main
    .venv/bin/python benchmarks/race_ab.py /tmp/base [--tools citepipe] [--rounds 8]

One local site (this tree's, its own process) serves both versions the same reports.
Each round runs the race's child (`race.py --child TOOL`) once per version, each a fresh
process with a fresh SQLite file and PYTHONPATH set to its checkout, in alternating order
(AB, BA, ...), so that a slow spell of a shared machine falls on both. Prints every run,
then per version the median, min and max of pages/s and CPU-ms/page, the ratio of the
medians, and the median of the per-round ratios (a round's two runs share its spell).
Both versions must store the same pages and statements. A script that prints figures,
never a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from e2e import start_site  # noqa: E402


def run_child(checkout: Path, tool: str, port: int, args: argparse.Namespace, out: Path) -> Any:
    """One run of the race's child from `checkout`, importing `pipeline` from there."""
    cmd = [
        *(sys.executable, str(checkout / "benchmarks" / "race.py"), "--child", tool),
        *("--port", str(port), "--reports", str(args.reports), "--seed", str(args.seed)),
        *("--concurrency", str(args.concurrency), "--out", str(out)),
    ]
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    subprocess.run(cmd, check=True, env=env)
    return json.loads(out.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("other", type=Path, help="the other checkout (e.g. a worktree of main)")
    ap.add_argument("--tools", default="citepipe")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--reports", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    versions = {"this": HERE.parent, "other": args.other.resolve()}
    results: dict[tuple[str, str], list[Any]] = {}
    site, port = start_site(args.reports, args.seed)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for rnd in range(args.rounds):
                for tool in args.tools.split(","):
                    order = list(versions) if rnd % 2 == 0 else list(versions)[::-1]
                    for name in order:
                        out = Path(tmp) / f"{name}-{tool}-{rnd}.json"
                        r = run_child(versions[name], tool, port, args, out)
                        results.setdefault((name, tool), []).append(r)
                        print(
                            f"round {rnd + 1} {name:>5} {tool}: {r['pages_per_s']:6.0f} pages/s "
                            f"{r['cpu_ms_per_page']:5.2f} CPU-ms/page ({r['pages']} pages, "
                            f"{r['statements']} statements, {r['digest']})",
                            flush=True,
                        )
    finally:
        site.terminate()
        site.wait(10)
    print(f"\n{args.reports} reports, {args.rounds} rounds alternating; other = {args.other}")
    print("| version | tool | pages/s median (min–max) | CPU-ms/page median (min–max) |")
    print("| --- | --- | --- | --- |")
    med: dict[tuple[str, str], float] = {}
    for (name, tool), runs in results.items():
        pps = [r["pages_per_s"] for r in runs]
        cpu = [r["cpu_ms_per_page"] for r in runs]
        med[name, tool] = statistics.median(pps)
        print(
            f"| {name} | {tool} | {med[name, tool]:.0f} ({min(pps):.0f}–{max(pps):.0f}) "
            f"| {statistics.median(cpu):.2f} ({min(cpu):.2f}–{max(cpu):.2f}) |"
        )
    for tool in args.tools.split(","):
        ratio = med["this", tool] / med["other", tool]
        pairs = [
            a["pages_per_s"] / b["pages_per_s"]
            for a, b in zip(results["this", tool], results["other", tool], strict=True)
        ]
        print(
            f"{tool}: this / other = {ratio:.3f} pages/s ({(ratio - 1) * 100:+.1f} %); "
            f"per round {statistics.median(pairs):.3f} median "
            f"({min(pairs):.3f}–{max(pairs):.3f}): " + " ".join(f"{p:.2f}" for p in pairs)
        )
    stored = {(r["pages"], r["statements"], r["digest"]) for runs in results.values() for r in runs}
    if len(stored) != 1:
        print(f"the versions did NOT store the same rows: {sorted(stored)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
