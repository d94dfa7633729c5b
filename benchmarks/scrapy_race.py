"""The Scrapy contestants of `benchmarks/race.py`: the same job as `citepipe backfill`.

Two spiders over the same report addresses, following `rel=next`, storing the same rows
(papers with their citers, authors, tallies, facets, statements upserted by identity) into
one SQLite file through an item pipeline that commits every `COMMIT_EVERY` pages:

- `parsel`: what a Scrapy user writes, Scrapy's own selectors (parsel, lxml underneath),
  with the project's normalisers for the text rules, so the rows come out identical;
- `citepipe`: the same spider with citepipe's parser (`parse_report`, selectolax/lexbor)
  in the callback.

Needs the optional `bench` extra (`pip install -e '.[bench]'`); never a runtime
dependency. `race.py` runs this in a child process of its own (`run_scrapy`).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.http import Response

from pipeline.normalise import (
    clean_text,
    doi_or_none,
    parse_confidence,
    parse_date,
    parse_int,
    parse_statement_type,
    parse_year,
    report_address,
    snippet_hash,
    strip_label,
    strip_snippet_quotes,
)
from pipeline.sources.report import parse_report

COMMIT_EVERY = 50  # pages per transaction, as bare.py
_BR = re.compile(rb"<br\s*/?>", re.IGNORECASE)
_VISIBLE = ".//text()[not(ancestor::script or ancestor::style or ancestor::noscript)]"
_PUBS = re.compile(r"([0-9][0-9,]*)\s*publications?\b", re.I)
_STMTS = re.compile(r"([0-9][0-9,]*)\s*citation\s+statements?\b", re.I)

SCHEMA = """
CREATE TABLE papers (doi TEXT PRIMARY KEY, title TEXT, year INTEGER, journal TEXT,
                     publication_date TEXT, abstract TEXT);
CREATE TABLE authors (doi TEXT, position INTEGER, name TEXT, PRIMARY KEY (doi, position));
CREATE TABLE tallies (doi TEXT PRIMARY KEY, supporting INTEGER, mentioning INTEGER,
                      contrasting INTEGER, citing_publications INTEGER,
                      citation_statements INTEGER, references_count INTEGER);
CREATE TABLE facets (doi TEXT, facet TEXT, label TEXT, count INTEGER,
                     PRIMARY KEY (doi, facet, label));
CREATE TABLE statements (id INTEGER PRIMARY KEY, cited_doi TEXT, citing_doi TEXT,
                         snippet TEXT, snippet_hash TEXT, section TEXT, type TEXT,
                         confidence REAL, UNIQUE (cited_doi, citing_doi, snippet_hash));
