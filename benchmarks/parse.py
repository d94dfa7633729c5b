"""How fast the report parser is: µs per page and MB/s, against a BeautifulSoup baseline.

    .venv/bin/python benchmarks/parse.py [--pages 20] [--rounds 5] [--bs4-rounds 2]

Pages come from the local site's renderer (`citesite.render.render_page`, page 1 of
generated reports with at least 25 statements, ~55 KB each) when it is importable, else
from the shared sample with its statements replicated to 25 and its head padded to
~55 KB. The baseline (bs4 + html.parser, or lxml when installed) extracts the same
fields with the same rules, and its output is checked against the parser's so the
comparison is like for like. Each figure is the best of `rounds` passes over all pages.
A script that prints figures, never a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from bs4 import BeautifulSoup, Tag
from selectolax.lexbor import LexborHTMLParser

from pipeline.models import result_to_dict
from pipeline.normalise import (
    clean_text,
    doi_or_none,
    parse_confidence,
    parse_date,
    parse_int,
    parse_statement_type,
    parse_year,
    strip_label,
    strip_snippet_quotes,
)
from pipeline.sources.report import parse_report

BASE = "https://scite.ai"
SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "samples"
PER_PAGE = 25


# --- pages ----------------------------------------------------------------------------


def site_pages(n: int) -> tuple[list[tuple[bytes, str]], str] | None:
    """Page 1 of the first `n` generated reports that fill a page; None without the site."""
    try:
        from citesite.dataset import page_url
        from citesite.generator import report_at
        from citesite.render import render_page
    except ImportError:
        return None
    pages: list[tuple[bytes, str]] = []
    index = 0
    while len(pages) < n and index < 100 * n:
        report = report_at(0, index)
        index += 1
        if len(report.statements) >= PER_PAGE:
            pages.append((render_page(report, 1, BASE), page_url(BASE, report, 1)))
    return pages, "citesite.render (generated reports, page 1, 25 statements)"


def sample_pages(n: int) -> tuple[list[tuple[bytes, str]], str]:
    """The shared sample with 25 statements and a padded head, `n` near-identical copies."""
    html = (SAMPLE / "seed-report-page1.html").read_text("utf-8")
    item = re.compile(r'<li class="statement".*?</li>', re.S)
    found = item.findall(html)
    many = "\n".join(
        found[i % len(found)].replace("cite.000", f"cite.{i:03d}x") for i in range(PER_PAGE)
    )
    html = item.sub("", html).replace('<ol class="statements">', f'<ol class="statements">{many}')
    chunk = "<script>window.t=function(a,b){return a<b?a:b};</script><style>.c{color:red}</style>\n"
    while len(html.encode()) + len(chunk) < 55_000:
        html = html.replace("</head>", chunk + "</head>", 1)
    url = f"{BASE}/reports/mesenchymal-sct-ameliorates-refractory-cytopenia-14Lxay"
    pages = [(html.replace("Bone Marrow", f"Bone Marrow {i}", 1).encode(), url) for i in range(n)]
    return pages, "shared sample, statements replicated to 25, head padded"


# --- the BeautifulSoup baseline -------------------------------------------------------


def _bs_text(node: Tag | None) -> str | None:
    return None if node is None else clean_text(node.get_text())


def _bs_meta(soup: BeautifulSoup, name: str) -> str | None:
    for node in soup.select(f"meta[name={name}]"):
        value = clean_text(re.sub(r"</?[A-Za-z][^<>]*>", "", str(node.get("content") or "")))
        if value:
            return value
    return None


def parse_bs4(html: bytes, url: str, features: str) -> dict[str, Any]:
    """The same fields as `result_to_dict`, read with BeautifulSoup and the same rules."""
    soup = BeautifulSoup(html, features)
    root = soup.select_one("#report") or soup
    for node in root.select("script, style, noscript, template"):
        node.decompose()
    for br in root.select("br"):
        br.replace_with(" ")
    canonical = soup.select_one("link[rel=canonical]")
    href = str(canonical.get("href") or "") if canonical else ""
    report_url = href if href.startswith(("http://", "https://")) else url
    doi = doi_or_none(_bs_meta(soup, "citation_doi") or "")
    if doi is None:
        holder = soup.select_one("#report[data-doi]")
        doi = doi_or_none(str(holder.get("data-doi") or "")) if holder else None
    if doi is None:
        doi = doi_or_none(strip_label(_bs_text(root.select_one(".report-doi")), "DOI") or "")
    title = _bs_meta(soup, "citation_title") or _bs_text(root.select_one("h1.report-title"))
    authors = [
        a
        for a in (
            clean_text(str(m.get("content") or ""))
            for m in soup.select("meta[name=citation_author]")
        )
        if a
    ] or [a for a in (_bs_text(li) for li in root.select(".report-authors li")) if a]
    year, date = parse_date(_bs_meta(soup, "citation_publication_date"))
    if year is None:
        year = parse_year(_bs_text(root.select_one(".report-year")))
    abstract_node = root.select_one(".report-abstract")
    abstract, truncated = None, None
    if abstract_node is not None:
        flagged = str(abstract_node.get("data-truncated") or "").lower() == "true"
        for control in abstract_node.select("button, .show-more"):
            control.decompose()
        abstract = strip_label(_bs_text(abstract_node), "Abstract")
        if abstract and abstract.lower().endswith("show more"):
            abstract = clean_text(abstract[: -len("show more")])
        truncated = (flagged or abstract.endswith(("…", "..."))) if abstract else None
    tallies_node = root.select_one(".report-tallies")
    assert tallies_node is not None and doi and title, "baseline: not a report page"
    counts: dict[str, int | None] = {}
    for tally in tallies_node.select(".tally[data-type]"):
        kind = parse_statement_type(str(tally.get("data-type") or ""))
        if kind and kind not in counts:
            counts[kind] = parse_int(_bs_text(tally.select_one(".tally-count")))
    cited = _bs_text(tallies_node.select_one(".cited-by")) or ""
    pubs = re.search(r"([0-9][0-9,]*)\s*publications?\b", cited, re.I)
    stmts = re.search(r"([0-9][0-9,]*)\s*citation\s+statements?\b", cited, re.I)
    facets = []
    facets_node = root.select_one(".report-facets")
    for facet in facets_node.select(".facet[data-facet]") if facets_node else []:
        for li in facet.select("li"):
            label = _bs_text(li.select_one(".facet-label"))
            if label:
                count = parse_int(_bs_text(li.select_one(".facet-count")))
                facets.append([clean_text(str(facet.get("data-facet"))), label, count])
    statements = []
    statement_list = root.select_one("ol.statements")
    assert statement_list is not None, "baseline: no statement list"
    for li in statement_list.find_all("li", class_="statement", recursive=False):
        citing = doi_or_none(str(li.get("data-citing-doi") or ""))
        snippet = _bs_text(li.select_one(".snippet"))
        snippet = strip_snippet_quotes(snippet) if snippet else None
        if not citing or not snippet:
            continue
        statements.append(
            {
                "citing_doi": citing,
                "citing_title": _bs_text(li.select_one(".citing-title")),
                "citing_year": parse_year(_bs_text(li.select_one(".citing-year"))),
                "citing_journal": _bs_text(li.select_one(".citing-journal")),
                "snippet": snippet,
                "section": strip_label(_bs_text(li.select_one(".statement-section")), "Section"),
                "type": parse_statement_type(_bs_text(li.select_one(".statement-type"))),
                "confidence": parse_confidence(_bs_text(li.select_one(".statement-confidence"))),
            }
        )
    nxt = root.select_one("a[rel=next]")
    next_href = str(nxt.get("href") or "") if nxt else ""
    return {
        "report_url": report_url,
        "doi": doi,
        "title": title,
        "authors": authors,
        "journal": _bs_meta(soup, "citation_journal_title")
        or _bs_text(root.select_one(".report-journal")),
        "publication_date": date,
        "year": year,
        "abstract": abstract,
        "abstract_truncated": truncated,
        "tallies": {
            "supporting": counts.get("supporting"),
            "mentioning": counts.get("mentioning"),
            "contrasting": counts.get("contrasting"),
            "citing_publications": parse_int(pubs.group(1)) if pubs else None,
            "citation_statements": parse_int(stmts.group(1)) if stmts else None,
            "references_count": parse_int(_bs_text(tallies_node.select_one(".references"))),
        },
        "facets": facets,
        "statements": statements,
        "next_page_url": urljoin(report_url, next_href) if next_href else None,
    }


# --- timing ---------------------------------------------------------------------------


def best_pass(
    fn: Callable[[bytes, str], object], pages: list[tuple[bytes, str]], rounds: int
) -> float:
    """Seconds for the fastest of `rounds` passes over all pages."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for body, url in pages:
            fn(body, url)
        best = min(best, time.perf_counter() - start)
    return best


