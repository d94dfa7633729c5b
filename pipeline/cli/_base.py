"""The pieces every command shares: its declaration (`Command`), what a handler gets
(`Invocation`), setting flags generated from the settings' own declarations, signal
handling and the run display.

A command is one `Command(...)` in a `COMMANDS` tuple of `cli/run.py`, `cli/read.py`,
`cli/admin.py` or `cli/tools.py`, plus one small handler: the dispatcher
(`cli/__init__.py`) builds its parser, merges its settings, configures logging and runs
its handler, once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import datetime
from typing import IO, Any

from pipeline.app import Pipeline, open_pipeline
from pipeline.config import Settings, load_settings, setting_infos
from pipeline.errors import ConfigError
from pipeline.normalise import parse_duration
from pipeline.runs.lifecycle import RunUI, Stop
from pipeline.runs.summary import EXIT_SIGNAL_BASE, RunSummary

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

# Flag groups (the `flags` of each setting's declaration in config.py) by what they are for.
LOG = ("log",)
STORE = ("store", *LOG)
WORK = ("site", "store", "crawl", "work", *LOG)  # commands that work the queue here
DIGEST = ("digest",)  # runs that end with a digest (--digest, --notify)


def duration_arg(text: str) -> float:
    """A duration flag (`90`, `90s`, `15m`, `2h`, `1d`), parsed strictly: argparse names
    the flag and exits 2 for `-5m`, `nan`, `inf` and the like."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_FLAG_TYPES: dict[type, Callable[[str], Any]] = {float: duration_arg, int: int}


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """A command with no arguments of its own."""


Handler = Callable[["Invocation"], Awaitable[int | RunSummary]] | Callable[["Invocation"], int]


@dataclass(frozen=True, slots=True)
class Command:
    """One subcommand: its help, its own arguments, the setting flags it takes, its
    handler. A handler returns an exit code, or (`run_ui`) the `RunSummary` of a run,
    which the dispatcher prints and turns into the exit code."""

    name: str
    help: str
    description: str
    handler: Handler
    arguments: Callable[[argparse.ArgumentParser], None] = no_arguments
    settings: tuple[str, ...] = STORE  # flag groups (config.setting's `flags`)
    run_ui: bool = False  # signals, a progress bar and the printed summary
    defaults: Mapping[str, Any] = field(default_factory=dict)  # set unless a flag says otherwise
    shown: Mapping[str, str] = field(default_factory=dict)  # help words for a default it picks
    epilog: str | None = None
    raw_help: bool = False  # keep the description and epilog's line breaks
    uses_settings: bool = True  # False: the handler reads its arguments only (site)


@dataclass
class Invocation:
    """What a handler gets: its parsed arguments and merged settings (and, for a run,
    the stop request and the display)."""

    args: argparse.Namespace
    settings: Settings
    stop: Stop = field(default_factory=Stop)
    ui: RunUI = field(default_factory=RunUI)

    @contextlib.asynccontextmanager
    async def pipeline(self, *, create: bool = False) -> AsyncIterator[Pipeline]:
        """The pipeline on this invocation's settings. `create=False` (read-only
        commands) refuses a store that does not exist yet."""
        async with open_pipeline(self.settings, create=create) as p:
            yield p


def add_setting_flags(parser: argparse.ArgumentParser, command: Command) -> None:
    """Add the setting flags of `command`'s groups, each with the default it applies."""
    g = parser.add_argument_group("settings (override the config file and CITEPIPE_* variables)")
    g.add_argument("--config", help="TOML settings file (default config/citepipe.toml)")
    for info in setting_infos():
        if not set(info.flags) & set(command.settings):
            continue
        default = command.shown.get(info.name, command.defaults.get(info.name, info.default))
        if default == "":
            default = "built in" if info.name == "selectors" else "none"
        kind: Callable[[str], Any] = info.flag_type or _FLAG_TYPES.get(type(info.default), str)
        flag = info.flag or "--" + info.name.replace("_", "-")
        g.add_argument(
            flag, dest=info.name, type=kind, default=None, help=f"{info.help} (default {default})"
        )
    if command.run_ui and "progress" not in command.defaults:
        g.add_argument(
            "--no-progress",
            dest="progress",
            action="store_false",
            default=None,
            help="no progress bar, even on a terminal",
        )


def merge_settings(command: Command, args: argparse.Namespace) -> Settings:
    """Defaults < command defaults < config file < CITEPIPE_* < flags (demo: its own
    defaults win over the file and the environment, flags still win over them)."""
    names = [i.name for i in setting_infos() if set(i.flags) & set(command.settings)]
    flags = {name: getattr(args, name, None) for name in (*names, "depth", "progress")}
    flags["max_duration"] = getattr(args, "max_duration", None)
    overrides = dict(command.defaults)
    overrides.update({k: v for k, v in flags.items() if v is not None})
    config = getattr(args, "config", None)
    try:
        return load_settings(config, overrides=overrides)
    except UnicodeDecodeError as exc:  # a binary file named by --config
        name = config or "config/citepipe.toml"
        raise ConfigError(f"config file {name}: not UTF-8 text (byte {exc.start})") from None


# ---------------------------------------------------------------------------- signals


def _force_quit(code: int) -> None:
    os._exit(code)  # a second signal: no cleanup; leases return within lease_seconds


@contextlib.contextmanager
def handle_signals(
    stop: Stop, err: IO[str] | None = None, force_quit: Callable[[int], None] = _force_quit
) -> Iterator[None]:
    """While inside, SIGTERM/SIGINT ask `stop` to stop the run; a second one forces the
    quit at once (leases left behind return within `lease_seconds`, or at once to a
    next run on this host). The previous handlers are restored on the way out."""
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    out = err or sys.stderr
    received: list[int] = []

    def on_signal(signum: int) -> None:  # runs in the event loop, not in signal context
        received.append(signum)
        if len(received) > 1:
            with contextlib.suppress(OSError, ValueError):
                out.write("citepipe: second signal, quitting now\n")
                out.flush()
            force_quit(EXIT_SIGNAL_BASE + received[0])
            return
        with contextlib.suppress(OSError, ValueError):
            out.write("citepipe: stopping (again to quit at once)\n")
            out.flush()
        stop.request(signum)

    for sig in STOP_SIGNALS:  # the loop's handlers wake it at once, from any thread
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------- printing


def print_json(obj: Any) -> None:
    """A dataclass or a plain value as indented JSON (datetimes as ISO 8601 text)."""
    value = asdict(obj) if is_dataclass(obj) and not isinstance(obj, type) else obj
    print(json.dumps(value, indent=1, sort_keys=True, default=_json_value))


def _json_value(obj: Any) -> Any:
    """What `json` cannot write itself: datetimes (the runs' times), as ISO 8601 text."""
    if isinstance(obj, datetime):
        return obj.isoformat()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def print_rich(renderable: Any) -> None:
    """A table on a terminal (colours, its width); plain text in a pipe."""
    from rich.console import Console

    Console(highlight=False).print(renderable)


def print_summary(summary: RunSummary) -> None:
    """The run's summary on stdout; its `citepipe-summary {json}` line only when stdout
    is not a terminal (a log, a pipe, cron's mail), where a program may read it."""
    print(summary.render(json_line=not sys.stdout.isatty()), flush=True)
