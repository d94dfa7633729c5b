"""Hostile report sites, over real sockets: pagination cycles, endless pagination, truncated
reports, next links off the site, suffixed counts, captcha and login walls.

Each run must end, fetch a bounded number of pages (counted in the site's request log),
store the report's pages it did read, mark the paper incomplete with the right reason
(never silently), and say so honestly in the summary and the exit code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
from pathlib import Path

import pytest

from citesite.dataset import SiteReport, page_count
from citesite.faults import INCOMPLETE_KINDS, FaultSpec
from citesite.generator import generate
from citesite.markup import suffixed_value
from citesite.server import CitationSite
from pipeline import app
from pipeline.models import Page, ParseResult
from pipeline.normalise import doi_path
from pipeline.runs import commands
from pipeline.runs.summary import RunSummary
from pipeline.sources.report import ReportSource

from .conftest import OffsetClock, fast_env, fast_settings, query, quiet_ui, run_cli, write_dois

PER_PAGE = 5


def honest(report: SiteReport) -> SiteReport:
    """A report whose count is the statements it lists (so that, read whole, it is whole)."""
    tallies = dataclasses.replace(report.tallies, citation_statements=len(report.statements))
    return dataclasses.replace(report, tallies=tallies)


def multi_page(n: int, seed: int, pages: int = 3) -> list[SiteReport]:
    """`n` honest reports of at least `pages` pages of PER_PAGE statements."""
    out = [honest(r) for r in generate(400, seed) if len(r.statements) >= pages * PER_PAGE]
    assert len(out) >= n
    return out[:n]


def requests_for(site: CitationSite, report: SiteReport) -> list[str]:
    """The site's log lines for this report (its DOI address and its slug address)."""
    by_doi = f"/reports/{doi_path(report.doi)}"
    by_slug = f"/reports/{report.slug}"
    return [
        r.path_qs
        for r in site.requests
        if r.path_qs.split("?")[0] in (by_doi, by_slug) or r.path_qs.startswith(by_slug + "?")
    ]


def papers(db: Path) -> dict[str, tuple[int, str | None]]:
    return {
        doi: (incomplete, reason)
        for doi, incomplete, reason in query(
            db,
            "select doi, incomplete, incomplete_reason from papers where last_crawled_at "
            "is not null",
        )
    }


async def backfill(site: CitationSite, db: Path, dois: list[str], **extra: object) -> RunSummary:
    settings = fast_settings(site.base_url, db, **extra)
    async with app.open_pipeline(settings) as p:
        return await asyncio.wait_for(commands.backfill(p, dois, ui=quiet_ui()), 120)


MODES = tuple(INCOMPLETE_KINDS)


async def test_short_reports_are_summed_up_and_a_cut_is_a_warning(
    tmp_path: Path, json_logs: io.StringIO
) -> None:
    """A report that lists fewer statements than it counts is common (scite does it): the
    summary counts it, with no log line each to bury the warnings; a cut pagination (the
    site misbehaving) is a warning naming its reason."""
    cut, *rest = multi_page(4, seed=33)
    short = [
        dataclasses.replace(
            r, tallies=dataclasses.replace(r.tallies, citation_statements=len(r.statements) + 50)
        )
        for r in rest
    ]
    spec = FaultSpec(permanent={cut.doi: "cycle"})
    async with CitationSite([cut, *short], faults=spec, per_page=PER_PAGE) as site:
        summary = await backfill(site, tmp_path / "s.sqlite", [r.doi for r in (cut, *short)])
    assert summary.counters.incomplete == {
        "fewer statements than the report counts": 3,
        "pagination cycle": 1,
    }
    lines = [json.loads(x) for x in json_logs.getvalue().splitlines() if "report incomplete" in x]
    assert [(x["level"], x["doi"], x["reason"].split(":")[0]) for x in lines] == [
        ("warning", cut.doi, "pagination cycle")
    ]


