"""docs/settings.md's table is checked against the one declaration of every setting
(`config.Settings`): a setting added, renamed, re-defaulted or given a flag without its
row fails here (scrapy's "if you add a setting here remember to ..." as a test)."""

from __future__ import annotations

import re
from pathlib import Path

from pipeline.config import ENV_PREFIX, setting_infos

DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
NAME = re.compile(r"`([a-z_]+)`")
CELL = re.compile(r"(?<!\\)\|")  # a cell ends at a `|` not written `\|`
# Command arguments that feed a setting without being one of its flag groups.
ARGUMENT_FLAGS = {"depth": "--depth", "max_duration": "--max-duration", "progress": "--no-progress"}


def row(line: str) -> dict[str, str] | None:
    """A settings row's first four cells, or None for any other line."""
    cells = [c.strip() for c in CELL.split(line)]
    if len(cells) < 6 or cells[0] or not (name := NAME.fullmatch(cells[1])):
        return None
    return {"name": name[1], "default": cells[2], "env": cells[3], "flag": cells[4]}


def rows() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if (r := row(line)) is not None:
            out[r["name"]] = r
    return out


def shown(default: object) -> str:
    """A default as the table writes it: TOML booleans, strings in backticks."""
    if isinstance(default, bool):
        return "`true`" if default else "`false`"
    if isinstance(default, str):
        return f"`{default}`" if default else '`""`'
    return str(default)


def test_every_setting_has_one_row_and_every_row_is_a_setting() -> None:
    assert sorted(rows()) == sorted(info.name for info in setting_infos())


def test_each_row_shows_the_declared_default_and_environment_variable() -> None:
    table = rows()
    for info in setting_infos():
        row = table[info.name]
        assert row["default"].startswith(shown(info.default)), (info.name, row["default"])
        assert row["env"] == f"`{ENV_PREFIX}{info.name.upper()}`", info.name


def test_each_row_names_the_flag_exactly_when_the_setting_has_one() -> None:
    table = rows()
    for info in setting_infos():
        flag = ARGUMENT_FLAGS.get(info.name) or (
            (info.flag or "--" + info.name.replace("_", "-")) if info.flags else None
        )
        if flag is None:
            assert table[info.name]["flag"] == "", info.name
        else:
            assert table[info.name]["flag"].startswith(f"`{flag}"), info.name


def test_the_row_parser_reads_a_row() -> None:
    """The check can fail: a row that disagrees is read as it is written."""
    r = row("| `timeout` | 31.0 | `CITEPIPE_TIMEOUT` | `--timeout a\\|b` | x | y |")
    assert r is not None and r["default"] == "31.0" != shown(30.0)
    assert r["flag"] == "`--timeout a\\|b`"
