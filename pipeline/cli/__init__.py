"""The `citepipe` command: one parser built from the command table, one dispatcher.

`main` builds the parser from every module's `COMMANDS` (`cli/run.py`, `read.py`,
`admin.py`, `tools.py`), merges the settings once (defaults < command defaults < config
file < CITEPIPE_* < flags), configures logging once, runs the handler under one
`asyncio.run` and maps exceptions to exit codes in one place. A run command's handler
returns its `RunSummary`, printed here; its exit code is the summary's (`summary.exit_code`).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from pipeline import __version__
from pipeline.cli import admin, changes, network, read, run, tools
from pipeline.cli._base import (
    Command,
    Invocation,
    add_setting_flags,
    handle_signals,
    merge_settings,
    print_summary,
)
from pipeline.config import Settings
from pipeline.errors import ConfigError, PipelineError, UsageError
from pipeline.logs import configure_logging, redact_text
from pipeline.runs.lifecycle import RunUI, Stop
from pipeline.runs.progress import LiveStderr, Progress
from pipeline.runs.summary import (
    EXIT_CODES_HELP,
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_SIGNAL_BASE,
    EXIT_USAGE,
    RunSummary,
)

COMMANDS: tuple[Command, ...] = (
    *run.COMMANDS,
    *read.COMMANDS,
    *changes.COMMANDS,
    *network.COMMANDS,
    *admin.COMMANDS,
    *tools.COMMANDS,
)
LONG_RUNNING = ("worker", "schedule")  # their summary is logged, not printed


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="citepipe",
        description="Harvest citation report pages into a queue-backed SQLite or PostgreSQL store.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action="version", version=f"citepipe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        epilog = tools.faults_help() if command.epilog == "faults" else command.epilog
        p = sub.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            epilog=epilog,
            formatter_class=(
                argparse.RawDescriptionHelpFormatter if command.raw_help else argparse.HelpFormatter
            ),
        )
        command.arguments(p)
        if command.uses_settings:
            add_setting_flags(p, command)
        p.set_defaults(_command=command)
    return parser


async def dispatch(command: Command, inv: Invocation) -> int | RunSummary:
    """Run one async handler; a run's handler runs under signal handlers with a display."""
    if not command.run_ui:
        result: int | RunSummary = await command.handler(inv)  # type: ignore[misc]
        return result
    inv.stop = Stop()
    inv.ui = RunUI(
        sys.stderr,
        Progress(inv.settings.progress, command.name),
        # the summary once: printed for every run but a worker's (whose end is a signal,
        # with nobody reading its stdout), logged for a worker (not on a terminal)
        log_summary=command.name == "worker" and not sys.stderr.isatty(),
    )
    try:
        with handle_signals(inv.stop):
            summary: RunSummary = await command.handler(inv)  # type: ignore[misc]
            return summary
    finally:
        if inv.ui.progress is not None:
            inv.ui.progress.close()


def execute(command: Command, args: argparse.Namespace) -> int:
    """Settings, logging, the handler, once; a run's summary printed; its exit code."""
    settings = merge_settings(command, args) if command.uses_settings else Settings()
    if command.run_ui:  # logs follow sys.stderr, which a progress bar redirects
        configure_logging(settings.log_level, settings.log_format, stream=LiveStderr())  # type: ignore[arg-type]
    else:
        configure_logging(settings.log_level, settings.log_format)
    inv = Invocation(args, settings)
    if not inspect.iscoroutinefunction(command.handler):  # runs its own loop (site)
        code: Any = command.handler(inv)
        return int(code)
    result = asyncio.run(dispatch(command, inv))
    if not isinstance(result, RunSummary):
        return result
    try:
        if result.command not in LONG_RUNNING:
            print_summary(result)
        for line in result.epilogue:
            print(line, flush=True)
    except BrokenPipeError:  # `citepipe crawl ... | head`: the run's code still stands
        _quiet_stdout()
    return result.exit_code


def _quiet_stdout() -> None:
    """The reader of standard output left: later writes (the interpreter's last flush
    included) go nowhere instead of raising again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return execute(args._command, args)
    except UsageError as exc:
        print(f"citepipe: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(f"citepipe: configuration error: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except PipelineError as exc:
        print(f"citepipe: {redact_text(str(exc))}", file=sys.stderr)
        return EXIT_INCOMPLETE
    except KeyboardInterrupt:
        return EXIT_SIGNAL_BASE + signal.SIGINT
    except BrokenPipeError:
        _quiet_stdout()
        # `citepipe export ... | head`: an output command whose reader left did its part.
        # A run broken off by it did not finish: never a success.
        return EXIT_INCOMPLETE if args._command.run_ui else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
