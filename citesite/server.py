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
the command line (`citesite.cli`: `add_arguments` + `run`). How an address is answered
(what it names in each fault mode, the page bytes, ETag and 304) is `citesite.answers`
(`ReportAnswers`, which `CitationSite` extends); the data as served, with live changes,
is `citesite.live`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aiohttp import web

from citesite.answers import (
    DECLARE,
    REPORTS,
    Answer,
    ReportAnswers,
    epoch_seconds,
    normalise_dots,
    public_url_or_error,
)
from citesite.api import PER_MINUTE, PER_SECOND, ApiService
from citesite.dataset import (
    DEFAULT_PER_PAGE,
    ExpectedPage,
    SiteReport,
    expected_page,
    page_count,
    report_to_dict,
)
from citesite.doi import report_url, site_doi
from citesite.epochs import Epoch, SiteNotice, next_epoch
from citesite.faults import FaultSpec
from citesite.live import LiveReports, as_mapping
from citesite.render import CONTENT_TYPE
from citesite.static import PRIVATE_PAGE

OFFSITE_URL = "http://127.0.0.2:9/elsewhere"
_BODY_FAULTS = frozenset({"slow", "reset", "truncate"})


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


class CitationSite(ReportAnswers):
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
        self._reports = LiveReports(as_mapping(reports))
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
            notices=lambda: self.notices,
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
            and epoch_seconds(report.updated_at) <= epoch_seconds(old.updated_at)
        ):
            bumped = max(int(time.time()), epoch_seconds(old.updated_at) + 1)
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
            if not normalised.startswith(REPORTS):
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

    def _record(self, request: web.Request, answer: Answer, attempt: int) -> None:
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
        return await self._cut(request, Answer(status, body, headers, fault), fault)

    async def _robots(self, request: web.Request) -> web.StreamResponse:
        self._attempts[request.raw_path] += 1
        attempt = self._attempts[request.raw_path]
        if self.robots_status is None:  # unreachable: the connection closes, no answer
            self._record(request, Answer(0, b"", {}, "robots-drop"), attempt)
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)  # never sent: the transport is closed
        if self.robots_status != 200:
            answer = Answer(self.robots_status, b"", {"Content-Type": "text/plain"})
            self._record(request, answer, attempt)
            return web.Response(status=answer.status, headers=answer.headers)
        lines = ["User-agent: *", "Disallow: /login", "Disallow: /search", "Disallow: /__site/"]
        if self.crawl_delay is not None:
            lines.append(f"Crawl-delay: {self.crawl_delay:g}")
        lines += ["", "User-agent: BadBot", "Disallow: /", ""]
        answer = Answer(200, "\n".join(lines).encode(), {"Content-Type": "text/plain"})
        self._record(request, answer, attempt)
        return web.Response(body=answer.body, headers=answer.headers)

    def _escaped(self, request: web.Request, attempt: int) -> web.Response:
        """The `dots` mode's answer to a path that normalised out of `/reports/`: a page
        a crawler should never have reached, logged with the fault `escaped`."""
        answer = Answer(200, PRIVATE_PAGE, {"Content-Type": CONTENT_TYPE}, "escaped")
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
                f"citation site at {site.base_url} serving {len(site.reports)} "
                f"report{'' if len(site.reports) == 1 else 's'} "
                f"(faults: {site.faults}; links name {links})",
                flush=True,
            )
        await (stop or asyncio.Event()).wait()


if __name__ == "__main__":  # `python -m citesite.server`, as before the command line moved
    from citesite.cli import main

    raise SystemExit(main())
