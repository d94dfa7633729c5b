"""The local citation site: an aiohttp server for report pages, with faults and a request log.

    async with CitationSite(reports, faults="500=0.1,first=1") as site:
        ...  # crawl site.base_url; compare with site.reports / site.expected(doi, page)
        assert all(r.status != 500 or r.attempt == 1 for r in site.requests)

Addresses (the contract's): `/reports/{doi}` redirects (301/302) to `/reports/{slug}` or,
for some reports, answers 200 with page 1; `/reports/{slug}?page=N`; `/robots.txt`.
Unknown DOIs, slugs and pages are 404. The same server answers scite's JSON API
(`POST /tallies`, `/papers`, `/tallies/cited-by-sections`, `GET /tallies/{doi}`,
`/papers/{doi}`) from the same reports, with its limits and faults: `citesite/api.py`.
Report pages carry `ETag` (from the report's content, the page and the page size, not the
host) and `Last-Modified` (the report's `updated_at`), and answer a matching
`If-None-Match` (or, without one, a not-older `If-Modified-Since`) with 304.

Not part of the contract (never logged): `GET /__site/requests[?since=N]` (the request
log as JSON), `/__site/stats` (counts by status and fault), `/__site/reports` (the ground
truth as JSON lines), `/__site/expected?doi=D&page=N`, `/__site/faults` (the spec and the
DOIs that must end dead), `POST /__site/next-epoch` (change the data for the next crawl:
`next_epoch`, citesite/epochs.py) and `/__site/notices` (the editorial notices issued).

Links in pages (canonical, next page, citing reports) are absolute. They name the site's
public address: `public_url` when given (`citepipe site --public-url URL`, for a site
behind a proxy), else the `Host` the request was sent to, so a site bound to `0.0.0.0`
and reached as `http://site:8080` (a compose service name) links to `http://site:8080`.
`base_url` is the address it is bound to.

`site.warm()` renders every page ahead (benchmarks); `citepipe site` runs the site from
the command line (`add_arguments` + `run`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import math
import re
import signal
import socket
import struct
import sys
import time
import unicodedata
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, formatdate, parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from aiohttp import web

from citesite.api import PER_MINUTE, PER_SECOND, ApiService
from citesite.dataset import (
    DEFAULT_PER_PAGE,
    ExpectedPage,
    GeneratedReports,
    SiteReport,
    canonical_url,
    demo_dataset_path,
    expected_page,
    iter_dataset,
    page_count,
    report_to_dict,
)
from citesite.doi import quote_doi, report_url, site_doi
from citesite.epochs import Epoch, SiteNotice, next_epoch
from citesite.faults import CREDENTIALS, PAGE_KINDS, FaultSpec, FaultSpecError
from citesite.render import (
    CAPTCHA_PAGE,
    CONTENT_TYPE,
    LOGIN_PAGE,
    NOT_FOUND_PAGE,
    PRIVATE_PAGE,
    RENDER_VERSION,
    PageLinks,
    error_page,
    render_page,
)
from citesite.style import report_style

OFFSITE_URL = "http://127.0.0.2:9/elsewhere"
_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
_REPORTS = "/reports/"
_BODY_FAULTS = frozenset({"slow", "reset", "truncate"})
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


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the site answered (admin `/__site/` requests are not logged).

    `status` is the status line sent (a reset or truncated answer keeps its 200);
    `retry_after_until` is the epoch time before which a 429/503 asked not to come back.
    """

    time: float
    method: str
    path_qs: str
    status: int
    fault: str | None = None
    attempt: int = 1
    if_none_match: str | None = None
    if_modified_since: str | None = None
    user_agent: str | None = None
    retry_after_until: float | None = None
    authorization: str | None = None  # what a client must never send (credentials)
    dois: int | None = None  # an API request: how many DOIs it asked for


