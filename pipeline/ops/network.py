"""`citepipe graph` and `citepipe rank`: the store's citation network, with networkx.

The network is read from the store's own streams (`StoreStats.export` of `papers`,
`tallies` and `statements`, and the crawl's provenance), never from SQL written here:

- nodes: the papers of the selection, keyed by their normalised DOI, with their metadata,
  `retracted` (true when `papers.retracted` is 1 or the paper has a `Retracted` notice,
  false when it is 0 and no such notice) and scite's tallies (`NODE_ATTRIBUTES`); `seed`
  and `depth` say how the paper relates to the seeds (see `Selection`);
- edges: citing -> cited, one per pair, with the pair's statements counted by type
  (`EDGE_ATTRIBUTES`).

An attribute the store does not know (a title never seen, tallies of a paper whose own
report was never read, `retracted` of a paper scite's API never answered for) is left off
the node rather than written as 0, "" or false: GraphML and GEXF readers take a missing
attribute as unknown, and nothing false is written. Each attribute keeps one Python type
(`retracted`, `seed`: bool), so GraphML and GEXF declare it once with one type.

`rank` computes on the same graph: PageRank and in-degree within the network, the papers
most contradicted by statements in it, and the most co-cited and most bibliographically
coupled pairs (sparse products of the adjacency matrix, scipy's, so a pair count costs C
time, not a Python loop per pair).

networkx and scipy are the optional `network` extra: the crawler never needs them.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeAlias

from pipeline.app import Pipeline
from pipeline.errors import ConfigError
from pipeline.models import RETRACTED, StatementType
from pipeline.ops.output import replacing
from pipeline.runs.inputs import open_input, read_doi_lines

Graph: TypeAlias = Any  # a networkx.DiGraph of DOIs (networkx ships no type hints)
GRAPH_FORMATS = ("graphml", "gexf", "json", "edges-csv")
RANKINGS = ("pagerank", "in-degree", "contrasting", "co-citation", "coupling")
STATEMENT_TYPES: tuple[StatementType, ...] = ("supporting", "mentioning", "contrasting")
TALLY_ATTRIBUTES = ("supporting", "mentioning", "contrasting", "citing_publications")
NODE_ATTRIBUTES = (
    "title",
    "year",
    "journal",
    "retracted",
    *TALLY_ATTRIBUTES,
    "seed",
    "depth",
    "seeds",
)
EDGE_ATTRIBUTES = ("statements", *STATEMENT_TYPES)


def require_networkx() -> Any:
    """The networkx module, or a ConfigError saying which extra to install."""
    try:
        import networkx
        import scipy  # noqa: F401  (PageRank and the pair counts run on scipy)
    except ImportError:
        raise ConfigError(
            "graph and rank need networkx and scipy: pip install -e '.[network]'"
        ) from None
    return networkx


@dataclass(frozen=True, slots=True)
class Selection:
    """Which part of the store's network to take.

    With no `seeds`, every paper of the store; `seed` and `depth` then come from the
    crawl's provenance (left off papers it never recorded). With `seeds`, the seeds and
    the papers that cite them, directly (depth 1) or through others, up to `depth` citing
    steps (None: no limit), the way `--depth` snowballs a crawl; `depth` is the fewest
    steps. Edges: the pairs with at least `min_statements` statements (of `type` when
    given) among the selected papers; the selection itself follows every pair, so the
    filters never change which papers are in it.
    """

    seeds: frozenset[str] | None = None
    depth: int | None = None
    min_statements: int = 1
    type: StatementType | None = None

    def __post_init__(self) -> None:
        if self.depth is not None and self.depth < 0:
            raise ConfigError(f"--depth {self.depth}: must be 0 or more")
        if self.min_statements < 1:
            raise ConfigError(f"--min-statements {self.min_statements}: must be 1 or more")
        if self.depth is not None and self.seeds is None:
            raise ConfigError("--depth: needs --seeds FILE (the papers to count from)")


def read_seeds(name: str) -> frozenset[str]:
    """The DOIs of a seed list (a file, or `-`), as backfill reads its input; a bad line
    is a ConfigError naming its number, so a typo never narrows the graph in silence."""
    dois: set[str] = set()
    with open_input(name) as lines:
        for line in read_doi_lines(lines):
            if line.doi is None:
                raise ConfigError(
                    f"--seeds {name} line {line.lineno}: {line.problem or 'not a DOI'}: "
                    f"{line.raw[:200]!r}"
                )
            dois.add(line.doi)
    if not dois:
        raise ConfigError(f"--seeds {name}: no DOIs in it")
    return frozenset(dois)


@dataclass(slots=True)
class _Pair:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EDGE_ATTRIBUTES, 0))


async def read_network(p: Pipeline, selection: Selection) -> Graph:
    """The selection's citation network as a networkx DiGraph (see the module docstring)."""
    nx = require_networkx()
    papers: dict[str, dict[str, Any]] = {}
    async for row in p.store.export("papers"):
        papers[row["doi"]] = {k: row[k] for k in ("title", "year", "journal")}
        if row["retracted"] is not None:  # 1 or 0 from scite's API; NULL: unknown
            papers[row["doi"]]["retracted"] = bool(row["retracted"])
    async for row in p.store.export("notices"):  # a Retracted notice says so too
        if row["status"] == RETRACTED and row["doi"] in papers:
            papers[row["doi"]]["retracted"] = True
    async for row in p.store.export("tallies"):
        if row["doi"] in papers:
            papers[row["doi"]].update({k: row[k] for k in TALLY_ATTRIBUTES})
    pairs: dict[tuple[str, str], _Pair] = {}
    async for row in p.store.export("statements"):
        pair = pairs.get((row["citing_doi"], row["cited_doi"]))
        if pair is None:
            pair = pairs[(row["citing_doi"], row["cited_doi"])] = _Pair()
        pair.counts["statements"] += 1
        if row["type"] in STATEMENT_TYPES:
            pair.counts[row["type"]] += 1
    provenance = await p.store.provenance()  # doi -> {seed: depth}

    if selection.seeds is None:
        chosen = set(papers)
        reach = {doi: min(by_seed.values()) for doi, by_seed in provenance.items()}
        seeds = {doi for doi, by_seed in provenance.items() if by_seed.get(doi) == 0}
    else:
        missing = selection.seeds - papers.keys()
        if missing == selection.seeds:
            raise ConfigError("--seeds: none of its DOIs is in the store")
        seeds = set(selection.seeds & papers.keys())
        reach = citing_reach(seeds, pairs, selection.depth)
        chosen = set(reach)

    graph: Graph = nx.DiGraph()
    for doi in sorted(chosen):
        attrs = {k: v for k, v in papers[doi].items() if v is not None}
        if selection.seeds is not None or doi in provenance:
            attrs["seed"] = doi in seeds
        if doi in reach:
            attrs["depth"] = reach[doi]
        if provenance.get(doi):
            attrs["seeds"] = " ".join(sorted(provenance[doi]))
        graph.add_node(doi, **attrs)
    wanted = selection.type or "statements"
    for (citing, cited), pair in sorted(pairs.items()):
        if citing in chosen and cited in chosen and pair.counts[wanted] >= selection.min_statements:
            graph.add_edge(citing, cited, **pair.counts)
    return graph


