"""graph, rank and the bibliographic exports on a store snowballed from the local site
(real HTTP over loopback, a real SQLite file), each output read back by an independent
reader: networkx's GraphML and GEXF readers, rispy, bibtexparser 2."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import bibtexparser
import networkx as nx
import pytest
import rispy

from citesite.api import notices_of, paper_object
from citesite.server import CitationSite
from pipeline import app
from pipeline.cli import main
from pipeline.runs import commands

from .conftest import (
    crawl_input,
    fast_env,
    fast_settings,
    query,
    quiet_ui,
    reports,
    run_cli,
    write_dois,
)

AWKWARD = (
    'The {TP53} gene & its friends: 50% of "quoted" cases',
    "Éléments de théorie: Ångström & Łódź, naïve façade",
    "Brackets {{nested}} and 100% 'single' quotes",
)


@pytest.fixture(scope="module")
def snowball(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three seeds whose reports have awkward titles, crawled with --depth 2."""
    tmp = tmp_path_factory.mktemp("snowball")
    reps = reports(60, seed=23)
    citers = {
        d: {s.citing_doi for s in r.statements if s.citing_doi in reps} - {d}
        for d, r in reps.items()
    }
    seeds = [d for d, c in citers.items() if any(citers[x] for x in c)][:3]  # two steps
    for doi, title in zip(seeds, AWKWARD, strict=True):
        reps[doi] = dataclasses.replace(reps[doi], title=title)
    db = tmp / "store.sqlite"

    async def crawl() -> None:
        async with CitationSite(reps) as site:
            settings = fast_settings(site.base_url, db, depth=2)
            async with app.open_pipeline(settings) as p:
                summary = await commands.backfill(p, seeds, ui=quiet_ui())
        assert summary.exit_code in (0, 1)  # 1: citers the site has no report of

    asyncio.run(crawl())
    return {"db": db, "seeds": seeds, "dir": tmp, "seed_file": write_dois(tmp / "s.txt", seeds)}


def citepipe(db: Path, *args: str) -> None:
    assert main([*args, "--db", str(db)]) == 0


def sql_pairs(db: Path) -> dict[tuple[str, str], tuple[int, int, int, int]]:
    rows = query(
        db,
        "select citing_doi, cited_doi, statements, supporting, mentioning, contrasting "
        "from citations",
    )
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}  # type: ignore[misc]


@pytest.mark.parametrize(("fmt", "read"), [("graphml", nx.read_graphml), ("gexf", nx.read_gexf)])
def test_graph_is_the_store_network(snowball: dict[str, Any], fmt: str, read: Any) -> None:
    db, out = snowball["db"], snowball["dir"] / f"net.{fmt}"
    citepipe(db, "graph", "--format", fmt, "-o", str(out))
    g = read(out)
    assert isinstance(g, nx.DiGraph)
    assert set(g) == {d for (d,) in query(db, "select doi from papers")}
    pairs = sql_pairs(db)
    assert set(g.edges) == set(pairs)
    for (citing, cited), want in pairs.items():
        e = g.edges[citing, cited]
        have = tuple(int(e[k]) for k in ("statements", "supporting", "mentioning", "contrasting"))
        assert have == want
    by_type = Counter(t for (t,) in query(db, "select type from statements"))
    for kind in ("supporting", "mentioning", "contrasting"):
        assert sum(int(a[kind]) for *_, a in g.edges(data=True)) == by_type[kind]
    for doi, title in zip(snowball["seeds"], AWKWARD, strict=True):
        assert g.nodes[doi]["title"] == title
    tallied = dict(query(db, "select doi, mentioning from tallies where mentioning is not null"))
    assert {d: int(g.nodes[d]["mentioning"]) for d in tallied} == tallied


