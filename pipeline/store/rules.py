"""The store's rules as pure functions, shared by every driver.

A batch of completions becomes a `WritePlan`: for each named write (the queries of
`sql/<dialect>/queries.sql`), the rows it receives, in order. SQLite runs the plan with one
`executemany` per write; PostgreSQL runs the same plan with its own SQL. The rules (what is
written, adaptive refresh, tally history, the politeness booking) live here once, so the
drivers cannot drift apart. Times in the rows are aware `datetime`s: each driver converts
them to its column type (nothing here relies on how a database stores or orders them).
See docs/store.md for the contract.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pipeline.clock import utcnow as utcnow  # every store's default clock
from pipeline.config import DEFAULT_REFRESH_INTERVAL, DEFAULT_REFRESH_MAX, DEFAULT_REFRESH_MIN
from pipeline.errors import StoreError
from pipeline.models import (
    ApiResult,
    Chain,
    Completion,
    Job,
    KeptPage,
    NewJob,
    ParseResult,
    StoredPage,
    Tally,
)
from pipeline.normalise import snippet_hash
from pipeline.store.pages import page_params
from pipeline.store.tables import TALLY_FIELDS

Params = dict[str, Any]

# ---------------------------------------------------------------- time


def iso(dt: datetime) -> str:
    """One fixed shape (microseconds, `Z`): SQLite stores times so (text order is time
    order there), and every driver's `export` writes them so."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_iso(text: str) -> datetime:
    """Read back a stored or exported time (any ISO shape; naive means UTC)."""
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


# ---------------------------------------------------------------- refresh


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    """Adaptive refresh: halve the interval when tallies moved, double it when not."""

    interval: float = DEFAULT_REFRESH_INTERVAL
    minimum: float = DEFAULT_REFRESH_MIN
    maximum: float = DEFAULT_REFRESH_MAX

    def __post_init__(self) -> None:
        if min(self.interval, self.minimum, self.maximum) <= 0:
            raise StoreError("refresh intervals must be > 0")
        if self.minimum > self.maximum:
            raise StoreError("refresh_min must not exceed refresh_max")

    def next(self, current: float | None, changed: bool) -> float:
        """The interval after a crawl; `current` None means a first crawl."""
        if current is None:
            return min(self.maximum, max(self.minimum, self.interval))
        if changed:
            return max(self.minimum, current / 2)
        return min(self.maximum, current * 2)


# ---------------------------------------------------------------- queue rows


def enqueue_params(job: NewJob, now: datetime) -> Params:
    """Row for the `enqueue` write; `not_before` None means due now."""
    not_before = job.not_before if job.not_before is not None else now
    return {
        "doi": job.doi,
        "url": job.url,
        "page": job.page,
        "depth": job.depth,
        "round": job.round,
        "not_before": not_before,
        "now": now,
        "chain": chain_text(job.chain),
        "batch": batch_text(job.batch),
    }


def batch_text(batch: Sequence[str]) -> str | None:
    """A batch job's DOIs as the JSON text of `jobs.batch` (None for a page job)."""
    return json.dumps(list(batch), separators=(",", ":")) if batch else None


def batch_from_text(text: str | None) -> tuple[str, ...]:
    """`jobs.batch` read back; () for a page job (or text this version cannot read)."""
    if not text:
        return ()
    try:
        data = json.loads(text)
    except ValueError:
        return ()
    return tuple(str(d) for d in data) if isinstance(data, list) else ()


def chain_text(chain: Chain | None) -> str | None:
    """A job's chain as the JSON text of `jobs.chain` (None for page 1)."""
    if chain is None:
        return None
    return json.dumps(
        {
            "seen": list(chain.seen),
            "counted": chain.counted,
            "per_page": chain.per_page,
            "got": chain.got,
            "repeats": list(chain.repeats),
        },
        separators=(",", ":"),
    )


