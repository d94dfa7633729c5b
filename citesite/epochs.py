"""The next epoch of the local site's data: what changes between two crawls.

    epoch = next_epoch(site.reports)          # or site.next_epoch(): applied at once
    for doi, report in epoch.reports.items(): ...

`next_epoch(reports, number)` picks, deterministically, some reports that state all three
tallies (every `every`-th in DOI order, at most `most`) and gives each new citation
statements from new citing papers (the first report one contrasting, one supporting and
one mentioning; the others one to three, types in turn), with its tallies moved to match
(`citation_statements` and `citing_publications` too); one more report gets a tally move
alone (two more mentioning, no new statement listed, as a report whose counts grow before
its list does); and the first picked report gets an editorial notice (`Retracted`). What
a crawl of the new epoch must find is all in the `Epoch`: the ground truth a test compares
a digest with. Nothing else changes: the other reports are served byte for byte as before.

Notices are not on report pages (scite serves them from its API): the epoch lists them
for the site (`CitationSite.notices`, `/__site/notices`) and for tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from citesite.dataset import TEST_PREFIX, SiteReport, SiteStatement, SiteTally, SiteType

_TYPES: tuple[SiteType, ...] = ("contrasting", "supporting", "mentioning")
_SECTIONS = ("Discussion", "Results", "Introduction")
_FIRST_NOTICE_DATE = "2026-11-30"


@dataclass(frozen=True, slots=True)
class SiteNotice:
    """An editorial notice of a report, as scite's API states one."""

    doi: str
    status: str
    date: str
    notice_doi: str


@dataclass(frozen=True, slots=True)
class Epoch:
    """One step of the data: the reports as they now are (only those that changed), the
    statements each gained, the tallies before and after, and the notices issued."""

    number: int
    reports: Mapping[str, SiteReport]
    new_statements: Mapping[str, tuple[SiteStatement, ...]]
    tallies_before: Mapping[str, SiteTally]
    notices: tuple[SiteNotice, ...]


def _known(t: SiteTally) -> bool:
    return None not in (t.supporting, t.mentioning, t.contrasting)


def _moved(t: SiteTally, types: list[SiteType], mentioning: int = 0) -> SiteTally:
    def add(value: int | None, n: int) -> int | None:
        return None if value is None else value + n

    n = len(types)
    return dataclasses.replace(
        t,
        supporting=add(t.supporting, types.count("supporting")),
        mentioning=add(t.mentioning, types.count("mentioning") + mentioning),
        contrasting=add(t.contrasting, types.count("contrasting")),
        citation_statements=add(t.citation_statements, n + mentioning),
        citing_publications=add(t.citing_publications, n),
    )


def _statement(number: int, k: int, j: int, kind: SiteType) -> SiteStatement:
    doi = f"{TEST_PREFIX}/epoch{number}-{k}-{j}"
    return SiteStatement(
        citing_doi=doi,
        citing_title=f"Follow-up study {k}.{j} of epoch {number} on graft outcomes",
        citing_year=2026,
        citing_journal="Journal of Later Findings",
        snippet=(
            f"In epoch {number}, cohort {k}-{j} gave a {kind} result for the cited "
            f"findings on engraftment after transplantation (series {k * 10 + j})."
        ),
        section=_SECTIONS[(k + j) % len(_SECTIONS)],
        type=kind,
        confidence=round(0.9 - 0.05 * j, 2),
    )


def next_epoch(
    reports: Mapping[str, SiteReport], number: int = 1, *, every: int = 3, most: int = 4
) -> Epoch:
    """The changes of epoch `number` over these reports (see the module docstring)."""
    if number < 1 or every < 1 or most < 1:
        raise ValueError("number, every and most must be >= 1")
    candidates = [reports[d] for d in sorted(reports) if _known(reports[d].tallies)]
    picked = candidates[::every][:most]
    changed: dict[str, SiteReport] = {}
    gained: dict[str, tuple[SiteStatement, ...]] = {}
    before: dict[str, SiteTally] = {}
    for k, report in enumerate(picked):
        types = list(_TYPES) if k == 0 else [_TYPES[(k + j) % 3] for j in range(k % 3 + 1)]
        new = tuple(_statement(number, k, j, kind) for j, kind in enumerate(types))
        gained[report.doi] = new
        before[report.doi] = report.tallies
        changed[report.doi] = dataclasses.replace(
            report,
            statements=report.statements + new,
            tallies=_moved(report.tallies, types),
        )
    rest = [r for r in candidates if r.doi not in changed]
    if rest:
        quiet = rest[len(rest) // 2]
        before[quiet.doi] = quiet.tallies
        changed[quiet.doi] = dataclasses.replace(
            quiet, tallies=_moved(quiet.tallies, [], mentioning=2)
        )
    notices: tuple[SiteNotice, ...] = ()
    if picked:
        notices = (
            SiteNotice(
                picked[0].doi,
                "Retracted",
                _FIRST_NOTICE_DATE,
                f"{TEST_PREFIX}/retraction.epoch{number}",
            ),
        )
    return Epoch(number, changed, gained, before, notices)
