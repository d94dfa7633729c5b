"""The local site's ground truth in the crawler's terms.

`citesite` knows nothing of `pipeline` (issue 8): `expected_page` and `CitationSite.expected`
return the site's own plain data (`ExpectedPage`). Tests compare what the crawler's parser
returns against it, so this turns it into the crawler's `ParseResult`, field by field.
"""

from __future__ import annotations

from citesite.dataset import DEFAULT_PER_PAGE, ExpectedPage, SiteReport
from citesite.dataset import expected_page as site_expected_page
from citesite.server import CitationSite
from pipeline.models import Facet, Paper, ParseResult, Statement, Tally


def as_parse_result(page: ExpectedPage) -> ParseResult:
    """`page` as the `ParseResult` a correct parser returns for it."""
    p, t = page.paper, page.tallies
    return ParseResult(
        paper=Paper(
            doi=p.doi,
            title=p.title,
            year=p.year,
            publication_date=p.publication_date,
            journal=p.journal,
            abstract=p.abstract,
            abstract_truncated=p.abstract_truncated,
            report_url=p.report_url,
            authors=p.authors,
        ),
        tallies=Tally(
            supporting=t.supporting,
            mentioning=t.mentioning,
            contrasting=t.contrasting,
            citing_publications=t.citing_publications,
            citation_statements=t.citation_statements,
            references_count=t.references_count,
        ),
        facets=tuple(Facet(f.facet, f.label, f.count) for f in page.facets),
        statements=tuple(
            Statement(
                citing_doi=s.citing_doi,
                snippet=s.snippet,
                citing_title=s.citing_title,
                citing_year=s.citing_year,
                citing_journal=s.citing_journal,
                section=s.section,
                type=s.type,
                confidence=s.confidence,
            )
            for s in page.statements
        ),
        next_page_url=page.next_page_url,
    )


def expected_page(
    report: SiteReport, page: int, base_url: str, per_page: int = DEFAULT_PER_PAGE
) -> ParseResult:
    """`citesite.dataset.expected_page` as a `ParseResult`."""
    return as_parse_result(site_expected_page(report, page, base_url, per_page))


def expected(
    site: CitationSite, doi: str, page: int = 1, base_url: str | None = None
) -> ParseResult:
    """`site.expected(...)` as a `ParseResult`."""
    return as_parse_result(site.expected(doi, page, base_url))