CREATE TABLE pages (url TEXT PRIMARY KEY);
"""


def text_of(sel: Any) -> str | None:
    """Visible text content of a parsel selector (scripts and styles left out), cleaned."""
    if sel is None:
        return None
    return clean_text("".join(sel.xpath(_VISIBLE).getall()))


def raw_of(sel: Any) -> str | None:
    return None if sel is None else "".join(sel.xpath(_VISIBLE).getall())


def first(sel: Any, css: str) -> Any:
    found = sel.css(css)
    return found[0] if found else None


def parsel_report(response: Response, cited: str) -> dict[str, Any]:
    """The report page read with parsel: the fields citepipe stores, same rules."""
    root = first(response, "#report") or response
    meta = response.css
    title = clean_text(meta("meta[name=citation_title]::attr(content)").get()) or text_of(
        first(root, "h1.report-title")
    )
    year, date = parse_date(meta("meta[name=citation_publication_date]::attr(content)").get())
    if year is None:
        year = parse_year(text_of(first(root, ".report-year")))
    journal = clean_text(meta("meta[name=citation_journal_title]::attr(content)").get()) or text_of(
        first(root, ".report-journal")
    )
    authors = [clean_text(a) for a in meta("meta[name=citation_author]::attr(content)").getall()]
    if not any(authors):
        authors = [text_of(li) for li in root.css(".report-authors li")]
    abstract = first(root, ".report-abstract")
    tallies: dict[str, int | None] = {}
    section = first(root, ".report-tallies")
    if section is not None:
        for tally in section.css(".tally[data-type]"):
            kind = parse_statement_type(tally.attrib.get("data-type"))
            if kind and kind not in tallies:
                tallies[kind] = parse_int(raw_of(first(tally, ".tally-count")))
        cited_by = text_of(first(section, ".cited-by")) or ""
        pubs, stmts = _PUBS.search(cited_by), _STMTS.search(cited_by)
        tallies["citing_publications"] = parse_int(pubs.group(1)) if pubs else None
        tallies["citation_statements"] = parse_int(stmts.group(1)) if stmts else None
        tallies["references_count"] = parse_int(raw_of(first(section, ".references")))
    facets = []
    for facet in root.css(".report-facets .facet[data-facet]"):
        name = clean_text(facet.attrib.get("data-facet"))
        for li in facet.css("li"):
            label = text_of(first(li, ".facet-label"))
            if name and label:
                facets.append((name, label, parse_int(raw_of(first(li, ".facet-count")))))
    statements = []
    for li in root.css("ol.statements > li.statement"):
        citing = doi_or_none(li.attrib.get("data-citing-doi") or "")
        snippet = text_of(first(li, ".snippet"))
        snippet = strip_snippet_quotes(snippet) if snippet else None
        if not citing or not snippet:
            continue
        statements.append(
            {
                "citing_doi": citing,
                "snippet": snippet,
                "citing_title": text_of(first(li, ".citing-title")),
                "citing_year": parse_year(raw_of(first(li, ".citing-year"))),
                "citing_journal": text_of(first(li, ".citing-journal")),
                "section": strip_label(raw_of(first(li, ".statement-section")), "Section"),
                "type": parse_statement_type(raw_of(first(li, ".statement-type"))),
                "confidence": parse_confidence(raw_of(first(li, ".statement-confidence"))),
            }
        )
    nxt = root.css("a[rel=next]::attr(href)").get()
    return {
        "doi": cited,
        "title": title,
        "year": year,
        "publication_date": date,
        "journal": journal,
        "abstract": text_of(abstract),
        "authors": [a for a in authors if a],
        "tallies": tallies,
        "facets": facets,
        "statements": statements,
        "next": response.urljoin(nxt) if nxt else None,
    }


def citepipe_report(response: Response, cited: str) -> dict[str, Any]:
    """The same item from citepipe's own parser."""
    r = parse_report(response.body, response.url)
    p, t = r.paper, r.tallies
    return {
        "doi": cited,
        "title": p.title,
        "year": p.year,
        "publication_date": p.publication_date,
        "journal": p.journal,
        "abstract": p.abstract,
        "authors": list(p.authors),
        "tallies": {
            "supporting": t.supporting,
            "mentioning": t.mentioning,
            "contrasting": t.contrasting,
            "citing_publications": t.citing_publications,
            "citation_statements": t.citation_statements,
            "references_count": t.references_count,
        },
        "facets": [(f.facet, f.label, f.count) for f in r.facets],
        "statements": [
            {
                "citing_doi": s.citing_doi,
                "snippet": s.snippet,
                "citing_title": s.citing_title,
                "citing_year": s.citing_year,
                "citing_journal": s.citing_journal,
                "section": s.section,
                "type": s.type,
                "confidence": s.confidence,
            }
            for s in r.statements
        ],
        "next": response.urljoin(r.next_page_url) if r.next_page_url else None,
    }


class ReportSpider(scrapy.Spider):
    """Every report of the input, page by page."""

    name = "reports"

    def __init__(self, base: str, dois: list[str], parser: str, **kw: Any) -> None:
        super().__init__(**kw)
        self.base, self.dois = base, dois
        self.read = parsel_report if parser == "parsel" else citepipe_report
        self.parser = parser

    async def start(self) -> AsyncIterator[scrapy.Request]:
        for doi in self.dois:
            yield scrapy.Request(report_address(self.base, doi), cb_kwargs={"cited": doi})

    def parse(self, response: Response, cited: str) -> Iterator[Any]:  # type: ignore[override]
        if self.parser == "parsel":  # <br> reads as a space (DOM text content would not)
            response = response.replace(body=_BR.sub(b" ", response.body))
        item = self.read(response, cited)
        item["url"] = response.url
        yield item
        if item["next"]:
            yield scrapy.Request(item["next"], cb_kwargs={"cited": cited})


