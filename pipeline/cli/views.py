"""What people read after the crawl: one paper (`citepipe show`), search hits
(`citepipe search`), as rich tables on a terminal or as JSON, and the tally history as a
picture (`show --plot`, matplotlib: the optional `plot` extra).

Pure presentation: the values come from the store's `ResultReader` role.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from pipeline.errors import ConfigError
from pipeline.models import PaperView, SearchHit
from pipeline.runs.summary import plural

TALLY_TYPES = ("supporting", "mentioning", "contrasting")
SNIPPET_WIDTH = 200  # characters of a snippet shown in a table (JSON has it whole)


def paper_json(view: PaperView) -> dict[str, Any]:
    """`show --json`: every field, snippets whole."""
    return asdict(view)


def hits_json(hits: Sequence[SearchHit]) -> list[dict[str, Any]]:
    """`search --json`: one object per matching statement."""
    return [asdict(h) for h in hits]


def _short(text: str | None, width: int = SNIPPET_WIDTH) -> str:
    if not text:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


def _value(v: Any) -> str:
    return "unknown" if v is None else str(v)


def collected_text(view: PaperView) -> str:
    """`47 of 49 (the API's count)`: the statements stored for the paper's report against
    the API's `total`, else against the report's own count, else alone."""
    n = view.collected_statements
    t = view.tallies or {}
    if t.get("api_statements") is not None:
        return f"{n} of {t['api_statements']} (the API's count)"
    if t.get("citation_statements") is not None:
        return f"{n} of {t['citation_statements']} (the report's count)"
    return f"{n} collected"


def paper_renderable(view: PaperView) -> RenderableType:
    """`show` on a terminal: metadata, tallies with history, facets, statements."""
    p = view.paper
    meta = Table.grid(padding=(0, 2))
    meta.add_column(style="bold")
    meta.add_column()
    meta.add_row("DOI", p["doi"])
    for label, key in (
        ("title", "title"),
        ("journal", "journal"),
        ("year", "year"),
        ("published", "publication_date"),
        ("report", "report_url"),
        ("last crawled", "last_crawled_at"),
    ):
        if p.get(key) is not None:
            meta.add_row(label, str(p[key]))
    if view.authors:
        meta.add_row("authors", ", ".join(view.authors))
    if view.tallies is not None or view.collected_statements:
        meta.add_row("statements", collected_text(view))
    if p.get("incomplete"):  # the reason the store keeps: a dead page, a cut, a shortfall
        meta.add_row("incomplete", f"yes: {p.get('incomplete_reason') or 'no reason stored'}")
    if p.get("abstract"):
        meta.add_row("abstract", _short(p["abstract"], 400))
    parts: list[RenderableType] = [meta]

    tallies = Table(title="tallies (history, oldest first)", title_justify="left")
    tallies.add_column("observed (UTC)", no_wrap=True)
    for name in ("support", "mention", "contrast", "citing", "stmts", "refs"):
        tallies.add_column(name, justify="right")
    rows = list(view.history)
    if view.tallies is not None and (not rows or _tally_key(rows[-1]) != _tally_key(view.tallies)):
        rows.append(view.tallies)
    for row in rows:
        tallies.add_row(
            _when(row["observed_at"]),
            *(
                _value(row[k])
                for k in (
                    *TALLY_TYPES,
                    "citing_publications",
                    "citation_statements",
                    "references_count",
                )
            ),
        )
    parts.append(tallies if rows else Text("no tallies stored yet"))

    if view.facets:
        facets = Table(title="facets", title_justify="left")
        facets.add_column("facet")
        facets.add_column("label")
        facets.add_column("count", justify="right")
        for f in view.facets:
            facets.add_row(f["facet"], f["label"], _value(f["count"]))
        parts.append(facets)

    statements = Table(
        title=f"statements citing it ({len(view.statements)} shown)", title_justify="left"
    )
    statements.add_column("type", no_wrap=True)
    statements.add_column("section", max_width=14)
    statements.add_column("citing", max_width=20)
    statements.add_column("snippet", ratio=1, min_width=16)
    for s in view.statements:
        citing = s["citing_doi"] + (
            f"\n{_short(s['citing_title'], 60)}" if s["citing_title"] else ""
        )
        statements.add_row(s["type"] or "", s["section"] or "", citing, _short(s["snippet"]))
    parts.append(statements)
    if view.citing_statements:
        n = view.citing_statements
        parts.append(Text(f"it cites others in {n} stored statement{'s' if n != 1 else ''}"))
    return Group(*parts)


def _when(stamp: Any) -> str:
    """An ISO time to the minute, for a table cell."""
    return str(stamp)[:16].replace("T", " ")


def _tally_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[k] for k in TALLY_TYPES)


def hits_renderable(query: str, hits: Sequence[SearchHit], *, more: bool = False) -> RenderableType:
    """`search` on a terminal: the matches highlighted; `more`: others matched too."""
    if not hits:
        return Text(f"no statement matches {query!r}")
    title = f"{plural(len(hits), 'statement')} matching {query!r}"
    if more:
        title = f"the best {title} (more match: raise --limit to see them)"
    table = Table(title=title, title_justify="left")
    table.add_column("cited", max_width=20)
    table.add_column("citing", max_width=18)
    table.add_column("type", no_wrap=True)
    table.add_column("snippet", ratio=1, min_width=16)
    for h in hits:
        snippet = Text()
        for i, part in enumerate(h.excerpt.split("[")):
            if i == 0:
                snippet.append(part)
                continue
            hit, _, rest = part.partition("]")
            snippet.append(f"[{hit}]", style="bold yellow")  # brackets stay: no colour in a pipe
            snippet.append(rest)
        table.add_row(h.cited_doi, h.citing_doi, h.type or "", snippet)
    return table


# Each series its own line style and marker, so that two with equal values (supporting
# and contrasting both 0, say) both show: a wide solid line under a dashed one, under dots.
_SERIES_STYLES = (
    {"color": "tab:green", "linestyle": "-", "linewidth": 4.0, "marker": "o", "markersize": 9},
    {"color": "tab:blue", "linestyle": "--", "linewidth": 2.5, "marker": "s", "markersize": 6},
    {"color": "tab:red", "linestyle": ":", "linewidth": 2.0, "marker": "^", "markersize": 4},
)
SINGLE_DAY_SPAN = 1.0  # days shown either side of a history of one moment


def plot_history(view: PaperView, path: str | Path) -> Path:
    """Draw supporting, mentioning and contrasting over time to a PNG file.

    The history holds a row each time the tallies changed; the line is drawn as steps
    up to the last observation. Needs matplotlib (`make extras`).
    """
    plt = _pyplot()
    target = Path(path)
    fig = draw_history(view)
    try:
        try:
            fig.savefig(target, format="png")
        except OSError as exc:
            raise ConfigError(f"--plot {target}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
    return target


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(
            "--plot needs matplotlib: pip install -e '.[plot]' in the checkout (or make extras)"
        ) from None
    return plt


def draw_history(view: PaperView) -> Any:
    """The tally history as a matplotlib Figure (the caller saves and closes it).

    Dates on the x axis as `2026-01-31` (the month shown); one observation gets a span
    of two days around it, not matplotlib's default of years."""
    plt = _pyplot()
    from matplotlib.dates import AutoDateLocator, DateFormatter, date2num

    rows = list(view.history)
    if view.tallies is not None:
        rows.append(view.tallies)  # the latest observation closes the last step
    if not rows:
        raise ConfigError(f"--plot: {view.paper['doi']} has no tallies stored yet")
    times = [datetime.fromisoformat(str(r["observed_at"]).replace("Z", "+00:00")) for r in rows]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    x = date2num(times)  # type: ignore[no-untyped-call]
    for kind, style in zip(TALLY_TYPES, _SERIES_STYLES, strict=True):
        values = [float("nan") if r[kind] is None else float(r[kind]) for r in rows]
        ax.step(x, values, where="post", label=kind, **style)
    if max(x) - min(x) < SINGLE_DAY_SPAN:
        ax.set_xlim(min(x) - SINGLE_DAY_SPAN, max(x) + SINGLE_DAY_SPAN)
    locator = AutoDateLocator(minticks=2, maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))  # type: ignore[no-untyped-call]
    ax.set_title(f"citation tallies of {view.paper['doi']}")
    ax.set_xlabel("observed (UTC)")
    ax.set_ylabel("citation statements")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return fig
