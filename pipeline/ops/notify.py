"""POST a digest to a webhook, with retries: the sending half of `--notify URL`.

The body is the digest's JSON document (`notify_format = "json"`) or a Slack- and
Mattermost-compatible `{"text": ...}` (`"slack"`). A connection error, a timeout, a 408,
a 429 or a 5xx is tried again with exponential backoff and jitter (tenacity); another
status is not (the receiver refuses it, sending it again would not help). A webhook URL
may hold a secret (Slack's do, in the path): it is never logged or stored whole, only as
`logs.redact_url` shows it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from pipeline.errors import NotifyError
from pipeline.logs import redact_text, redact_url

log = structlog.get_logger("citepipe")

NOTIFY_ATTEMPTS = 4  # tries of one notification before it waits for the next run
NOTIFY_TIMEOUT = 30.0  # seconds a webhook gets to answer one POST
_RETRYABLE = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class Delivery:
    """How a notification went: `attempts` POSTs made, the last error if it failed."""

    ok: bool
    attempts: int
    error: str | None = None


def body_of(document: dict[str, Any], text: str, fmt: str) -> dict[str, Any]:
    """What is POSTed: the document itself, or `{"text": text}` for Slack/Mattermost."""
    return {"text": text} if fmt == "slack" else document


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, NotifyError) and exc.retryable


def _safe(text: str, url: str) -> str:
    """An error message with the webhook's URL (and any URL password) hidden."""
    return redact_text(text.replace(url, redact_url(url)))


async def _post_once(session: aiohttp.ClientSession, url: str, payload: bytes) -> None:
    try:
        async with session.post(
            url, data=payload, headers={"Content-Type": "application/json"}
        ) as response:
            await response.read()
            if response.status < 300:
                return
            retryable = response.status in _RETRYABLE or response.status >= 500
            raise NotifyError(f"webhook answered HTTP {response.status}", retryable=retryable)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise NotifyError(_safe(f"webhook unreachable: {type(exc).__name__}: {exc}", url)) from None


async def post(
    url: str,
    body: dict[str, Any],
    *,
    user_agent: str,
    attempts: int = NOTIFY_ATTEMPTS,
    base: float = 1.0,
    cap: float = 60.0,
    answer_within: float = NOTIFY_TIMEOUT,
) -> Delivery:
    """POST `body` as JSON to `url`, trying up to `attempts` times; never raises for the
    webhook's failure (the `Delivery` says it), so that a run's outcome never depends on
    it."""
    payload = json.dumps(body, ensure_ascii=False).encode()
    shown = redact_url(url)
    made = 0
    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=base, max=cap),
        retry=retry_if_exception(_retryable),
        reraise=True,
    )
    try:
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=answer_within),
            headers={"User-Agent": user_agent},
        ) as session:
            async for attempt in retrying:
                with attempt:
                    made += 1
                    try:
                        await _post_once(session, url, payload)
                    except NotifyError as exc:
                        log.warning(
                            "notification attempt failed",
                            webhook=shown,
                            attempt=made,
                            error=exc.message,
                        )
                        raise
    except (NotifyError, RetryError) as exc:
        return Delivery(False, made, _safe(str(exc), url))
    except (aiohttp.ClientError, ValueError) as exc:  # a URL aiohttp cannot use at all
        return Delivery(False, made, _safe(f"{type(exc).__name__}: {exc}", url))
    return Delivery(True, made)