def citing_reach(
    seeds: Iterable[str], pairs: Iterable[tuple[str, str]], depth: int | None
) -> dict[str, int]:
    """Each paper within `depth` citing steps of a seed (seeds at 0), by the fewest steps:
    a breadth-first walk from each cited paper to the papers citing it."""
    citers: dict[str, list[str]] = {}
    for citing, cited in pairs:
        citers.setdefault(cited, []).append(citing)
    reach = dict.fromkeys(seeds, 0)
    queue = deque(reach)
    while queue:
        doi = queue.popleft()
        if depth is not None and reach[doi] >= depth:
            continue
        for citer in citers.get(doi, ()):
            if citer not in reach:
                reach[citer] = reach[doi] + 1
                queue.append(citer)
    return reach


# ---------------------------------------------------------------- writing


@contextmanager
def _output(path: str | None, binary: bool) -> Iterator[IO[Any]]:
    """Standard output, or a new file written beside `path` and renamed into place once
    whole (a failure leaves no half file)."""
    if not path:
        yield sys.stdout.buffer if binary else sys.stdout
        sys.stdout.flush()
        return
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"--output {path}: is a directory")
    try:
        with (
            replacing(target) as partial,
            open(partial, "wb" if binary else "w", **({} if binary else _TEXT)) as out,
        ):
            yield out
    except OSError as exc:
        raise ConfigError(f"--output {path}: {exc.strerror or exc}") from None


