"""The local citation site's reports, made: the seeded generator and the demo data set.

- `generate(n, seed)` streams `n` reports built from the real texts; report `i` depends only
  on `(seed, i)` (`report_at`), so `generate(10)` is a prefix of `generate(1_000_000)`, and
  `GeneratedReports(n, seed)` serves the same reports as a lazy mapping (no memory per
  report). Citing DOIs live under `10.5555/`; about one statement in twelve is cited by
  another report of the set (always an earlier one), so a depth crawl finds it.
- `build_demo_dataset()`: the bundled demo set (`python -m citesite.generator [FILE]`
  rebuilds `demo.jsonl`), which shares the generator's private citers and headers.

Kept apart from `citesite.dataset` (the records, their I/O and the ground truth) so that
reading a data set needs none of the generator's machinery.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from citesite.corpus import (
    INITIALS,
    JOURNALS,
    PHRASES,
    PLACES,
    POPULATIONS,
    REAL_JOURNALS,
    SAMPLE_SNIPPETS,
    SURNAMES,
    TITLE_TEMPLATES,
    RealReport,
    pools,
    real_reports,
)
from citesite.dataset import (
    DEMO_PATH,
    SEED_DOI,
    TEST_PREFIX,
    SiteFacet,
    SiteReport,
    SiteStatement,
    SiteTally,
    SiteType,
    base62,
    generated_doi,
    generated_index_from_doi,
    generated_index_from_slug,
    generated_short_id,
    make_slug,
    site_type,
    write_dataset,
)
from citesite.style import stable_hash

# --------------------------------------------------------------------------- generation


@dataclass(frozen=True, slots=True)
class _Citer:
    doi: str
    title: str | None
    year: int | None
    journal: str | None


@dataclass(frozen=True, slots=True)
class _Header:
    doi: str
    slug: str
    title: str
    year: int | None
    journal: str | None


_SAMPLE_CITERS: dict[int, _Citer] = {
    1: _Citer(
        "10.5555/cite.0001",
        "Mesenchymal stromal cells in the treatment of cytopenias",
        2016,
        "Stem Cell Reviews",
    ),
    2: _Citer(
        "10.5555/cite.0002",
        "Mesenchymal stromal cells in the treatment of cytopenias (preprint)",
        2015,
        None,
    ),
    3: _Citer(
        "10.5555/cite.0003",
        "Mesenchymal stem cell therapy in autoimmune disease: a review",
        2017,
        None,
    ),
    4: _Citer(
        "10.5555/cite.0004",
        "Lupus bone marrow MSCs and B cell suppression",
        2019,
        "Journal of Immunology",
    ),
}


def _title(rng: random.Random) -> str:
    p = pools()
    if rng.random() < 0.5:
        return rng.choice(p.titles)
    a, b = rng.sample(PHRASES, 2)
    t = rng.choice(TITLE_TEMPLATES).format(
        A=a, B=b, P=rng.choice(POPULATIONS), L=rng.choice(PLACES)
    )
    return t[0].upper() + t[1:]


@lru_cache(maxsize=65536)
def _citer(seed: int | str, m: int) -> _Citer:
    """Citing paper `m` of a data set: same metadata wherever it cites."""
    if seed == "demo" and m in _SAMPLE_CITERS:
        return _SAMPLE_CITERS[m]
    rng = random.Random(f"citer:{seed}:{m}")
    doi = f"{TEST_PREFIX}/cite.{m:04d}" if seed == "demo" else f"{TEST_PREFIX}/cite.{seed}.{m}"
    if rng.random() < 0.04:
        doi += rng.choice(("(x)<1>", "#a", "?b=1", "é"))
    return _Citer(
        doi=doi,
        title=None if rng.random() < 0.04 else _title(rng),
        year=None if rng.random() < 0.08 else rng.randint(2005, 2025),
        journal=None if rng.random() < 0.35 else rng.choice(JOURNALS),
    )


def _preprint_of(c: _Citer) -> _Citer:
    suffix = c.doi.split("/", 1)[1]
    return _Citer(
        doi=f"{TEST_PREFIX}/preprint.{suffix}",
        title=f"{c.title} (preprint)" if c.title else None,
        year=(c.year - 1) if c.year else None,
        journal=None,
    )


def _snippet(rng: random.Random) -> str:
    p = pools()
    if rng.random() < 0.4:
        return rng.choice(p.snippets)
    body = " ".join(rng.sample(p.sentences, rng.choice((1, 1, 2, 2, 3))))
    form = rng.random()
    if form < 0.8:
        return f"…{body}…"
    if form < 0.9:
        return f"{body}…"
    return f"…{body}"


def _type(rng: random.Random) -> SiteType:
    x = rng.random()
    return "supporting" if x < 0.1 else "contrasting" if x < 0.15 else "mentioning"


def _statement(rng: random.Random, citer: _Citer, snippet: str) -> SiteStatement:
    p = pools()
    return SiteStatement(
        citing_doi=citer.doi,
        citing_title=citer.title,
        citing_year=citer.year,
        citing_journal=citer.journal,
        snippet=snippet,
        section=None if rng.random() < 0.15 else rng.choice(p.sections),
        type=_type(rng),
        confidence=None if rng.random() < 0.1 else rng.randint(50, 99) / 100,
    )


def _statements(
    rng: random.Random,
    count: int,
    pick_citer: Any,
    cross_citer: Any,
    start: Iterable[SiteStatement] = (),
) -> tuple[SiteStatement, ...]:
    """`count` statements (after `start`): pairs from a preprint and its published version,
    repeat citers, and now and then a citer that is another report of the set."""
    out = list(start)
    seen = {(s.citing_doi, s.snippet) for s in out}
    last: _Citer | None = None
    while len(out) < count:
        x = rng.random()
        snippet = _snippet(rng)
        if x < 0.12 and count - len(out) >= 2:
            pub = pick_citer(rng)
            pre = _preprint_of(pub)
            pair = [_statement(rng, pub, snippet)]
            pair.append(
                replace(
                    pair[0],
                    citing_doi=pre.doi,
                    citing_title=pre.title,
                    citing_year=pre.year,
                    citing_journal=pre.journal,
                )
            )
            if (pub.doi, snippet) in seen or (pre.doi, snippet) in seen:
                continue
            out.extend(pair)
            seen.update({(pub.doi, snippet), (pre.doi, snippet)})
            last = pub
            continue
        if x < 0.2 and last is not None:
            citer = last
        elif x < 0.28:
            citer = cross_citer(rng) or pick_citer(rng)
        else:
            citer = pick_citer(rng)
        if (citer.doi, snippet) in seen:
            continue
        out.append(_statement(rng, citer, snippet))
        seen.add((citer.doi, snippet))
        last = citer
    return tuple(out)


def _fmt_author(rng: random.Random) -> str:
    initials = "".join(rng.sample(INITIALS, rng.choice((1, 1, 1, 2))))
    return f"{rng.choice(SURNAMES)}, {initials}"


def _abstract(rng: random.Random) -> tuple[str | None, bool | None]:
    if rng.random() < 0.3:
        return None, None
    text = rng.choice(pools().abstracts)
    if text.endswith("…") and rng.random() < 0.2:
        cut = text.rfind(". ")
        if cut > 80:
            return text[: cut + 1], False
    return text, text.endswith("…")


def _tallies(rng: random.Random, total: int) -> SiteTally:
    refs = None if rng.random() < 0.08 else rng.randint(0, 120)
    pubs = max(0, round(total * rng.uniform(0.5, 1.4)))
    if total == 0:
        pubs = 0
    if rng.random() < 0.04 or (total == 0 and rng.random() < 0.5):
        return SiteTally(None, None, None, pubs, total, refs)
    sup = round(total * rng.uniform(0.0, 0.12))
    con = round(total * rng.uniform(0.0, 0.04))
    men = max(0, total - sup - con + rng.randint(-3, 3))
    return SiteTally(sup, men, con, pubs, total, refs)


def _facets(
    rng: random.Random, tallies: SiteTally, statements: tuple[SiteStatement, ...], year: int | None
) -> tuple[SiteFacet, ...]:
    total = tallies.citation_statements or 0
    out: list[SiteFacet] = []
    sections = Counter(s.section for s in statements if s.section)
    for label, c in sections.most_common(rng.randint(2, 5)):
        out.append(SiteFacet("section", label, c * max(1, total // max(1, len(statements)))))
    if tallies.supporting is not None:
        out += [
            SiteFacet("citation-type", "supporting", tallies.supporting),
            SiteFacet("citation-type", "mentioning", tallies.mentioning),
            SiteFacet("citation-type", "contrasting", tallies.contrasting),
        ]
    if total:
        first = (year or 2015) + 1
        years = sorted(rng.sample(range(first, first + 10), rng.randint(1, 5)))
        out += [SiteFacet("year", str(y), rng.randint(1, max(1, total // 3))) for y in years]
        out += [
            SiteFacet("publication-type", "Article", round(total * 0.7)),
            SiteFacet("publication-type", "Review", round(total * 0.2)),
        ]
        if rng.random() < 0.3:
            out.append(SiteFacet("publication-type", "Preprint", rng.randint(0, 9)))
        self_c = rng.randint(0, 5)
        out += [
            SiteFacet("relationship", "Self-citations", self_c),
            SiteFacet("relationship", "Independent", max(0, total - self_c)),
        ]
        if rng.random() < 0.06:
            out.append(SiteFacet("funder", "National Natural Science Foundation of China", 3))
    return tuple(out)


def _updated_at(rng: random.Random) -> str:
    t = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(700 * 86400))
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=65536)
def _header(seed: int, index: int) -> _Header:
    """Report `index`'s identity and title line, cheap enough to compute for any citer."""
    rng = random.Random(f"header:{seed}:{index}")
    title = _title(rng)
    year = None if rng.random() < 0.03 else rng.randint(1998, 2024)
    journal = None if rng.random() < 0.15 else rng.choice(JOURNALS)
    return _Header(
        doi=generated_doi(seed, index),
        slug=make_slug(title, generated_short_id(seed, index)),
        title=title,
        year=year,
        journal=journal,
    )