async def test_every_hostile_pagination_ends_bounded_and_incomplete_with_its_reason(
    tmp_path: Path,
) -> None:
    reps = multi_page(len(MODES) + 1, seed=31)
    by_mode = {mode: reps[i] for i, mode in enumerate(MODES)}
    control = reps[-1]
    spec = FaultSpec(permanent={r.doi: mode for mode, r in by_mode.items()})
    db = tmp_path / "h.sqlite"
    async with CitationSite(reps, faults=spec, per_page=PER_PAGE) as site:
        summary = await backfill(site, db, [r.doi for r in reps])
        fetched = {mode: requests_for(site, r) for mode, r in by_mode.items()}
        fetched_control = requests_for(site, control)
        offsite = [r.path_qs for r in site.requests if not r.path_qs.startswith("/")]
    stored = papers(db)
    # the control report: every page once, whole
    assert stored[control.doi] == (0, None)
    assert len(fetched_control) <= page_count(control, PER_PAGE) + 1
    for mode, report in by_mode.items():
        incomplete, reason = stored[report.doi]
        assert incomplete == 1, mode
        assert reason is not None and reason.startswith(INCOMPLETE_KINDS[mode]), (mode, reason)
    # bounded: a cycle costs at most one page more than its length (`?page=1` is another
    # address for page 1), the redirect of the DOI address included
    assert len(fetched["cycle"]) <= 4, fetched["cycle"]
    assert len(fetched["cycle-absolute"]) <= 3, fetched["cycle-absolute"]
    assert len(fetched["cycle-long"]) <= 5, fetched["cycle-long"]
    endless = by_mode["endless"]
    justified = -(-len(endless.statements) // PER_PAGE) + 1  # the count's pages + a margin
    assert len(fetched["endless"]) <= justified + 1, fetched["endless"]
    truncated = by_mode["truncated"]
    assert len(fetched["truncated"]) <= page_count(truncated, PER_PAGE) // 2 + 2
    assert len(fetched["next-offsite"]) <= 2 and offsite == []
    # no address of a report was fetched twice
    for mode, paths in fetched.items():
        assert len(paths) == len(set(paths)), (mode, paths)
    # what was read is stored: the truncated report's first half, every statement
    rows = query(db, "select count(*) from statements where cited_doi = ?", truncated.doi)
    assert rows == [(len(truncated.statements) // 2,)]
    # honest summary: every report done, the incomplete ones named; not a failure
    assert summary.exit_code == 0
    assert summary.counters.reports_done == len(reps)
    kinds = set(INCOMPLETE_KINDS.values())
    assert set(summary.counters.incomplete) == kinds
    assert summary.stats.incomplete_reports == len(MODES)
    assert {d.reason for d in summary.stats.incomplete_by_reason} == kinds
    text = summary.render()
    assert f"incomplete: {len(MODES)} reports stored in part" in text
    assert "pagination cycle: 3" in text


async def test_max_pages_per_report_bounds_a_report_without_a_count(tmp_path: Path) -> None:
    (report,) = multi_page(1, seed=32)
    report = dataclasses.replace(
        report, tallies=dataclasses.replace(report.tallies, citation_statements=None)
    )
    db = tmp_path / "m.sqlite"
    spec = FaultSpec(permanent={report.doi: "endless"})
    async with CitationSite([report], faults=spec, per_page=PER_PAGE) as site:
        summary = await backfill(site, db, [report.doi], max_pages_per_report=6)
        fetched = requests_for(site, report)
    assert len(fetched) <= 7, fetched
    assert papers(db)[report.doi] == (1, "more pages than max_pages_per_report: 6")
    assert query(db, "select max(page) from jobs") == [(6,)]
    assert summary.exit_code == 0 and summary.counters.incomplete.total() == 1


async def test_a_refresh_of_hostile_reports_stays_bounded_and_keeps_the_reasons(
    tmp_path: Path,
) -> None:
    """A refresh finds pages unchanged (304): the cut and the count check still hold."""
    reps = multi_page(3, seed=33)
    cyc, trunc, normal = reps
    spec = FaultSpec(permanent={cyc.doi: "cycle-long", trunc.doi: "truncated"})
    db = tmp_path / "r.sqlite"
    clock = OffsetClock()
    refresh = {"refresh_interval": 1.0, "refresh_min": 1.0, "refresh_max": 4.0}
    async with CitationSite(reps, faults=spec, per_page=PER_PAGE) as site:
        settings = fast_settings(site.base_url, db, **refresh)
        async with app.open_pipeline(settings, clock=clock) as p:
            await commands.backfill(p, [r.doi for r in reps], ui=quiet_ui())
        first = papers(db)
        since = len(site.requests)
        clock.offset += 10
        async with app.open_pipeline(settings, clock=clock) as p:
            summary = await asyncio.wait_for(commands.crawl(p, None, ui=quiet_ui()), 120)
        again = site.requests[since:]
    assert summary.exit_code == 0
    assert summary.counters.pages_unchanged > 0
    assert {r.status for r in again} <= {200, 301, 302, 304}
    assert len(again) <= 5 + page_count(trunc, PER_PAGE) // 2 + 2 + page_count(normal, PER_PAGE)
    # the same verdicts (a 304 page 1 no longer says its canonical address, so a cycle
    # back to it may be cut one page later: still bounded above)
    kinds = {doi: (i, r.split(":")[0] if r else None) for doi, (i, r) in papers(db).items()}
    assert kinds == {doi: (i, r.split(":")[0] if r else None) for doi, (i, r) in first.items()}
    assert first[cyc.doi][1] is not None and first[cyc.doi][1].startswith("pagination cycle")
    assert first[trunc.doi][1] is not None
    assert first[trunc.doi][1].startswith("fewer statements than the report counts")
    assert first[normal.doi] == (0, None)


async def test_suffixed_counts_are_read_whole(tmp_path: Path) -> None:
    big = [r for r in generate(300, 34) if (r.tallies.mentioning or 0) >= 1000]
    report = dataclasses.replace(
        big[0],
        tallies=dataclasses.replace(big[0].tallies, citation_statements=1_234_567),
    )
    db = tmp_path / "s.sqlite"
    async with CitationSite([report], faults=FaultSpec(permanent={report.doi: "suffixed"})) as s:
        summary = await backfill(s, db, [report.doi])
    t = report.tallies
    stored = query(db, "select mentioning, citing_publications, citation_statements from tallies")
    assert stored == [
        (
            suffixed_value(t.mentioning or 0),
            suffixed_value(t.citing_publications or 0),
            suffixed_value(1_234_567),
        )
    ]
    assert stored[0][2] == 1_200_000  # `1.2M`, not 1
    assert summary.exit_code == 0


@pytest.mark.parametrize(("kind", "reason"), [("captcha", "captcha"), ("login", "login")])
async def test_a_wall_is_blocked_not_layout_drift(tmp_path: Path, kind: str, reason: str) -> None:
    reps = [honest(r) for r in generate(3, 35)]
    db = tmp_path / "w.sqlite"
    spec = FaultSpec(permanent={reps[0].doi: kind})
    async with CitationSite(reps, faults=spec) as site:
        summary = await backfill(site, db, [r.doi for r in reps])
        fetched = requests_for(site, reps[0])
    assert len(fetched) <= 2  # dead at once: a wall is not retried
    assert summary.exit_code == 1
    dead = query(db, "select doi, last_error from jobs where state = 'dead'")
    assert dead == [(reps[0].doi, f"blocked: {reason} wall")]
    assert summary.counters.dead == {f"blocked: {reason} wall": 1}
    # kept in the store all the same (issue 25, point 7): a page judged a wall wrongly can
    # be read again by `reparse`
    assert query(db, "select doi, broken from pages") == [(reps[0].doi, 1)]


async def test_not_found_is_not_incomplete(tmp_path: Path) -> None:
    reps = [honest(r) for r in generate(2, 36)]
    db = tmp_path / "n.sqlite"
    async with CitationSite(reps) as site:
        summary = await backfill(site, db, [r.doi for r in reps] + ["10.5555/missing-one"])
    assert summary.exit_code == 1  # a DOI of the input ended dead
    assert summary.stats.not_found == 1
    assert summary.stats.incomplete_reports == 0
    line = json.loads(summary.render().splitlines()[-1].removeprefix("citepipe-summary "))
    assert line["not_found"] == 1 and line["incomplete_reports"] == 0
    assert "not found:  1 report the site does not have" in summary.render()


async def test_the_command_against_a_cycling_site_ends_with_an_honest_summary(
    tmp_path: Path,
) -> None:
    reps = multi_page(2, seed=37)
    db = tmp_path / "cli.sqlite"
    spec = FaultSpec.parse("cycle=1")
    async with CitationSite(reps, faults=spec, per_page=PER_PAGE) as site:
        inp = write_dois(tmp_path / "in.txt", [r.doi for r in reps])
        res = await run_cli("backfill", str(inp), env=fast_env(site.base_url, db), timeout=60)
        fetched = [r.path_qs for r in site.requests if r.path_qs.startswith("/reports/")]
    assert res.code == 0, res.err[-2000:]
    assert len(fetched) <= 4 * len(reps)
    line = next(x for x in res.out.splitlines() if x.startswith("citepipe-summary "))
    data = json.loads(line.removeprefix("citepipe-summary "))
    assert data["incomplete_by_reason"] == {"pagination cycle": 2}
    assert "incomplete: 2 reports stored in part (pagination cycle: 2" in res.out


class BuggySource(ReportSource):
    """The real parser, with a bug on one report (a KeyError our code lets through)."""

    def __init__(self, doi: str, base_url: str) -> None:
        super().__init__(base_url=base_url)
        self.doi = doi

    def parse(self, page: Page) -> ParseResult:
        result = super().parse(page)
        if result.paper.doi == self.doi:
            raise KeyError("boom")
        return result


async def test_a_bug_kills_its_job_counted_in_summary_and_exit_code(
    tmp_path: Path, json_logs: io.StringIO
) -> None:
    reps = [honest(r) for r in generate(3, 38)]
    bad = reps[1].doi
    db = tmp_path / "b.sqlite"
    async with CitationSite(reps) as site:
        settings = fast_settings(site.base_url, db)
        async with app.open_pipeline(settings, source=BuggySource(bad, site.base_url)) as p:
            summary = await commands.backfill(p, [r.doi for r in reps], ui=quiet_ui())
    reason = "internal error: KeyError: 'boom'"
    assert summary.exit_code == 1
    assert summary.counters.dead == {reason: 1} and summary.input_dead == {reason: 1}
    assert query(db, "select doi, last_error from jobs where state = 'dead'") == [(bad, reason)]
    crashes = [json.loads(x) for x in json_logs.getvalue().splitlines() if "job crashed" in x]
    assert len(crashes) == 1 and "Traceback" in crashes[0]["exception"]
    assert json_logs.getvalue().count("Traceback") == 1
