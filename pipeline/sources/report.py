"""The site profile for citation report pages: `Page` -> `ParseResult`, pure and synchronous.

It reads what `shared/spec/report-page.md` names, through the selectors of a `Selectors`
value (so a deployment can follow markup drift without code), and nothing else: the
visible fields are looked up inside the report's root element only, which keeps decoys
elsewhere on the page (trending lists, JSON state in scripts) out. A page that lacks a
DOI, a title, the tallies or the statement list is not a report: `ParseError`, naming
what is missing. Any input, however mangled, either parses or raises `ParseError`.

This is the crawler's CPU hot path. Every CSS query compiles its selector (~1.5 µs), so
per-statement fields are found with one query over the whole list each, and each match
is given to its statement by walking up a level or two (see `_firsts`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar
from urllib.parse import urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from pipeline.config import Settings
from pipeline.errors import BadInputError, BlockedError, ParseError
from pipeline.models import Facet, Page, Paper, ParseResult, Statement, Tally
from pipeline.normalise import (
    clean_text,
    doi_or_none,
    doi_path,
    doi_problem,
    parse_confidence,
    parse_count,
    parse_date,
    parse_statement_type,
    parse_year,
    strip_label,
    strip_snippet_quotes,
)
from pipeline.sources.charset import UTF8, decode_page
from pipeline.sources.selectors import (
    FacetSelectors,
    PaperSelectors,
    Selectors,
    StatementSelectors,
    TallySelectors,
    WallSelectors,
    default_selectors,
    load_selectors,
)
from pipeline.urls import host_key, path_within, strip_userinfo, without_fragment

__all__ = ["ReportSource", "Selectors", "load_selectors", "parse_report"]

# lexbor's tree builder is quadratic in nesting depth (20k nested <div> take 0.3 s, 200k a
# minute). A report has a few thousand tags; a page with more `<` than this is not one,
# and refusing it up front keeps a hostile page from stalling a worker.
MAX_TAGS = 50_000
# `<br>` (read as a space) and elements whose text is not visible text (removed).
_PREPARE = "br, script, style, noscript, template"
_TAG_TEXT = re.compile(r"</?[A-Za-z][^<>]*>")
_DOI_IN_TEXT = re.compile(r"10\.[0-9]{4,9}/\S+")
# A count as written: `71`, `1,234`, `1.2k`, `3.4 M` (read by `parse_count`).
_COUNT = r"[0-9][0-9,]*(?:\.[0-9]+)?(?:\s?[kKmMbB](?![A-Za-z]))?"
_PUBLICATIONS = re.compile(rf"({_COUNT})\s*publications?\b", re.IGNORECASE)
_STATEMENTS = re.compile(rf"({_COUNT})\s*citation\s+statements?\b", re.IGNORECASE)
_NUMBERS = re.compile(_COUNT)
_ELLIPSES = ("…", "...")
_REQUIRED = ("doi", "title", "tallies", "statement list")

Node = LexborNode
_R = TypeVar("_R")

# Texts up to this many characters have their readings remembered (see `_memo`).
_MEMO_MAX_LEN = 64
_MEMO_SIZE = 4096


def _memo(read: Callable[..., _R]) -> Callable[..., _R]:
    """`read` (a pure normaliser of a text, and of any further arguments) with its results
    for short texts remembered.

    A statement's year, section, confidence and the facet and tally counts take a few
    hundred values across a whole crawl, and each reading costs regex work (~0.3-1 µs)
    that a cache hit saves. The cache is bounded (LRU), and texts longer than
    `_MEMO_MAX_LEN`, which a hostile page could make huge, are read without it. A reading
    that raises (`parse_count`'s `ParseError`) is not remembered: it raises again.
    """
    cached = lru_cache(maxsize=_MEMO_SIZE)(read)

    def memo(text: str | None, *args: str) -> _R:
        if text is not None and len(text) <= _MEMO_MAX_LEN:
            return cached(text, *args)
        return read(text, *args)

    return memo


_count = _memo(parse_count)
_confidence = _memo(parse_confidence)
_year = _memo(parse_year)
_strip_label = _memo(strip_label)  # (text, label): section labels repeat too


REPORTS = "/reports/"


class ReportSource:
    """The `report` site profile: a report's address is `{base_url}/reports/{doi}`, and
    its pages are parsed with the given (or default) selectors.

    `base_url` is used without any `user:password@` it may carry: credentials are never
    part of an address citepipe stores or sends.
    """

    name = "report"

    def __init__(
        self, selectors: Selectors | None = None, *, base_url: str = Settings().base_url
    ) -> None:
        self.selectors = selectors or default_selectors()
        self.base = strip_userinfo(without_fragment(base_url)).split("?", 1)[0].rstrip("/")
        self._site = host_key(self.base)
        self._prefix = urlsplit(self.base).path + REPORTS

    @classmethod
    def from_settings(cls, settings: Settings) -> ReportSource:
        """The report profile on `base_url`, with the `selectors` file if one is set."""
        return cls(load_selectors(settings.selectors or None), base_url=settings.base_url)

    def address(self, doi: str) -> str:
        """`{base}/reports/{doi}`, the DOI percent-encoded where needed; `BadInputError`
        for a DOI with a `.`/`..` segment (plain or encoded), which a server would
        normalise out of `/reports/`."""
        problem = doi_problem(doi)
        if problem is not None:
            raise BadInputError(f"{problem}: {doi[:200]!r}")
        url = f"{self.base}{REPORTS}{doi_path(doi)}"
        if not self.in_scope(url):  # the rule above should make this unreachable
            raise BadInputError(f"no address on the site for {doi[:200]!r}")
        return url

    def in_scope(self, url: str) -> bool:
        """Same scheme, host and port as `base_url`, and a path under its `/reports/` that
        no server could normalise elsewhere."""
        try:
            same_site = host_key(url) == self._site
        except ValueError:  # a bad port
            return False
        return same_site and path_within(url, self._prefix)

    def relocate(self, url: str) -> str | None:
        """The part of `url` from `/reports/` on, under the current base; None if it has
        none or the result is not one of the site's report pages."""
        if self.in_scope(url):
            return url
        try:
            parts = urlsplit(url)
        except ValueError:
            return None
        at = parts.path.find(REPORTS)
        if at < 0:
            return None
        moved = self.base + parts.path[at:] + (f"?{parts.query}" if parts.query else "")
        return moved if self.in_scope(moved) else None

    def parse(self, page: Page) -> ParseResult:
        """Parse a fetched page, decoded as a browser would (`charset`); `ParseError` if
        it is not a report or its bytes are invalid in the encoding it declares."""
        decoded = decode_page(page.body, page.charset)
        # UTF-8 without a BOM: lexbor reads the bytes themselves (no second encoding)
        plain = decoded.encoding == UTF8 and decoded.source != "bom"
        html = page.body if plain else decoded.text
        return parse_report(html, page.final_url or page.url, self.selectors)


def parse_report(html: str | bytes, url: str, selectors: Selectors | None = None) -> ParseResult:
    """Parse one report page fetched from `url` (the final URL after redirects)."""
    sel = selectors or default_selectors()
    try:
        return _parse(_tree(html), url, sel)
    except SelectolaxError as e:  # a selector the engine rejects at query time
        raise ParseError(f"selector failed: {e}", missing=()) from e


def _tree(html: str | bytes) -> LexborHTMLParser:
    """The parsed document; `ParseError` for a page too tag-heavy to be a report."""
    data = html.encode("utf-8", "replace") if isinstance(html, str) else html
    tags = data.count(b"<")
    if tags > MAX_TAGS:
        raise ParseError(f"not a report page: {tags} tags, more than {MAX_TAGS}", missing=())
    try:
        return LexborHTMLParser(data)
    except SelectolaxError as exc:  # lexbor fails to build a tree only when out of memory
        raise MemoryError(f"lexbor: {exc}") from None


def _prepare(root: Node) -> None:
    """Make text content read as the contract says, in one query: `<br>` becomes a space,
    scripts and styles inside the report are not text."""
    for node in reversed(root.css(_PREPARE)):  # innermost first
        if node.tag == "br":
            node.replace_with(" ")
        else:
            node.decompose()


def _parse(tree: LexborHTMLParser, url: str, sel: Selectors) -> ParseResult:
    root = _first(tree, sel.page.root) or tree.body or tree.root
    if root is None:
        raise ParseError("not a report page: empty document", missing=_REQUIRED)
    _prepare(root)
    report_url = _canonical(tree, sel.page.canonical, url)
    doi = _doi(tree, root, sel.paper)
    title = _meta(tree, sel.paper.title_meta) or _text(_first(root, sel.paper.title))
    tallies_node = _first(root, sel.tallies.section)
    statement_list = _first(root, sel.statements.list)
    found = {"doi": doi, "title": title, "tallies": tallies_node, "statement list": statement_list}
    missing = tuple(name for name in _REQUIRED if found[name] is None)
    if doi is None or title is None or tallies_node is None or statement_list is None:
        wall = _wall(tree, sel.walls)
        if wall is not None:
            raise BlockedError(
                f"the site sent a {wall} instead of the report (no {', no '.join(missing)})",
                wall=wall,
                missing=missing,
            )
        raise ParseError(f"not a report page: no {', no '.join(missing)}", missing=missing)
    year, date = _date(tree, root, sel.paper)
    abstract, truncated = _abstract(_first(root, sel.paper.abstract), sel.paper)
    paper = Paper(
        doi=doi,
        title=title,
        year=year,
        publication_date=date,
        journal=_meta(tree, sel.paper.journal_meta) or _text(_first(root, sel.paper.journal)),
        abstract=abstract,
        abstract_truncated=truncated,
        report_url=report_url,
        authors=_authors(tree, root, sel.paper),
    )
    return ParseResult(
        paper=paper,
        tallies=_tallies(tallies_node, sel.tallies),
        facets=_facets(_first(root, sel.facets.section), sel.facets),
        statements=_statements(statement_list, sel.statements),
        next_page_url=_next(_first(root, sel.page.next), report_url),
    )


# --- lookups --------------------------------------------------------------------------


def _first(node: LexborHTMLParser | Node | None, selector: str) -> Node | None:
    """The first match of `selector` under `node`; None for no node or an empty selector."""
    if node is None or not selector:
        return None
    found: Node | None = node.css_first(selector)
    return found


def _all(node: LexborHTMLParser | Node, selector: str) -> list[Node]:
    if not selector:
        return []
    found: list[Node] = node.css(selector)
    return found


def _group(scope: Node, selector: str, owners: dict[int, int]) -> dict[int, list[Node]]:
    """The matches of `selector` under `scope`, keyed by the index of their nearest owner.

    `owners` maps an owner element's `mem_id` to its index. One query for all owners
    instead of one per owner: every query compiles its selector (~1.5 µs), which
    dominated the parse when done per statement and field.
    """
    found: dict[int, list[Node]] = {}
    if owners and selector:
        for node in scope.css(selector):
            index = _owner(node, owners, scope.mem_id)
            if index is not None:
                found.setdefault(index, []).append(node)
    return found


def _firsts(scope: Node, selector: str, owners: dict[int, int]) -> dict[int, Node]:
    """The first match of `selector` inside each owner, keyed by the owner's index."""
    found: dict[int, Node] = {}
    if owners and selector:
        stop = scope.mem_id
        for node in scope.css(selector):
            index = _owner(node, owners, stop)
            if index is not None and index not in found:
                found[index] = node
    return found


def _owner(node: Node, owners: dict[int, int], stop: int) -> int | None:
    """The index of `node`'s nearest owner (itself included), not looking above `stop`."""
    up: Node | None = node
    while up is not None:
        key: int = up.mem_id
        index = owners.get(key)
        if index is not None or key == stop:
            return index
        up = up.parent
    return None


def _index(nodes: list[Node]) -> dict[int, int]:
    return {node.mem_id: i for i, node in enumerate(nodes)}


def _text(node: Node | None) -> str | None:
    """The contract's text of an element: DOM text content, NFC, whitespace folded."""
    if node is None:
        return None
    return clean_text(node.text_lexbor())


def _raw(node: Node | None) -> str | None:
    """An element's text content as is, for normalisers that clean up after themselves."""
    if node is None:
        return None
    text: str = node.text_lexbor()
    return text


def _attr(node: Node | None, name: str) -> str | None:
    if node is None:
        return None
    value: str | None = node.attributes.get(name)
    return value


def _attr_text(value: str | None) -> str | None:
    """An attribute value read as text: tags written into it as text (`<i>`) dropped."""
    if value and "<" in value:
        value = _TAG_TEXT.sub("", value)
    return clean_text(value)


def _meta(tree: LexborHTMLParser, selector: str) -> str | None:
    """The first non-empty `content` of the `<meta>` tags that `selector` matches.

    The first tag is looked up alone: `css_first` stops early, `css` walks the whole page.
    """
    first = _attr_text(_attr(_first(tree, selector), "content"))
    if first:
        return first
    for node in _all(tree, selector)[1:]:
        value = _attr_text(_attr(node, "content"))
        if value:
            return value
    return None


# --- the paper ------------------------------------------------------------------------


def _canonical(tree: LexborHTMLParser, selector: str, url: str) -> str:
    """The canonical address if the page gives an absolute http(s) one, else the final URL."""
    href = (_attr(_first(tree, selector), "href") or "").strip()
    return _resolve(href, href) or url


def _doi(tree: LexborHTMLParser, root: Node, sel: PaperSelectors) -> str | None:
    """Meta tag, else the holder's attribute, else the visible `DOI: 10.…` text."""
    for raw in (
        _meta(tree, sel.doi_meta),
        _attr(_first(tree, sel.doi_holder), sel.doi_attr),
    ):
        doi = doi_or_none(raw) if raw else None
        if doi:
            return doi
    text = strip_label(_text(_first(root, sel.doi)), sel.doi_label)
    if not text:
        return None
    doi = doi_or_none(text)
    if doi is None:
        m = _DOI_IN_TEXT.search(text)
        doi = doi_or_none(m.group(0)) if m else None
    return doi


def _authors(tree: LexborHTMLParser, root: Node, sel: PaperSelectors) -> tuple[str, ...]:
    names = [_attr_text(_attr(n, "content")) for n in _all(tree, sel.authors_meta)]
    if not any(names):
        names = [_text(n) for n in _all(root, sel.authors)]
    return tuple(n for n in names if n)


def _date(tree: LexborHTMLParser, root: Node, sel: PaperSelectors) -> tuple[int | None, str | None]:
    year, date = parse_date(_meta(tree, sel.date_meta))
    if year is None:
        year = parse_year(_text(_first(root, sel.year)))
    return year, date


def _abstract(node: Node | None, sel: PaperSelectors) -> tuple[str | None, bool | None]:
    """(text, truncated); (None, None) when the page shows no abstract."""
    if node is None:
        return None, None
    flagged = (_attr(node, sel.abstract_truncated_attr) or "").strip().lower() == "true"
    for control in _all(node, sel.abstract_more):
        control.decompose()
    text = strip_label(_text(node), sel.abstract_label)
    more = sel.abstract_more_label
    if text and more and text[-len(more) :].lower() == more.lower():
        text = clean_text(text[: -len(more)])
    if not text:
        return None, None
    return text, flagged or text.endswith(_ELLIPSES)


# A wall is a short page: a challenge or a login form and a line or two (Cloudflare's
# "Just a moment..." holds ~300 characters of text, Google's "unusual traffic" ~600). A
# longer page that is not a report is a drifted layout, even when it mentions a captcha
# or holds a captcha widget in a form of its own.
WALL_TEXT_MAX = 2000


def _wall(tree: LexborHTMLParser, sel: WallSelectors) -> str | None:
    """`captcha wall` or `login wall` if a page that is not a report is one: short (at
    most `WALL_TEXT_MAX` characters of text) and showing one of its elements or phrases;
    else None (a layout drift, kept for `citepipe reparse`)."""
    title = _text(_first(tree, "title")) or ""
    body = tree.body.text(separator=" ") if tree.body is not None else ""
    text = " ".join(f"{title} {body}".lower().split())
    if len(text) > WALL_TEXT_MAX:
        return None
    for name, css, words in (
        ("captcha wall", sel.captcha, sel.captcha_words),
        ("login wall", sel.login, sel.login_words),
    ):
        if _first(tree, css) is not None:
            return name
        phrases = [w.strip().lower() for w in words.split("|") if w.strip()]
        if any(p in text for p in phrases):
            return name
    return None


# --- tallies and facets ---------------------------------------------------------------


def _tallies(node: Node, sel: TallySelectors) -> Tally:
    """The counts; the first tally of each type wins, a missing one stays None."""
    tallies = _all(node, sel.tally)
    found = _firsts(node, sel.count, _index(tallies))
    counts: dict[str, int | None] = {}
    for i, tally in enumerate(tallies):
        kind = parse_statement_type(_attr(tally, sel.type_attr))
        if kind is not None and kind not in counts:
            counts[kind] = _count(_raw(found.get(i)))
    publications, statements = _cited_by(_text(_first(node, sel.cited_by)))
    return Tally(
        supporting=counts.get("supporting"),
        mentioning=counts.get("mentioning"),
        contrasting=counts.get("contrasting"),
        citing_publications=publications,
        citation_statements=statements,
        references_count=_count(_raw(_first(node, sel.references))),
    )


def _cited_by(text: str | None) -> tuple[int | None, int | None]:
    """`Cited by 71 publications (49 citation statements)` -> (71, 49); singulars too.

    Without the words, the first two numbers are taken in that order. Suffixed counts
    (`1.2k publications`) are read whole, or the page is a `ParseError`.
    """
    if not text:
        return None, None
    pubs, stmts = _PUBLICATIONS.search(text), _STATEMENTS.search(text)
    if pubs is None and stmts is None:
        numbers = _NUMBERS.findall(text)
        return parse_count(numbers[0]) if numbers else None, (
            parse_count(numbers[1]) if len(numbers) > 1 else None
        )
    return (
        parse_count(pubs.group(1)) if pubs else None,
        parse_count(stmts.group(1)) if stmts else None,
    )


def _facets(node: Node | None, sel: FacetSelectors) -> tuple[Facet, ...]:
    """(facet, label, count) in document order; facet names are kept as the page has them."""
    if node is None:
        return ()
    facets = _all(node, sel.facet)
    names = [clean_text(_attr(f, sel.name_attr)) for f in facets]
    items_by_facet = _group(node, sel.item, _index(facets))
    items = [item for i in sorted(items_by_facet) for item in items_by_facet[i]]
    owner = [i for i in sorted(items_by_facet) for _ in items_by_facet[i]]
    positions = _index(items)
    labels = _firsts(node, sel.label, positions)
    counts = _firsts(node, sel.count, positions)
    out: list[Facet] = []
    for k in range(len(items)):
        name, label = names[owner[k]], _text(labels.get(k))
        if name and label:
            out.append(Facet(name, label, _count(_raw(counts.get(k)))))
    return tuple(out)


# --- statements -----------------------------------------------------------------------


def _statements(node: Node, sel: StatementSelectors) -> tuple[Statement, ...]:
    """The list's direct children that match `item`, in order.

    Statements without a citing DOI or a snippet have no identity and are left out; a
    list that has items but not one usable statement means the markup drifted.
    """
    list_id = node.mem_id
    items = [
        item
        for item in _all(node, sel.item)
        if (parent := item.parent) is not None and parent.mem_id == list_id
    ]
    owners = _index(items)
    snippets = _firsts(node, sel.snippet, owners)
    titles = _firsts(node, sel.citing_title, owners)
    years = _firsts(node, sel.citing_year, owners)
    journals = _firsts(node, sel.citing_journal, owners)
    sections = _firsts(node, sel.section, owners)
    types = _firsts(node, sel.type, owners)
    confidences = _firsts(node, sel.confidence, owners)
    out: list[Statement] = []
    for i, item in enumerate(items):
        raw_doi = _attr(item, sel.citing_doi_attr)
        citing_doi = doi_or_none(raw_doi) if raw_doi else None
        snippet = _text(snippets.get(i))
        snippet = strip_snippet_quotes(snippet) if snippet else None
        if not citing_doi or not snippet:
            continue
        out.append(
            Statement(
                citing_doi=citing_doi,
                snippet=snippet,
                citing_title=_text(titles.get(i)),
                citing_year=_year(_raw(years.get(i))),
                citing_journal=_text(journals.get(i)),
                section=_strip_label(_raw(sections.get(i)), sel.section_label),
                type=parse_statement_type(_raw(types.get(i))),
                confidence=_confidence(_raw(confidences.get(i))),
            )
        )
    if items and not out:
        raise ParseError(
            f"not a report page: {len(items)} statements, none with a citing DOI and a snippet",
            missing=("statements",),
        )
    return tuple(out)


# --- links ----------------------------------------------------------------------------


def _resolve(base: str, href: str | None) -> str | None:
    """`href` made absolute against `base`; None unless it is an http(s) address."""
    if not href or not href.strip():
        return None
    try:
        url = urljoin(base, href.strip())
        parts = urlsplit(url)
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return strip_userinfo(without_fragment(url))


def _next(node: Node | None, report_url: str) -> str | None:
    """The next page's address, resolved against the report's address.

    An `href` that names nothing (empty, `#` of a disabled button, `//`) is no link. A link back to
    this very page is returned as it is: the crawler's pagination guard
    (`pipeline.crawl.pagination`) records it as a cycle instead of it vanishing here unsaid.
    """
    href = (_attr(node, "href") or "").strip()
    try:
        parts = urlsplit(href)
    except ValueError:
        return None
    if not (parts.scheme or parts.netloc or parts.path or parts.query):
        return None  # nothing but a fragment (`#`), or `//`
    return _resolve(report_url, href)