def report_at(seed: int, index: int) -> SiteReport:
    """Generated report `index` of the data set `seed` (depends on nothing else)."""
    if seed < 0 or index < 0:
        raise ValueError("seed and index must be >= 0")
    h = _header(seed, index)
    rng = random.Random(f"report:{seed}:{index}")
    date = None
    if h.year is not None and rng.random() < 0.75:
        date = f"{h.year:04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    abstract, truncated = _abstract(rng)
    total = 0 if rng.random() < 0.05 else int(math.exp(rng.uniform(0, 9.2)))
    listed = min(total, rng.choice((rng.randint(0, 30), rng.randint(0, 60), rng.randint(0, 120))))
    n_citers = 40 + index * 3

    def pick(r: random.Random) -> _Citer:
        return _citer(seed, r.randrange(n_citers))

    def cross(r: random.Random) -> _Citer | None:
        if index == 0:
            return None
        o = _header(seed, r.randrange(index))
        return _Citer(o.doi, o.title, o.year, o.journal)

    statements = _statements(rng, listed, pick, cross)
    tallies = _tallies(rng, total)
    return SiteReport(
        doi=h.doi,
        slug=h.slug,
        title=h.title,
        authors=()
        if rng.random() < 0.05
        else tuple(_fmt_author(rng) for _ in range(rng.randint(1, 8))),
        journal=h.journal,
        publication_date=date,
        year=h.year,
        abstract=abstract,
        abstract_truncated=truncated,
        tallies=tallies,
        facets=_facets(rng, tallies, statements, h.year),
        statements=statements,
        updated_at=_updated_at(rng),
    )


