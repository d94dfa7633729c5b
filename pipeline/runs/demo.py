"""`citepipe demo`: the local citation site on a free loopback port, crawled into a fresh
demo store. The only run that imports `citesite` (lazily: the crawler never needs it).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.app import Pipeline, open_pipeline
from pipeline.clock import Clock
from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.normalise import normalise_doi
from pipeline.ops.changes import Window, collect, render_short
from pipeline.runs.commands import backfill, crawl
from pipeline.runs.lifecycle import RunUI, Stop
from pipeline.runs.summary import RunSummary
from pipeline.store.sqlite_file import is_demo_store

if TYPE_CHECKING:
    from citesite.server import CitationSite

DEMO_DB = "data/demo.sqlite"
# What `demo` sets unless a flag says otherwise: no politeness delay against its own
# loopback site, quick retries. (base_url is the site it starts; the store is `demo_db`.)
DEMO_DEFAULTS: dict[str, Any] = {
    "request_delay": 0.0,
    "per_host_concurrency": 8,
    "retry_base": 0.2,
}
# The demo's refresh intervals: every report is due again right after the backfill, so
# its crawl after the site's next epoch refreshes them all (the unchanged as 304s).
DEMO_REFRESH = 0.001


def demo_db(settings: Settings) -> str:
    """The demo's store: `db` when it was set away from its default (a flag, the config
    file or `CITEPIPE_DB`, as the container image sets it to its data volume), else the
    demo's own `data/demo.sqlite`, so a plain `citepipe demo` never touches the real
    store's default file."""
    return settings.db if settings.db != Settings().db else DEMO_DB


def demo_settings(settings: Settings, base_url: str) -> Settings:
    """The demo's settings: the given ones, pointed at the local site it started (which
    serves the API too)."""
    return dataclasses.replace(settings, base_url=base_url, api_url=base_url).validate()


def prepare_demo_db(db: str, *, force: bool) -> None:
    """A demo starts empty (its site has a new port each run, so old jobs could not run);
    it removes only a store an earlier demo made, unless `force`."""
    path = db.removeprefix("sqlite:///")
    if "://" in path:
        raise ConfigError(f"db: the demo needs a SQLite file path, not {db!r}")
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"db: {path} is a directory")
    if target.exists() and not force and not is_demo_store(path):
        raise ConfigError(
            f"db: {path} is not a store made by `citepipe demo`; refusing to overwrite it "
            "(choose another --db, or --force)"
        )
    for suffix in ("", "-wal", "-shm"):
        try:
            Path(path + suffix).unlink(missing_ok=True)
        except OSError as exc:
            raise ConfigError(f"db: cannot remove {path + suffix}: {exc.strerror}") from None


async def demo(
    settings: Settings,
    *,
    force: bool = False,
    stop: Stop | None = None,
    ui: RunUI | None = None,
    clock: Clock | None = None,
) -> RunSummary:
    """Start the local citation site on a free loopback port, backfill its DOIs into a
    fresh demo store, and return the summary with a few stored statements as epilogue."""
    from citesite.dataset import demo_dataset_path, load_dataset
    from citesite.server import CitationSite

    ui = ui or RunUI()
    settings = dataclasses.replace(settings, db=demo_db(settings))
    prepare_demo_db(settings.db, force=force)
    reports = load_dataset(demo_dataset_path())
    async with CitationSite(reports, host="127.0.0.1", port=0) as site:
        s = dataclasses.replace(
            demo_settings(settings, site.base_url),
            refresh_interval=DEMO_REFRESH,
            refresh_min=DEMO_REFRESH,
            refresh_max=DEMO_REFRESH,
        )
        ui.message(f"local citation site at {site.base_url} serving {len(reports)} reports")
        async with open_pipeline(s, clock=clock) as p:
            summary = await backfill(p, list(reports), stop=stop, ui=ui, command="demo")
            seed = normalise_doi("10.1038/bmt.2012.184")
            summary.epilogue.append(f"\na few statements citing {seed}:")
            shown = 0
            async for row in p.store.export("statements"):
                if row["cited_doi"] == seed and shown < 3:
                    summary.epilogue.append(
                        f"  [{row['type']}, {row['section'] or 'no section'}] "
                        f"{row['citing_doi']}: {str(row['snippet'])[:150]}"
                    )
                    shown += 1
            if s.source != "report":
                notices = [row async for row in p.store.export("notices")]
                retracted = sum(1 for n in notices if n["status"] == "Retracted")
                summary.epilogue.append(
                    f"\nfrom scite's API: {len(notices)} editorial notices, "
                    f"{retracted} of them retractions (table notices)"
                )
            if summary.exit_code == 0 and not (stop is not None and stop.requested):
                summary.epilogue.extend(await _after_next_epoch(p, site, stop, ui))
            summary.epilogue.append(
                f"\nstored in {s.db}; try: sqlite3 {s.db} "
                "'select type, count(*) from statements group by type'"
            )
    return summary


async def _after_next_epoch(
    p: Pipeline, site: CitationSite, stop: Stop | None, ui: RunUI
) -> list[str]:
    """The site moves to its next epoch (citesite/epochs.py), a crawl refreshes the store,
    and the short digest of that crawl says what it found (docs/changes.md)."""
    epoch = site.next_epoch()
    ui.message(f"the local site moved to its next epoch: {len(epoch.reports)} reports changed")
    crawled = await crawl(p, None, stop=stop, ui=ui, command="demo")
    lines = [f"\nafter the site's next epoch, a crawl ({crawled.counters.pages_done} pages) found:"]
    run = await p.store.last_fetching_run(("demo",))  # that crawl
    if run is not None:
        digest = await collect(p.store, Window.of_run(run))
        lines += ["  " + line for line in render_short(digest).splitlines()]
        lines.append(f"  (citepipe changes --db {p.settings.db}: the whole digest)")
    if crawled.exit_code != 0:
        lines.append(f"  the crawl ended with exit code {crawled.exit_code}")
    lines += crawled.epilogue
    return lines
