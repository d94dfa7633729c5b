"""Site profiles: one module per Source, one line per Source in `SOURCES`.

A Source owns its site's addresses and reads its pages (`base.Source`). `make_source`
builds the one named by the settings; a Source module is imported only when chosen.
"""

from __future__ import annotations

from importlib import import_module

from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.sources.base import Source

# name -> "module:class"; the class has `from_settings(settings) -> Source`.
SOURCES: dict[str, str] = {
    "report": "pipeline.sources.report:ReportSource",
}


def make_source(settings: Settings, name: str = "report") -> Source:
    """The Source called `name`, built from the settings."""
    try:
        where = SOURCES[name]
    except KeyError:
        raise ConfigError(
            f"source: {name!r} is not a source (one of {', '.join(sorted(SOURCES))})"
        ) from None
    module, _, cls = where.partition(":")
    source: Source = getattr(import_module(module), cls).from_settings(settings)
    return source