def report(name: str, seconds: float, pages: list[tuple[bytes, str]]) -> float:
    per_page = seconds / len(pages) * 1e6
    megabytes = sum(len(body) for body, _ in pages) / 1e6
    print(f"  {name:<34} {per_page:>10.1f} µs/page {megabytes / seconds:>9.1f} MB/s")
    return per_page


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    args.add_argument("--pages", type=int, default=20)
    args.add_argument("--rounds", type=int, default=5)
    args.add_argument("--bs4-rounds", type=int, default=2)
    opts = args.parse_args(argv)

    pages, origin = site_pages(opts.pages) or sample_pages(opts.pages)
    features = "lxml" if importlib.util.find_spec("lxml") else "html.parser"
    sizes = [len(body) for body, _ in pages]
    statements = [len(parse_report(body, url).statements) for body, url in pages]
    print(f"pages: {len(pages)} from {origin}")
    print(
        f"  size {min(sizes) / 1e3:.1f}-{max(sizes) / 1e3:.1f} KB "
        f"(mean {sum(sizes) / len(sizes) / 1e3:.1f} KB), statements per page "
        f"{min(statements)}-{max(statements)}"
    )
    print(f"python {platform.python_version()} on {platform.machine()}")

    mismatches = sum(
        result_to_dict(parse_report(body, url)) != parse_bs4(body, url, features)
        for body, url in pages
    )
    print(f"baseline agrees with the parser on {len(pages) - mismatches}/{len(pages)} pages")

    ours = report(
        "citepipe (selectolax/lexbor)", best_pass(parse_report, pages, opts.rounds), pages
    )
    report(
        "  of which lexbor parse only",
        best_pass(lambda body, _url: LexborHTMLParser(body), pages, opts.rounds),
        pages,
    )
    theirs = report(
        f"bs4 + {features}",
        best_pass(lambda body, url: parse_bs4(body, url, features), pages, opts.bs4_rounds),
        pages,
    )
    print(f"  speed-up over the baseline: {theirs / ours:.0f}x")
    return 0 if mismatches == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
