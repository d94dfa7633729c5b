"""Values that flow through the pipeline: frozen dataclasses, no behaviour beyond derivation.

A `Job` is one page of one report to fetch; a `Page` is what the fetcher brought back; a
`ParseResult` is what a site profile read from it; a `Completion` is what the store commits
for a finished job, in one transaction.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

StatementType = Literal["supporting", "mentioning", "contrasting"]
JobState = Literal["queued", "leased", "done", "failed", "dead"]
JOB_STATES: tuple[JobState, ...] = ("queued", "leased", "done", "failed", "dead")


@dataclass(frozen=True, slots=True)
class Chain:
    """What the earlier pages of a report's crawl in this round tell its next page.

    `seen` holds the canonical addresses already fetched (requested and redirected to),
    so a cycle of any length is caught; `counted` is the report's own count of citation
    statements (page 1's tallies), `per_page` the most statements a page held, `got` the
    statements read so far (None when unknown), `repeats` a digest of each page's
    statements (a page that repeats an earlier one's is a cycle under a new address). See
    `pipeline.crawl.pagination`.
    """

    seen: tuple[str, ...] = ()
    counted: int | None = None
    per_page: int = 0
    got: int | None = 0
    repeats: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NewJob:
    """A page to enqueue. `(doi, page)` is the job's identity in the queue.

    `round` forces a refresh: a finished job with a lower round is queued again (the cron
    crawl bumps it); with the same or a higher round, enqueueing does nothing. A next
    page carries its report's `chain` (None for page 1). `seed`: an input DOI, recorded
    as its own provenance (its citers' provenance follows from it).

    A *batch job* (an API request) has `batch`, the DOIs it asks for, and a `doi` key of
    its own (`api:<endpoint>:<digest>`, `BATCH_PREFIX`), which no real DOI starts with.
    """

    doi: str
    url: str
    page: int = 1
    depth: int = 0
    round: int = 0
    not_before: datetime | None = None
    chain: Chain | None = None
    seed: bool = False
    batch: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Job:
    """A claimed job. `attempts` counts this attempt too (it is bumped at claim)."""

    id: int
    doi: str
    url: str
    page: int
    attempts: int
    depth: int
    round: int = 0
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    next_url: str | None = None
    chain: Chain | None = None
    # what the page held when last read (a 304 or an unchanged body is not read again)
    page_statements: int | None = None
    page_counted: int | None = None
    batch: tuple[str, ...] = ()  # a batch job's DOIs (see NewJob)

    @property
    def endpoint(self) -> str | None:
        """A batch job's API endpoint (`tallies`, `papers`, `sections`), else None."""
        return batch_endpoint(self.doi)


BATCH_PREFIX = "api:"


def batch_endpoint(key: str) -> str | None:
    """The endpoint named by a batch job's key (`api:<endpoint>:<digest>`), else None."""
    if not key.startswith(BATCH_PREFIX):
        return None
    return key[len(BATCH_PREFIX) :].partition(":")[0] or None


@dataclass(frozen=True, slots=True)
class Validators:
    """HTTP cache validators for a conditional request."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """A fetched page. `status` 304 means not modified: `body` is then empty.

    `media_type` and `charset` are what the `Content-Type` header said (`text/html`,
    `iso-8859-1`; None when it said nothing): the body is decoded with them as a browser
    would (`pipeline.sources.charset`).
    """

    url: str
    final_url: str
    status: int
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    media_type: str | None = None
    charset: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True, slots=True)
class Paper:
    """A paper's metadata. Citers are partial papers: only doi/title/year/journal."""

    doi: str
    title: str | None
    year: int | None = None
    publication_date: str | None = None
    journal: str | None = None
    abstract: str | None = None
    abstract_truncated: bool | None = None
    report_url: str | None = None
    authors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Tally:
    """A report's counts. None means the page did not say (unknown), never zero."""

    supporting: int | None = None
    mentioning: int | None = None
    contrasting: int | None = None
    citing_publications: int | None = None
    citation_statements: int | None = None
    references_count: int | None = None


@dataclass(frozen=True, slots=True)
class Facet:
    facet: str
    label: str
    count: int | None


@dataclass(frozen=True, slots=True)
class Statement:
    """A citation statement on a report; identity is (cited doi, citing_doi, snippet)."""

    citing_doi: str
    snippet: str
    citing_title: str | None = None
    citing_year: int | None = None
    citing_journal: str | None = None
    section: str | None = None
    type: StatementType | None = None
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class ParseResult:
    """Everything one report page says."""

    paper: Paper
    tallies: Tally
    facets: tuple[Facet, ...] = ()
    statements: tuple[Statement, ...] = ()
    next_page_url: str | None = None

    @property
    def citing_papers(self) -> tuple[Paper, ...]:
        """Partial papers for each distinct citer, first mention wins."""
        seen: dict[str, Paper] = {}
        for s in self.statements:
            if s.citing_doi not in seen:
                seen[s.citing_doi] = Paper(
                    doi=s.citing_doi,
                    title=s.citing_title,
                    year=s.citing_year,
                    journal=s.citing_journal,
                )
        return tuple(seen.values())


RETRACTED = "Retracted"  # the notice status (as scite writes it) that means retracted


@dataclass(frozen=True, slots=True)
class Notice:
    """An editorial notice of a paper (scite's API): `status` as scite writes it
    (`Retracted`, `Has expression of concern`, ...); `date` ISO or '' when unknown;
    `notice_doi` the notice's own DOI or ''."""

    status: str
    date: str = ""
    notice_doi: str = ""
    url: str | None = None


@dataclass(frozen=True, slots=True)
class ApiPaper:
    """A paper's metadata as the API gives it."""

    doi: str
    title: str | None = None
    year: int | None = None
    journal: str | None = None
    abstract: str | None = None
    authors: tuple[str, ...] = ()
    retracted: bool | None = None
    notices: tuple[Notice, ...] = ()
    volume: str | None = None  # as scite writes them: text ("12", "Suppl 2", "e1234")
    issue: str | None = None
    pages: str | None = None  # the API's `page`: "5-9", "e1234" or one page


@dataclass(frozen=True, slots=True)
class ApiResult:
    """What one batch request answered: per DOI tallies (`Tally`, `contradicting` read
    as contrasting), papers, or section counts; and the DOIs it had no data for."""

    endpoint: str
    tallies: Mapping[str, Tally] = field(default_factory=dict)
    papers: Mapping[str, ApiPaper] = field(default_factory=dict)
    sections: Mapping[str, tuple[Facet, ...]] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    record_missing: bool = False  # write a not-found job for each missing DOI (source api)
    missing_url: str = ""  # `{api_url}/papers/` : the not-found jobs' address prefix
    # the API is the papers' only reader (source api): its tallies set their next refresh
    schedule: bool = False


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished job for the store to commit in one transaction.

    `result` is None when the page was not modified (a 304, or a body whose
    `content_hash` equals the stored one): the visit is recorded and nothing else written.
    """

    job: Job
    result: ParseResult | None
    follow_ups: tuple[NewJob, ...] = ()
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    fetched_at: datetime | None = None
    final_url: str | None = None  # where a redirect led (on the site): fetch it there next time
    kept: KeptPage | None = None  # keep_pages = "all": the page, kept with its rows
    # the report's crawl ends here short of whole: the reason kept on the paper
    incomplete: str | None = None
    page_statements: int | None = None  # statements the page held (None: not read)
    page_counted: int | None = None  # citation statements its tallies counted
    api: ApiResult | None = None  # a batch job's answer (then `result` is None)


@dataclass(frozen=True, slots=True)
class DeadJob:
    """A dead job as `retry` sees it: which page of which report, at which address."""

    doi: str
    page: int
    url: str
    reason: str


@dataclass(frozen=True, slots=True)
class Requeued:
    """What `retry` did: dead jobs queued again (of how many reports), and dead jobs that
    matched but were kept dead because no address on the current site could be made."""

    jobs: int = 0
    reports: int = 0
    kept: int = 0


@dataclass(frozen=True, slots=True)
class DeadReason:
    reason: str
    count: int


@dataclass(frozen=True, slots=True)
class ApiCounts:
    """Completeness against the API: of the papers whose report was read and whose API
    `total` is known (`tallies.api_statements`), the statements the API counts and the
    statements collected ("47 of 49 statements")."""

    papers: int
    counted: int
    collected: int


@dataclass(frozen=True, slots=True)
class Stats:
    """What `citepipe status` shows. `incomplete_reports` counts papers marked incomplete
    (a dead page after page 1, a cut pagination, fewer statements than counted); reports
    that could not be read at all are dead jobs (`not_found` of them 404/410)."""

    jobs_by_state: dict[str, int]
    dead_by_reason: tuple[DeadReason, ...]
    incomplete_reports: int
    rows_by_table: dict[str, int]
    pages_last_minute: int = 0
    pages_last_hour: int = 0
    active_runs: tuple[RunInfo, ...] = field(default=())
    # papers stored in part, by the kind of reason (the text before its first `:`)
    incomplete_by_reason: tuple[DeadReason, ...] = ()
    not_found: int = 0  # reports the site does not have (page 1 answered 404/410)
    api_counts: ApiCounts | None = None  # statements collected against the API's `total`


RUN_HEARTBEAT = 10.0  # seconds between a running process's heartbeats
RUN_STALE_AFTER = 3 * RUN_HEARTBEAT  # no heartbeat for this long: the run is gone


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A citepipe process registered in the store (for overlap detection and status)."""

    id: int
    kind: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime


@dataclass(frozen=True, slots=True)
class RobotsRecord:
    """A host's last robots.txt fetch, kept in the store so every process obeys one verdict.

    `status` is the HTTP status, or None when robots.txt was unreachable (connection error,
    timeout). What it means (RFC 9309) is `pipeline.crawl.politeness.robots_verdict`: 2xx = the
    rules in `text`; other 4xx but 429 = allow all; 429, 5xx or unreachable = disallow all.
    `expires_at` is when any process should fetch it again; `failures` counts consecutive
    disallowing fetches, for the backoff.
    """

    status: int | None
    text: str | None
    fetched_at: datetime
    expires_at: datetime
    failures: int = 0


KEEP_PAGES = ("broken", "all")  # the `keep_pages` setting: which fetched pages are kept


@dataclass(frozen=True, slots=True)
class KeptPage:
    """A fetched page kept in the store (uncompressed here; the store compresses it), so
    that `citepipe reparse` can read it again with the current selectors, no request.

    `broken` pages failed to parse (`error` says why); with `keep_pages = "all"` every
    fetched page is kept. One per job: `(doi, page)`. `url` is where the body came from
    (after redirects): its relative links are read against it. `packed` is the body
    already compressed (`store.pages.pack_page`), when the caller did it: the worker does, on
    its own thread, so that the store's writer thread does not hand Python's GIL back and
    forth once a page. `media_type` and `charset` are the `Content-Type` header's, kept so
    that `reparse` decodes the body exactly as the crawl did.
    """

    doi: str
    page: int
    url: str
    fetched_at: datetime
    body: bytes
    broken: bool = False
    error: str | None = None
    packed: bytes | None = field(default=None, compare=False, repr=False)  # body, zlib'd
    media_type: str | None = None
    charset: str | None = None


@dataclass(frozen=True, slots=True)
class StoredPage:
    """A kept page as the store gives it back, with its job and the job's state."""

    kept: KeptPage
    job: Job
    state: JobState


@dataclass(frozen=True, slots=True)
class PaperView:
    """One paper at a glance (`citepipe show`): rows as the export gives them (times as
    ISO 8601 UTC text), so every driver shows the same thing."""

    paper: dict[str, Any]
    authors: tuple[str, ...]
    tallies: dict[str, Any] | None
    history: tuple[dict[str, Any], ...]
    facets: tuple[dict[str, Any], ...]
    statements: tuple[dict[str, Any], ...]
    citing_statements: int  # statements in which this paper cites others (their reports)
    collected_statements: int = 0  # statements stored for its report (the "47" of 49)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A statement matching a full-text query: `highlighted` is the whole snippet with the
    matches marked [like so], `excerpt` the part around them (about 32 words)."""

    id: int
    cited_doi: str
    citing_doi: str
    type: str | None
    section: str | None
    snippet: str
    highlighted: str
    excerpt: str
    rank: float


# ------------------------------------------------------------ what changed (`changes`)

DIGEST_STATES = ("sending", "sent", "empty", "failed")
Counts = tuple[int | None, int | None, int | None]  # supporting, mentioning, contrasting


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A run as the store recorded it: its window, and the pages it fetched (from its
    summary; 0 when it has none yet). `finished_at` is None while it runs."""

    id: int
    kind: str
    started_at: datetime
    finished_at: datetime | None
    pages: int


@dataclass(frozen=True, slots=True)
class NewStatement:
    """A statement first seen in a window, with its citer's title where known."""

    cited_doi: str
    citing_doi: str
    citing_title: str | None
    type: StatementType | None
    section: str | None
    confidence: float | None
    snippet: str


@dataclass(frozen=True, slots=True)
class TallyChange:
    """A paper's tallies before a window (None: no row before it, a paper new to the
    store) and at its end, as (supporting, mentioning, contrasting)."""

    doi: str
    before: Counts | None
    after: Counts


@dataclass(frozen=True, slots=True)
class NewNotice:
    """An editorial notice first seen in a window. `date` is None when unknown."""

    doi: str
    status: str
    date: str | None
    notice_doi: str | None
    url: str | None


@dataclass(frozen=True, slots=True)
class Completeness:
    """A report's completeness: whole, or stored in part with the reason (as
    `papers.incomplete_reason` says it; None when none was recorded)."""

    incomplete: bool
    reason: str | None = None

    @property
    def kind(self) -> str | None:
        """The reason's kind (its text before the first `:`), None when complete."""
        if not self.incomplete:
            return None
        return (self.reason or "").split(":", 1)[0].strip()

    def differs(self, other: Completeness) -> bool:
        """A change worth telling: whole to cut, cut to whole, or cut for another kind
        of reason (not the same cut with new figures, `3 of 6` to `4 of 7`)."""
        return self.incomplete != other.incomplete or self.kind != other.kind

    def __str__(self) -> str:
        """`complete`, `incomplete: <reason>` (the JSON document's form)."""
        if not self.incomplete:
            return "complete"
        return f"incomplete: {self.reason}" if self.reason else "incomplete"


@dataclass(frozen=True, slots=True)
class CompletenessChange:
    """A report whose completeness the history saw change in a window: its state before
    the window (complete when it had no row before) and at the window's end."""

    doi: str
    before: Completeness
    after: Completeness


@dataclass(frozen=True, slots=True)
class WindowChanges:
    """Everything the store says changed in a window (`ChangeLog.changes_in`)."""

    statements: tuple[NewStatement, ...]
    tallies: tuple[TallyChange, ...]
    notices: tuple[NewNotice, ...]
    titles: dict[str, str | None]  # the title of every paper named above, where known
    completeness: tuple[CompletenessChange, ...] = ()  # only those that differ (`differs`)


@dataclass(frozen=True, slots=True)
class DigestRecord:
    """How a run's digest was sent (`digests` table, migration 10)."""

    run_id: int
    state: str
    attempts: int
    last_error: str | None
    sent_at: datetime | None


def result_to_dict(result: ParseResult) -> dict[str, Any]:
    """A JSON-ready view of a parse, with the store contract's names (`citepipe parse`)."""
    p = result.paper
    return {
        "report_url": p.report_url,
        "doi": p.doi,
        "title": p.title,
        "authors": list(p.authors),
        "journal": p.journal,
        "publication_date": p.publication_date,
        "year": p.year,
        "abstract": p.abstract,
        "abstract_truncated": p.abstract_truncated,
        "tallies": asdict(result.tallies),
        "facets": [[f.facet, f.label, f.count] for f in result.facets],
        "statements": [asdict(s) for s in result.statements],
        "next_page_url": result.next_page_url,
    }


@dataclass
class RunCounters:
    """What this process did: for the summary, the progress bar and the exit code."""

    started: float = field(default_factory=time.monotonic)
    pages_done: int = 0
    reports_done: int = 0  # reports whose last page this process completed (whole or not)
    pages_unchanged: int = 0
    statements: int = 0
    retries: int = 0
    dead: Counter[str] = field(default_factory=Counter)
    incomplete: Counter[str] = field(default_factory=Counter)  # of reports_done, by reason kind
    api_requests: int = 0  # batch requests answered (200)
    api_found: int = 0  # DOIs those answers held
    api_not_found: int = 0  # DOIs they did not (source api: stored as not found)
    api_splits: int = 0  # batches the API refused as too large (422), split in two
    # hosts found unreachable (`host: cause`), with the jobs that met it (given back)
    unreachable: Counter[str] = field(default_factory=Counter)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def pages_per_second(self) -> float:
        return self.pages_done / self.elapsed if self.elapsed > 0 else 0.0
