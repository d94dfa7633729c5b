"""The API client: one batch request (`POST {endpoint}` with a JSON array of DOIs).

Its requests keep the API's limits together with every other process on the store, as
page requests keep a host's politeness (`politeness.Politeness` over the store's host
ledger), on a ledger row of their own, `api:scheme://host:port` (`api_host_key`), so that
the API's limits never mix with the report pages' spacing even when one server answers
both (the local site does). The limits become one spacing between request starts:
`max(1 / api_requests_per_second, 60 / api_requests_per_minute)`, widened by
`LIMIT_MARGIN`, which keeps any 60-second (or 1-second) window within both limits whatever
the network's jitter; over a long run that is the per-minute limit's own rate. With an
`api_token` the API lifts its limits, and so does this client (no spacing; a 429 still
holds the API for its `Retry-After`).

A 429 (or 503) pauses the API for every process (`Retry-After`, or `DEFAULT_PAUSE`); a 422
is `BatchRejectedError` (the worker splits the batch); timeouts, resets and 5xx are
transient, other statuses permanent. The token goes in the `Authorization` header only:
never in a URL, a log line, the store or a summary.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import aiohttp
from yarl import URL

from pipeline.clock import utcnow
from pipeline.config import Settings
from pipeline.crawl.fetcher import (
    DEFAULT_PAUSE,
    PAUSE_STATUSES,
    TRANSIENT_STATUSES,
    _translate,
    parse_retry_after,
    read_capped,
)
from pipeline.crawl.politeness import LocalHosts, Politeness, host_key
from pipeline.errors import BatchRejectedError, ParseError, PermanentFetchError, TransientFetchError
from pipeline.store.base import HostLedger

LIMIT_MARGIN = 1.02  # the spacing is 2% wider than the limits allow (jitter)
API_KEY_PREFIX = "api:"


def api_host_key(url: str) -> str:
    """The host ledger row of the API at `url`: `api:scheme://host:port`."""
    return API_KEY_PREFIX + host_key(url)


def api_spacing(settings: Settings) -> float:
    """Seconds between two API request starts, all processes together (0 with a token)."""
    if settings.api_token:
        return 0.0
    per_second = 1.0 / settings.api_requests_per_second
    per_minute = 60.0 / settings.api_requests_per_minute
    return max(per_second, per_minute) * LIMIT_MARGIN


class ApiClient:
    """Sends batch requests to the API, within its limits; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        hosts: HostLedger | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._settings = settings
        self._session = session
        self._own_session = session is None
        self.spacing = api_spacing(settings)
        self.politeness = Politeness(
            hosts=hosts if hosts is not None else LocalHosts(),
            per_host_concurrency=settings.per_host_concurrency,
            request_delay=self.spacing,
            user_agent=settings.user_agent,
            respect_robots=False,  # an API, not pages: its limits are its own rules
            clock=clock or utcnow,
            key=api_host_key,
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            s = self._settings
            headers = {"User-Agent": s.user_agent, "Accept": "application/json"}
            if s.api_token:
                headers["Authorization"] = f"Bearer {s.api_token}"
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=s.timeout, sock_connect=s.connect_timeout, sock_read=s.timeout
                ),
                connector=aiohttp.TCPConnector(limit=max(s.per_host_concurrency * 2, 4)),
                headers=headers,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def cancel_waiting(self) -> int:
        return self.politeness.cancel_waiting()

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    async def post(self, url: str, dois: Sequence[str]) -> Any:
        """POST the DOIs to the endpoint at `url`; the decoded JSON answer.

        Raises TransientFetchError (timeouts, resets, 429/5xx: retry later),
        BatchRejectedError (422: split it), PermanentFetchError (other statuses) or
        ParseError (a 200 that is not JSON)."""
        with _translate(url):
            async with (
                self.politeness.slot(url),
                self.session.post(
                    URL(url, encoded=True), json=list(dois), allow_redirects=False
                ) as resp,
            ):
                if resp.status != 200:
                    await self._raise_for_status(url, resp.status, resp.headers, len(dois))
                body = await self._read_capped(resp, url)
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ParseError(f"API answer from {url} is not JSON: {exc}") from None

    async def _raise_for_status(self, url: str, status: int, headers: Any, count: int) -> None:
        if status == 422:
            raise BatchRejectedError(
                f"HTTP 422 from {url} for {count} DOIs",
                url=url,
                status=status,
                reason="http 422 (batch refused)",
            )
        if status in TRANSIENT_STATUSES:
            retry_after = parse_retry_after(headers.get("Retry-After"))
            if status in PAUSE_STATUSES:
                await self.politeness.pause(
                    url, retry_after if retry_after is not None else DEFAULT_PAUSE
                )
            raise TransientFetchError(
                f"HTTP {status} from {url}",
                url=url,
                status=status,
                reason=f"http {status}",
                retry_after=retry_after
                if retry_after is not None
                else (DEFAULT_PAUSE if status in PAUSE_STATUSES else None),
            )
        why = "api token refused" if status in (401, 403) else "http"
        raise PermanentFetchError(
            f"HTTP {status} from {url}", url=url, status=status, reason=f"{why} {status}"
        )

    async def _read_capped(self, resp: aiohttp.ClientResponse, url: str) -> bytes:
        cap = self._settings.max_page_bytes * 10  # 500 papers with abstracts: a few MB
        return await read_capped(resp, url, cap, "API answer")