def test_seeds_and_depth_select_citing_steps(snowball: dict[str, Any]) -> None:
    db, seeds = snowball["db"], set(snowball["seeds"])

    def citers(of: set[str]) -> set[str]:
        return {
            c for (c, d) in query(db, "select citing_doi, cited_doi from statements") if d in of
        }

    one, two = seeds | citers(seeds), set()
    two = one | citers(one)
    assert one != seeds and two != one  # the snowball went two steps
    for depth, want in (("0", seeds), ("1", one), ("2", two)):
        out = snowball["dir"] / f"d{depth}.json"
        citepipe(db, "graph", "--format", "json", "--seeds", str(snowball["seed_file"]),
                 "--depth", depth, "-o", str(out))  # fmt: skip
        data = json.loads(out.read_text("utf-8"))
        nodes = {n["id"]: n for n in data["nodes"]}
        assert set(nodes) == want, depth
        assert {d for d, n in nodes.items() if n["seed"]} == seeds
        assert {d for d, n in nodes.items() if n["depth"] == 1} == (one - seeds) & want
        assert {(e["source"], e["target"]) for e in data["edges"]} == {
            p for p in sql_pairs(db) if p[0] in want and p[1] in want
        }


def test_rank_lists_the_most_cited(snowball: dict[str, Any], capsys: Any) -> None:
    db = snowball["db"]
    citepipe(db, "rank", "--by", "in-degree", "--limit", "3", "--json")
    ranked = json.loads(capsys.readouterr().out)
    cited = Counter(d for (_, d) in sql_pairs(snowball["db"]))
    top = sorted(cited.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    assert [(r["dois"][0], r["score"]) for r in ranked] == [(d, float(n)) for d, n in top]
    citepipe(db, "rank", "--limit", "5")
    assert "by pagerank" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["ris", "bibtex"])
def test_bibliography_has_every_crawled_paper(snowball: dict[str, Any], fmt: str) -> None:
    db, out = snowball["db"], snowball["dir"] / f"papers.{fmt}"
    err = io.StringIO()  # not capsys: the logs keep this stream, still open, for later tests
    with contextlib.redirect_stderr(err):
        citepipe(db, "export", "--table", "papers", "--format", fmt, "-o", str(out))
    text = out.read_text("utf-8")
    titled = dict(query(db, "select doi, title from papers where title is not null"))
    # one record per titled paper, and the count says records: papers without a title
    # are not written, so "rows" would not be the papers table's rows
    assert f"exported {len(titled)} records from papers" in err.getvalue()
    if fmt == "ris":
        titles = {r["doi"]: r["title"] for r in rispy.loads(text)}
    else:
        from bibtexparser.middlewares import LatexDecodingMiddleware

        library = bibtexparser.parse_string(
            text, append_middleware=[LatexDecodingMiddleware(keep_braced_groups=False)]
        )
        assert not library.failed_blocks
        titles = {e["doi"]: e["title"] for e in library.entries}
    assert set(titles) == set(titled)
    for doi, title in zip(snowball["seeds"], AWKWARD, strict=True):
        assert titles[doi] == title


def test_provenance_records_two_seeds_reaching_one_paper(tmp_path: Path) -> None:
    """Two seeds of the site cited by one paper: the store records both seeds for it, one
    citing step away, and the whole-store graph shows them."""
    reps = reports(60, seed=6)
    citers = {d: {s.citing_doi for s in r.statements} - {d} for d, r in reps.items()}
    a, b, shared = next(
        (a, b, sorted(citers[a] & citers[b])[0])
        for a in sorted(reps)
        for b in sorted(reps)
        if a < b and citers[a] & citers[b]
    )
    db = tmp_path / "p.sqlite"

    async def crawl() -> None:
        async with (
            CitationSite(reps) as site,
            app.open_pipeline(fast_settings(site.base_url, db)) as p,
        ):
            assert (await commands.backfill(p, [a, b], ui=quiet_ui())).exit_code == 0

    asyncio.run(crawl())
    rows = set(query(db, "select doi, seed, depth from provenance"))
    assert {(a, a, 0), (b, b, 0), (shared, a, 1), (shared, b, 1)} <= rows
    expected = {(a, a, 0), (b, b, 0)} | {(c, s, 1) for s in (a, b) for c in citers[s]}
    # depth 0: every citer of a seed; and, where one seed cites the other, that seed's own
    # citers may also be recorded two steps from the other (when its page is crawled after
    # it was reached: the order of the pages decides), and nothing else
    via = {(x, s) for s in (a, b) for x in (a, b) if x in citers[s]}
    allowed = {(c, s, 2) for x, s in via for c in citers[x]}
    assert expected <= rows and rows - expected <= allowed
    out = tmp_path / "p.json"
    citepipe(db, "graph", "--format", "json", "-o", str(out))
    nodes = {n["id"]: n for n in json.loads(out.read_text("utf-8"))["nodes"]}
    assert nodes[shared]["seeds"] == " ".join(sorted((a, b)))
    assert nodes[shared]["depth"] == 1 and nodes[shared]["seed"] is False
    assert nodes[a]["seed"] is True and nodes[a]["depth"] == 0
    copy = tmp_path / "prov.csv"
    citepipe(db, "export", "--table", "provenance", "-o", str(copy))
    lines = copy.read_text("utf-8").splitlines()
    assert lines[0] == "doi,seed,depth" and len(lines) == len(rows) + 1


