"""Loading the report selectors: defaults from package data, overrides from a TOML file."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.sources.report import ReportSource, load_selectors
from pipeline.sources.selectors import Selectors, default_selectors

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "selectors.toml"
    path.write_text(text, "utf-8")
    return str(path)


def test_defaults_are_the_contracts_selectors() -> None:
    sel = load_selectors()
    assert sel.page.canonical == "link[rel=canonical]"
    assert sel.page.next == "a[rel=next]"
    assert sel.paper.doi_meta == "meta[name=citation_doi]"
    assert sel.paper.doi_holder == "#report[data-doi]"
    assert sel.paper.doi == ".report-doi"
    assert sel.paper.title == "h1.report-title"
    assert sel.paper.authors == ".report-authors li"
    assert sel.tallies.section == ".report-tallies"
    assert sel.tallies.count == ".tally-count"
    assert sel.facets.facet == ".facet[data-facet]"
    assert sel.statements.list == "ol.statements"
    assert sel.statements.item == "li.statement"
    assert sel.statements.citing_doi_attr == "data-citing-doi"


def test_every_value_is_a_string() -> None:
    sel = load_selectors()
    for group in fields(Selectors):
        values = getattr(sel, group.name)
        for f in fields(values):
            assert isinstance(getattr(values, f.name), str), f"{group.name}.{f.name}"


def test_no_path_gives_the_cached_defaults() -> None:
    assert load_selectors(None) is default_selectors()
    assert load_selectors("") is default_selectors()
    assert ReportSource().selectors is default_selectors()


def test_override_changes_only_the_named_keys(tmp_path: Path) -> None:
    sel = load_selectors(write(tmp_path, '[paper]\ntitle = "h1.paper-title"\n'))
    defaults = default_selectors()
    assert sel.paper.title == "h1.paper-title"
    assert sel.paper.title_meta == defaults.paper.title_meta
    assert sel.statements == defaults.statements
    assert sel.page == defaults.page


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    assert load_selectors(write(tmp_path, "# nothing\n")) == default_selectors()


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[paper]\ntitel = "h1"\n', "paper.titel"),
        ('[statement]\nlist = "ol"\n', "[statement]"),
        ('title = "h1"\n', "[title]"),
    ],
)
def test_unknown_key_is_named(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace("[", r"\[").replace(".", r"\.")):
        load_selectors(write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[paper]\ntitle = 3\n", "paper.title"),
        ('[statements]\nsnippet = "[[["\n', "statements.snippet"),
        ('[statements]\nciting_doi_attr = "data citing"\n', "statements.citing_doi_attr"),
        ('[statements]\nciting_doi_attr = ""\n', "statements.citing_doi_attr"),
        ('[paper]\ntitle = ["h1"]\n', "paper.title"),
        ('paper = "h1"\n', "paper"),
    ],
)
def test_bad_value_is_named(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_selectors(write(tmp_path, text))


def test_labels_are_not_checked_as_css(tmp_path: Path) -> None:
    sel = load_selectors(write(tmp_path, '[statements]\nsection_label = "Section [of paper]"\n'))
    assert sel.statements.section_label == "Section [of paper]"


def test_empty_selector_switches_a_lookup_off(tmp_path: Path) -> None:
    sel = load_selectors(write(tmp_path, '[paper]\ndoi = ""\n'))
    assert sel.paper.doi == ""


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_selectors(str(tmp_path / "nope.toml"))


def test_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_selectors(write(tmp_path, "[paper\n"))


def test_example_deployment_file_loads_and_is_harmless() -> None:
    example = REPO / "config" / "selectors.toml"
    sel = load_selectors(str(example))
    defaults = default_selectors()
    assert sel.paper == defaults.paper
    assert sel.tallies == defaults.tallies
    assert sel.facets == defaults.facets
    assert sel.statements == defaults.statements
    assert sel.page.root == defaults.page.root
    assert sel.page.canonical == defaults.page.canonical