def generate(n: int, seed: int = 0) -> Iterator[SiteReport]:
    """Stream `n` generated reports; deterministic for `seed`, nothing held in memory."""
    if n < 0:
        raise ValueError("n must be >= 0")
    for i in range(n):
        yield report_at(seed, i)


class GeneratedReports(Mapping[str, SiteReport]):
    """`generate(n, seed)` as a read-only mapping DOI -> report, computed on demand."""

    def __init__(self, n: int, seed: int = 0) -> None:
        if n < 0 or seed < 0:
            raise ValueError("n and seed must be >= 0")
        self.n = n
        self.seed = seed
        self._get = lru_cache(maxsize=4096)(self._build)

    def _build(self, index: int) -> SiteReport:
        return report_at(self.seed, index)

    def index_of(self, doi: str) -> int | None:
        i = generated_index_from_doi(self.seed, doi)
        if i is None or i >= self.n or _header(self.seed, i).doi != doi:
            return None
        return i

    def __getitem__(self, doi: str) -> SiteReport:
        i = self.index_of(doi)
        if i is None:
            raise KeyError(doi)
        return self._get(i)

    def __iter__(self) -> Iterator[str]:
        return (_header(self.seed, i).doi for i in range(self.n))

    def __len__(self) -> int:
        return self.n

    def by_slug(self, slug: str) -> SiteReport | None:
        """The report whose slug is `slug`, or None."""
        i = generated_index_from_slug(self.seed, slug)
        if i is None or i >= self.n or _header(self.seed, i).slug != slug:
            return None
        return self._get(i)


# --------------------------------------------------------------------------- demo data set

_SEED_FACETS: tuple[SiteFacet, ...] = (
    SiteFacet("section", "Discussion", 2),
    SiteFacet("section", "Introduction", 1),
    SiteFacet("section", "Methods", 1),
    SiteFacet("citation-type", "supporting", 0),
    SiteFacet("citation-type", "mentioning", 49),
    SiteFacet("citation-type", "contrasting", 0),
    SiteFacet("year", "2014", 6),
    SiteFacet("year", "2020", 3),
    SiteFacet("publication-type", "Article", 7),
    SiteFacet("publication-type", "Review", 2),
    SiteFacet("relationship", "Self-citations", 0),
    SiteFacet("relationship", "Independent", 9),
)


