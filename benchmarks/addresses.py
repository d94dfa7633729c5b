"""What the address checks cost per page: `Source.address` (a DOI's report address, with
the dot-segment check) and `Source.in_scope` (a next link or redirect target).

    .venv/bin/python benchmarks/addresses.py [--number 100000]

Both run once or twice per page on the worker's path; compare with the parse (~0.7-1.4
ms/page, `benchmarks/parse.py`). Best of five rounds. A script that prints figures,
never a test.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

from pipeline.sources.report import ReportSource

BASE = "http://127.0.0.1:8765"
DOIS = ("10.1038/bmt.2012.184", "10.1002/(sici)1097-4636(199706)35:4<425::aid-jbm1>3.0.co;2-k")
LINK = f"{BASE}/reports/anxiety-depression-and-tourism-demand-919pR5g?page=3"
HOSTILE = f"{BASE}/reports/10.1038/%252E%252E/%252E%252E/private/x"


def best(fn: Callable[[], object], number: int) -> float:
    """µs per call, best of five rounds."""
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--number", type=int, default=100_000, help="calls per round")
    n = parser.parse_args().number
    source = ReportSource(base_url=BASE)
    for doi in DOIS:
        print(f"address({doi[:40]!r}): {best(lambda d=doi: source.address(d), n):.2f} µs")
    print(f"in_scope(next link): {best(lambda: source.in_scope(LINK), n):.2f} µs")
    print(f"in_scope(hostile, refused): {best(lambda: source.in_scope(HOSTILE), n):.2f} µs")


if __name__ == "__main__":
    main()