def chain_from_text(text: str | None) -> Chain | None:
    """`jobs.chain` read back; None for none (or for text this version cannot read)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        return Chain(
            seen=tuple(str(u) for u in data.get("seen", ())),
            counted=_int_or_none(data.get("counted")),
            per_page=_int_or_none(data.get("per_page")) or 0,
            got=_int_or_none(data.get("got")),
            repeats=tuple(str(d) for d in data.get("repeats", ())),
        )
    except (ValueError, TypeError, AttributeError):
        return None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class RowLike(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


def job_from_row(row: RowLike) -> Job:
    return Job(
        id=row["id"],
        doi=row["doi"],
        url=row["url"],
        page=row["page"],
        attempts=row["attempts"],
        depth=row["depth"],
        round=row["round"],
        etag=row["etag"],
        last_modified=row["last_modified"],
        content_hash=row["content_hash"],
        next_url=row["next_url"],
        chain=chain_from_text(row["chain"]),
        page_statements=row["page_statements"],
        page_counted=row["page_counted"],
        batch=batch_from_text(row["batch"]),
    )


# ---------------------------------------------------------------- completions


@dataclass(frozen=True, slots=True)
class ReportState:
    """What the store knows of a report before a batch: refresh interval, latest tallies."""

    refresh_interval: float | None
    tallies: tuple[int | None, ...] | None


@dataclass(slots=True)
class WritePlan:
    """Rows for each named write, executed in field order inside one transaction."""

    completeness_baseline: list[Params] = field(default_factory=list)
    upsert_paper: list[Params] = field(default_factory=list)
    upsert_partial_paper: list[Params] = field(default_factory=list)
    upsert_api_paper: list[Params] = field(default_factory=list)
    delete_authors: list[Params] = field(default_factory=list)
    insert_author: list[Params] = field(default_factory=list)
    insert_api_author: list[Params] = field(default_factory=list)
    insert_tally_history: list[Params] = field(default_factory=list)
    upsert_tallies: list[Params] = field(default_factory=list)
    upsert_api_tallies: list[Params] = field(default_factory=list)
    delete_facets: list[Params] = field(default_factory=list)
    delete_section_facets: list[Params] = field(default_factory=list)
    insert_facet: list[Params] = field(default_factory=list)
    upsert_statement: list[Params] = field(default_factory=list)
    provenance_reach: list[Params] = field(default_factory=list)
    upsert_notice: list[Params] = field(default_factory=list)
    record_visit: list[Params] = field(default_factory=list)
    mark_incomplete: list[Params] = field(default_factory=list)
    completeness_snapshot: list[Params] = field(default_factory=list)
    keep_page: list[Params] = field(default_factory=list)
    forget_broken_page: list[Params] = field(default_factory=list)
    api_not_found: list[Params] = field(default_factory=list)
    record_api_refresh: list[Params] = field(default_factory=list)
    mark_fewer_than_api: list[Params] = field(default_factory=list)
    follow_ups: list[NewJob] = field(default_factory=list)
    mark_done: list[Params] = field(default_factory=list)

    def steps(self) -> list[tuple[str, list[Params]]]:
        """The row writes in execution order (follow-ups excepted: they go via enqueue)."""
        names = (
            "completeness_baseline",
            "upsert_paper",
            "upsert_partial_paper",
            "upsert_api_paper",
            "delete_authors",
            "insert_author",
            "insert_api_author",
            "insert_tally_history",
            "upsert_tallies",
            "upsert_api_tallies",
            "delete_facets",
            "delete_section_facets",
            "insert_facet",
            "upsert_statement",
            "provenance_reach",
            "upsert_notice",
            "record_visit",
            "mark_incomplete",
            "completeness_snapshot",
            "keep_page",
            "forget_broken_page",
            "api_not_found",
            "record_api_refresh",
            "mark_fewer_than_api",
        )
        return [(name, getattr(self, name)) for name in names]


def page_one_dois(items: Iterable[Completion]) -> list[str]:
    """The reports whose page 1 is in the batch, and the papers an API answer brings
    tallies for: their state must be read first (tally history compares with it)."""
    dois: set[str] = set()
    for c in items:
        if c.api is not None:
            dois.update(c.api.tallies)
        elif not c.job.batch and c.job.page == 1:
            dois.add(c.job.doi)
    return sorted(dois)


def tally_tuple(t: Tally) -> tuple[int | None, ...]:
    return tuple(getattr(t, name) for name in TALLY_FIELDS)


def plan_completions(
    items: Sequence[Completion],
    states: dict[str, ReportState],
    now: datetime,
    policy: RefreshPolicy,
) -> WritePlan:
    """Turn a batch of completions into the rows to write. `states` is updated in place
    as the batch goes, so two completions of one report in a batch compose correctly."""
    plan = WritePlan()
    check: dict[str, int] = {}  # papers to compare with the API's count, after the writes
    authors: dict[str, list[Params]] = {}
    facets: dict[str, list[Params]] = {}
    ended: dict[str, datetime] = {}  # reports whose crawl ends in this batch
    for c in items:
        seen = c.fetched_at or now
        if c.api is not None:
            _plan_api(plan, states, c.api, seen, policy)
        if c.result is not None:
            _plan_rows(plan, authors, facets, c, c.result, seen)
        if c.job.page == 1 and not c.job.batch:
            _plan_visit(plan, states, c, seen, policy)
        if c.incomplete is not None:
            plan.mark_incomplete.append({"doi": c.job.doi, "reason": c.incomplete})
        if c.kept is not None:
            plan.keep_page.append(page_params(c.kept))
        else:  # it parsed (or did not change): a broken page kept for it is stale now
            plan.forget_broken_page.append({"doi": c.job.doi, "page": c.job.page})
        plan.follow_ups.extend(c.follow_ups)
        plan.mark_done.append(_done_params(c, now))
        check.update((doi, c.job.id if not c.job.batch else 0) for doi in _fewer_than_api(c))
        if crawl_ends(c):
            ended[c.job.doi] = seen
    plan.completeness_baseline = [{"doi": doi} for doi in sorted(ended)]
    plan.completeness_snapshot = [{"doi": doi, "now": ended[doi]} for doi in sorted(ended)]
    plan.delete_authors = [{"doi": doi} for doi in authors]
    plan.insert_author = [row for rows in authors.values() for row in rows]
    plan.delete_facets = [{"doi": doi} for doi in facets]
    plan.insert_facet.extend(row for rows in facets.values() for row in rows)
    plan.mark_fewer_than_api = [{"doi": doi, "job": job} for doi, job in sorted(check.items())]
    return plan


def ends_report(c: Completion) -> bool:
    """A page job with no next page of its own report: the report's crawl ends here."""
    return not c.job.batch and not any(
        f.doi == c.job.doi and f.page > c.job.page for f in c.follow_ups
    )


