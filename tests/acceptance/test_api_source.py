"""scite's API as a second source: `citepipe backfill --source api|both` against the local
site's API (citesite/api.py), checked row by row against the site's own ground truth."""

from __future__ import annotations

import json
from pathlib import Path

from citesite.api import notices_of, paper_object, sections_object, tally_object
from citesite.server import CitationSite

from .conftest import crawl_input, fast_env, query, run_cli, summary_of

TOKEN = "t0ken-for-tests"


def api_requests(site: CitationSite) -> list[tuple[str, int, int | None]]:
    return [(r.path_qs, r.status, r.dois) for r in site.requests if r.method == "POST"]


async def test_backfill_source_api_stores_the_api_rows_exactly(tmp_path: Path) -> None:
    reps, dois, db = crawl_input(tmp_path, 30, seed=21)
    absent = ["10.9999/absent.1", "10.9999/absent.2"]
    dois.write_text(dois.read_text() + "".join(d + "\n" for d in absent))
    async with CitationSite(reps, api_token=TOKEN) as site:
        env = fast_env(site.base_url, db, api_url=site.base_url, api_token=TOKEN, api_batch=500)
        result = await run_cli("backfill", str(dois), "--source", "api", env=env)
        # one request per endpoint for the 32 DOIs; no report page was fetched
        assert sorted(api_requests(site)) == [
            ("/papers", 200, 32),
            ("/tallies", 200, 32),
            ("/tallies/cited-by-sections", 200, 32),
        ]
        assert not [r for r in site.requests if r.path_qs.startswith("/reports/")]
        # the token went as a header, and the right one; never into the store or output
        assert {r.authorization for r in site.requests} == {"Bearer (valid)"}
    assert TOKEN not in result.out + result.err
    assert TOKEN.encode() not in db.read_bytes()
    # absent DOIs: not found, as 404s are (summary, status, exit code)
    assert result.code == 1, result.err
    summary = summary_of(result.out)
    assert summary["not_found"] == 2
    assert summary["input_dead"] == {"not found (404)": 2}
    assert query(db, "SELECT doi, state, last_error FROM jobs WHERE doi NOT LIKE 'api:%'") == [
        (d, "dead", "not found (404)") for d in absent
    ]
    for doi, report in reps.items():
        t = tally_object(report)
        assert query(
            db,
            "SELECT supporting, mentioning, contrasting, citing_publications, "
            "citation_statements, references_count, source, api_statements "
            "FROM tallies WHERE doi = ?",
            doi,
        ) == [
            (
                t["supporting"],
                t["mentioning"],
                t["contradicting"],  # the API's contradicting is the page's contrasting
                t["citingPublications"],
                t["total"],
                None,  # only a report page shows it
                "api",
                t["total"],
            )
        ]
        p = paper_object(report)
        assert query(
            db,
            "SELECT title, year, journal, abstract, retracted, volume, issue, pages "
            "FROM papers WHERE doi = ?",
            doi,
        ) == [
            (
                p["title"],
                p["year"],
                p["journal"],
                p["abstract"],
                int(p["retracted"]),
                p["volume"],
                p["issue"],
                p["page"],
            )
        ]
        names = [f"{a['given']} {a['family']}" if a["given"] else a["family"] for a in p["authors"]]
        assert [
            n for (n,) in query(db, "SELECT name FROM authors WHERE doi = ? ORDER BY position", doi)
        ] == names
        notices = sorted((n.status, n.date or "", n.doi or "", n.url) for n in notices_of(doi))
        assert (
            query(
                db,
                "SELECT status, date, notice_doi, url FROM notices WHERE doi = ? "
                "ORDER BY status, date, notice_doi",
                doi,
            )
            == notices
        )
        s = sections_object(report)
        assert dict(
            query(db, "SELECT label, count FROM facets WHERE doi = ? AND facet = 'section'", doi)
        ) == {k: s[k] for k in ("introduction", "methods", "results", "discussion", "other")}
    assert query(db, "SELECT count(*) FROM notices")[0][0] == sum(len(notices_of(d)) for d in reps)
    assert query(db, "SELECT count(*) FROM statements") == [(0,)]


async def test_a_second_run_duplicates_nothing(tmp_path: Path) -> None:
    reps, dois, db = crawl_input(tmp_path, 40, seed=22)
    assert any(notices_of(d) for d in reps)
    async with CitationSite(reps, api_token=TOKEN) as site:
        env = fast_env(site.base_url, db, api_url=site.base_url, api_token=TOKEN)
        first = await run_cli("backfill", str(dois), "--source", "api", env=env)
        assert first.code == 0, first.err
        before = query(db, "SELECT * FROM notices ORDER BY 1, 2, 3, 4")
        # a second backfill of the same input: the same batch jobs, already done
        again = await run_cli("backfill", str(dois), "--source", "api", env=env)
        assert again.code == 0, again.err
        assert len(api_requests(site)) == 3
        # the same DOIs in other batches: the API is asked again, and every notice it
        # lists again updates its row, never a second one
        third = await run_cli(
            "backfill", str(dois), "--source", "api", env=dict(env, CITEPIPE_API_BATCH="7")
        )
        assert third.code == 0, third.err
        assert len(api_requests(site)) == 3 + 3 * 6
    after = query(
        db,
        "SELECT doi, status, date, notice_doi, url, first_seen_at FROM notices ORDER BY 1, 2, 3, 4",
    )
    assert after == [row[:6] for row in before]


async def test_source_both_adds_the_statements_after_the_api(tmp_path: Path) -> None:
    reps, dois, db = crawl_input(tmp_path, 12, seed=23)
    async with CitationSite(reps, api_token=TOKEN) as site:
        env = fast_env(site.base_url, db, api_url=site.base_url, api_token=TOKEN)
        result = await run_cli("backfill", str(dois), "--source", "both", env=env)
        assert result.code == 0, result.err
        log = site.requests
        first_page = next(i for i, r in enumerate(log) if r.path_qs.startswith("/reports/"))
        assert [r.path_qs for r in log[:first_page] if r.method == "POST"] == [
            "/tallies",
            "/papers",
            "/tallies/cited-by-sections",
        ]
    stored = query(db, "SELECT cited_doi, count(*) FROM statements GROUP BY 1")
    assert dict(stored) == {d: len(r.statements) for d, r in reps.items() if r.statements}
    # notices and retraction flags stay from the API; tallies are the report's, latest
    assert query(db, "SELECT count(*) FROM notices")[0][0] == sum(len(notices_of(d)) for d in reps)
    sources = {doi: s for doi, s in query(db, "SELECT doi, source FROM tallies")}
    assert {sources[d] for d in reps} == {"report"}


async def test_more_dois_than_a_batch_take_one_request_per_batch(tmp_path: Path) -> None:
    reps, dois, db = crawl_input(tmp_path, 25, seed=24)
    async with CitationSite(reps, api_token=TOKEN) as site:
        env = fast_env(site.base_url, db, api_url=site.base_url, api_token=TOKEN, api_batch=10)
        result = await run_cli("backfill", str(dois), "--source", "api", env=env)
        assert result.code == 0, result.err
        sizes = sorted((p, n) for p, _, n in api_requests(site))
    assert sizes == sorted(
        (p, n) for p in ("/tallies", "/papers", "/tallies/cited-by-sections") for n in (10, 10, 5)
    )
    assert (
        json.loads(
            query(db, "SELECT batch FROM jobs WHERE doi LIKE 'api:tallies:%' ORDER BY id LIMIT 1")[
                0
            ][0]
        )
        == list(reps)[:10]
    )
