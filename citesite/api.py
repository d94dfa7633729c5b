"""The local site's API: scite's JSON API over the same data set as the report pages.

What scite documents (its OpenAPI document and its own clients), served exactly so:

- `POST /tallies` with a JSON array of at most 500 DOIs -> `{"tallies": {doi: {...}}}`
  (`total`, `supporting`, `contradicting`, `mentioning`, `unclassified`,
  `citingPublications`); a DOI without data is absent.
- `POST /papers` -> `{"papers": {doi: {...}}}`: metadata, `retracted` and
  `editorialNotices` (`status`, `date`, `doi`, `urls`).
- `POST /tallies/cited-by-sections` -> `{"tallies": {doi: {"doi", "total",
  "introduction", "methods", "results", "discussion", "other"}}}`.
- `GET /tallies/{doi}`, `GET /papers/{doi}`: one object, or 404.
- Limits: `per_second` and `per_minute` requests (10 and 40 by default), counted together
  for every client without the token; over them a 429 with `Retry-After` (whole seconds
  until a request would be let in). `Authorization: Bearer <token>` (the site's
  `api_token`) lifts them; a wrong token is a 401. More than `max_batch` DOIs (500, or the
  fault spec's `api-max`) is a 422 `{"detail": [{"loc", "msg", "type"}]}`.

The data set holds no notices: they are drawn from each DOI's stable hash (about one paper
in eight has one), so that every run of the site, and every test, sees the same ones
(`notices_of`). Section counts come from the report's `section` facets. Pure builders
(`tally_object`, `paper_object`, `sections_object`) are the ground truth the tests compare
with. Imports nothing of the pipeline.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

from aiohttp import web

from citesite.dataset import SiteReport
from citesite.doi import site_doi
from citesite.epochs import SiteNotice as IssuedNotice
from citesite.faults import FaultSpec
from citesite.style import stable_hash

API_PATHS = ("/tallies", "/papers", "/tallies/cited-by-sections")
MAX_BATCH = 500
PER_SECOND = 10
PER_MINUTE = 40
JSON = "application/json"
NOTICE_STATUSES = (
    "Retracted",
    "Has expression of concern",
    "Withdrawn",
    "Has erratum",
    "Has correction",
)
SECTIONS = ("introduction", "methods", "results", "discussion", "other")


# --------------------------------------------------------------------------- ground truth


@dataclass(frozen=True, slots=True)
class SiteNotice:
    """An editorial notice of a paper, as the API lists it."""

    status: str
    date: str | None
    doi: str | None
    url: str


def notices_of(doi: str) -> tuple[SiteNotice, ...]:
    """The editorial notices of a paper: drawn from its DOI's stable hash (one paper in
    eight has one, one in 32 two), the same in every run."""
    h = stable_hash("notices", doi)
    if h % 8:
        return ()
    count = 2 if (h >> 8) % 4 == 0 else 1
    out = []
    for i in range(count):
        k = stable_hash("notice", doi, i)
        status = NOTICE_STATUSES[k % len(NOTICE_STATUSES)]
        year, month, day = 2015 + (k >> 8) % 10, 1 + (k >> 16) % 12, 1 + (k >> 24) % 28
        date = None if (k >> 32) % 6 == 0 else f"{year:04d}-{month:02d}-{day:02d}"
        notice_doi = None if (k >> 40) % 5 == 0 else f"{doi}.notice{i + 1}"
        url = f"https://example.org/notices/{k % 100_000}"
        out.append(SiteNotice(status, date, notice_doi, url))
    return tuple(out)


def tally_object(report: SiteReport) -> dict[str, Any]:
    """A report's tallies as `/tallies` answers them (`contradicting`, not contrasting)."""
    t = report.tallies
    total = t.citation_statements or 0
    supporting, contradicting, mentioning = (
        t.supporting or 0,
        t.contrasting or 0,
        t.mentioning or 0,
    )
    return {
        "doi": report.doi,
        "total": total,
        "supporting": supporting,
        "contradicting": contradicting,
        "mentioning": mentioning,
        "unclassified": max(0, total - supporting - contradicting - mentioning),
        "citingPublications": t.citing_publications or 0,
    }


def _author(name: str, position: int) -> dict[str, Any]:
    given, _, family = name.rpartition(" ")
    return {
        "family": family or name,
        "given": given or None,
        "orcid": None,
        "authorSequenceNumber": position,
    }


def issued(notices: Iterable[IssuedNotice], doi: str) -> tuple[SiteNotice, ...]:
    """The notices an epoch issued for a paper (`CitationSite.next_epoch`), as the API
    lists them (each at an address of its own)."""
    return tuple(
        SiteNotice(n.status, n.date, n.notice_doi, f"https://example.org/notices/{n.notice_doi}")
        for n in notices
        if n.doi == doi
    )


