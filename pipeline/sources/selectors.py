"""The report page's selectors as data, loaded from TOML.

The defaults live in one place, `report.toml` next to this module (package data), so the
contract's table and the code cannot drift apart. A deployment's file overrides only the
keys it names; an unknown key, a value that is not a string, or a CSS selector the engine
cannot compile is a `ConfigError` at load time, never a surprise on the first page.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from selectolax.lexbor import LexborHTMLParser, SelectolaxError

from pipeline.errors import ConfigError

DEFAULTS_RESOURCE = "report.toml"


@dataclass(frozen=True, slots=True)
class PageSelectors:
    """Where the report sits in the page, and the page's links."""

    root: str
    canonical: str
    next: str


@dataclass(frozen=True, slots=True)
class PaperSelectors:
    """The cited paper: Highwire `<meta>` tags first, the visible header as fallback."""

    doi_meta: str
    doi_holder: str
    doi_attr: str
    doi: str
    doi_label: str
    title_meta: str
    title: str
    authors_meta: str
    authors: str
    journal_meta: str
    journal: str
    date_meta: str
    year: str
    abstract: str
    abstract_label: str
    abstract_more: str
    abstract_more_label: str
    abstract_truncated_attr: str


@dataclass(frozen=True, slots=True)
class TallySelectors:
    """The counts block; `tally` elements carry their type in `type_attr`."""

    section: str
    tally: str
    type_attr: str
    count: str
    cited_by: str
    references: str


@dataclass(frozen=True, slots=True)
class FacetSelectors:
    """The facet lists; each `facet` names itself in `name_attr`."""

    section: str
    facet: str
    name_attr: str
    item: str
    label: str
    count: str


@dataclass(frozen=True, slots=True)
class StatementSelectors:
    """The statement list; `item` elements are matched among `list`'s direct children."""

    list: str
    item: str
    citing_doi_attr: str
    citing_title: str
    citing_year: str
    citing_journal: str
    snippet: str
    section: str
    section_label: str
    type: str
    confidence: str


@dataclass(frozen=True, slots=True)
class WallSelectors:
    """Signs that a page which is not a report is a captcha or a login wall: elements
    (CSS) and visible words (`*_words`: phrases separated by `|`, matched in the title and
    text, case-insensitively). Looked at only when the report itself is missing."""

    captcha: str
    captcha_words: str
    login: str
    login_words: str


@dataclass(frozen=True, slots=True)
class Selectors:
    """Every selector of the contract's table, grouped as in `report.toml`."""

    page: PageSelectors
    paper: PaperSelectors
    tallies: TallySelectors
    facets: FacetSelectors
    statements: StatementSelectors
    walls: WallSelectors


_GROUPS: dict[str, type[Any]] = {
    "page": PageSelectors,
    "paper": PaperSelectors,
    "tallies": TallySelectors,
    "facets": FacetSelectors,
    "statements": StatementSelectors,
    "walls": WallSelectors,
}


def load_selectors(path: str | None = None) -> Selectors:
    """The default selectors, overridden by the keys that the TOML file at `path` names."""
    if not path:
        return default_selectors()
    return _build(_merge(_defaults_table(), _read_user_file(Path(path).expanduser()), path))


@cache
def default_selectors() -> Selectors:
    """The shipped profile, read and checked once per process."""
    return _build(_merge(_defaults_table(), {}, DEFAULTS_RESOURCE))


def _defaults_table() -> dict[str, Any]:
    text = resources.files("pipeline.sources").joinpath(DEFAULTS_RESOURCE).read_text("utf-8")
    return tomllib.loads(text)


def _read_user_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise ConfigError(f"cannot read selectors file {path}: {e.strerror or e}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"selectors file {path} is not valid TOML: {e}") from e


def _merge(
    base: dict[str, Any], override: dict[str, Any], origin: str
) -> dict[str, dict[str, str]]:
    """Defaults with `override` laid over them, every section, key and value checked."""
    for name, layer in ((DEFAULTS_RESOURCE, base), (origin, override)):
        _check_names(layer, name)
    merged: dict[str, dict[str, str]] = {}
    for group, cls in _GROUPS.items():
        values = {**base.get(group, {}), **override.get(group, {})}
        for f in fields(cls):
            if f.name not in values:
                raise ConfigError(f"selectors {origin}: no value for {group}.{f.name}")
        merged[group] = {k: _check(group, k, v, origin) for k, v in values.items()}
    return merged


def _check_names(layer: dict[str, Any], origin: str) -> None:
    """Every section of `layer` is a known group and every key a known field of it."""
    for group, table in layer.items():
        if group not in _GROUPS:
            raise ConfigError(
                f"selectors file {origin}: unknown section [{group}] (known: {', '.join(_GROUPS)})"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"selectors file {origin}: [{group}] must be a table")
        known = {f.name for f in fields(_GROUPS[group])}
        for key in table:
            if key not in known:
                raise ConfigError(
                    f"selectors file {origin}: unknown key {group}.{key} "
                    f"(known: {', '.join(sorted(known))})"
                )


def _check(group: str, key: str, value: object, origin: str) -> str:
    """A value is a string; an attribute name is one word; a selector compiles."""
    where = f"selectors {origin}: {group}.{key}"
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, not {type(value).__name__}")
    if key.endswith("_attr"):
        if not value or value.split() != [value]:
            raise ConfigError(f"{where} must be one attribute name, got {value!r}")
    elif not key.endswith(("_label", "_words")) and value:
        try:
            LexborHTMLParser("<p></p>").css(value)
        except SelectolaxError as e:
            raise ConfigError(f"{where} is not a valid CSS selector: {value!r}") from e
    return value


def _build(table: dict[str, dict[str, str]]) -> Selectors:
    return Selectors(**{group: cls(**table[group]) for group, cls in _GROUPS.items()})