def _fewer_than_api(c: Completion) -> Iterable[str]:
    """The papers whose statements are compared with the API's `total` after this
    completion (`mark_fewer_than_api`): those the API's tallies answer brings, and a
    report whose crawl ends here without a reason of its own (its own reason wins)."""
    if c.api is not None:
        return c.api.tallies.keys()
    if ends_report(c) and c.incomplete is None:
        return (c.job.doi,)
    return ()


def crawl_ends(c: Completion) -> bool:
    """Whether this page ends its report's crawl (it is cut, or it asks for no next page of
    the report): only then is the report's completeness news for `completeness_history`,
    not while page 1 has reset it and later pages are still to come."""
    if c.job.batch:
        return False
    return c.incomplete is not None or not any(
        j.doi == c.job.doi and not j.batch for j in c.follow_ups
    )


def seed_rows(jobs: Iterable[NewJob]) -> list[Params]:
    """Rows for `provenance_seed`: each input DOI among the jobs, once, in DOI order."""
    return [{"doi": doi} for doi in sorted({j.doi for j in jobs if j.seed})]


def _plan_rows(
    plan: WritePlan,
    authors: dict[str, list[Params]],
    facets: dict[str, list[Params]],
    c: Completion,
    result: ParseResult,
    seen: datetime,
) -> None:
    """Paper, authors and facets from page 1 (every page repeats them); statements always."""
    doi = c.job.doi
    paper = result.paper
    if c.job.page == 1:
        plan.upsert_paper.append(
            {
                "doi": doi,
                "title": paper.title,
                "year": paper.year,
                "publication_date": paper.publication_date,
                "journal": paper.journal,
                "abstract": paper.abstract,
                "abstract_truncated": None
                if paper.abstract_truncated is None
                else int(paper.abstract_truncated),
                "report_url": paper.report_url or c.job.url,
                "now": seen,
            }
        )
        if paper.authors:
            authors[doi] = [
                {"doi": doi, "position": i, "name": name}
                for i, name in enumerate(paper.authors, start=1)
            ]
        if result.facets:
            facets[doi] = [
                {"doi": doi, "facet": f.facet, "label": f.label, "count": f.count}
                for f in result.facets
            ]
    else:
        plan.upsert_partial_paper.append(
            _partial(doi, paper.title, paper.year, paper.journal, seen)
        )
    citers: set[str] = set()  # each citer once, first mention wins (`citing_papers`)
    for s in result.statements:
        if s.citing_doi not in citers:
            citers.add(s.citing_doi)
            plan.upsert_partial_paper.append(
                _partial(s.citing_doi, s.citing_title, s.citing_year, s.citing_journal, seen)
            )
            if s.citing_doi != doi:  # its seeds reach the citer one step further
                plan.provenance_reach.append({"doi": s.citing_doi, "via": doi})
    plan.upsert_statement.extend(
        {
            "cited_doi": doi,
            "citing_doi": s.citing_doi,
            "snippet": s.snippet,
            "snippet_hash": snippet_hash(s.snippet),
            "section": s.section,
            "type": s.type,
            "confidence": s.confidence,
            "now": seen,
        }
        for s in result.statements
    )


