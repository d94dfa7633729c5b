"""graph and rank on small hand-made networks whose answers are known by hand, in a real
SQLite store (rows put in with the store's own `import_rows`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import networkx as nx
import pytest

from pipeline.app import open_pipeline
from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.ops import network
from pipeline.ops.network import Selection
from pipeline.store.sqlite import SQLiteStore
from pipeline.store.tables import COLUMNS

WHEN = "2026-12-01T00:00:00.000000Z"


async def fill(
    store: SQLiteStore,
    papers: dict[str, str | None],
    statements: Sequence[tuple[str, str, str | None]],
    tallies: dict[str, tuple[int, int, int]] | None = None,
    retracted: dict[str, int | None] | None = None,
) -> None:
    """Papers (doi -> title) and statements (citing, cited, type), as a crawl leaves them."""
    rows = []
    for doi, title in papers.items():
        row = dict.fromkeys(COLUMNS["papers"])
        row.update(doi=doi, title=title, first_seen_at=WHEN, incomplete=0)
        row.update(retracted=(retracted or {}).get(doi))
        rows.append(row)
    await store.import_rows("papers", rows)
    stmts = []
    for i, (citing, cited, kind) in enumerate(statements, start=1):
        row = dict.fromkeys(COLUMNS["statements"])
        row.update(
            id=i,
            citing_doi=citing,
            cited_doi=cited,
            snippet=f"statement {i}",
            snippet_hash=f"h{i}",
            type=kind,
            first_seen_at=WHEN,
            last_seen_at=WHEN,
        )
        stmts.append(row)
    await store.import_rows("statements", stmts)
    tally_rows = []
    for doi, (s, m, c) in (tallies or {}).items():
        row = dict.fromkeys(COLUMNS["tallies"])
        row.update(doi=doi, supporting=s, mentioning=m, contrasting=c, observed_at=WHEN)
        tally_rows.append(row)
    if tally_rows:
        await store.import_rows("tallies", tally_rows)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(str(tmp_path / "n.sqlite"))
    await s.open()
    yield s
    await s.close()


async def graph_of(store: SQLiteStore, selection: Selection | None = None) -> network.Graph:
    async with open_pipeline(Settings(), store=store) as p:
        return await network.read_network(p, selection or Selection())


# Five papers: C and D cite both A and B, E cites A only.
FIVE = {d: f"Paper {d}" for d in "ABCDE"}
FIVE_PAIRS = [
    ("C", "A", "supporting"),
    ("C", "A", "contrasting"),
    ("C", "B", "mentioning"),
    ("D", "A", "contrasting"),
    ("D", "B", "mentioning"),
    ("D", "B", "mentioning"),
    ("E", "A", None),
]


def counts(statements: int, supporting: int, mentioning: int, contrasting: int) -> dict[str, int]:
    return {
        "statements": statements,
        "supporting": supporting,
        "mentioning": mentioning,
        "contrasting": contrasting,
    }


async def test_nodes_edges_and_their_counts(store: SQLiteStore) -> None:
    await fill(store, {**FIVE, "F": None}, FIVE_PAIRS, {"A": (3, 40, 1)})
    g = await graph_of(store)
    assert set(g) == {*"ABCDEF"}  # F: no title, no edge, still a paper of the store
    assert set(g.edges) == {("C", "A"), ("C", "B"), ("D", "A"), ("D", "B"), ("E", "A")}
    assert g.edges["C", "A"] == {
        "statements": 2,
        "supporting": 1,
        "mentioning": 0,
        "contrasting": 1,
    }
    assert g.edges["D", "B"]["mentioning"] == 2
    assert g.edges["E", "A"] == {
        "statements": 1,
        "supporting": 0,
        "mentioning": 0,
        "contrasting": 0,
    }
    assert g.nodes["A"] == {"title": "Paper A", "supporting": 3, "mentioning": 40, "contrasting": 1}
    assert g.nodes["F"] == {}  # unknown stays unknown: no attribute, never 0 or ""


async def test_known_rankings_of_the_five(store: SQLiteStore) -> None:
    await fill(store, FIVE, FIVE_PAIRS)
    g = await graph_of(store)
    by_degree = network.rank(g, "in-degree", 10)
    assert [(r.dois, r.score) for r in by_degree] == [(("A",), 3.0), (("B",), 2.0)]
    cocited = network.rank(g, "co-citation", 10)
    assert [(r.dois, r.score) for r in cocited] == [(("A", "B"), 2.0)]  # by C and D
    coupled = network.rank(g, "coupling", 10)
    assert [(r.dois, r.score) for r in coupled] == [
        (("C", "D"), 2.0),  # both cite A and B
        (("C", "E"), 1.0),
        (("D", "E"), 1.0),
    ]
    against = network.rank(g, "contrasting", 10)
    assert [(r.dois, r.score) for r in against] == [(("A",), 2.0)]
    assert network.rank(g, "coupling", 1)[0].titles == ("Paper C", "Paper D")


async def test_pagerank_of_a_star_is_known(store: SQLiteStore) -> None:
    """X, Y and Z cite H. With damping 0.85 and H's rank spread evenly (it cites nothing):
    h = 0.15/4 + 0.85*3l + 0.85h/4 and l = 0.15/4 + 0.85h/4 give h = 71/131, l = 20/131."""
    await fill(store, dict.fromkeys("HXYZ", "t"), [(x, "H", "mentioning") for x in "XYZ"])
    ranked = network.rank(await graph_of(store), "pagerank", 10)
    assert ranked[0].dois == ("H",)
    assert ranked[0].score == pytest.approx(71 / 131, abs=1e-5)
    assert [r.dois[0] for r in ranked[1:]] == ["X", "Y", "Z"]  # ties in DOI order
    assert all(r.score == pytest.approx(20 / 131, abs=1e-5) for r in ranked[1:])


async def test_type_and_min_statements_choose_the_edges(store: SQLiteStore) -> None:
    await fill(store, FIVE, FIVE_PAIRS)
    contrasting = await graph_of(store, Selection(type="contrasting"))
    assert set(contrasting.edges) == {("C", "A"), ("D", "A")}
    assert set(contrasting) == {*"ABCDE"}  # the papers stay; only edges are chosen
    two = await graph_of(store, Selection(min_statements=2))
    assert set(two.edges) == {("C", "A"), ("D", "B")}


async def test_seeds_and_depth_follow_citing_steps(store: SQLiteStore) -> None:
    """A <- B <- C <- D (each cites the one before), and E cites nothing here."""
    chain = [("B", "A", "mentioning"), ("C", "B", "mentioning"), ("D", "C", "mentioning")]
    await fill(store, dict.fromkeys("ABCDE", "t"), chain)
    seeds = frozenset({"A"})
    one = await graph_of(store, Selection(seeds, depth=1))
    assert set(one) == {"A", "B"} and set(one.edges) == {("B", "A")}
    assert one.nodes["A"]["seed"] is True and one.nodes["A"]["depth"] == 0
    assert one.nodes["B"]["seed"] is False and one.nodes["B"]["depth"] == 1
    every = await graph_of(store, Selection(seeds))
    assert {d: every.nodes[d]["depth"] for d in every} == {"A": 0, "B": 1, "C": 2, "D": 3}
    only = await graph_of(store, Selection(frozenset({"C"}), depth=0))
    assert set(only) == {"C"}
    with pytest.raises(ConfigError, match="none of its DOIs"):
        await graph_of(store, Selection(frozenset({"10.1/nowhere"})))


def test_bad_selections_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--depth: needs --seeds"):
        Selection(depth=1)
    with pytest.raises(ConfigError, match="--min-statements 0"):
        Selection(min_statements=0)
    seeds = tmp_path / "seeds.txt"
    seeds.write_text("10.1000/one\nnot-a-doi\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 2: .*'not-a-doi'"):
        network.read_seeds(str(seeds))
    seeds.write_text("doi:10.1000/One\n# a comment\n", encoding="utf-8")
    assert network.read_seeds(str(seeds)) == {"10.1000/one"}


async def test_every_format_reads_back(store: SQLiteStore, tmp_path: Path) -> None:
    titles = {"A": 'Braces {x} & "q" <tag> Zürich 50%', "B": None, "C": "c"}
    await fill(store, titles, [("C", "A", "supporting"), ("C", "B", None)])
    g = await graph_of(store)
    for fmt, read in (("graphml", nx.read_graphml), ("gexf", nx.read_gexf)):
        path = tmp_path / f"g.{fmt}"
        network.write_graph(g, fmt, str(path))
        back = read(path)
        assert set(back) == {"A", "B", "C"} and set(back.edges) == {("C", "A"), ("C", "B")}
        assert back.nodes["A"]["title"] == titles["A"]
        assert int(back.edges["C", "A"]["supporting"]) == 1
    path = tmp_path / "g.json"
    network.write_graph(g, "json", str(path))
    import json

    back = nx.node_link_graph(json.loads(path.read_text("utf-8")), edges="edges")
    assert set(back.edges) == {("C", "A"), ("C", "B")}
    path = tmp_path / "e.csv"
    network.write_graph(g, "edges-csv", str(path))
    assert path.read_text("utf-8").splitlines() == [
        "source,target,statements,supporting,mentioning,contrasting",
        "C,A,1,1,0,0",
        "C,B,1,0,0,0",
    ]
    assert not list(tmp_path.glob(".*partial"))


def test_rank_of_nothing_is_empty() -> None:
    assert network.rank(nx.DiGraph(), "pagerank", 5) == []
    with pytest.raises(ConfigError, match="--limit 0"):
        network.rank(nx.DiGraph(), "pagerank", 0)


async def test_retracted_is_known_true_false_or_left_off(
    store: SQLiteStore, tmp_path: Path
) -> None:
    """`retracted` from papers.retracted or a Retracted notice; unknown is no attribute,
    and GraphML and GEXF declare it once, as a boolean."""
    flags = {"A": 1, "B": 0, "C": None, "D": 0, "E": None}
    papers = {d: f"Paper {d}" for d in "ABCDE"}
    await fill(store, papers, [("B", "A", None), ("E", "A", None)], retracted=flags)
    notice = dict.fromkeys(COLUMNS["notices"])
    notice.update(first_seen_at=WHEN, last_seen_at=WHEN, date="2018-07-25", notice_doi="")
    await store.import_rows(
        "notices",
        [
            {**notice, "doi": "D", "status": "Retracted"},  # the notice wins over a 0
            {**notice, "doi": "E", "status": "Retracted"},  # and tells an unknown
            {**notice, "doi": "C", "status": "Has erratum"},  # not a retraction: unknown
        ],
    )
    g = await graph_of(store)
    want = {"A": True, "B": False, "D": True, "E": True}
    assert {d: a["retracted"] for d, a in g.nodes(data=True) if "retracted" in a} == want
    for fmt, read in (("graphml", nx.read_graphml), ("gexf", nx.read_gexf)):
        path = tmp_path / f"r.{fmt}"
        network.write_graph(g, fmt, str(path))
        back = read(path)
        assert {d: a["retracted"] for d, a in back.nodes(data=True) if "retracted" in a} == want
        assert all(type(a["retracted"]) is bool for d, a in back.nodes(data=True) if d != "C")
    text = (tmp_path / "r.graphml").read_text("utf-8")
    assert 'attr.name="retracted" attr.type="boolean"' in text
    assert 'title="retracted" type="boolean"' in (tmp_path / "r.gexf").read_text("utf-8")
