"""Pages in legacy encodings are stored exactly as written; undecodable ones are kept broken.

The local site serves its reports in latin-1 and windows-1252, declared in the
Content-Type header or in a `<meta charset>` (issue 20, point 1).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from citesite.dataset import SiteReport
from citesite.generator import generate
from citesite.server import CitationSite
from pipeline import app
from pipeline.ops.reparse import reparse_store
from pipeline.runs import commands

from .conftest import expected_statements, fast_settings, query, quiet_ui, stored_statements

TITLE = "Café Müller’s “Kontakthof” – Zürich"  # latin-1 and windows-1252 letters, 1252 quotes


def accented(n: int, seed: int) -> list[SiteReport]:
    """Reports with accented titles and snippets with windows-1252 curly quotes."""
    out = []
    for i, r in enumerate(generate(n, seed)):
        statements = tuple(
            dataclasses.replace(s, snippet=f"“{s.snippet}” — né à Köln {i}") for s in r.statements
        )
        out.append(dataclasses.replace(r, title=f"{TITLE} {i}", statements=statements))
    return out


async def crawl(site_reports: list[SiteReport], db: Path, **site: str) -> int:
    async with CitationSite(site_reports, **site) as s:  # type: ignore[arg-type]
        settings = fast_settings(s.base_url, db, keep_pages="all")
        async with app.open_pipeline(settings) as p:
            summary = await commands.backfill(p, [r.doi for r in site_reports], ui=quiet_ui())
    return summary.exit_code


@pytest.mark.parametrize(
    ("encoding", "declare"),
    [("iso-8859-1", "header"), ("windows-1252", "meta"), ("windows-1252", "header")],
)
async def test_legacy_encodings_are_stored_exactly(
    tmp_path: Path, encoding: str, declare: str
) -> None:
    reps = accented(4, seed=21)
    db = tmp_path / "c.sqlite"
    assert await crawl(reps, db, encoding=encoding, declare=declare) == 0
    titles = dict(query(db, "select doi, title from papers where title is not null"))
    assert {r.doi: titles.get(r.doi) for r in reps} == {r.doi: r.title for r in reps}
    want = sorted(expected_statements({r.doi: r for r in reps}))
    assert sorted(stored_statements(db)) == want
    assert not query(db, "select doi from papers where title like '%' || char(65533) || '%'")
    # kept with what the header said
    said = {c for (c,) in query(db, "select charset from pages")}
    assert said == ({encoding} if declare == "header" else {None})


async def test_reparse_decodes_kept_pages_as_the_crawl_did(tmp_path: Path) -> None:
    reps = accented(3, seed=22)
    db = tmp_path / "r.sqlite"
    async with CitationSite(reps, encoding="iso-8859-1", declare="header") as s:
        settings = fast_settings(s.base_url, db, keep_pages="all")
        async with app.open_pipeline(settings) as p:
            await commands.backfill(p, [r.doi for r in reps], ui=quiet_ui())
        async with app.open_pipeline(settings) as p:
            summary = await reparse_store(p)
    assert summary.exit_code == 0 and not summary.still_broken
    assert summary.rewritten == summary.pages >= len(reps)
    titles = dict(query(db, "select doi, title from papers where title is not null"))
    assert {r.doi: titles.get(r.doi) for r in reps} == {r.doi: r.title for r in reps}


async def test_undeclared_legacy_bytes_are_a_kept_broken_page_not_replacement_characters(
    tmp_path: Path,
) -> None:
    reps = accented(2, seed=23)
    db = tmp_path / "u.sqlite"
    assert await crawl(reps, db, encoding="iso-8859-1", declare="none") == 1
    dead = query(db, "select last_error from jobs where state = 'dead'")
    assert len(dead) == len(reps)
    broken = "broken page: undecodable page: invalid utf-8 bytes at byte "
    assert all(r.startswith(broken) for (r,) in dead)
    assert query(db, "select count(*) from pages where broken = 1") == [(len(reps),)]
    assert query(db, "select count(*) from papers") == [(0,)]