def _partial(
    doi: str, title: str | None, year: int | None, journal: str | None, seen: datetime
) -> Params:
    return {"doi": doi, "title": title, "year": year, "journal": journal, "now": seen}


def _plan_visit(
    plan: WritePlan,
    states: dict[str, ReportState],
    c: Completion,
    seen: datetime,
    policy: RefreshPolicy,
) -> None:
    """Page 1: crawl time, adaptive refresh, and a tally history row if tallies moved."""
    doi = c.job.doi
    before = states.get(doi, ReportState(None, None))
    tallies = before.tallies
    changed = False
    if c.result is not None:
        tallies = tally_tuple(c.result.tallies)
        changed = tallies != before.tallies
        row: Params = {
            "doi": doi,
            **dict(zip(TALLY_FIELDS, tallies, strict=True)),
            "observed_at": seen,
        }
        plan.upsert_tallies.append(row)
        if changed:
            plan.insert_tally_history.append(row)
    elif doi not in states:
        return  # a visit to a report never stored: nothing to record on a paper
    interval = policy.next(before.refresh_interval, changed)
    states[doi] = ReportState(interval, tallies)
    plan.record_visit.append(
        {
            "doi": doi,
            "crawled_at": seen,
            "refresh_interval": interval,
            "next_refresh_at": seen + timedelta(seconds=interval),
        }
    )


