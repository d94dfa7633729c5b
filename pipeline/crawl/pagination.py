"""Bounded pagination: whether a report's next page is followed, and why not.

A report's pages form a chain: page N's next link becomes page N+1's job. A hostile or
broken site can make that chain endless (a cycle of any length, a new next page for ever)
or send it elsewhere. `next_step` decides for each page, from the page and the `Chain`
its job carries (what the earlier pages of this round told it), with no store access:

- a next link to another host, or out of the folder the report lives in (`/reports/`, after
  dot segments and escapes are resolved), is not followed: `next page off the site`;
- a next link to an address already fetched in this round (request or redirect target,
  or page 1's own canonical address; compared canonically: case, default port, fragment,
  dot segments, escapes and the order of query parameters do not matter) is not
  followed: `pagination cycle`; so is a page whose statements repeat an earlier page's
  (the same page under another address: `?page=1`, a session parameter);
- never more than `max_pages_per_report` pages: `more pages than max_pages_per_report`;
- never more pages than the report's own count justifies (`citation_statements` over the
  most statements a page held, plus a margin): `more pages than the report counts`;
- a chain that ends with fewer statements than the report counts is flagged:
  `fewer statements than the report counts`;
- a next page that turns out to be another report (its DOI is not the report's) is not
  stored under this report, and ends it: `next page is another report`.

Each of these ends the report's crawl; the reason (with its detail after a `:`) is kept
on the paper (`papers.incomplete_reason`), and the paper is marked incomplete. None of
them is a failure: the job is done, and the run's exit code does not change.

The chain travels with the follow-up job (`jobs.chain`), so the check is exact and works
across processes without another query per page.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from hashlib import blake2b
from unicodedata import normalize
from urllib.parse import urlsplit, urlunsplit

from pipeline.crawl.politeness import host_key
from pipeline.models import Chain, Job, NewJob, Page, ParseResult

OFF_SITE = "next page off the site"
CYCLE = "pagination cycle"
TOO_MANY = "more pages than max_pages_per_report"
BEYOND_COUNT = "more pages than the report counts"
FEWER = "fewer statements than the report counts"
OTHER_REPORT = "next page is another report"

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def reason_kind(reason: str) -> str:
    """A reason's kind, for counting: the text before its first `:`."""
    return reason.split(":", 1)[0].strip()