class SQLitePipeline:
    """Rows of each page into SQLite; one transaction every `COMMIT_EVERY` pages."""

    def __init__(self) -> None:
        self.db: sqlite3.Connection | None = None
        self.pending = 0

    def open_spider(self, spider: scrapy.Spider) -> None:
        self.db = sqlite3.connect(spider.settings["RACE_DB"], isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")
        self.db.executescript(SCHEMA)
        self.db.execute("BEGIN")

    def close_spider(self, spider: scrapy.Spider) -> None:
        assert self.db is not None
        self.db.execute("COMMIT")
        self.db.close()

    def process_item(self, item: dict[str, Any]) -> dict[str, Any]:
        db = self.db
        assert db is not None
        doi = item["doi"]
        db.execute("INSERT OR IGNORE INTO pages (url) VALUES (?)", (item["url"],))
        db.execute(
            "INSERT INTO papers (doi, title, year, journal, publication_date, abstract) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (doi) DO UPDATE SET title = excluded.title, "
            "year = excluded.year, journal = excluded.journal, "
            "publication_date = excluded.publication_date, abstract = excluded.abstract",
            (
                doi,
                item["title"],
                item["year"],
                item["journal"],
                item["publication_date"],
                item["abstract"],
            ),
        )
        db.executemany(
            "INSERT OR REPLACE INTO authors VALUES (?, ?, ?)",
            [(doi, i, a) for i, a in enumerate(item["authors"], 1)],
        )
        t = item["tallies"]
        db.execute(
            "INSERT OR REPLACE INTO tallies VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                doi,
                t.get("supporting"),
                t.get("mentioning"),
                t.get("contrasting"),
                t.get("citing_publications"),
                t.get("citation_statements"),
                t.get("references_count"),
            ),
        )
        db.executemany(
            "INSERT OR REPLACE INTO facets VALUES (?, ?, ?, ?)",
            [(doi, *f) for f in item["facets"]],
        )
        db.executemany(
            "INSERT INTO papers (doi, title, year, journal) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (doi) DO UPDATE SET title = coalesce(papers.title, excluded.title), "
            "year = coalesce(papers.year, excluded.year), "
            "journal = coalesce(papers.journal, excluded.journal)",
            [
                (s["citing_doi"], s["citing_title"], s["citing_year"], s["citing_journal"])
                for s in item["statements"]
            ],
        )
        db.executemany(
            "INSERT INTO statements (cited_doi, citing_doi, snippet, snippet_hash, section, "
            "type, confidence) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (cited_doi, citing_doi, snippet_hash) DO UPDATE SET "
            "section = coalesce(excluded.section, statements.section)",
            [
                (
                    doi,
                    s["citing_doi"],
                    s["snippet"],
                    snippet_hash(s["snippet"]),
                    s["section"],
                    s["type"],
                    s["confidence"],
                )
                for s in item["statements"]
            ],
        )
        self.pending += 1
        if self.pending >= COMMIT_EVERY:
            self.pending = 0
            db.execute("COMMIT")
            db.execute("BEGIN")
        return item


def run_scrapy(base: str, dois: list[str], db: Path, concurrency: int, parser: str) -> None:
    """Crawl every report into `db` with Scrapy (blocks until done; one call a process)."""
    process = CrawlerProcess(
        {
            "LOG_LEVEL": "ERROR",
            "TELNETCONSOLE_ENABLED": False,
            "ROBOTSTXT_OBEY": False,
            "CONCURRENT_REQUESTS": concurrency,
            "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
            "DOWNLOAD_DELAY": 0,
            "AUTOTHROTTLE_ENABLED": False,
            "COOKIES_ENABLED": False,
            "RETRY_TIMES": 2,
            "ITEM_PIPELINES": {f"{__name__}.SQLitePipeline": 100},
            "RACE_DB": str(db),
            "LOG_INSTALL_ROOT_HANDLER": False,
        }
    )
    process.crawl(ReportSpider, base=base, dois=dois, parser=parser)
    process.start()