def _plan_api(
    plan: WritePlan,
    states: dict[str, ReportState],
    api: ApiResult,
    seen: datetime,
    policy: RefreshPolicy,
) -> None:
    """An API answer's rows: papers (filling what the store lacks; `retracted`, volume,
    issue and pages the API's latest), authors
    where there are none, notices, tallies (with a history row when they moved), section
    facets; with `record_missing`, a not-found job for each DOI it lacked; with
    `schedule`, each tallied paper's next refresh, adaptive as a report's visit (halved
    when its tallies moved, doubled when not), without touching `last_crawled_at`."""
    for doi, p in sorted(api.papers.items()):
        plan.upsert_api_paper.append(
            {
                "doi": doi,
                "title": p.title,
                "year": p.year,
                "journal": p.journal,
                "abstract": p.abstract,
                "retracted": p.retracted,
                "volume": p.volume,
                "issue": p.issue,
                "pages": p.pages,
                "now": seen,
            }
        )
        plan.insert_api_author.extend(
            {"doi": doi, "position": i, "name": name} for i, name in enumerate(p.authors, start=1)
        )
        plan.upsert_notice.extend(
            {
                "doi": doi,
                "status": n.status,
                "date": n.date,
                "notice_doi": n.notice_doi,
                "url": n.url,
                "now": seen,
            }
            for n in p.notices
        )
    for doi, t in sorted(api.tallies.items()):
        plan.upsert_partial_paper.append(_partial(doi, None, None, None, seen))
        before = states.get(doi, ReportState(None, None))
        kept_refs = before.tallies[-1] if before.tallies is not None else None
        tallies = (*tally_tuple(t)[:-1], kept_refs)  # references_count: the report's
        row: Params = {
            "doi": doi,
            **dict(zip(TALLY_FIELDS, tallies, strict=True)),
            "observed_at": seen,
        }
        plan.upsert_api_tallies.append(row)
        changed = tallies != before.tallies
        if changed:
            plan.insert_tally_history.append(row)
        interval = before.refresh_interval
        if api.schedule:
            interval = policy.next(before.refresh_interval, changed)
            plan.record_api_refresh.append(
                {
                    "doi": doi,
                    "refresh_interval": interval,
                    "next_refresh_at": seen + timedelta(seconds=interval),
                }
            )
        states[doi] = ReportState(interval, tallies)
    for doi, rows in sorted(api.sections.items()):
        plan.upsert_partial_paper.append(_partial(doi, None, None, None, seen))
        plan.delete_section_facets.append({"doi": doi})
        plan.insert_facet.extend(
            {"doi": doi, "facet": f.facet, "label": f.label, "count": f.count} for f in rows
        )
    if api.record_missing:
        plan.api_not_found.extend(
            {"doi": doi, "url": api.missing_url + doi, "now": seen} for doi in api.missing
        )


def _done_params(c: Completion, now: datetime) -> Params:
    return {
        "id": c.job.id,
        "round": c.job.round,
        "etag": c.etag,
        "last_modified": c.last_modified,
        "content_hash": c.content_hash,
        "has_result": c.result is not None,
        "final_url": c.final_url,
        "next_url": c.result.next_page_url if c.result is not None else None,
        "page_statements": c.page_statements,
        "page_counted": c.page_counted,
        "now": now,
    }


def dead_page_reason(job: Job, error: str) -> str | None:
    """The reason a dead job gives its paper: a page after the first one died, so the
    report is stored in part. A dead page 1 leaves the paper as it is: its report could
    not be read at all (not found, blocked, broken...), which the dead job itself says."""
    return f"dead page: page {job.page}: {error}" if job.page > 1 else None


# ---------------------------------------------------------------- kept pages


def stored_page_from_row(row: RowLike, fetched_at: datetime) -> StoredPage:
    """A `kept_pages` row (page columns, then the job's) back into values; the driver
    converts the time. A body that does not decompress is a StoreError."""
    try:
        body = zlib.decompress(row["body"])
    except zlib.error as exc:
        raise StoreError(f"kept page {row['doi']} p{row['page']} is damaged: {exc}") from None
    kept = KeptPage(
        doi=row["doi"],
        page=row["page"],
        url=row["page_url"],
        fetched_at=fetched_at,
        body=body,
        broken=bool(row["broken"]),
        error=row["error"],
        media_type=row["media_type"],
        charset=row["charset"],
    )
    return StoredPage(kept=kept, job=job_from_row(row), state=row["state"])


# ---------------------------------------------------------------- politeness


def book_request(
    next_at: datetime, paused_until: datetime, now: datetime, delay: float
) -> tuple[datetime, datetime]:
    """One request's booking on a host: `(start, new next_at)`.

    The request may start once the host's previous booking and any pause are over, and
    not before now; the next one may start `delay` seconds after it. A driver applies this
    atomically (one statement, or one transaction under the write lock) so that every
    process on the store takes its turn from the same row.
    """
    start = max(next_at, paused_until, now)
    return start, start + timedelta(seconds=max(0.0, delay))
