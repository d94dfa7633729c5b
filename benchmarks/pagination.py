"""What the pagination guard costs the worker per page (`pipeline.crawl.pagination.next_step`),
and what a report's chain costs in the queue. A script that prints figures, never a test.

    .venv/bin/python benchmarks/pagination.py [--calls 50000]
"""

from __future__ import annotations

import argparse
import timeit

from pipeline.crawl.pagination import next_step
from pipeline.models import Chain, Job, Page, Paper, ParseResult, Statement, Tally
from pipeline.store.rules import chain_from_text, chain_text

SITE = "http://127.0.0.1:8765"
BASE = f"{SITE}/reports/mesenchymal-sct-ameliorates-refractory-cytopenia-14Lxay"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=50_000)
    n = parser.parse_args().calls
    statements = tuple(Statement(f"10.2/{i}", f"snippet {i}") for i in range(25))
    paper = Paper(doi="10.1038/bmt.2012.184", title="t", report_url=BASE)

    def result(nxt: str | None) -> ParseResult:
        return ParseResult(paper, Tally(citation_statements=49), (), statements, nxt)

    first = Job(1, paper.doi, f"{SITE}/reports/10.1038/bmt.2012.184", 1, 1, 0)
    redirected = Page(first.url, BASE, 200, b"")
    chain = Chain(seen=(first.url, BASE, f"{BASE}?page=2"), counted=49, per_page=25, got=25)
    middle = Job(2, paper.doi, f"{BASE}?page=2", 2, 1, 0, chain=chain)
    page2 = Page(middle.url, middle.url, 200, b"")
    cases = {
        "page 1, the report's only page": (first, redirected, result(None)),
        "page 1 with a next link": (first, redirected, result(f"{BASE}?page=2")),
        "page 2 with a next link": (middle, page2, result(f"{BASE}?page=3")),
    }
    for name, args in cases.items():
        t = timeit.timeit(lambda a=args: next_step(*a, site=SITE, max_pages=500), number=n)  # type: ignore[misc]
        print(f"next_step, {name}: {t / n * 1e6:.1f} us")
    text = chain_text(chain) or ""
    t = timeit.timeit(lambda: chain_from_text(chain_text(chain)), number=n)
    print(f"chain of page 3 in jobs.chain: {len(text)} bytes, {t / n * 1e6:.1f} us to write+read")
    long = Chain(
        seen=tuple(f"{BASE}?page={i}" for i in range(1, 500)),
        counted=None,
        repeats=tuple(f"{i:016x}" for i in range(1, 500)),
    )
    print(
        f"chain of page 500 (the default max_pages_per_report): {len(chain_text(long) or '')} bytes"
    )


if __name__ == "__main__":
    main()