def pages_justified(counted: int | None, per_page: int) -> int | None:
    """How many pages a report that counts `counted` statements, `per_page` a page, may
    have: the pages its count needs, plus a margin of a tenth (at least one page) for
    counts that moved while it was crawled. Pages that showed no statement at all justify
    one page. None when the count is unknown."""
    if counted is None:
        return None
    needed = max(1, math.ceil(counted / per_page)) if per_page > 0 else 1
    return needed + max(1, needed // 10)


def canonical_url(url: str) -> str:
    """`url` in one spelling per resource (RFC 3986, section 6): scheme and host in lower
    case, no userinfo, no default port, no fragment, dot segments removed, escapes of
    unreserved characters decoded and the others in upper case, query parameters sorted,
    empty ones dropped. Anything unreadable is returned as it is."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    path = _remove_dots(_escapes(parts.path or "/"))  # decoded first: `%2E%2E` is `..`
    query = parts.query
    if query:
        query = "&".join(sorted(_escapes(q) for q in query.split("&") if q))
    return urlunsplit((scheme, netloc, path, query, ""))


def _escapes(text: str) -> str:
    if "%" not in text:
        return text

    def fix(m: re.Match[str]) -> str:
        char = chr(int(m.group(0)[1:], 16))
        return char if char in _UNRESERVED else m.group(0).upper()

    return _ESCAPE.sub(fix, text)


def _remove_dots(path: str) -> str:
    """RFC 3986, 5.2.4: `/a/./b/../c` -> `/a/c`."""
    if "/." not in path and not path.startswith("."):
        return path if path.startswith("/") else "/" + path
    out: list[str] = []
    segments = path.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == ".":
            if last:
                out.append("")
        elif seg == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        else:
            out.append(seg)
    joined = "/".join(out)
    return joined if joined.startswith("/") else "/" + joined


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome for one page: the next page to fetch, or the reason the report's
    crawl ends short (None for a report read whole), or neither (the chain goes on)."""

    follow: NewJob | None = None
    incomplete: str | None = None
    keep: bool = True  # False: the page is not this report's, its rows are not stored

    @property
    def last(self) -> bool:
        """This page ends the report's crawl (complete or not)."""
        return self.follow is None


def next_step(
    job: Job,
    page: Page,
    result: ParseResult | None,
    *,
    site: str,
    max_pages: int,
    in_scope: Callable[[str], bool] | None = None,
) -> Step:
    """Decide on page `job.page` of a report, fetched as `page` and read as `result`
    (None when unchanged since the last read: the job's stored facts stand in)."""
    if result is not None and job.page > 1 and not same_doi(result.paper.doi, job.doi):
        reason = f"{OTHER_REPORT}: page {job.page} is the report of {result.paper.doi}"
        return Step(incomplete=reason, keep=False)
    if result is not None:
        statements: int | None = len(result.statements)
        counted = result.tallies.citation_statements
        link = result.next_page_url
    else:
        statements, counted, link = job.page_statements, job.page_counted, job.next_url
    before = job.chain if job.chain is not None and job.page > 1 else Chain()
    if job.page > 1 and before.counted is not None:
        counted = before.counted  # page 1's count is the report's: later pages cannot move it
    per_page = max(before.per_page, statements or 0)
    got = before.got + statements if before.got is not None and statements is not None else None
    if not link:
        if counted is not None and got is not None and got < counted:
            return Step(incomplete=f"{FEWER}: {got} of {counted}")
        return Step()
    digest = statements_digest(result) if result is not None and result.statements else None
    if digest is not None and digest in before.repeats:
        return Step(
            incomplete=f"{CYCLE}: page {job.page} repeats the statements of an earlier page"
        )
    fetched = {job.url, page.final_url}
    if job.page == 1 and result is not None and result.paper.report_url:
        fetched.add(result.paper.report_url)  # page 1 says where it lives: its canonical
    seen = _add(before.seen, *sorted(canonical_url(u) for u in fetched))
    target = canonical_url(link)
    if _host(link) != site:
        return Step(incomplete=f"{OFF_SITE}: page {job.page} links to {link}")
    folder = _folder(canonical_url(job.url))
    path = urlsplit(target).path
    if not (path == folder.rstrip("/") or path.startswith(folder)):
        return Step(incomplete=f"{OFF_SITE}: page {job.page} links to {link}, outside {folder}")
    if in_scope is not None and not in_scope(target):  # the Source says what is its own
        return Step(incomplete=f"{OFF_SITE}: page {job.page} links to {link}")
    if target in seen:
        return Step(incomplete=f"{CYCLE}: page {job.page} links back to {link}")
    nxt = job.page + 1
    if nxt > max_pages:
        return Step(incomplete=f"{TOO_MANY}: {max_pages}")
    justified = pages_justified(counted, per_page)
    if justified is not None and nxt > justified:
        return Step(
            incomplete=(
                f"{BEYOND_COUNT}: page {job.page} links to page {nxt}; "
                f"{counted} statements, {per_page} a page, justify {justified}"
            )
        )
    repeats = (*before.repeats, digest) if digest is not None else before.repeats
    chain = Chain(seen=seen, counted=counted, per_page=per_page, got=got, repeats=repeats)
    return Step(
        follow=NewJob(
            doi=job.doi, url=target, page=nxt, depth=job.depth, round=job.round, chain=chain
        )
    )


def statements_digest(result: ParseResult) -> str:
    """A short digest of a page's statements (citing DOI and snippet, in order)."""
    h = blake2b(digest_size=8)
    for s in result.statements:
        h.update(f"{s.citing_doi}\t{s.snippet}\n".encode())
    return h.hexdigest()


def same_doi(a: str, b: str) -> bool:
    """Whether two normalised DOIs name one paper (Unicode forms and case aside)."""
    return a == b or normalize("NFC", a).casefold() == normalize("NFC", b).casefold()


def _folder(url: str) -> str:
    """The folder a report's pages live in: the first segment of its address's path
    (`/reports/`), or the whole path when it has one segment only."""
    segments = urlsplit(url).path.split("/")
    return f"/{segments[1]}/" if len(segments) > 2 else "/".join(segments)


def _host(url: str) -> str | None:
    try:
        return host_key(url)
    except ValueError:  # a port out of range
        return None


def _add(seen: tuple[str, ...], *urls: str) -> tuple[str, ...]:
    known = set(seen)
    return seen + tuple(u for u in dict.fromkeys(urls) if u not in known)
