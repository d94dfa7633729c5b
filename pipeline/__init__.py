"""citepipe: harvest citation report pages into normalised rows.

The public API, for use from Python (the `citepipe` command is `pipeline.cli`):

    from pipeline import Settings, load_settings, open_pipeline, backfill

    async with open_pipeline(load_settings()) as p:
        summary = await backfill(p, ["10.1038/bmt.2012.184"])

(`crawl` and `worker` are in `pipeline.runs.commands`: their names are the subpackages'.)
Names are loaded on first use (PEP 562), so `import pipeline.config` stays light: a
SQLite run never imports the PostgreSQL driver, a parse never imports aiohttp.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("citepipe")
except PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0.0.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    "Settings": "pipeline.config",
    "load_settings": "pipeline.config",
    "Pipeline": "pipeline.app",
    "open_pipeline": "pipeline.app",
    "backfill": "pipeline.runs.commands",
    "schedule": "pipeline.runs.commands",
    "Stop": "pipeline.runs.lifecycle",
    "RunUI": "pipeline.runs.lifecycle",
    "RunSummary": "pipeline.runs.summary",
    "open_store": "pipeline.store",
    "Store": "pipeline.store.base",
    "PipelineError": "pipeline.errors",
    "ConfigError": "pipeline.errors",
    "StoreError": "pipeline.errors",
    "FetchError": "pipeline.errors",
    "ParseError": "pipeline.errors",
    "BadInputError": "pipeline.errors",
    "NotFoundError": "pipeline.errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    try:
        module = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'pipeline' has no attribute {name!r}") from None
    value = getattr(import_module(module), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
