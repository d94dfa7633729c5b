"""`copy-store` (issue 25, point 3): into a store holding another crawl it refuses before
writing anything (exit 2, the target as it was); into an empty store it copies every
table, the kept pages included, so `reparse` works on the copy. Two real crawls of the
local site into real SQLite files."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from citesite.server import CitationSite
from pipeline import app, cli
from pipeline.logs import configure_logging
from pipeline.runs import commands

from .conftest import fast_settings, query, quiet_ui, reports, snapshot


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    configure_logging("warning", "json", stream=io.StringIO())
    yield
    structlog.reset_defaults()


async def crawl(db: Path, seed: int) -> str:
    """A backfill of 3 reports (`seed`) with every page kept; the site's address."""
    reps = reports(3, seed=seed)
    async with CitationSite(reps, per_page=5) as site:
        settings = fast_settings(site.base_url, db, keep_pages="all")
        async with app.open_pipeline(settings) as p:
            assert (await commands.backfill(p, list(reps), ui=quiet_ui())).exit_code == 0
        return site.base_url


def kept(db: Path) -> list[tuple[object, ...]]:
    return query(
        db, "select doi, page, url, fetched_at, broken, size, body from pages order by doi, page"
    )


def test_copy_store_refuses_a_target_holding_another_crawl_and_copies_kept_pages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, c = tmp_path / "a.sqlite", tmp_path / "b.sqlite", tmp_path / "c.sqlite"
    base_url = asyncio.run(crawl(a, seed=31))
    asyncio.run(crawl(b, seed=32))
    before = snapshot(b), kept(b), query(b, "select count(*) from runs")
    assert kept(a) and before[1]
    capsys.readouterr()

    code = cli.main(["copy-store", str(a), str(b)])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert "not a copy of this source" in line and "nothing was written" in line
    assert (snapshot(b), kept(b), query(b, "select count(*) from runs")) == before

    code = cli.main(["copy-store", str(a), str(c)])
    out, _ = capsys.readouterr()
    assert code == 0
    assert snapshot(c) == snapshot(a) and kept(c) == kept(a)
    pages_line = next(x for x in out.splitlines() if x.startswith("pages "))
    n = len(kept(a))
    assert f"{n} copied" in pages_line and f"{n} in the source" in pages_line

    code = cli.main(["copy-store", str(a), str(c)])  # again: a finished copy, nothing to do
    out, _ = capsys.readouterr()
    assert code == 0 and "copied 0 rows" in out

    code = cli.main(["reparse", "--db", str(c), "--base-url", base_url, "--keep-pages", "all",
                     "--json"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["pages"] == n and summary["rewritten"] == n
    assert snapshot(c) == snapshot(a)
