"""After the crawl (issue 12): reparse kept pages after a selector fix, with no request,
into exactly the rows a fresh crawl writes. Real sockets to the local site, real SQLite
files, whole runs in-process."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from citesite.server import CitationSite
from pipeline import app, cli
from pipeline.config import Settings
from pipeline.logs import configure_logging
from pipeline.ops.reparse import ReparseSummary, reparse_store
from pipeline.runs import commands
from pipeline.runs.summary import RunSummary, render_status

from .conftest import expected_statements, fast_settings, query, quiet_ui, reports, snapshot

# A selector "drift": the title is looked for where the page has none, so every page is
# broken (the parser names the missing title) until the selectors are fixed.
BAD_SELECTORS = '[paper]\ntitle_meta = ""\ntitle = "h1.no-such-title"\n'
# A milder one: sections are not found, pages parse but lose their statements' sections.
NO_SECTIONS = '[statements]\nsection = ""\n'


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Logs of in-process commands go to a stream of their own, forgotten afterwards (a
    command configures logging onto capsys's stream, which closes after its test)."""
    configure_logging("warning", "json", stream=io.StringIO())
    yield
    structlog.reset_defaults()


def history(db: Path) -> list[tuple[Any, ...]]:
    return sorted(query(db, "select doi, supporting, mentioning, contrasting from tally_history"))


async def crawl_into(settings: Settings, dois: list[str]) -> int:
    return (await backfill(settings, dois)).exit_code


async def backfill(settings: Settings, dois: list[str]) -> RunSummary:
    async with app.open_pipeline(settings) as p:
        return await commands.backfill(p, dois, ui=quiet_ui())


async def reparse(settings: Settings, **kw: Any) -> ReparseSummary:
    async with app.open_pipeline(settings, create=False) as p:
        return await reparse_store(p, **kw)


async def test_reparse_after_a_selector_fix_gives_the_rows_of_a_fresh_crawl(
    tmp_path: Path,
) -> None:
    reps = reports(6, seed=21)
    dois = list(reps)
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_SELECTORS, encoding="utf-8")
    drifted, fresh = tmp_path / "drifted.sqlite", tmp_path / "fresh.sqlite"
    async with CitationSite(reps, per_page=5) as site:
        broken = fast_settings(site.base_url, drifted, selectors=str(bad))
        assert await crawl_into(broken, dois) == 1
        assert query(drifted, "select count(*) from jobs where state = 'dead'") == [(6,)]
        assert query(drifted, "select count(*), sum(broken) from pages") == [(6, 6)]
        assert not (tmp_path / "broken").exists()  # kept in the store, not beside it

        fixed = fast_settings(site.base_url, drifted)
        requests_before = len(site.requests)
        done = await reparse(fixed, broken_only=True)
        assert len(site.requests) == requests_before  # not one request
        assert (done.completed, done.exit_code, sum(done.still_broken.values())) == (6, 0, 0)
        multi_page = sum(1 for d in dois if site.pages(d) > 1)
        assert multi_page > 0 and done.queued_after == multi_page  # the next pages
        assert query(drifted, "select count(*) from pages") == [(0,)]  # they parse now

        async with app.open_pipeline(fixed) as p:  # the next pages, fetched
            assert (await commands.worker(p, burst=True, ui=quiet_ui())).exit_code == 0
        assert await crawl_into(fast_settings(site.base_url, fresh), dois) == 0

    assert snapshot(drifted) == snapshot(fresh)
    assert history(drifted) == history(fresh)
    got = query(
        drifted, "select cited_doi, citing_doi, snippet, section, type, confidence from statements"
    )
    assert len(got) == len(set(got)) and set(got) == expected_statements(reps)


async def test_pages_still_broken_stay_dead_and_exit_1(tmp_path: Path) -> None:
    reps = reports(2, seed=22)
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_SELECTORS, encoding="utf-8")
    db = tmp_path / "s.sqlite"
    async with CitationSite(reps, per_page=5) as site:
        settings = fast_settings(site.base_url, db, selectors=str(bad))
        summary = await backfill(settings, list(reps))
        assert commands.REPARSE_HINT in summary.render()  # the user is told what to do
        async with app.open_pipeline(settings, create=False) as p:
            assert "reparse --broken" in render_status(await p.store.stats())
        again = await reparse(settings, broken_only=True)
    assert (again.pages, again.completed, again.exit_code) == (2, 0, 1)
    assert list(again.still_broken) == [next(iter(again.still_broken))]
    assert "title" in next(iter(again.still_broken))
    assert query(db, "select count(*) from jobs where state = 'dead'") == [(2,)]
    assert query(db, "select count(*) from pages where broken = 1") == [(2,)]


async def test_keep_all_reparse_rewrites_done_pages_like_a_fresh_crawl(tmp_path: Path) -> None:
    reps = reports(4, seed=23)
    dois = list(reps)
    drift = tmp_path / "drift.toml"
    drift.write_text(NO_SECTIONS, encoding="utf-8")
    kept, fresh = tmp_path / "kept.sqlite", tmp_path / "fresh.sqlite"
    async with CitationSite(reps, per_page=5) as site:
        drifted = fast_settings(site.base_url, kept, selectors=str(drift), keep_pages="all")
        assert await crawl_into(drifted, dois) == 0
        pages = query(kept, "select count(*) from jobs")[0][0]
        assert query(kept, "select count(*), sum(broken) from pages") == [(pages, 0)]
        assert query(kept, "select count(*) from statements where section is not null") == [(0,)]
        size, stored = query(kept, "select sum(size), sum(length(body)) from pages")[0]
        assert stored < size / 2  # compressed

        requests_before = len(site.requests)
        one = await reparse(
            fast_settings(site.base_url, kept, keep_pages="all"), dois=[dois[0].upper()]
        )
        assert one.pages == site.pages(dois[0]) and one.rewritten == one.pages
        every = await reparse(fast_settings(site.base_url, kept, keep_pages="all"))
        assert len(site.requests) == requests_before
        assert (every.pages, every.rewritten, every.queued_after) == (pages, pages, 0)
        assert await crawl_into(fast_settings(site.base_url, fresh), dois) == 0

    assert snapshot(kept) == snapshot(fresh)
    assert query(kept, "select count(*) from pages") == [(pages,)]  # still kept


def test_reparse_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reps = reports(3, seed=24)
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD_SELECTORS, encoding="utf-8")
    db = tmp_path / "s.sqlite"

    async def drift() -> str:
        async with CitationSite(reps, per_page=5) as site:
            await crawl_into(fast_settings(site.base_url, db, selectors=str(bad)), list(reps))
            return site.base_url

    base_url = asyncio.run(drift())  # the site is gone: reparse makes no request
    capsys.readouterr()
    code = cli.main(["reparse", "--broken", "--db", str(db), "--json"])
    out = json.loads(capsys.readouterr().out)  # the default base_url is another site
    assert code == 1 and out["completed"] == 0 and sum(out["other_site"].values()) == 3
    code = cli.main(["reparse", "--broken", "--db", str(db), "--base-url", base_url])
    text = capsys.readouterr().out
    assert code == 0 and "broken jobs now done: 3" in text and "no request made" in text
    assert query(db, "select count(*) from jobs where state = 'done'") == [(3,)]

    code = cli.main(["reparse", "--doi", "not a doi", "--db", str(db)])
    assert code == 2 and "not a DOI" in capsys.readouterr().err
    missing = tmp_path / "none.sqlite"
    assert cli.main(["reparse", "--db", str(missing)]) == 2
    assert not missing.exists()
