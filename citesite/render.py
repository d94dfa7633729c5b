"""HTML rendering of report pages.

`render_page(report, page, base_url, per_page)` writes one page of a report the way the
contract (`shared/spec/report-page.md`) describes and the sample page looks: Highwire meta
tags, header, tallies, facets, the statement list, pagination, plus the weight and the
decoys of a real page (styles, scripts, a JSON state blob, nav, a trending-statements
aside, comments, footer). Markup the contract leaves open varies per page, chosen by a
seeded RNG (`style.page_seed`): attribute order and quoting, extra classes, wrappers,
entities, inline markup in snippets and titles, type spelling and case, thousands
separators, relative or absolute links, NFD text, `&nbsp;`. None of it changes what a
correct parser reads; `dataset.expected_page` says what that is.

Rendering is plain string building (~0.3 ms a page); the server caches the bytes. The
per-page choices are `citesite.markup.PageMarkup`; the static weight around each page and
the pages that are no report (captcha, login, 404, errors) are in `citesite.static`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from citesite.dataset import (
    DEFAULT_PER_PAGE,
    SiteReport,
    SiteStatement,
    canonical_url,
    page_count,
)
from citesite.doi import quote_doi
from citesite.markup import WORD_RE, PageMarkup, attr, esc
from citesite.static import FOOTER, HEAD_STATIC, NAV, TRENDING
from citesite.style import ReportStyle, page_seed, report_style

RENDER_VERSION: Final = "1"
CONTENT_TYPE: Final = "text/html; charset=utf-8"
_PLURAL: Final = {True: "", False: "s"}


@dataclass(frozen=True, slots=True)
class PageLinks:
    """A hostile site's pagination for one page (the local site's fault modes): the page
    number and page count shown, the next link's `href` as written (None: no next link),
    and whether counts are written with suffixes (`1.2k`)."""

    page: int
    pages: int
    next_href: str | None
    suffixed: bool = False


# --------------------------------------------------------------------------- the page


def _head(p: PageMarkup, report: SiteReport, style: ReportStyle, canonical: str) -> list[str]:
    q = p.q
    out = ['<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n']
    out.append(f"<title>{esc(report.title)} | Citation report</title>\n")
    meta: list[str] = [f'<link rel="canonical" href="{attr(canonical)}">\n']
    if style.meta_title:
        title = attr(report.title)
        word = WORD_RE.search(title) if p.rng.random() < 0.15 else None
        if word is not None:  # markup written into the tag as text, as real sites do
            title = (
                f"{title[: word.start()]}&lt;i&gt;{word.group(0)}&lt;/i&gt;{title[word.end() :]}"
            )
        meta.append(f'<meta name="citation_title" content="{title}">\n')
    if style.meta_authors:
        meta.append(
            "".join(f'<meta name="citation_author" content="{attr(a)}">\n' for a in report.authors)
        )
    if style.meta_journal and report.journal:
        meta.append(f'<meta name="citation_journal_title" content="{attr(report.journal)}">\n')
    if style.meta_date and report.year is not None:
        date = report.publication_date
        if date is None or style.date_format == "year":
            value = str(report.year)
        elif style.date_format == "slash":
            value = date.replace("-", "/")
        else:
            value = date
        meta.append(f'<meta name="citation_publication_date" content="{value}">\n')
    if style.meta_doi:
        meta.append(f'<meta name="citation_doi" content="{attr(report.doi)}">\n')
    if p.rng.random() < 0.3:
        meta.reverse()
    out.extend(meta)
    out.append(
        f"<meta property={q}og:title{q} content={q}{attr(report.title)}{q}>\n"
        f'<meta name="description" content="See how this article has been cited at '
        f'{attr(p.base)}">\n'
        '<meta name="citation_reference" content="citation_title=Mesenchymal stem cells;'
        'citation_doi=10.9999/ref.1">\n'
    )
    out.append(HEAD_STATIC)
    return out


def _state_blob(report: SiteReport, chunk: tuple[SiteStatement, ...], page: int) -> str:
    state = {
        "report": {
            "title": '<h1 class="report-title">decoy</h1>',
            "doi": "10.9999/state-decoy",
            "page": page,
            "related": [{"doi": "10.9999/related." + str(i), "score": i / 10} for i in range(8)],
        },
        "statements": [
            {
                "id": f"st{page}.{i}",
                "doi": "10.9999/state." + str(i),
                "snippet": s.snippet[:160],
                "type": "supporting",
            }
            for i, s in enumerate(chunk)
        ],
        "user": None,
        "flags": {"assistant": True, "alerts": True},
    }
    blob = json.dumps(state, ensure_ascii=False, separators=(",", ":"))
    return blob.replace("</", "<\\/")


def _header(p: PageMarkup, report: SiteReport, style: ReportStyle, ind: str) -> list[str]:
    rng = p.rng
    doi = report.doi
    out = [f"{ind}{p.tag('header', [('class', p.cls('report-header', 'card', 'is-sticky'))])}\n"]
    if report.year is not None:
        year = str(report.year)
        if rng.random() < 0.3 and report.publication_date:
            year = f'<time datetime="{report.publication_date}">{year}</time>'
        out.append(f'{ind}  <span class="report-year">{year}</span>\n')
    shown = doi.upper() if rng.random() < 0.3 else doi
    out.append(
        f"{ind}  {p.tag('a', [('class', 'report-doi'), ('href', 'https://doi.org/' + doi)])}"
        f"DOI: {esc(shown)}</a>\n"
        f'{ind}  <span class="actions"><a href="https://doi.org/{attr(quote_doi(doi))}">View '
        'full text</a> | <button>Cite</button> | <a href="/alerts">Sign up to set email '
        "alerts</a></span>\n"
    )
    title = p.rich(report.title, 0.35)
    out.append(
        f"{ind}  {p.tag('h1', [('class', p.cls('report-title', 'display-4'))])}{title}</h1>\n"
    )
    if report.authors:
        names = report.authors
        if style.meta_authors:  # visible list as people write names; the tags are canonical
            names = tuple(" ".join(reversed(a.split(", ", 1))) for a in names)
        lis = "".join(f"<li>{p.text(a)}</li>" for a in names)
        out.append(f'{ind}  <ul class="report-authors">{lis}</ul>\n')
    if report.journal:
        out.append(f'{ind}  <span class="report-journal">{p.text(report.journal)}</span>\n')
    if report.abstract:
        attrs = [("class", "report-abstract")]
        if report.abstract_truncated and rng.random() < 0.7:
            attrs.append(("data-truncated", "true"))
        elif not report.abstract_truncated and rng.random() < 0.3:
            attrs.append(("data-truncated", "false"))
        label = rng.choice(("Abstract: ", "<strong>Abstract:</strong> ", "", "Abstract:\n  "))
        more = ""
        if report.abstract_truncated:
            more = rng.choice(
                (
                    ' <button class="show-more">Show more</button>',
                    ' <a class="show-more" href="#">Show more</a>',
                    " <button>Show more</button>",
                )
            )
        out.append(
            f"{ind}  {p.tag('div', attrs)}\n{ind}    {label}{p.rich(report.abstract, 0.2)}"
            f"{more}\n{ind}  </div>\n"
        )
    out.append(f"{ind}</header>\n")
    return out


def _tallies(p: PageMarkup, report: SiteReport, ind: str) -> list[str]:
    t = report.tallies
    out = [f"{ind}{p.tag('section', [('class', p.cls('report-tallies', 'row', 'summary'))])}\n"]
    form = p.rng.randrange(3)
    for kind, count in (
        ("supporting", t.supporting),
        ("mentioning", t.mentioning),
        ("contrasting", t.contrasting),
    ):
        if count is None:
            continue
        label = kind.capitalize()
        shown = p.num(count)
        if form == 0:
            out.append(
                f"{ind}  {p.tag('div', [('class', 'tally'), ('data-type', kind)])}"
                f'<span class="tally-label">{label}</span> <span class="tally-count">{shown}</span>'
                "</div>\n"
            )
        elif form == 1:
            attrs = [
                ("class", f"tally tally--{kind}"),
                ("data-type", kind),
                ("href", f"?type={kind}"),
            ]
            out.append(
                f'{ind}  {p.tag("a", attrs)}<span class="tally-count">{shown}</span>'
                f'<span class="tally-label">{kind}</span></a>\n'
            )
        else:
            out.append(
                f"{ind}  {p.tag('div', [('data-type', kind), ('class', 'chip tally')])}"
                f'<div class="wrap"><b class="tally-count">{shown}</b></div> {label}</div>\n'
            )
    if t.citing_publications is not None or t.citation_statements is not None:
        parts = []
        if t.citing_publications is not None:
            n = t.citing_publications
            parts.append(f"Cited by {p.num(n)} publication{_PLURAL[n == 1]}")
        if t.citation_statements is not None:
            n = t.citation_statements
            stm = f"({p.num(n)} citation statement{_PLURAL[n == 1]})"
            parts.append(f"<span>{stm}</span>" if p.rng.random() < 0.6 else stm)
        out.append(f'{ind}  <p class="cited-by">{" ".join(parts)}</p>\n')
    if t.references_count is not None:
        n = t.references_count
        out.append(
            f'{ind}  <p class="references">References {p.num(n)} publication{_PLURAL[n == 1]}</p>\n'
        )
    out.append(f"{ind}</section>\n")
    return out


_FACET_TITLES: Final = {
    "section": "Paper Sections",
    "citation-type": "Citation Types",
    "year": "Year Published",
    "publication-type": "Publication Types",
    "relationship": "Relationship",
}


def _facets(p: PageMarkup, report: SiteReport, ind: str) -> list[str]:
    out = [
        f'{ind}<aside class="report-facets">\n{ind}  <form class="search-statements">'
        '<input name="q" placeholder="Search citation statements"><label>Order By: <select>'
        "<option>Relevance</option><option>Recency</option></select></label></form>\n"
    ]
    current: str | None = None
    for f in report.facets:
        if f.facet != current:
            if current is not None:
                out.append("</ul></div>\n")
            current = f.facet
            facet_cls = p.cls("facet", "collapsible")
            title = _FACET_TITLES.get(f.facet, f.facet.replace("-", " ").title())
            out.append(
                f"{ind}  {p.tag('div', [('class', facet_cls), ('data-facet', f.facet)])}"
                f"<h3>{esc(title)}</h3><ul>\n"
            )
        count = "" if f.count is None else (f' <span class="facet-count">{p.num(f.count)}</span>')
        label = f'<span class="facet-label">{p.text(f.label)}</span>'
        if p.extra:
            label = f'<a href="?{attr(f.facet)}=1">{label}</a>'
        out.append(f"{ind}    <li>{label}{count}</li>\n")
    if current is not None:
        out.append("</ul></div>\n")
    out.append(f"{ind}</aside>\n")
    return out


def _type_word(p: PageMarkup, kind: str) -> str:
    if kind == "contrasting" and p.rng.random() < 0.4:
        kind = "contradicting"
    case = p.type_case
    if case == 1:
        return kind.capitalize()
    if case == 2:
        return kind.upper()
    if case == 3 and p.rng.random() < 0.5:
        return kind.capitalize()
    return kind


def _statement(p: PageMarkup, s: SiteStatement, ind: str, report_doi: str) -> str:
    rng = p.rng
    raw_doi = s.citing_doi
    x = rng.random()
    if x < 0.1:
        raw_doi = raw_doi.upper()
    elif x < 0.13:
        raw_doi = "https://doi.org/" + raw_doi
    elif x < 0.15:
        raw_doi = "doi:" + raw_doi
    attrs = [
        ("class", p.cls("statement", "card", "is-" + s.type, "statement--compact")),
        ("data-citing-doi", raw_doi),
    ]
    if p.extra:
        attrs.append(("data-cited-doi", report_doi))
    parts = [f"{ind}{p.tag('li', attrs)}\n"]
    href = "/reports/" + quote_doi(s.citing_doi)
    if rng.random() < 0.3:
        href = p.base + href
    cite = []
    if s.citing_title is not None:
        cite.append(
            f"{p.tag('a', [('class', 'citing-title'), ('href', href)])}"
            f"{p.rich(s.citing_title, 0.15)}</a>"
        )
    else:
        cite.append(f'<a class="citing-doi" href="{attr(href)}">{esc(s.citing_doi)}</a>')
    if s.citing_year is not None:
        year = str(s.citing_year) if rng.random() < 0.8 else f"({s.citing_year})"
        cite.append(f'<span class="citing-year">{year}</span>')
    if s.citing_journal is not None:
        cite.append(f'<span class="citing-journal">{p.text(s.citing_journal)}</span>')
    paper = " ".join(cite)
    if p.extra:
        paper = f'<div class="meta">{paper}</div>'
    parts.append(f'{ind}  <div class="citing-paper">{paper}</div>\n')
    oq, cq = p.quotes
    snippet = f"{oq}{p.rich(s.snippet, p.markup)}{cq}"
    tag = rng.choice(("blockquote", "blockquote", "p", "div"))
    snippet_html = (
        f"{p.tag(tag, [('class', p.cls('snippet', 'quote', 'text-body'))])}{snippet}</{tag}>"
    )
    if p.extra and rng.random() < 0.5:
        snippet_html = f'<div class="snippet-wrap">{snippet_html}</div>'
    parts.append(f"{ind}  {snippet_html}\n")
    foot = []
    if s.section is not None:
        label = rng.choice(("Section: ", "Section:", "section: ", "<b>Section:</b> "))
        foot.append(f'<span class="statement-section">{label}{p.text(s.section)}</span>')
    foot.append(f'<span class="statement-type">{_type_word(p, s.type)}</span>')
    if s.confidence is not None:
        pct = round(s.confidence * 100)
        text = rng.choice((f"confidence: {pct}%", f"Confidence: {pct} %", f"confidence:{pct}%"))
        foot.append(f'<span class="statement-confidence">{text}</span>')
    if p.shuffle:
        rng.shuffle(foot)
    sep = rng.choice(("", " ", " · ", "\n" + ind + "  "))
    parts.append(f"{ind}  {sep.join(foot)}\n")
    if p.extra:
        parts.append(
            f'{ind}  <div class="statement-actions"><button>Copy</button> '
            f'<a href="{attr(href)}">View citing paper</a></div>\n'
        )
    parts.append(f"{ind}</li>\n")
    return "".join(parts)


def _pagination(
    p: PageMarkup,
    report: SiteReport,
    style: ReportStyle,
    page: int,
    pages: int,
    canonical: str,
    ind: str,
) -> str:
    parts = [f'<span class="page-info">Page {page} of {pages}</span>']
    if page > 1:
        prev = "?page=1" if page == 2 else f"?page={page - 1}"
        parts.append(f'<a rel="prev" href="{prev}">Previous</a>')
    if page < pages:
        target = page + 1
        # `?page=N` and `slug?page=N` resolve right only against the slug address: not on
        # a page that may be served at /reports/{doi}.
        forms = ["root", "absolute"]
        if page > 1 or not style.direct:
            forms += ["query", "query", "relative"]
        form = p.rng.choice(forms)
        if form == "query":
            href = f"?page={target}"
        elif form == "relative":
            href = f"{report.slug}?page={target}"
        elif form == "root":
            href = f"/reports/{report.slug}?page={target}"
        else:
            href = f"{canonical}?page={target}"
        parts.append(p.tag("a", [("rel", "next"), ("href", href), ("class", "btn")]) + "Next</a>")
    return f'{ind}<nav class="pagination">{" ".join(parts)}</nav>\n'


def _hostile_pagination(p: PageMarkup, links: PageLinks, ind: str) -> str:
    parts = [f'<span class="page-info">Page {links.page} of {links.pages}</span>']
    if links.next_href is not None:
        attrs = [("rel", "next"), ("href", links.next_href), ("class", "btn")]
        parts.append(p.tag("a", attrs) + "Next</a>")
    return f'{ind}<nav class="pagination">{" ".join(parts)}</nav>\n'


def render_page(
    report: SiteReport,
    page: int,
    base_url: str,
    per_page: int = DEFAULT_PER_PAGE,
    links: PageLinks | None = None,
) -> bytes:
    """Page `page` (1-based) of `report` as served at `base_url`; ValueError if no such page.

    `links` replaces the page's pagination (a fault mode of the local site): `page` then
    picks the statements shown, `links` what the page says about its number and next page.
    """
    pages = page_count(report, per_page)
    if not 1 <= page <= pages:
        raise ValueError(f"{report.doi} has {pages} page(s), not page {page}")
    base = base_url.rstrip("/")
    style = report_style(report.doi)
    p = PageMarkup(page_seed(report.doi, page), base)
    p.suffixed = links is not None and links.suffixed
    rng = p.rng
    canonical = canonical_url(base, report)
    skipped = report.statements[: (page - 1) * per_page]
    chunk = report.statements[(page - 1) * per_page : page * per_page]
    ind = "  " if p.indent else ""
    out = _head(p, report, style, canonical)
    out.append(
        '<script type="application/json" id="__state">'
        f"{_state_blob(report, chunk, page)}</script>\n</head>\n<body>\n"
        f'<div id="app">{NAV}'
    )
    if p.comments:
        out.append(
            '<!-- report starts --><!-- <h1 class="report-title">Old title</h1> '
            '<li class="statement" data-citing-doi="10.9999/commented-out"> -->\n'
        )
    main = [("id", "report"), ("class", p.cls("report", "container", "report--v2"))]
    if not style.meta_doi or rng.random() < 0.8:
        shown = report.doi.upper() if rng.random() < 0.5 else report.doi
        main.append(("data-doi", shown))
    wrap = p.extra and rng.random() < 0.5
    if wrap:
        out.append('<div class="layout"><div class="col-main">\n')
    out.append(p.tag("main", main) + "\n")
    out.extend(_header(p, report, style, ind))
    out.append(f'{ind}<a class="assistant" href="/assistant">Help me understand this report</a>\n')
    out.extend(_tallies(p, report, ind))
    out.extend(_facets(p, report, ind))
    list_wrap = p.extra and rng.random() < 0.5
    if list_wrap:
        out.append(f'{ind}<div class="statements-wrapper"><h2>Citation statements</h2>\n')
    ol = [("class", p.cls("statements", "list-unstyled")), ("start", str(len(skipped) + 1))]
    out.append(f"{ind}{p.tag('ol', ol)}\n")
    sind = ind * 2
    out.extend(_statement(p, s, sind, report.doi) for s in chunk)
    out.append(f"{ind}</ol>\n")
    if list_wrap:
        out.append(f"{ind}</div>\n")
    if links is None:
        out.append(_pagination(p, report, style, page, pages, canonical, ind))
    else:
        out.append(_hostile_pagination(p, links, ind))
    out.append("</main>\n")
    if wrap:
        out.append("</div></div>\n")
    out.append(TRENDING)
    out.append("</div>\n")
    out.append(FOOTER)
    out.append("</body>\n</html>\n")
    return "".join(out).encode("utf-8")
