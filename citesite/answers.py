"""How the local site answers a report address: what it names, and the page it sends.

`ReportAnswers` is the part of `CitationSite` that turns a `/reports/...` address into an
`Answer`: the address read (slug or DOI, `?page=N`; `normalise_dots` for the `dots`
mode), the redirects, the permanent and pagination fault modes, status faults with their
`Retry-After`, the rendered page in the site's encoding with its `ETag` and
`Last-Modified`, 304s, and cut (reset or truncated) bodies. It is a mixin: the attributes
it reads are set by `CitationSite.__init__` (citesite/server.py), which keeps the
lifecycle, the request log, the handlers and the admin routes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import math
import re
import socket
import struct
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, formatdate, parsedate_to_datetime
from urllib.parse import parse_qs, quote, unquote, urlsplit

from aiohttp import web

from citesite.dataset import (
    SiteReport,
    canonical_url,
    page_count,
    report_to_dict,
)
from citesite.doi import quote_doi, site_doi
from citesite.faults import CREDENTIALS, PAGE_KINDS, FaultSpec
from citesite.live import LiveReports
from citesite.render import CONTENT_TYPE, RENDER_VERSION, PageLinks, render_page
from citesite.static import CAPTCHA_PAGE, LOGIN_PAGE, NOT_FOUND_PAGE, error_page
from citesite.style import report_style

_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)

REPORTS = "/reports/"


# A Host header the site will name in its links: a name or IPv4 address, or a bracketed
# IPv6 address, and an optional port. Anything else falls back to the bound address.
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?"
)


def public_url_or_error(url: str) -> str:
    """`url` without a trailing slash if it is an http(s) URL with a host and no path,
    query or fragment (what links are built on); else ValueError saying so."""
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        raise ValueError(f"{url!r} is not an http(s) address such as http://site:8080")
    return url.rstrip("/")


DECLARE = ("header", "meta", "both", "none")  # where a page's encoding is declared


_UTF8_META = '<meta charset="utf-8">'  # as `citesite.render` writes it


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str]
    fault: str | None = None
    retry_after_until: float | None = None


def http_date(iso: str) -> str:
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return format_datetime(dt.astimezone(UTC), usegmt=True)


def epoch_seconds(iso: str) -> int:
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


def normalise_dots(path_qs: str) -> str:
    """The path as a server that decodes and normalises it would route it: percent-decoded
    (repeatedly), NFKC, `\\` read as `/`, `;params` of dot segments dropped, `.` and `..`
    resolved. A path without dot segments is returned unchanged (still encoded)."""
    path, sep, query = path_qs.partition("?")
    decoded = path
    for _ in range(4):
        decoded = unquote(decoded)
    decoded = unicodedata.normalize("NFKC", decoded).replace("\\", "/")
    segments = [_dot_or_self(seg) for seg in decoded.split("/")]
    if not any(seg in (".", "..") for seg in segments):
        return path_qs
    kept: list[str] = []
    for seg in segments[1:]:
        if seg == "..":
            if kept:
                kept.pop()
        elif seg != ".":
            kept.append(seg)
    return "/" + quote("/".join(kept)) + sep + query


def _dot_or_self(segment: str) -> str:
    """`..;x` reads as `..` (servers drop a dot segment's `;params`); others unchanged."""
    bare = segment.split(";", 1)[0]
    return bare if bare in (".", "..") else segment


def etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(t.strip().removeprefix("W/") == bare for t in header.split(","))


def fingerprint(report: SiteReport) -> str:
    """A stable hash of a report's content (the part of its ETag that changes with data)."""
    blob = json.dumps(report_to_dict(report), sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(f"{RENDER_VERSION}\n{blob}".encode(), digest_size=10).hexdigest()


class ReportAnswers:
    """Address -> answer for `CitationSite` (a mixin; see the module docstring)."""

    # set by CitationSite.__init__
    faults: FaultSpec
    per_page: int
    offsite_url: str
    public_url: str | None
    base_url: str
    encoding: str
    declare: str
    _reports: LiveReports
    _cache: OrderedDict[tuple[str, int, int, str], tuple[bytes, str]]
    _cache_size: int
    _fingerprints: OrderedDict[tuple[str, int], str]

    def link_base(self, host: str | None) -> str:
        """The address links are built on for a request sent to `host` (its Host
        header): `public_url` if set, else `http://{host}`, else `base_url`; with
        credentials in the `creds` mode (`http://user:secret@host:port`)."""
        if self.public_url is not None:
            base = self.public_url
        elif host and _HOST.fullmatch(host):
            base = f"http://{host}"
        else:
            base = self.base_url
        if not self.faults.creds:
            return base
        return base.replace("://", f"://{CREDENTIALS}@", 1)

    def _page(self, report: SiteReport, page: int, base: str) -> tuple[bytes, str]:
        version = self._reports.version.get(report.doi, 0)
        key = (report.doi, page, version, base)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        mode = self.faults.permanent_fault(report.doi)
        mode = mode if mode in PAGE_KINDS else None
        links = self._links(report, page, mode, base)
        real = page_count(report, self.per_page)
        chunk = page if links is None else (page - 1) % real + 1  # beyond: statements repeat
        if mode == "endless" and page > real:  # endless: new statements on every page
            chunk = 1
            report = dataclasses.replace(
                report,
                statements=tuple(
                    dataclasses.replace(s, snippet=f"{s.snippet} (page {page})")
                    for s in report.statements[: self.per_page]
                ),
            )
        body = render_page(report, chunk, base, self.per_page, links)
        tag = f"-{mode}" if mode else ""
        value = (body, f'"{self._fingerprint(report, version)}-{self.per_page}-{page}{tag}"')
        self._cache[key] = value
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return value

    def _fingerprint(self, report: SiteReport, version: int) -> str:
        key = (report.doi, version)
        fp = self._fingerprints.get(key)
        if fp is None:
            fp = fingerprint(report)
            self._fingerprints[key] = fp
            if len(self._fingerprints) > 65536:
                self._fingerprints.popitem(last=False)
        return fp

    def _encoded(self, body: bytes) -> tuple[bytes, str]:
        """A rendered (UTF-8) page in the site's `encoding`, declared as `declare` says;
        with its Content-Type."""
        if self.encoding == "utf-8" and self.declare == "both":
            return body, CONTENT_TYPE
        meta = f'<meta charset="{self.encoding}">' if self.declare in ("meta", "both") else ""
        text = body.decode("utf-8").replace(_UTF8_META, meta, 1)
        header = self.declare in ("header", "both")
        content_type = f"text/html; charset={self.encoding}" if header else "text/html"
        return text.encode(self.encoding, "xmlcharrefreplace"), content_type

    def _serve(self, request: web.Request, report: SiteReport, page: int) -> Answer:
        body, etag = self._page(report, page, self.link_base(request.headers.get("Host")))
        body, content_type = self._encoded(body)
        modified = http_date(report.updated_at)
        headers = {
            "ETag": etag,
            "Last-Modified": modified,
            "Content-Type": content_type,
            "Cache-Control": "private, max-age=0",
        }
        inm = request.headers.get("If-None-Match")
        ims = request.headers.get("If-Modified-Since")
        if inm is not None:
            if etag_matches(inm, etag):
                return Answer(304, b"", headers)
        elif ims is not None:
            try:
                since = parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError, IndexError):
                since = None
            if since is not None and epoch_seconds(report.updated_at) <= since:
                return Answer(304, b"", headers)
        return Answer(200, body, headers)

    def _redirect(self, status: int, location: str, fault: str | None = None) -> Answer:
        body = (
            f"<!DOCTYPE html><html><head><title>Moved</title></head><body><p>Moved to "
            f'<a href="{location}">{location}</a>.</p></body></html>\n'
        ).encode()
        return Answer(status, body, {"Location": location, "Content-Type": CONTENT_TYPE}, fault)

    def _status_fault(self, fault: str) -> Answer:
        status = int(fault.split("-", 1)[0])
        headers = {"Content-Type": CONTENT_TYPE}
        until = None
        if fault in ("429", "429-date", "503-date"):
            wait = self.faults.retry_after
            if fault.endswith("-date"):
                until = float(math.ceil(time.time()) + wait)
                headers["Retry-After"] = formatdate(until, usegmt=True)
            else:
                until = time.time() + wait
                headers["Retry-After"] = str(wait)
        return Answer(status, error_page(status), headers, fault, until)

    def _resolve(self, path_qs: str) -> Answer | tuple[SiteReport, int]:
        """What the address names: (report, page) to serve, a redirect, a permanent fault,
        or a 404."""
        path, _, query = path_qs.partition("?")
        try:
            tail = unquote(path[len(REPORTS) :], errors="strict")
        except UnicodeDecodeError:
            return self._not_found()
        page_values = parse_qs(query).get("page")
        page: int | None = None
        if page_values:
            try:
                page = int(page_values[-1])
            except ValueError:
                return self._not_found()
        by_doi = "/" in tail
        if by_doi:
            report = self._reports.get_report(site_doi(tail) or tail.lower())
        else:
            report = self._reports.by_slug(tail)
        if report is None:
            return self._not_found()
        query_part = f"?page={page}" if page is not None else ""
        slug_path = f"{REPORTS}{report.slug}{query_part}"
        perm = self.faults.permanent_fault(report.doi)
        if perm is not None and perm not in PAGE_KINDS:
            return self._permanent(perm, report, by_doi, query_part, slug_path)
        style = report_style(report.doi)
        if by_doi and not (style.direct and page in (None, 1)):
            target = f"{self.link_base(None)}{slug_path}" if self.faults.creds else slug_path
            return self._redirect(style.redirect_status, target)
        n = 1 if page is None else page
        if perm == "truncated":  # pages stop early: half the statements, no word
            report = dataclasses.replace(
                report, statements=report.statements[: len(report.statements) // 2]
            )
        last = self._last_page(report, perm)
        if n < 1 or (last is not None and n > last):
            return self._not_found()
        return report, n

    def _last_page(self, report: SiteReport, mode: str | None) -> int | None:
        """The last page a report is served with in a pagination mode (None: endless)."""
        pages = page_count(report, self.per_page)
        if mode == "endless":
            return None
        if mode in ("cycle", "cycle-absolute", "next-offsite"):
            return max(2, pages) if mode == "next-offsite" else 2
        if mode == "cycle-long":
            return 3
        return pages

    def _links(
        self, report: SiteReport, page: int, mode: str | None, base: str
    ) -> PageLinks | None:
        """The pagination a fault mode gives page `page` (None: the ordinary one)."""
        if mode is None or mode == "truncated":
            return None
        pages = page_count(report, self.per_page)
        canonical = canonical_url(base, report)
        if mode == "suffixed":
            nxt = f"?page={page + 1}" if page < pages else None
            return PageLinks(page, pages, nxt, suffixed=True)
        if mode == "cycle":
            return PageLinks(page, 2, "?page=2" if page == 1 else "?page=1")
        if mode == "cycle-absolute":
            return PageLinks(page, 2, f"{canonical}?page=2" if page == 1 else canonical)
        if mode == "cycle-long":
            nxt = f"?page={page + 1}" if page < 3 else f"{REPORTS}{report.slug}"
            return PageLinks(page, 3, nxt)
        if mode == "endless":
            return PageLinks(page, page + 1, f"?page={page + 1}")
        # next-offsite: the same pages, but page 1's next link names another host
        other = urlsplit(self.offsite_url)
        last = max(2, pages)
        if page == 1:
            return PageLinks(
                page, last, f"{other.scheme}://{other.netloc}{REPORTS}{report.slug}?page=2"
            )
        return PageLinks(page, last, f"?page={page + 1}" if page < last else None)

    def _permanent(
        self, kind: str, report: SiteReport, by_doi: bool, query_part: str, slug_path: str
    ) -> Answer:
        html = {"Content-Type": CONTENT_TYPE}
        if kind == "captcha":
            return Answer(200, CAPTCHA_PAGE, html, kind)
        if kind == "login":
            return Answer(200, LOGIN_PAGE, html, kind)
        if kind == "json":
            body = json.dumps({"doi": report.doi, "title": report.title, "error": None})
            return Answer(200, body.encode(), {"Content-Type": "application/json"}, kind)
        if kind == "image":
            return Answer(200, _PNG, {"Content-Type": "image/png"}, kind)
        if kind == "offsite":
            return self._redirect(302, self.offsite_url, kind)
        # loop: the DOI address sends to the slug address, which sends back
        if by_doi:
            return self._redirect(302, slug_path, kind)
        return self._redirect(302, f"{REPORTS}{quote_doi(report.doi)}{query_part}", kind)

    def _not_found(self) -> Answer:
        return Answer(404, NOT_FOUND_PAGE, {"Content-Type": CONTENT_TYPE})

    async def _cut(self, request: web.Request, answer: Answer, fault: str) -> web.StreamResponse:
        """Send the headers and part of the body, then reset or close the connection."""
        transport = request.transport
        resp = web.StreamResponse(status=answer.status, headers=answer.headers)
        body = answer.body or b"<!DOCTYPE html><html><body>" + b"x" * 2048
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: max(1, len(body) // 3)])
        for _ in range(100):
            if transport is None or transport.get_write_buffer_size() == 0:
                break
            await asyncio.sleep(0.001)
        if transport is not None:
            if fault == "reset":
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                transport.abort()
            else:
                transport.close()
        return resp