def _seed_statements() -> tuple[SiteStatement, ...]:
    c = _SAMPLE_CITERS
    first = next(r for r in real_reports() if r.doi == SEED_DOI).statements[0]["snippet"]
    rows = (
        (c[1], first, "Discussion", 0.9),
        (c[2], first, "Discussion", 0.9),
        (c[3], SAMPLE_SNIPPETS[0], "Systemic Lupus Erythematosus (Sle)", 0.87),
        (c[4], SAMPLE_SNIPPETS[1], "Human Bmmsc Isolation and Culture", 0.99),
        (c[4], SAMPLE_SNIPPETS[2], None, 0.97),
    )
    return tuple(
        SiteStatement(ci.doi, ci.title, ci.year, ci.journal, snip, sec, "mentioning", conf)
        for ci, snip, sec, conf in rows
    )


def _real_statements(rng: random.Random, real: RealReport, pick: Any) -> list[SiteStatement]:
    """The real statements; consecutive equal snippets become a preprint/published pair."""
    out: list[SiteStatement] = []
    prev: tuple[str, _Citer] | None = None
    for s in real.statements:
        snippet = s["snippet"]
        if prev is not None and prev[0] == snippet:
            citer = _preprint_of(prev[1])
            prev = None
        else:
            citer = pick(rng)
            prev = (snippet, citer)
        out.append(
            SiteStatement(
                citer.doi,
                citer.title,
                citer.year,
                citer.journal,
                snippet,
                s["section"],
                site_type(s["type"]),
                s["confidence"],
            )
        )
    return out


def _demo_report(real: RealReport, headers: list[_Header]) -> SiteReport:
    rng = random.Random(f"demo:{real.doi}")

    def pick(r: random.Random) -> _Citer:
        return _citer("demo", r.randint(5, 400))

    def cross(r: random.Random) -> _Citer | None:
        others = [h for h in headers if h.doi != real.doi]
        o = r.choice(others)
        return _Citer(o.doi, o.title, o.year, o.journal)

    t = real.tallies
    total = real.citation_statements or 0
    tallies = SiteTally(
        t["supporting"] if t else None,
        t["mentioning"] if t else None,
        t["contrasting"] if t else None,
        real.cited_by_publications,
        real.citation_statements,
        real.references_publications,
    )
    if real.doi == SEED_DOI:
        start: list[SiteStatement] = list(_seed_statements())
        count = 49
        authors: tuple[str, ...] = ("Li, X", "Wang, D", "Liang, J", "Zhang, H", "Sun, L")
        date: str | None = "2012-09-10"
    else:
        start = _real_statements(rng, real, pick)
        count = min(total, 8 + stable_hash("demo-count", real.doi) % 70)
        authors = tuple(_fmt_author(rng) for _ in range(rng.randint(1, 7)))
        date = None
        if real.year and rng.random() < 0.8:
            date = f"{real.year:04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    statements = _statements(rng, max(count, len(start)), pick, cross, start)
    if real.doi == SEED_DOI:  # its real tallies count every statement as mentioning
        statements = tuple(replace(st, type="mentioning") for st in statements)
    facets = _SEED_FACETS if real.doi == SEED_DOI else _facets(rng, tallies, statements, real.year)
    return SiteReport(
        doi=real.doi,
        slug=real.slug,
        title=real.title,
        authors=authors,
        journal=REAL_JOURNALS.get(real.doi),
        publication_date=date,
        year=real.year,
        abstract=real.abstract,
        abstract_truncated=real.truncated_abstract if real.abstract else None,
        tallies=tallies,
        facets=facets,
        statements=statements,
        updated_at=_updated_at(rng),
    )


_DEMO_EXTRA_DOIS = (
    "10.5555/(sici)1097-4571(199806)49:8<693::aid-asi4>3.0.co;2-o",
    "10.5555/demo#2?ver=1&lang=en",
    "10.5555/ünïcode[2020]",
)


def build_demo_dataset() -> list[SiteReport]:
    """The demo data set, built from the packaged real data (`demo.jsonl` is its output)."""
    reals = real_reports()
    headers = [_Header(r.doi, r.slug, r.title, r.year, REAL_JOURNALS.get(r.doi)) for r in reals]
    out = [_demo_report(r, headers) for r in reals]
    for k, doi in enumerate(_DEMO_EXTRA_DOIS):
        g = report_at(7, 100 + k)
        if k == 2:  # a paper nobody cites: no tallies, no statements
            g = replace(g, statements=(), tallies=SiteTally(None, None, None, 0, 0, 12), facets=())
        out.append(replace(g, doi=doi, slug=make_slug(g.title, base62(stable_hash(doi), 6))))
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m citesite.generator [FILE]`: rebuild the demo data set."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DEMO_PATH
    n = write_dataset(build_demo_dataset(), path)
    print(f"wrote {n} reports to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
