"""The public API (`pipeline.__all__`): every name resolves, and importing the package
imports none of the heavy parts (httpx's test_exported_members, done for a lazy API)."""

from __future__ import annotations

import subprocess
import sys

import pipeline


def test_every_exported_name_resolves_to_what_its_module_defines() -> None:
    from importlib import import_module

    for name in pipeline.__all__:
        value = getattr(pipeline, name)
        if name != "__version__":
            assert value is getattr(import_module(pipeline._EXPORTS[name]), name), name
    assert sorted(pipeline.__all__) == sorted(["__version__", *pipeline._EXPORTS])


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        _ = pipeline.no_such_thing  # type: ignore[attr-defined]
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:
        raise AssertionError("no AttributeError")


def test_importing_the_package_and_its_settings_stays_light() -> None:
    code = (
        "import sys, pipeline, pipeline.config; "
        "print(sorted(m for m in ('aiohttp', 'asyncpg', 'pipeline.app', 'pipeline.crawl.fetcher') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
