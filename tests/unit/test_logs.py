"""Logs: JSON lines with the job's context, and never a secret."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from pipeline.logs import configure_logging, get_logger, redact_text


@pytest.fixture(autouse=True)
def _reset_structlog() -> object:
    """These tests configure structlog for the process; leave it as they found it."""
    yield
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_bound_job_context() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    with structlog.contextvars.bound_contextvars(job_id=7, doi="10.1/x", url="u", attempt=2):
        get_logger().info("page done", statements=3)
    get_logger().debug("not shown at info")
    [line] = lines(out)
    assert line["event"] == "page done" and line["statements"] == 3 and line["level"] == "info"
    assert (line["job_id"], line["doi"], line["url"], line["attempt"]) == (7, "10.1/x", "u", 2)


def test_secrets_are_never_logged() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log = get_logger()
    log.info("started", db="postgresql://citepipe:hunter2@db.internal/crawl", api_token="abc123")
    try:
        raise RuntimeError("cannot connect to postgresql://citepipe:hunter2@db.internal/crawl")
    except RuntimeError:
        log.exception("failed")
    text = out.getvalue()
    assert "hunter2" not in text and "abc123" not in text
    first, second = lines(out)
    assert first["db"] == "postgresql://citepipe:***@db.internal/crawl"
    assert first["api_token"] == "***"
    assert "postgresql://citepipe:***@db.internal/crawl" in str(second["exception"])


def test_redact_text_keeps_what_is_not_a_password() -> None:
    assert redact_text("https://scite.ai/reports/10.1/x") == "https://scite.ai/reports/10.1/x"
    assert redact_text("mail me@example.org") == "mail me@example.org"
    assert redact_text("https://user@host/x") == "https://user@host/x"
    assert (
        redact_text("a https://u:p@h/x and sqlite:///d.db")
        == "a https://u:***@h/x and sqlite:///d.db"
    )


def test_library_logging_goes_through_the_same_json_and_redaction() -> None:
    """asyncpg's, aiohttp's and asyncio's own `logging` lines are JSON lines, redacted, with
    their tracebacks inside the line (issue 20, point 4)."""
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    try:
        logging.getLogger("asyncpg.pool").warning(
            "Failed to restore the pool connection floor; retrying: %s",
            "postgresql://citepipe:hunter2@db/crawl",
        )
        try:
            raise ConnectionError("cannot connect now to postgresql://u:hunter2@db/x")
        except ConnectionError:
            logging.getLogger("asyncio").exception("Task exception was never retrieved")
        logging.getLogger("aiohttp.client").warning("server disconnected")
        logging.getLogger("asyncpg").info("below warning: not shown")
    finally:
        logging.getLogger().handlers.clear()
    parsed = lines(out)  # every line is JSON
    assert [p["event"].split(";")[0].split(":")[0] for p in parsed] == [
        "Failed to restore the pool connection floor",
        "Task exception was never retrieved",
        "server disconnected",
    ]
    assert [p["logger"] for p in parsed] == ["asyncpg.pool", "asyncio", "aiohttp.client"]
    assert "hunter2" not in out.getvalue()
    assert "ConnectionError" in str(parsed[1]["exception"])