async def test_api_data_reaches_the_graph_and_the_records(tmp_path: Path) -> None:
    """`backfill --source both` against the local site (its API and its report pages),
    then graph and the bibliographic exports: `retracted` on the nodes, one note per
    editorial notice, volume, issue and pages exactly as the site's API gives them."""
    reps, dois, db = crawl_input(tmp_path, 64, seed=23)
    truth = {d: paper_object(r) for d, r in reps.items()}
    statuses = {n.status for d in reps for n in notices_of(d)}
    assert "Retracted" in statuses and len(statuses) > 1  # the data set has both kinds
    async with CitationSite(reps, api_token="tok") as site:
        env = fast_env(site.base_url, db, api_url=site.base_url, api_token="tok")
        done = await run_cli("backfill", str(dois), "--source", "both", env=env)
        assert done.code in (0, 1), done.err
        out = {f: tmp_path / f"p.{f}" for f in ("json", "ris", "bib", "csl")}
        graphed = await run_cli("graph", "--format", "json", "-o", str(out["json"]), env=env)
        assert graphed.code == 0, graphed.err
        for fmt, path in (("ris", out["ris"]), ("bibtex", out["bib"]), ("csl-json", out["csl"])):
            exported = await run_cli(
                "export", "--table", "papers", "--format", fmt, "-o", str(path), env=env
            )
            assert exported.code == 0, exported.err
            titled = query(db, "select count(*) from papers where title is not null")[0][0]
            assert f"exported {titled} records from papers" in exported.err

    nodes = {n["id"]: n for n in json.loads(out["json"].read_text("utf-8"))["nodes"]}
    # every paper the API answered for: known; a citer it was never asked about: no key
    assert {d: n["retracted"] for d, n in nodes.items() if "retracted" in n} == {
        d: p["retracted"] for d, p in truth.items()
    }

    def notes_of(doi: str) -> list[str]:
        notes = []
        for n in sorted(notices_of(doi), key=lambda n: (n.status, n.date or "", n.doi or "")):
            note = n.status + (f" ({n.date})" if n.date else "")
            notes.append(note + f", notice {n.doi or n.url}")
        return notes

    ris = {r["doi"]: r for r in rispy.loads(out["ris"].read_text("utf-8"))}
    csl = {i["DOI"]: i for i in json.loads(out["csl"].read_text("utf-8"))}
    bib = {e["doi"]: e for e in bibtexparser.parse_string(out["bib"].read_text("utf-8")).entries}
    for doi, p in truth.items():
        r, c, b = ris[doi], csl[doi], bib[doi]
        assert (r["volume"], r["number"], r["start_page"]) == (p["volume"], p["issue"], p["page"])
        assert (c["volume"], c["issue"], c["page"]) == (p["volume"], p["issue"], p["page"])
        assert (b["volume"], b["number"], b["pages"]) == (p["volume"], p["issue"], p["page"])
        assert [n for n in r.get("notes", []) if not n.startswith("scite:")] == notes_of(doi)
        assert c["note"].split("\n")[: len(notes_of(doi))] == notes_of(doi)
