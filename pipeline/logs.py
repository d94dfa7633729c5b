"""Logging with structlog: JSON lines when stderr is not a TTY, a readable console when it is.

Context (`job_id`, `doi`, `url`, `attempt`) is bound with structlog's contextvars so every
line a job's coroutine logs carries it. Logs go to stderr; stdout is for results.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_SECRET_KEYS = ("password", "secret", "token", "authorization", "cookie")
# `scheme://user:password@host`: a database URL or a base URL with credentials.
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@]*):[^\s/@]+@")


_URL_SECRETS = ("webhook", "notify_url")  # keys whose value is a URL holding a secret


def redact_url(url: str) -> str:
    """A URL that may hold a secret in its path or query (a webhook's), as it may be
    shown: scheme, host and port only, the rest `***` (`https://hooks.example.com/***`)."""
    m = re.match(r"\s*([a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^/@?#\s]*@)?([^/?#\s]*)", url)
    if m is None:
        return "***"
    rest = url[m.end() :].strip()
    return m.group(1) + m.group(2) + ("/***" if rest else "")


def redact_text(text: str) -> str:
    """`text` with the password of any URL in it replaced by `***`."""
    return _URL_PASSWORD.sub(r"\1:***@", text) if "@" in text else text


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Never log a secret: blank out values whose key names one, and URL passwords
    anywhere (a `db` URL, an error message, a rendered traceback)."""
    for key, value in event.items():
        if isinstance(value, str) and any(s in key.lower() for s in _URL_SECRETS):
            event[key] = redact_url(value)
        elif any(s in key.lower() for s in _SECRET_KEYS):
            event[key] = "***"
        elif isinstance(value, str):
            event[key] = redact_text(value)
    return event


def _library_warning_in_one_line(
    _: Any, __: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A library's warning keeps its error in one field, `error: "Type: message"`, not a
    traceback: asyncpg's pool says "Failed to restore the pool connection floor;
    retrying" with a traceback of a refused connect at every database restart, something
    citepipe expects and handles (store/postgres_errors.py). A library's error (asyncio's
    "Task exception was never retrieved") keeps its traceback: that is a bug's."""
    record = event.get("_record")
    exc_info = event.get("exc_info")
    if record is not None and record.levelno < logging.ERROR and isinstance(exc_info, tuple):
        error = exc_info[1]
        if error is not None:
            event["error"] = f"{type(error).__name__}: {error}"
        del event["exc_info"]
    return event


# Libraries whose own `logging` is too chatty below a warning (aiohttp's access log, asyncpg).
_QUIET_LIBRARIES = ("aiohttp.access", "asyncpg", "asyncio")


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Set up structlog once for the process. `fmt` is auto, json or console.

    The standard `logging` of every library (asyncpg, aiohttp, asyncio, warnings) goes
    through the same renderer and the same redaction (structlog's `ProcessorFormatter` on
    the root logger), so a JSON run's stderr is JSON lines only and no connection string
    is printed as is, whoever logs it.
    """
    out = stream or sys.stderr
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if use_console
        else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            _redact,  # after format_exc_info, so that tracebacks are redacted too
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                *shared,
                structlog.stdlib.add_logger_name,
                _library_warning_in_one_line,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,  # text, then redacted
                _redact,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):  # configured again (tests, a helper process): replace
        if getattr(old, "_citepipe", False):
            root.removeHandler(old)
    handler._citepipe = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(_LEVELS.get(level, logging.INFO))
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    logging.captureWarnings(True)  # warnings.warn -> the `py.warnings` logger, as above


def get_logger(name: str = "citepipe") -> Any:
    return structlog.get_logger(name)