DECLARE = ("header", "meta", "both", "none")  # where a page's encoding is declared
_UTF8_META = '<meta charset="utf-8">'  # as `citesite.render` writes it


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    headers: Mapping[str, str]
    fault: str | None = None
    retry_after_until: float | None = None


class _Reports(Mapping[str, SiteReport]):
    """The site's data: a base mapping (dict or GeneratedReports) plus live changes."""

    def __init__(self, base: Mapping[str, SiteReport]) -> None:
        self._base = base
        self._generated = base if isinstance(base, GeneratedReports) else None
        self._over: dict[str, SiteReport] = {}
        self._removed: set[str] = set()
        self._slugs: dict[str, str] = {}
        self.version: dict[str, int] = {}
        if self._generated is None:
            self._slugs = {r.slug: doi for doi, r in base.items()}

    def __getitem__(self, doi: str) -> SiteReport:
        if doi in self._over:
            return self._over[doi]
        if doi in self._removed:
            raise KeyError(doi)
        return self._base[doi]

    def get_report(self, doi: str) -> SiteReport | None:
        try:
            return self[doi]
        except KeyError:
            return None

    def __iter__(self) -> Iterator[str]:
        for doi in self._base:
            if doi not in self._removed and doi not in self._over:
                yield doi
        yield from self._over

    def __len__(self) -> int:
        # removed and overridden DOIs never overlap: put() and remove() keep them apart
        removed = sum(1 for d in self._removed if d in self._base)
        return len(self._base) - removed + sum(1 for d in self._over if d not in self._base)

    def by_slug(self, slug: str) -> SiteReport | None:
        doi = self._slugs.get(slug)
        if doi is not None:
            report = self.get_report(doi)
            if report is not None and report.slug == slug:
                return report
        if self._generated is not None:
            report = self._generated.by_slug(slug)
            if (
                report is not None
                and report.doi not in self._removed
                and (report.doi not in self._over)
            ):
                return report
        return None

    def put(self, report: SiteReport) -> None:
        self._removed.discard(report.doi)
        self._over[report.doi] = report
        self._slugs[report.slug] = report.doi
        self.version[report.doi] = self.version.get(report.doi, 0) + 1

    def remove(self, doi: str) -> bool:
        present = self.get_report(doi) is not None
        self._over.pop(doi, None)
        self._removed.add(doi)
        self.version[doi] = self.version.get(doi, 0) + 1
        return present


def _as_mapping(
    reports: Mapping[str, SiteReport] | Iterable[SiteReport] | None,
) -> Mapping[str, SiteReport]:
    if reports is None:
        return {r.doi: r for r in iter_dataset(demo_dataset_path())}
    if isinstance(reports, Mapping):
        return reports
    return {r.doi: r for r in reports}


def _http_date(iso: str) -> str:
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return format_datetime(dt.astimezone(UTC), usegmt=True)


def _epoch(iso: str) -> int:
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


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(t.strip().removeprefix("W/") == bare for t in header.split(","))