def paper_object(report: SiteReport, later: Sequence[SiteNotice] = ()) -> dict[str, Any]:
    """A report's paper as `/papers` answers it, with its notices (`later`: those issued
    by the site's epochs since, after the paper's own)."""
    notices = (*notices_of(report.doi), *later)
    h = stable_hash("paper", report.doi)
    return {
        "doi": report.doi,
        "slug": report.slug,
        "type": "journal-article",
        "title": report.title,
        "abstract": report.abstract,
        "authors": [_author(a, i) for i, a in enumerate(report.authors, start=1)],
        "year": report.year,
        "journal": report.journal,
        "shortJournal": report.journal,
        "publisher": None,
        "volume": str(1 + h % 60),
        "issue": str(1 + (h >> 8) % 12),
        "page": f"{1 + (h >> 16) % 900}",
        "issns": [],
        "retracted": any(n.status == "Retracted" for n in notices),
        "editorialNotices": [
            {"status": n.status, "date": n.date, "doi": n.doi, "urls": [n.url]} for n in notices
        ],
    }


def _section_of(label: str) -> str:
    low = label.lower()
    for name, word in (
        ("introduction", "intro"),
        ("methods", "method"),
        ("results", "result"),
        ("discussion", "discuss"),
    ):
        if word in low:
            return name
    return "other"


def sections_object(report: SiteReport) -> dict[str, Any]:
    """A report's `section` facets as `/tallies/cited-by-sections` answers them."""
    counts: Counter[str] = Counter()
    for f in report.facets:
        if f.facet == "section" and f.count:
            counts[_section_of(f.label)] += f.count
    return {"doi": report.doi, "total": sum(counts.values()), **{s: counts[s] for s in SECTIONS}}


BUILDERS: Mapping[str, tuple[str, Callable[[SiteReport], dict[str, Any]]]] = {
    "/tallies": ("tallies", tally_object),
    "/papers": ("papers", paper_object),
    "/tallies/cited-by-sections": ("tallies", sections_object),
}


