"""Export speed: a script that prints figures, never a test.

Builds a SQLite store of N statements (the store's own schema, opened by `SQLiteStore`,
then filled by one bulk insert: 2,000 cited papers, 50,000 citers, 5 % of the statements
`contrasting`), then times, each the best of `--rounds`:

- the floor: a plain `csv.writer` (and `json.dumps`) loop over the export's own query,
  one cursor, written to a file;
- `citepipe export --table statements` as a command (a subprocess, start-up included):
  CSV, JSON lines, Parquet, and a filtered CSV (`--where type=contrasting`, ~5 %).

    .venv/bin/python benchmarks/export.py [--statements 200000] [--million] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pipeline.store import SQLiteStore
from pipeline.store.tables import COLUMNS

CITED = 2000
CITERS = 50_000
STAMP = "2026-01-01T00:00:00.000000Z"
TYPES = ("supporting", "mentioning") * 9 + ("mentioning", "contrasting")  # 1 in 20
CITEPIPE = Path(sys.executable).with_name("citepipe")


async def build(path: Path, statements: int) -> None:
    """A store with `statements` statements, through its own migrations."""
    async with SQLiteStore(path):
        pass
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO papers (doi, title, first_seen_at) VALUES (?, ?, ?)",
            [(f"10.1/c{i}", f"Cited {i}", STAMP) for i in range(CITED)]
            + [(f"10.2/s{i}", f"Citer {i}", STAMP) for i in range(CITERS)],
        )

        def rows() -> object:
            for i in range(statements):
                snippet = f"... as earlier work showed (#{i}), the effect is real ..."
                yield (
                    f"10.1/c{i % CITED}",
                    f"10.2/s{(i * 7919) % CITERS}",
                    snippet,
                    hashlib.sha1(snippet.encode()).hexdigest(),
                    "Introduction",
                    TYPES[i % len(TYPES)],
                    0.5 + (i % 50) / 100,
                    STAMP,
                    STAMP,
                )

        db.executemany(
            "INSERT INTO statements (cited_doi, citing_doi, snippet, snippet_hash, section, "
            "type, confidence, first_seen_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows(),  # type: ignore[arg-type]
        )


def plain_csv(db: Path, out: Path) -> None:
    """The floor: one cursor over the export's query, a csv.writer loop."""
    columns = COLUMNS["statements"]
    con = sqlite3.connect(db)
    with open(out, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for row in con.execute(f"SELECT {', '.join(columns)} FROM statements ORDER BY id"):
            writer.writerow(row)
    con.close()


def plain_jsonl(db: Path, out: Path) -> None:
    """The floor for JSON lines: one cursor, a json.dumps loop."""
    columns = COLUMNS["statements"]
    con = sqlite3.connect(db)
    with open(out, "w", encoding="utf-8", newline="") as f:
        for row in con.execute(f"SELECT {', '.join(columns)} FROM statements ORDER BY id"):
            f.write(json.dumps(dict(zip(columns, row, strict=True)), ensure_ascii=False) + "\n")
    con.close()


def command(db: Path, out: Path, *extra: str) -> Callable[[], None]:
    argv = [str(CITEPIPE), "export", "--db", str(db), "--table", "statements", "-o", str(out)]

    def run() -> None:
        subprocess.run([*argv, *extra], check=True, stderr=subprocess.DEVNULL)

    return run


def best(fn: Callable[[], None], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--statements", type=int, default=200_000)
    parser.add_argument("--million", action="store_true", help="1,000,000 statements")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    n = 1_000_000 if args.million else args.statements
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        db = base / "store.sqlite"
        start = time.perf_counter()
        asyncio.run(build(db, n))
        size = db.stat().st_size / 1e6
        print(
            f"store: {n:,} statements, {size:,.0f} MB, built in {time.perf_counter() - start:.1f} s"
        )
        cases: list[tuple[str, Callable[[], None]]] = [
            ("plain csv.writer loop", lambda: plain_csv(db, base / "plain.csv")),
            ("plain json.dumps loop", lambda: plain_jsonl(db, base / "plain.jsonl")),
            ("citepipe export csv", command(db, base / "out.csv")),
            ("citepipe export jsonl", command(db, base / "out.jsonl", "--format", "jsonl")),
            ("citepipe export parquet", command(db, base / "o.parquet", "--format", "parquet")),
            (
                "  --where type=contrasting",
                command(db, base / "f.csv", "--where", "type=contrasting"),
            ),
        ]
        for name, fn in cases:
            seconds = best(fn, args.rounds)
            print(f"  {name:<28} {seconds:7.2f} s  {n / seconds:11,.0f} rows/s")
        if (base / "plain.csv").read_bytes() != (base / "out.csv").read_bytes():
            print("  (note: citepipe's CSV differs from the plain loop's)")


if __name__ == "__main__":
    main()
