"""The commands over the store's citation network: graph (for Gephi, VOSviewer, networkx,
igraph) and rank (PageRank, in-degree, contrasting, co-citation, coupling). Neither
creates a store; both need the `network` extra (networkx, scipy)."""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.cli._base import Command, Invocation, print_rich
from pipeline.ops import network
from pipeline.ops.output import refuse_store
from pipeline.runs.summary import EXIT_OK, plural


def selection_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--seeds",
        metavar="FILE",
        help="only these DOIs (one a line, as backfill reads them; - for standard input) "
        "and the papers citing them (default: the whole store)",
    )
    p.add_argument(
        "--depth",
        type=int,
        metavar="N",
        help="with --seeds: at most N citing steps from a seed (default: no limit)",
    )
    p.add_argument(
        "--min-statements",
        type=int,
        default=1,
        metavar="K",
        help="an edge needs at least K statements of its pair (of --type) (default 1)",
    )
    p.add_argument(
        "--type",
        choices=network.STATEMENT_TYPES,
        help="count only statements of this type for --min-statements",
    )


def selection(args: argparse.Namespace) -> network.Selection:
    seeds = network.read_seeds(args.seeds) if args.seeds else None
    return network.Selection(seeds, args.depth, args.min_statements, args.type)


def graph_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--format",
        choices=network.GRAPH_FORMATS,
        default="graphml",
        help="graphml and gexf (Gephi), json (networkx node-link, d3), edges-csv "
        "(VOSviewer, igraph) (default graphml)",
    )
    p.add_argument("--output", "-o", help="file to write (default standard output)")
    selection_arguments(p)


async def graph(inv: Invocation) -> int:
    args = inv.args
    network.require_networkx()
    chosen = selection(args)  # a bad seed list fails before the store is opened
    if args.output:  # and so does an output that is the store
        refuse_store(args.output, inv.settings.db)
    async with inv.pipeline() as p:
        g = await network.read_network(p, chosen)
    network.write_graph(g, args.format, args.output)
    print(
        f"graph: {plural(g.number_of_nodes(), 'paper')}, "
        f"{plural(g.number_of_edges(), 'citing pair')}"
        + (f" written to {args.output}" if args.output else ""),
        file=sys.stderr,
    )
    return EXIT_OK


def rank_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--by",
        choices=network.RANKINGS,
        default="pagerank",
        help="pagerank and in-degree (within the network), contrasting (statements "
        "against it), co-citation (pairs cited by the same papers), coupling (pairs "
        "citing the same papers) (default pagerank)",
    )
    p.add_argument("--limit", type=int, default=20, help="lines at most (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON")
    selection_arguments(p)


async def rank(inv: Invocation) -> int:
    args = inv.args
    network.require_networkx()
    chosen = selection(args)
    async with inv.pipeline() as p:
        g = await network.read_network(p, chosen)
    ranked = network.rank(g, args.by, args.limit)
    if args.json:
        print(json.dumps([r.as_dict() for r in ranked], indent=1, ensure_ascii=False))
    else:
        print_rich(_table(args.by, ranked))
    return EXIT_OK


def _table(by: str, ranked: list[network.Ranked]) -> object:
    """Papers: rank, score, DOI, title. Pairs: rank, count and the two DOIs (their titles
    are in --json)."""
    from rich.table import Table

    pairs = by in ("co-citation", "coupling")
    table = Table(title=f"by {by}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("score" if by == "pagerank" else "count", justify="right")
    if pairs:
        table.add_column("DOI 1", overflow="fold")
        table.add_column("DOI 2", overflow="fold")
    else:
        table.add_column("DOI", no_wrap=True)
        table.add_column("title", max_width=60)
    for n, r in enumerate(ranked, start=1):
        score = f"{r.score:.4f}" if by == "pagerank" else f"{r.score:.0f}"
        cells = list(r.dois) if pairs else [r.dois[0], r.titles[0] or ""]
        table.add_row(str(n), score, *cells)
    return table


COMMANDS = (
    Command(
        "graph",
        "the citation network as GraphML, GEXF, node-link JSON or an edge list",
        "Write the store's citation network (citing -> cited, papers with their "
        "tallies, pairs with their statements by type) for Gephi, VOSviewer, networkx "
        "or igraph. It never creates a store. Needs the `network` extra.",
        graph,
        graph_arguments,
    ),
    Command(
        "rank",
        "the network's central papers and most co-cited or coupled pairs",
        "Rank the papers of the store's citation network (or of --seeds and their "
        "citers). It never creates a store. Needs the `network` extra.",
        rank,
        rank_arguments,
    ),
)