_TEXT: dict[str, Any] = {"encoding": "utf-8", "newline": ""}


def write_graph(graph: Graph, fmt: str, output: str | None) -> None:
    """The graph in one of `GRAPH_FORMATS` to `output` (standard output when None)."""
    nx = require_networkx()
    if fmt not in GRAPH_FORMATS:
        raise ConfigError(f"--format {fmt}: one of {', '.join(GRAPH_FORMATS)}")
    if fmt in ("graphml", "gexf"):
        with _output(output, binary=True) as out:
            if fmt == "graphml":
                nx.write_graphml(graph, out, encoding="utf-8")
            else:
                nx.write_gexf(graph, out, encoding="utf-8")
        return
    with _output(output, binary=False) as out:
        if fmt == "json":
            data = nx.node_link_data(graph, edges="edges")
            json.dump(data, out, ensure_ascii=False, indent=1)
            out.write("\n")
        else:
            writer = csv.writer(out)
            writer.writerow(("source", "target", *EDGE_ATTRIBUTES))
            for citing, cited, attrs in graph.edges(data=True):
                writer.writerow((citing, cited, *(attrs[k] for k in EDGE_ATTRIBUTES)))


# ---------------------------------------------------------------- ranking


@dataclass(frozen=True, slots=True)
class Ranked:
    """One line of `rank`: a paper (`dois` has one DOI) or a pair (two), its score, and
    the titles known."""

    dois: tuple[str, ...]
    score: float
    titles: tuple[str | None, ...]
    detail: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dois": list(self.dois),
            "score": self.score,
            "titles": list(self.titles),
            **self.detail,
        }


def rank(graph: Graph, by: str, limit: int) -> list[Ranked]:
    """The top `limit` papers or pairs of the network by `by` (one of `RANKINGS`); ties
    in DOI order, so the same store always ranks the same."""
    nx = require_networkx()
    if by not in RANKINGS:
        raise ConfigError(f"--by {by}: one of {', '.join(RANKINGS)}")
    if limit < 1:
        raise ConfigError(f"--limit {limit}: must be 1 or more")

    def title(doi: str) -> str | None:
        value = graph.nodes[doi].get("title")
        return None if value is None else str(value)

    def top(scores: Mapping[str, float], detail: Any = None) -> list[Ranked]:
        best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [Ranked((d,), s, (title(d),), detail(d) if detail else {}) for d, s in best if s > 0]

    if graph.number_of_nodes() == 0:
        return []
    if by == "pagerank":
        pr = nx.pagerank(graph, weight=None)
        return top(pr, lambda d: {"in_degree": graph.in_degree(d)})
    if by == "in-degree":
        return top({d: float(k) for d, k in graph.in_degree()})
    if by == "contrasting":
        against = {
            d: float(sum(a["contrasting"] for _, _, a in graph.in_edges(d, data=True)))
            for d in graph
        }
        return top(against, lambda d: {"contrasting_tally": graph.nodes[d].get("contrasting")})
    return _pairs(graph, by == "co-citation", limit, title)


def _pairs(graph: Graph, cocited: bool, limit: int, title: Any) -> list[Ranked]:
    """The pairs most co-cited (cited by the same papers: A^T A) or most coupled (citing
    the same papers: A A^T), A the network's 0/1 adjacency matrix (citing rows)."""
    nx = require_networkx()
    import scipy.sparse as sp

    nodes = sorted(graph)
    a = nx.to_scipy_sparse_array(graph, nodelist=nodes, weight=None, format="csr")
    shared = (a.T @ a) if cocited else (a @ a.T)
    upper = sp.triu(shared, k=1).tocoo()
    found = sorted(
        zip(upper.data.tolist(), upper.row.tolist(), upper.col.tolist(), strict=True),
        key=lambda t: (-t[0], nodes[t[1]], nodes[t[2]]),
    )[:limit]
    return [
        Ranked((nodes[i], nodes[j]), float(n), (title(nodes[i]), title(nodes[j])))
        for n, i, j in found
    ]
