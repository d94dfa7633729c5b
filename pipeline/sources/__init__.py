"""Site profiles: one module per Source, one line per Source in `SOURCES`.

A Source owns its site's addresses and reads its pages (`base.Source`); a batch Source
(`base.BatchSource`, scite's API) owns an API's endpoints and reads its answers. `make_source`
and `make_batch_source` build the one named; a Source module is imported only when chosen.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.sources.base import BatchSource, Source

# name -> "module:class"; the class has `from_settings(settings) -> Source`.
SOURCES: dict[str, str] = {
    "report": "pipeline.sources.report:ReportSource",
    "api": "pipeline.sources.scite_api:SciteApi",
}


def _load(settings: Settings, name: str) -> Any:
    try:
        where = SOURCES[name]
    except KeyError:
        raise ConfigError(
            f"source: {name!r} is not a source (one of {', '.join(sorted(SOURCES))})"
        ) from None
    module, _, cls = where.partition(":")
    return getattr(import_module(module), cls).from_settings(settings)


def make_source(settings: Settings, name: str = "report") -> Source:
    """The page Source called `name`, built from the settings."""
    source: Source = _load(settings, name)
    return source


def make_batch_source(settings: Settings, name: str = "api") -> BatchSource:
    """The batch Source (an API answering many DOIs a request) called `name`."""
    source: BatchSource = _load(settings, name)
    return source