def fingerprint(report: SiteReport) -> str:
    """A stable hash of a report's content (the part of its ETag that changes with data)."""
    blob = json.dumps(report_to_dict(report), sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(f"{RENDER_VERSION}\n{blob}".encode(), digest_size=10).hexdigest()


class CitationSite:
    """The local citation site as an async context manager; see the module docstring."""

    def __init__(
        self,
        reports: Mapping[str, SiteReport] | Iterable[SiteReport] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultSpec | str | None = None,
        per_page: int = DEFAULT_PER_PAGE,
        crawl_delay: float | None = None,
        cache_size: int = 2048,
        offsite_url: str = OFFSITE_URL,
        max_log: int | None = 1_000_000,
        robots_status: int | None = 200,
        public_url: str | None = None,
        hold_until_arrived: int | None = None,
        api_token: str | None = None,
        api_per_second: int = PER_SECOND,
        api_per_minute: int = PER_MINUTE,
        encoding: str = "utf-8",
        declare: str = "both",
    ) -> None:
        """`api_token` is the token the API accepts (`Authorization: Bearer ...`), which
        lifts its limits of `api_per_second` and `api_per_minute` (citesite/api.py).
        `encoding` is how report pages are encoded (`iso-8859-1`, `windows-1252`: what
        the encoding cannot hold is written as character references) and `declare` where
        the encoding is said: `header` (Content-Type charset), `meta` (`<meta charset>`),
        `both` or `none` (neither: bytes a client must not read as UTF-8 in silence)."""
        if per_page < 1:
            raise ValueError("per_page must be >= 1")
        if declare not in DECLARE:
            raise ValueError(f"declare must be one of {', '.join(DECLARE)}")
        "".encode(encoding)  # an unknown encoding is a LookupError here, not at serve time
        self.encoding = encoding
        self.declare = declare
        self.public_url = public_url_or_error(public_url) if public_url else None
        self._reports = _Reports(_as_mapping(reports))
        self.host = host
        self.port = port
        self.faults = FaultSpec.coerce(faults)
        self.per_page = per_page
        self.crawl_delay = crawl_delay
        # robots.txt's answer (hostile modes): 200 serves the rules, another status serves
        # an empty body with it, None closes the connection unanswered (unreachable).
        # Settable while serving.
        self.robots_status = robots_status
        self.offsite_url = offsite_url
        # Report requests are held, unanswered, until this many have arrived; then all go
        # on and nothing more is held. Arrivals are counted, not current waiters (a client
        # that gives up while held still counts): a test that keeps its clients' timeouts
        # longer than the hold sees several crawler processes each with work in flight, by
        # their requests, not by timing.
        self.hold_until_arrived = hold_until_arrived
        self._holding = 0
        self._released = asyncio.Event()
        self._cache: OrderedDict[tuple[str, int, int, str], tuple[bytes, str]] = OrderedDict()
        self._cache_size = cache_size
        self._fingerprints: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._log: deque[RequestRecord] = deque(maxlen=max_log)
        self._attempts: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._by_fault: Counter[str] = Counter()
        self._total = 0
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.epoch = 0  # data generation: 0 as given, +1 at each next_epoch()
        self.notices: list[SiteNotice] = []  # editorial notices issued so far
        self.api = ApiService(
            lambda: self._reports,
            lambda: self.faults,
            self._record_api,
            self._cut_api,
            token=api_token,
            per_second=api_per_second,
            per_minute=api_per_minute,
        )

    @property
    def holding(self) -> int:
        """How many report requests have arrived while `hold_until_arrived` held them."""
        return self._holding

    def hold(self) -> None:
        """From now on hold every report request, unanswered, until `release()`: a test
        does something (restarts a database) while clients have pages in flight, and
        knows it by `holding`, not by timing. `holding` counts from zero again."""
        self.hold_until_arrived = sys.maxsize
        self._holding = 0
        self._released.clear()

    def release(self) -> None:
        """Answer every held report request, and hold no more."""
        self._released.set()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> CitationSite:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind and start serving; sets `base_url` (with the real port when port=0)."""
        app = web.Application()
        app.router.add_get("/robots.txt", self._robots)
        app.router.add_get("/__site/requests", self._admin_requests)
        app.router.add_get("/__site/stats", self._admin_stats)
        app.router.add_get("/__site/reports", self._admin_reports)
        app.router.add_get("/__site/expected", self._admin_expected)
        app.router.add_get("/__site/faults", self._admin_faults)
        app.router.add_post("/__site/next-epoch", self._admin_next_epoch)
        app.router.add_get("/__site/notices", self._admin_notices)
        app.router.add_get("/reports/{tail:.*}", self._report)
        self.api.add_routes(app)
        app.router.add_route("*", "/{tail:.*}", self._other)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.base_url = f"http://{host}:{self.port}"

    async def close(self) -> None:
        """Stop serving (idempotent)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ------------------------------------------------------------------ ground truth

    @property
    def reports(self) -> Mapping[str, SiteReport]:
        """The ground truth: DOI -> report, as currently served."""
        return self._reports

    @property
    def requests(self) -> list[RequestRecord]:
        """The request log, oldest first."""
        return list(self._log)

    def clear_log(self) -> None:
        """Forget the request log, the counters and the attempt numbers of every URL."""
        self._log.clear()
        self._attempts.clear()
        self._by_status.clear()
        self._by_fault.clear()
        self._total = 0
        self.api.clear()

    def stats(self) -> dict[str, Any]:
        """Requests by status and by fault."""
        return {
            "requests": self._total,
            "by_status": {str(k): v for k, v in sorted(self._by_status.items())},
            "by_fault": dict(sorted(self._by_fault.items())),
            "reports": len(self._reports),
            "faults": str(self.faults),
        }

    @property
    def public_base(self) -> str:
        """The address pages link to when the request names none: `public_url`, else
        `base_url`."""
        return self.public_url or self.base_url

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

    def url_for(self, doi: str) -> str:
        """`{base}/reports/{doi}`, the address a client starts from."""
        return report_url(self.base_url, doi)

    def pages(self, doi: str) -> int:
        """How many pages the report for `doi` has."""
        return page_count(self._reports[doi], self.per_page)

    def expected(self, doi: str, page: int = 1, base_url: str | None = None) -> ExpectedPage:
        """`expected_page` for a report of this site (an `ExpectedPage`), as served to a
        client that reached it at `base_url` (default `public_base`)."""
        return expected_page(self._reports[doi], page, base_url or self.public_base, self.per_page)

    def dead(self) -> dict[str, str]:
        """DOIs a correct client must end with as failed (permanent faults), and why."""
        return self.faults.dead(self._reports)

    def set_report(self, report: SiteReport) -> SiteReport:
        """Add or replace a report; a changed one gets a later `updated_at` if needed (so
        both its ETag and its Last-Modified change). Returns the report as stored."""
        old = self._reports.get_report(report.doi)
        if (
            old is not None
            and old != report
            and _epoch(report.updated_at) <= _epoch(old.updated_at)
        ):
            bumped = max(int(time.time()), _epoch(old.updated_at) + 1)
            stamp = datetime.fromtimestamp(bumped, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            report = dataclasses.replace(report, updated_at=stamp)
        self._reports.put(report)
        return report

    def next_epoch(self, *, every: int = 3, most: int = 4) -> Epoch:
        """Change the data for the next crawl (citesite/epochs.py): some reports gain
        statements and tallies, one only tallies, one a notice. Returns what changed."""
        epoch = next_epoch(self._reports, self.epoch + 1, every=every, most=most)
        for report in epoch.reports.values():
            self.set_report(report)
        self.epoch = epoch.number
        self.notices.extend(epoch.notices)
        return epoch

    def remove_report(self, doi: str) -> bool:
        """Stop serving a report (404 from now on); False if it was not there."""
        return self._reports.remove(site_doi(doi) or doi)

    def warm(self, dois: Iterable[str] | None = None) -> int:
        """Render every page of these reports (default: all) into the page cache, growing
        it to hold them, so a benchmark measures its client and not the renderer. Needs a
        started site (pages hold the base URL); returns the number of pages."""
        if not self.base_url:
            raise RuntimeError("start the site before warming its cache")
        n = 0
        for doi in self._reports if dois is None else dois:
            report = self._reports[doi]
            for page in range(1, page_count(report, self.per_page) + 1):
                n += 1
                self._cache_size = max(self._cache_size, n)
                self._page(report, page, self.public_base)
        return n

    # ------------------------------------------------------------------ pages

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

    def _serve(self, request: web.Request, report: SiteReport, page: int) -> _Answer:
        body, etag = self._page(report, page, self.link_base(request.headers.get("Host")))
        body, content_type = self._encoded(body)
        modified = _http_date(report.updated_at)
        headers = {
            "ETag": etag,
            "Last-Modified": modified,
            "Content-Type": content_type,
            "Cache-Control": "private, max-age=0",
        }
        inm = request.headers.get("If-None-Match")
        ims = request.headers.get("If-Modified-Since")
        if inm is not None:
            if _etag_matches(inm, etag):
                return _Answer(304, b"", headers)
        elif ims is not None:
            try:
                since = parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError, IndexError):
                since = None
            if since is not None and _epoch(report.updated_at) <= since:
                return _Answer(304, b"", headers)
        return _Answer(200, body, headers)

    def _redirect(self, status: int, location: str, fault: str | None = None) -> _Answer:
        body = (
            f"<!DOCTYPE html><html><head><title>Moved</title></head><body><p>Moved to "
            f'<a href="{location}">{location}</a>.</p></body></html>\n'
        ).encode()
        return _Answer(status, body, {"Location": location, "Content-Type": CONTENT_TYPE}, fault)

    # ------------------------------------------------------------------ handlers

    async def _report(self, request: web.Request) -> web.StreamResponse:
        if self.hold_until_arrived is not None and not self._released.is_set():
            self._holding += 1
            if self._holding >= self.hold_until_arrived:
                self._released.set()
            await self._released.wait()
        path_qs = request.raw_path
        self._attempts[path_qs] += 1
        attempt = self._attempts[path_qs]
        if self.faults.dots:  # the hostile mode: normalise first, as many servers do
            normalised = normalise_dots(path_qs)
            if not normalised.startswith(_REPORTS):
                return self._escaped(request, attempt)
            path_qs = normalised
        fault = self.faults.transient_fault(path_qs, attempt)
        if fault == "slow":
            await asyncio.sleep(self.faults.delay)
        if fault is not None and fault not in _BODY_FAULTS:
            answer = self._status_fault(fault)
        else:
            target = self._resolve(path_qs)
            answer = self._serve(request, *target) if isinstance(target, tuple) else target
            if fault is not None:
                label = fault if answer.fault is None else f"{fault}+{answer.fault}"
                answer = dataclasses.replace(answer, fault=label)
        self._record(request, answer, attempt)
        if fault in ("reset", "truncate"):
            return await self._cut(request, answer, fault)
        return web.Response(status=answer.status, body=answer.body or None, headers=answer.headers)

    def _status_fault(self, fault: str) -> _Answer:
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
        return _Answer(status, error_page(status), headers, fault, until)

    def _resolve(self, path_qs: str) -> _Answer | tuple[SiteReport, int]:
        """What the address names: (report, page) to serve, a redirect, a permanent fault,
        or a 404."""
        path, _, query = path_qs.partition("?")
        try:
            tail = unquote(path[len(_REPORTS) :], errors="strict")
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
        slug_path = f"{_REPORTS}{report.slug}{query_part}"
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
            nxt = f"?page={page + 1}" if page < 3 else f"{_REPORTS}{report.slug}"
            return PageLinks(page, 3, nxt)
        if mode == "endless":
            return PageLinks(page, page + 1, f"?page={page + 1}")
        # next-offsite: the same pages, but page 1's next link names another host
        other = urlsplit(self.offsite_url)
        last = max(2, pages)
        if page == 1:
            return PageLinks(
                page, last, f"{other.scheme}://{other.netloc}{_REPORTS}{report.slug}?page=2"
            )
        return PageLinks(page, last, f"?page={page + 1}" if page < last else None)

    def _permanent(
        self, kind: str, report: SiteReport, by_doi: bool, query_part: str, slug_path: str
    ) -> _Answer:
        html = {"Content-Type": CONTENT_TYPE}
        if kind == "captcha":
            return _Answer(200, CAPTCHA_PAGE, html, kind)
        if kind == "login":
            return _Answer(200, LOGIN_PAGE, html, kind)
        if kind == "json":
            body = json.dumps({"doi": report.doi, "title": report.title, "error": None})
            return _Answer(200, body.encode(), {"Content-Type": "application/json"}, kind)
        if kind == "image":
            return _Answer(200, _PNG, {"Content-Type": "image/png"}, kind)
        if kind == "offsite":
            return self._redirect(302, self.offsite_url, kind)
        # loop: the DOI address sends to the slug address, which sends back
        if by_doi:
            return self._redirect(302, slug_path, kind)
        return self._redirect(302, f"{_REPORTS}{quote_doi(report.doi)}{query_part}", kind)

    def _not_found(self) -> _Answer:
        return _Answer(404, NOT_FOUND_PAGE, {"Content-Type": CONTENT_TYPE})

    async def _cut(self, request: web.Request, answer: _Answer, fault: str) -> web.StreamResponse:
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

    def _record(self, request: web.Request, answer: _Answer, attempt: int) -> None:
        headers = request.headers
        self._log.append(
            RequestRecord(
                time=time.time(),
                method=request.method,
                path_qs=request.raw_path,
                status=answer.status,
                fault=answer.fault,
                attempt=attempt,
                if_none_match=headers.get("If-None-Match"),
                if_modified_since=headers.get("If-Modified-Since"),
                user_agent=headers.get("User-Agent"),
                retry_after_until=answer.retry_after_until,
                authorization=headers.get("Authorization"),
            )
        )
        self._total += 1
        self._by_status[answer.status] += 1
        if answer.fault is not None:
            self._by_fault[answer.fault] += 1

    def _record_api(
        self,
        request: web.Request,
        status: int,
        *,
        fault: str | None = None,
        attempt: int = 1,
        dois: int | None = None,
        retry_after_until: float | None = None,
    ) -> None:
        """Log an API request; its token is logged as whether it was the right one."""
        auth = request.headers.get("Authorization")
        if auth is not None:
            ok = self.api.token is not None and auth == f"Bearer {self.api.token}"
            auth = "Bearer (valid)" if ok else "Bearer (invalid)"
        self._log.append(
            RequestRecord(
                time=time.time(),
                method=request.method,
                path_qs=request.raw_path,
                status=status,
                fault=fault,
                attempt=attempt,
                user_agent=request.headers.get("User-Agent"),
                retry_after_until=retry_after_until,
                authorization=auth,
                dois=dois,
            )
        )
        self._total += 1
        self._by_status[status] += 1
        if fault is not None:
            self._by_fault[fault] += 1

    async def _cut_api(
        self,
        request: web.Request,
        status: int,
        body: bytes,
        headers: Mapping[str, str],
        fault: str,
    ) -> web.StreamResponse:
        return await self._cut(request, _Answer(status, body, headers, fault), fault)

    async def _robots(self, request: web.Request) -> web.StreamResponse:
        self._attempts[request.raw_path] += 1
        attempt = self._attempts[request.raw_path]
        if self.robots_status is None:  # unreachable: the connection closes, no answer
            self._record(request, _Answer(0, b"", {}, "robots-drop"), attempt)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)  # never sent: the transport is closed
        if self.robots_status != 200:
            answer = _Answer(self.robots_status, b"", {"Content-Type": "text/plain"})
            self._record(request, answer, attempt)
            return web.Response(status=answer.status, headers=answer.headers)
        lines = ["User-agent: *", "Disallow: /login", "Disallow: /search", "Disallow: /__site/"]
        if self.crawl_delay is not None:
            lines.append(f"Crawl-delay: {self.crawl_delay:g}")
        lines += ["", "User-agent: BadBot", "Disallow: /", ""]
        answer = _Answer(200, "\n".join(lines).encode(), {"Content-Type": "text/plain"})
        self._record(request, answer, attempt)
        return web.Response(body=answer.body, headers=answer.headers)

    def _escaped(self, request: web.Request, attempt: int) -> web.Response:
        """The `dots` mode's answer to a path that normalised out of `/reports/`: a page
        a crawler should never have reached, logged with the fault `escaped`."""
        answer = _Answer(200, PRIVATE_PAGE, {"Content-Type": CONTENT_TYPE}, "escaped")
        self._record(request, answer, attempt)
        return web.Response(status=200, body=answer.body, headers=answer.headers)

    async def _other(self, request: web.Request) -> web.Response:
        if self.faults.dots and normalise_dots(request.raw_path) != request.raw_path:
            self._attempts[request.raw_path] += 1
            return self._escaped(request, self._attempts[request.raw_path])
        answer = self._not_found()
        self._attempts[request.raw_path] += 1
        self._record(request, answer, self._attempts[request.raw_path])
        return web.Response(status=404, body=answer.body, headers=answer.headers)

    # ------------------------------------------------------------------ admin

    async def _admin_requests(self, request: web.Request) -> web.Response:
        since = int(request.query.get("since", "0") or 0)
        log = list(self._log)[since:]
        return web.json_response([dataclasses.asdict(r) for r in log])

    async def _admin_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _admin_reports(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        batch: list[str] = []
        for doi in self._reports:
            batch.append(json.dumps(report_to_dict(self._reports[doi]), ensure_ascii=False))
            if len(batch) >= 200:
                await resp.write(("\n".join(batch) + "\n").encode())
                batch.clear()
        if batch:
            await resp.write(("\n".join(batch) + "\n").encode())
        await resp.write_eof()
        return resp

    async def _admin_expected(self, request: web.Request) -> web.Response:
        doi = site_doi(request.query.get("doi", "")) or ""
        try:
            page = int(request.query.get("page", "1"))
            result = self.expected(doi, page, self.link_base(request.headers.get("Host")))
        except (KeyError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=404)
        return web.json_response(dataclasses.asdict(result))

    async def _admin_faults(self, request: web.Request) -> web.Response:
        return web.json_response({"spec": str(self.faults), "dead": self.dead()})

    async def _admin_next_epoch(self, request: web.Request) -> web.Response:
        epoch = self.next_epoch()
        return web.json_response(
            {
                "epoch": epoch.number,
                "changed": sorted(epoch.reports),
                "new_statements": {d: len(s) for d, s in epoch.new_statements.items()},
                "notices": [dataclasses.asdict(n) for n in epoch.notices],
            }
        )

    async def _admin_notices(self, request: web.Request) -> web.Response:
        return web.json_response([dataclasses.asdict(n) for n in self.notices])


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `citepipe site`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port (default %(default)s; 0 picks a free one)"
    )
    parser.add_argument(
        "--public-url",
        metavar="URL",
        default=None,
        help="the address clients reach the site at, named in its links (default: the "
        "request's Host, e.g. http://site:8080 behind a compose service name)",
    )
    parser.add_argument(
        "--data", metavar="FILE", help="JSONL data set (default: the bundled demo set)"
    )
    parser.add_argument(
        "--generate", type=int, metavar="N", help="serve N generated reports instead of a data file"
    )
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    parser.add_argument(
        "--faults",
        type=_fault_arg,
        default=None,
        metavar="SPEC",
        help='faults to inject, e.g. "500=0.05,429=0.05,reset=0.03,first=1"',
    )
    parser.add_argument(
        "--per-page",
        type=int,
        default=DEFAULT_PER_PAGE,
        help="statements per page (default %(default)s)",
    )
    parser.add_argument(
        "--crawl-delay", type=float, default=None, help="Crawl-delay for robots.txt (default none)"
    )
    parser.add_argument(
        "--warm",
        action="store_true",
        help="render every page into the cache before serving (for benchmarks)",
    )
    parser.add_argument(
        "--api-token",
        metavar="TOKEN",
        default=None,
        help="the API token the site accepts (Authorization: Bearer TOKEN lifts the limits)",
    )
    parser.add_argument(
        "--api-per-second",
        type=int,
        default=PER_SECOND,
        help="API requests per second without the token (default %(default)s)",
    )
    parser.add_argument(
        "--api-per-minute",
        type=int,
        default=PER_MINUTE,
        help="API requests per minute without the token (default %(default)s)",
    )
    parser.add_argument(
        "--cache-size",
        type=int,
        default=2048,
        help="rendered pages kept in memory (default %(default)s)",
    )


