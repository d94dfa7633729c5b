"""Hostile sites over real sockets: credentials in every link, and a server that
normalises dot segments. No Authorization header is ever received, no credentials are
stored or exported, and no request leaves `/reports/` (robots.txt aside), as the site's
own request log shows."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from citesite.server import CitationSite
from citesite.style import report_style
from pipeline import app
from pipeline.runs import commands

from .conftest import (
    expected_statements,
    fast_settings,
    query,
    quiet_ui,
    reports,
    stored_statements,
    ui_text,
)


def off_reports(site: CitationSite) -> list[str]:
    return [
        r.path_qs
        for r in site.requests
        if r.fault == "escaped"
        or not (r.path_qs.startswith("/reports/") or r.path_qs == "/robots.txt")
    ]


async def test_credentials_in_links_and_base_url_are_never_sent_or_stored(tmp_path: Path) -> None:
    reps = reports(8, seed=21)
    db = tmp_path / "s.sqlite"
    async with CitationSite(reps, faults="creds=1", per_page=3) as site:
        base = site.base_url.replace("://", "://me:hunter2@")
        settings = fast_settings(base, db)
        assert "hunter2" not in settings.base_url
        async with app.open_pipeline(settings) as p:
            summary = await commands.backfill(p, sorted(reps), ui=quiet_ui())
            exported = [row async for row in p.store.export("jobs")]
            exported += [row async for row in p.store.export("papers")]
        log = site.requests
    assert summary.exit_code == 0
    assert sum(1 for r in log if r.path_qs.startswith("/reports/")) >= len(reps) * 2
    assert [r.authorization for r in log if r.authorization] == []
    assert sum(1 for r in log if "page=" in r.path_qs) > 0  # next links were followed
    assert set(stored_statements(db)) == expected_statements(reps)
    text = repr(exported) + repr(query(db, "select url, next_url from jobs"))
    text += repr(query(db, "select report_url from papers"))
    assert "secret" not in text and "hunter2" not in text and "@" not in text
    assert off_reports(site) == []


async def test_dot_segment_dois_are_bad_lines_and_nothing_leaves_reports(tmp_path: Path) -> None:
    reps = reports(4, seed=22)
    good = sorted(reps)
    hostile = [
        "10.1038/../../private/x",
        "https://doi.org/10.1038/%2E%2E/%2E%2E/private/x",
        "doi:10.1038/%252e%252e/%252e%252e/private",
        "10.1038/..\\..\\private",
    ]
    lines = [good[0], *hostile, *good[1:]]
    db = tmp_path / "s.sqlite"
    ui = quiet_ui()
    async with CitationSite(reps, faults="dots=1") as site:
        async with app.open_pipeline(fast_settings(site.base_url, db)) as p:
            summary = await commands.backfill(p, lines, ui=ui)
        log = site.requests
    assert summary.inputs.bad_lines == len(hostile)
    assert summary.exit_code == 1  # bad lines: the rest is stored
    said = ui_text(ui)
    for n in range(2, 2 + len(hostile)):
        assert f"line {n}: a DOI with a '..' path segment would leave /reports/" in said
    assert query(db, "select count(*) from papers where last_crawled_at is not null") == [
        (len(good),)
    ]
    assert off_reports(site) == []
    assert not [r for r in log if "private" in r.path_qs or "%2E" in r.path_qs.upper()]


async def test_the_dots_site_does_serve_a_page_off_reports_to_a_careless_client() -> None:
    """The hostile mode works: what the crawler must never request does escape."""
    import aiohttp
    from yarl import URL

    async with CitationSite(reports(1, seed=23), faults="dots=1") as site:
        async with aiohttp.ClientSession() as http:
            url = URL(f"{site.base_url}/reports/10.1038/%2E%2E/%2E%2E/private/x", encoded=True)
            async with http.get(url) as resp:
                assert resp.status == 200
        assert off_reports(site) == ["/reports/10.1038/%2E%2E/%2E%2E/private/x"]


async def test_an_infinite_request_delay_never_crashes_a_job(tmp_path: Path) -> None:
    """Settings refuse `request_delay=inf` (exit 2); a pipeline given one anyway (built
    without validation) waits at most a day between requests and never crashes a job.
    One direct one-page report: a single booked request, so the run ends at once."""
    reps = reports(30, seed=24)
    direct = next(r for r in reps.values() if report_style(r.doi).direct)
    db = tmp_path / "s.sqlite"
    async with CitationSite({direct.doi: direct}, per_page=10_000) as site:
        settings = dataclasses.replace(
            fast_settings(site.base_url, db), request_delay=float("inf"), respect_robots=False
        )
        async with app.open_pipeline(settings) as p:
            summary = await asyncio.wait_for(commands.backfill(p, [direct.doi], ui=quiet_ui()), 30)
    assert summary.exit_code == 0
    assert summary.counters.dead.total() == 0 and summary.counters.pages_done == 1
