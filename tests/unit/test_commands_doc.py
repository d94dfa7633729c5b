"""docs/commands.md is checked against the command table: every command has its section,
and every option of its own (not the setting flags, which settings.md covers) is named
there. A command or a flag added without its documentation fails here."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from pipeline import cli

DOC = Path(__file__).resolve().parents[2] / "docs" / "commands.md"
SETTINGS_GROUP = "settings (override the config file and CITEPIPE_* variables)"


def sections() -> dict[str, str]:
    """Command name -> the text of its `### \\`name\\`` section."""
    text = DOC.read_text(encoding="utf-8")
    parts = re.split(r"(?m)^### `([a-z-]+)`\n", text)
    return {parts[i]: parts[i + 1].split("\n## ", 1)[0] for i in range(1, len(parts), 2)}


def own_options(parser: argparse.ArgumentParser) -> list[str]:
    """A subcommand's own options (the longest spelling) and positionals (their metavar),
    not its setting flags."""
    found: list[str] = []
    for group in parser._action_groups:
        if group.title == SETTINGS_GROUP:
            continue
        for action in group._group_actions:
            if isinstance(action, argparse._HelpAction):
                continue
            found.append(
                max(action.option_strings, key=len)
                if action.option_strings
                else action.metavar or action.dest
            )
    return found


SUBPARSERS = next(
    a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)
).choices


def test_every_command_has_a_section_and_every_section_a_command() -> None:
    assert sorted(sections()) == sorted(c.name for c in cli.COMMANDS)


@pytest.mark.parametrize("name", sorted(SUBPARSERS))
def test_each_section_names_the_commands_own_options(name: str) -> None:
    text = sections().get(name, "")
    missing = [o for o in own_options(SUBPARSERS[name]) if f"`{o}" not in text]
    assert missing == [], name