def _fault_arg(text: str) -> FaultSpec:
    try:
        return FaultSpec.parse(text)
    except FaultSpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser for `python -m citesite.server`."""
    parser = argparse.ArgumentParser(
        prog="citepipe site", description="Serve report pages from a data set, with faults."
    )
    add_arguments(parser)
    return parser


async def serve_forever(
    reports: Mapping[str, SiteReport] | Iterable[SiteReport] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    faults: FaultSpec | str | None = None,
    per_page: int = DEFAULT_PER_PAGE,
    crawl_delay: float | None = None,
    cache_size: int = 2048,
    public_url: str | None = None,
    on_start: Callable[[CitationSite], None] | None = None,
    stop: asyncio.Event | None = None,
    warm: bool = False,
    api_token: str | None = None,
    api_per_second: int = PER_SECOND,
    api_per_minute: int = PER_MINUTE,
) -> None:
    """Run the site until `stop` is set or the task is cancelled; print the base URL (or
    call `on_start`) once up."""
    async with CitationSite(
        reports,
        host=host,
        port=port,
        faults=faults,
        per_page=per_page,
        crawl_delay=crawl_delay,
        cache_size=cache_size,
        public_url=public_url,
        api_token=api_token,
        api_per_second=api_per_second,
        api_per_minute=api_per_minute,
    ) as site:
        if warm:
            site.warm()
        if on_start is not None:
            on_start(site)
        else:
            links = site.public_url or "the address each request names (its Host)"
            print(
                f"citation site at {site.base_url} serving {len(site.reports)} reports "
                f"(faults: {site.faults}; links name {links})",
                flush=True,
            )
        await (stop or asyncio.Event()).wait()


def _reports_from_args(args: argparse.Namespace) -> Mapping[str, SiteReport]:
    if args.generate is not None:
        return GeneratedReports(args.generate, args.seed)
    path = Path(args.data) if args.data else demo_dataset_path()
    return {r.doi: r for r in iter_dataset(path)}


def run(args: argparse.Namespace) -> int:
    """`citepipe site`: serve until interrupted; 0 on Ctrl-C, 2 on a bad data file."""
    try:
        reports = _reports_from_args(args)
    except (OSError, ValueError) as exc:
        print(f"citepipe site: cannot load data: {exc}", file=sys.stderr)
        return 2
    faults = args.faults if isinstance(args.faults, FaultSpec) else FaultSpec.coerce(args.faults)
    public_url = getattr(args, "public_url", None)
    if public_url:
        try:
            public_url = public_url_or_error(public_url)
        except ValueError as exc:
            print(f"citepipe site: --public-url: {exc}", file=sys.stderr)
            return 2

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await serve_forever(
            reports,
            host=args.host,
            port=args.port,
            faults=faults,
            per_page=args.per_page,
            crawl_delay=args.crawl_delay,
            cache_size=args.cache_size,
            public_url=public_url,
            warm=args.warm,
            stop=stop,
            api_token=getattr(args, "api_token", None),
            api_per_second=getattr(args, "api_per_second", PER_SECOND),
            api_per_minute=getattr(args, "api_per_minute", PER_MINUTE),
        )

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        print(f"citepipe site: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for `python -m citesite.server`."""
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