def batch_key(path: str, dois: list[str]) -> str:
    """What faults are decided on for an API request: its path and its DOIs (a retry of
    the same batch is the next attempt at the same key)."""
    digest = hashlib.sha1("\n".join(dois).encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{path}#{len(dois)}:{digest}"


def validation_error(msg: str, kind: str) -> dict[str, Any]:
    """FastAPI's 422 body, as scite's API sends it."""
    return {"detail": [{"loc": ["body"], "msg": msg, "type": kind}]}


# --------------------------------------------------------------------------- serving

Record = Callable[..., None]  # the site's request log: (request, status, fault, attempt, ...)
Cut = Callable[[web.Request, int, bytes, Mapping[str, str], str], Awaitable[web.StreamResponse]]


class ApiService:
    """The API's handlers, its limits and its faults, over the site's reports."""

    def __init__(
        self,
        reports: Callable[[], Mapping[str, SiteReport]],
        faults: Callable[[], FaultSpec],
        record: Record,
        cut: Cut,
        *,
        token: str | None = None,
        notices: Callable[[], Iterable[IssuedNotice]] = tuple,
        per_second: int = PER_SECOND,
        per_minute: int = PER_MINUTE,
    ) -> None:
        self._reports = reports
        self._faults = faults
        self._record = record
        self._cut = cut
        self.token = token or None
        self._notices = notices  # the site's epochs' notices: `/papers` lists them too
        self.per_second = per_second
        self.per_minute = per_minute
        self._recent: deque[float] = deque()  # accepted unauthenticated requests, last 60 s
        self._attempts: Counter[str] = Counter()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/tallies/cited-by-sections", self._batch)
        app.router.add_post("/tallies", self._batch)
        app.router.add_post("/papers", self._batch)
        app.router.add_get("/tallies/{doi:.+}", self._single)
        app.router.add_get("/papers/{doi:.+}", self._single)

    def clear(self) -> None:
        self._recent.clear()
        self._attempts.clear()

    @property
    def max_batch(self) -> int:
        return min(MAX_BATCH, self._faults().api_max)

    # ------------------------------------------------------------------ limits

    def _authorised(self, request: web.Request) -> bool | None:
        """True: the right token; False: a wrong one; None: none sent."""
        header = request.headers.get("Authorization")
        if header is None:
            return None
        return self.token is not None and header == f"Bearer {self.token}"

    def _over_limit(self) -> float | None:
        """Seconds until a request without the token would be let in, or None (let in
        now, and counted)."""
        now = time.monotonic()
        while self._recent and now - self._recent[0] >= 60.0:
            self._recent.popleft()
        waits = []
        if len(self._recent) >= self.per_minute:
            waits.append(60.0 - (now - self._recent[-self.per_minute]))
        in_second = [t for t in self._recent if now - t < 1.0]
        if len(in_second) >= self.per_second:
            waits.append(1.0 - (now - in_second[-self.per_second]))
        if waits:
            return max(waits)
        self._recent.append(now)
        return None

    # ------------------------------------------------------------------ handlers

    def _json(
        self,
        request: web.Request,
        status: int,
        body: Any,
        *,
        fault: str | None = None,
        dois: int | None = None,
        attempt: int = 1,
        headers: Mapping[str, str] | None = None,
        retry_after_until: float | None = None,
    ) -> web.Response:
        self._record(
            request,
            status,
            fault=fault,
            attempt=attempt,
            dois=dois,
            retry_after_until=retry_after_until,
        )
        return web.Response(
            status=status,
            body=json.dumps(body).encode(),
            headers={"Content-Type": JSON, **(headers or {})},
        )

    def _gate(self, request: web.Request, dois: int | None) -> web.Response | None:
        """401 for a wrong token, 429 over the limits, else None."""
        auth = self._authorised(request)
        if auth is False:
            return self._json(request, 401, {"detail": "invalid token"}, dois=dois)
        if auth:
            return None
        wait = self._over_limit()
        if wait is None:
            return None
        seconds = max(1, math.ceil(wait))
        return self._json(
            request,
            429,
            {"detail": "rate limit exceeded"},
            fault="limit",
            dois=dois,
            headers={"Retry-After": str(seconds)},
            retry_after_until=time.time() + seconds,
        )

    async def _batch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            body = None
        if not isinstance(body, list) or not all(isinstance(d, str) for d in body):
            return self._json(
                request, 422, validation_error("value is not a valid list", "type_error.list")
            )
        gate = self._gate(request, len(body))
        if gate is not None:
            return gate
        key = batch_key(path, body)
        self._attempts[key] += 1
        attempt = self._attempts[key]
        faults = self._faults()
        fault = faults.transient_fault(key, attempt)
        if fault == "slow":
            await asyncio.sleep(faults.delay)
            fault_label: str | None = "slow"
        else:
            fault_label = fault
        if fault is not None and fault not in ("slow", "reset", "truncate"):
            return self._status_fault(request, fault, len(body), attempt)
        if len(body) > self.max_batch:
            return self._json(
                request,
                422,
                validation_error(
                    f"ensure this value has at most {self.max_batch} items",
                    "value_error.list.max_items",
                ),
                dois=len(body),
                attempt=attempt,
                fault="api-max" if self.max_batch < MAX_BATCH else None,
            )
        name = BUILDERS[path][0]
        reports = self._reports()
        out: dict[str, Any] = {}
        for raw in body:
            doi = site_doi(raw)
            report = reports.get(doi) if doi is not None else None
            if report is not None:
                out[report.doi] = self._build(path, report)
        payload = json.dumps({name: out}).encode()
        if fault in ("reset", "truncate"):
            self._record(request, 200, fault=fault, attempt=attempt, dois=len(body))
            return await self._cut(request, 200, payload, {"Content-Type": JSON}, fault)
        self._record(request, 200, fault=fault_label, attempt=attempt, dois=len(body))
        return web.Response(status=200, body=payload, headers={"Content-Type": JSON})

    def _status_fault(
        self, request: web.Request, fault: str, dois: int, attempt: int
    ) -> web.Response:
        status = int(fault.split("-", 1)[0])
        headers: dict[str, str] = {}
        until = None
        if fault in ("429", "503-date", "429-date"):
            wait = self._faults().retry_after
            until = time.time() + wait
            if fault.endswith("-date"):
                until = float(math.ceil(time.time()) + wait)
                headers["Retry-After"] = formatdate(until, usegmt=True)
            else:
                headers["Retry-After"] = str(wait)
        return self._json(
            request,
            status,
            {"detail": f"fault {fault}"},
            fault=fault,
            dois=dois,
            attempt=attempt,
            headers=headers,
            retry_after_until=until,
        )

    async def _single(self, request: web.Request) -> web.StreamResponse:
        gate = self._gate(request, 1)
        if gate is not None:
            return gate
        kind = "/papers" if request.path.startswith("/papers/") else "/tallies"
        doi = site_doi(request.match_info["doi"])
        report = self._reports().get(doi) if doi is not None else None
        if report is None:
            return self._json(request, 404, {"detail": "Not Found"}, dois=1)
        return self._json(request, 200, self._build(kind, report), dois=1)

    def _build(self, path: str, report: SiteReport) -> dict[str, Any]:
        if path == "/papers":
            return paper_object(report, issued(self._notices(), report.doi))
        return BUILDERS[path][1](report)
