"""The fetch layer: the `Fetcher` protocol and its aiohttp implementation.

`AiohttpFetcher` keeps one session per process, applies timeouts, a size cap and a content
type check, follows redirects itself (only within the site: same scheme, host and port as
the base URL; nothing is ever requested from another host), sends conditional requests,
and maps every aiohttp/timeout error to our tree in exactly one place (`_translate`):

- TransientFetchError: timeouts, connection errors, resets, truncated bodies, 408/429/5xx
- PermanentFetchError: 404/410 and other 4xx, not HTML, too large, off-site redirect, loop,
  a response that is not HTTP (headers too large, a malformed status line)

aiohttp's own resend of a request on a dropped kept-alive connection is off: the site
sees each request once, and retries are the retry policy's (`pipeline.crawl.retry`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import NoReturn, Protocol
from urllib.parse import urljoin

import aiohttp
from yarl import URL

from pipeline.clock import utcnow
from pipeline.config import Settings
from pipeline.crawl.politeness import LocalHosts, Politeness, RobotsAnswer, bounded_wait, host_key
from pipeline.errors import (
    FetchError,
    HostUnreachableError,
    PermanentFetchError,
    TransientFetchError,
)
from pipeline.models import Page, Validators
from pipeline.store.base import HostLedger
from pipeline.urls import strip_userinfo

TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PAUSE_STATUSES = frozenset({429, 503})
DEFAULT_PAUSE = 5.0  # seconds a 429/503 without Retry-After holds the host
ROBOTS_REDIRECTS = 5  # RFC 9309: follow at least five consecutive redirects for robots.txt
_CHUNK = 64 * 1024


class Fetcher(Protocol):
    """Fetches one page; raises TransientFetchError or PermanentFetchError."""

    async def fetch(self, url: str, validators: Validators | None = None) -> Page: ...

    async def close(self) -> None: ...

    def cancel_waiting(self) -> int:
        """Cancel the requests not yet sent (still waiting for their turn); return how
        many. A fetcher with no waits returns 0."""
        ...


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return bounded_wait(float(value))  # `Retry-After: 1e400 seconds` must not overflow
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return bounded_wait((when - (now or datetime.now(UTC))).total_seconds())


@contextmanager
def _translate(url: str) -> Iterator[None]:
    """The one place where aiohttp and timeout errors become ours."""
    try:
        yield
    except FetchError:
        raise
    except TimeoutError as exc:
        raise TransientFetchError(f"timeout fetching {url}", url=url, reason="timeout") from exc
    except aiohttp.ClientConnectorError as exc:  # no connection made: say why
        reason = _connect_failure(exc)
        raise TransientFetchError(
            f"{reason} for {url}: {exc.os_error}", url=url, reason=reason
        ) from exc
    except aiohttp.ClientPayloadError as exc:
        raise TransientFetchError(
            f"truncated body from {url}: {exc}", url=url, reason="truncated body"
        ) from exc
    except aiohttp.ClientConnectionError as exc:
        raise TransientFetchError(
            f"connection error for {url}: {exc!r}", url=url, reason="connection error"
        ) from exc
    except aiohttp.ClientResponseError as exc:
        # raised (no raise_for_status here) only when the response could not be read as
        # HTTP: a header line over aiohttp's limit, a bad status line. The same request gets
        # the same answer, so it is not retried like a timeout or a reset.
        too_large = "Got more than" in exc.message or "too long" in exc.message.lower()
        reason = "headers too large" if too_large else "malformed response"
        raise PermanentFetchError(
            f"{reason} from {url}: {exc.message[:200]}", url=url, reason=reason
        ) from exc
    except aiohttp.ClientError as exc:
        raise TransientFetchError(
            f"client error for {url}: {exc!r}", url=url, reason="client error"
        ) from exc


# Failures before any answer from the host: a connection that could not be made, or no
# response in time. Several in a row, with no answer since the run began, make the host
# unreachable (`Politeness.no_answer`).
NO_ANSWER = frozenset(
    {
        "connection refused",
        "TLS error",
        "TLS certificate error",
        "DNS lookup failed",
        "cannot connect",
        "timeout",
    }
)


def _connect_failure(exc: aiohttp.ClientConnectorError) -> str:
    """The cause of a connection that could not be made, in a few words."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return "TLS certificate error"
    if isinstance(exc, aiohttp.ClientSSLError):
        return "TLS error"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "DNS lookup failed"
    if isinstance(exc.os_error, ConnectionRefusedError):
        return "connection refused"
    return "cannot connect"


class AiohttpFetcher:
    """Fetcher over one aiohttp session, polite through a `Politeness` per host.

    `hosts` is where politeness is shared: the store, so that every process on it keeps
    one host's limits together; without one, this process's memory (`LocalHosts`).
    `clock` is politeness's clock (robots.txt expiry, pauses), for tests.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        session: aiohttp.ClientSession | None = None,
        hosts: HostLedger | None = None,
        clock: Callable[[], datetime] | None = None,
        scope: Callable[[str], bool] | None = None,
    ) -> None:
        self._settings = settings
        self._site = host_key(settings.base_url)
        # which redirect targets are the site's pages (the Source's `in_scope`); without
        # one, any address on the site is
        self._scope = scope
        self._session = session
        self._own_session = session is None
        self.politeness = Politeness(
            hosts=hosts if hosts is not None else LocalHosts(),
            per_host_concurrency=settings.per_host_concurrency,
            request_delay=settings.request_delay,
            user_agent=settings.user_agent,
            respect_robots=settings.respect_robots,
            get_robots=self._get_robots,
            clock=clock or utcnow,
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            s = self._settings
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(
                    total=s.timeout, sock_connect=s.connect_timeout, sock_read=s.timeout
                ),
                connector=aiohttp.TCPConnector(limit=max(s.concurrency * 2, 8), ttl_dns_cache=300),
                headers={"User-Agent": s.user_agent, "Accept": "text/html"},
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            # aiohttp resends an idempotent request once when a kept-alive connection
            # drops before the answer (RFC 9112 9.3.1.1); that doubles requests to a site
            # that disconnects, behind the retry policy's back: retries are the policy's
            # alone. No public option exists (aiohttp's own test client sets this too).
            self._session._retry_connection = False
        return self._session

    def cancel_waiting(self) -> int:
        return self.politeness.cancel_waiting()

    def new_run(self) -> None:
        """A run begins: hosts must answer again (`Politeness.new_run`)."""
        self.politeness.new_run()

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    async def _get_robots(self, url: str) -> RobotsAnswer:
        """Fetch robots.txt (RFC 9309): the final status and body, following up to five
        redirects on the site. An error on the way (timeout, connection refused, reset)
        is "unreachable" (status None), which politeness reads as disallow all."""
        current = url
        answered = False
        try:
            for _ in range(ROBOTS_REDIRECTS + 1):
                with _translate(current):
                    async with self.session.get(
                        URL(current, encoded=True), allow_redirects=False
                    ) as resp:
                        answered = True
                        self.politeness.answered(current)
                        location = resp.headers.get("Location")
                        if resp.status in REDIRECT_STATUSES and location:
                            target = strip_userinfo(urljoin(current, location))
                            if not self._on_site(target):
                                return RobotsAnswer(resp.status, error=f"redirect to {target}")
                            current = target
                            continue
                        if not 200 <= resp.status < 300:
                            return RobotsAnswer(resp.status)
                        body = await self._read_prefix(resp)
                        return RobotsAnswer(resp.status, body.decode("utf-8", "replace"))
        except FetchError as exc:
            no_answer = not answered and exc.reason in NO_ANSWER
            return RobotsAnswer(None, error=exc.reason or str(exc), no_answer=no_answer)
        return RobotsAnswer(301, error=f"more than {ROBOTS_REDIRECTS} redirects")

    def _on_site(self, url: str) -> bool:
        return host_key(url) == self._site

    async def fetch(self, url: str, validators: Validators | None = None) -> Page:
        """GET `url`, following on-site redirects; return the final page or a 304."""
        headers: dict[str, str] = {}
        if validators is not None:
            if validators.etag:
                headers["If-None-Match"] = validators.etag
            if validators.last_modified:
                headers["If-Modified-Since"] = validators.last_modified
        first = current = strip_userinfo(url)  # credentials are never sent (no Basic auth)
        seen = {current}
        for _ in range(self._settings.max_redirects + 1):
            if not self._on_site(current):
                raise PermanentFetchError(
                    f"redirect off the site to {current}", url=url, reason="off-site redirect"
                )
            if self._scope is not None and not self._scope(current):
                moved = "redirect " if current != first else ""
                raise PermanentFetchError(
                    f"{moved}off the site's report pages: {current}",
                    url=url,
                    reason=f"{moved}off the report pages",
                )
            page_or_location = await self._request(current, headers)
            if isinstance(page_or_location, Page):
                return dataclasses.replace(page_or_location, url=url)
            current = strip_userinfo(urljoin(current, page_or_location))
            if current in seen:
                raise PermanentFetchError(
                    f"redirect loop at {current}", url=url, reason="redirect loop"
                )
            seen.add(current)
        raise PermanentFetchError(
            f"more than {self._settings.max_redirects} redirects",
            url=url,
            reason="too many redirects",
        )

    async def _request(self, url: str, headers: dict[str, str]) -> Page | str:
        """One request: a Page, or the Location of a redirect. A failure before any
        answer is told to politeness, which says when the host is unreachable."""
        answered: list[bool] = []  # True once the host has answered this request
        try:
            return await self._send(url, headers, answered)
        except HostUnreachableError:
            raise
        except TransientFetchError as exc:
            if not answered and exc.reason in NO_ANSWER:
                self.politeness.no_answer(url, exc.reason)  # raises when it is unreachable
            raise

    async def _send(self, url: str, headers: dict[str, str], answered: list[bool]) -> Page | str:
        with _translate(url):
            async with (
                self.politeness.slot(url),
                self.session.get(
                    URL(url, encoded=True), headers=headers, allow_redirects=False
                ) as resp,
            ):
                answered.append(True)
                self.politeness.answered(url)
                status = resp.status
                if status in REDIRECT_STATUSES:
                    location = resp.headers.get("Location")
                    if not location:
                        raise PermanentFetchError(
                            f"redirect without Location from {url}",
                            url=url,
                            status=status,
                            reason="bad redirect",
                        )
                    return location
                if status == 304:
                    return Page(
                        url=url,
                        final_url=url,
                        status=304,
                        body=b"",
                        etag=resp.headers.get("ETag"),
                        last_modified=resp.headers.get("Last-Modified"),
                    )
                if status != 200:
                    await self._raise_for_status(url, status, resp.headers.get("Retry-After"))
                if resp.content_type != "text/html":
                    raise PermanentFetchError(
                        f"not an HTML page ({resp.content_type or 'no type'}) at {url}",
                        url=url,
                        status=status,
                        reason=f"not html ({resp.content_type})",
                    )
                body = await self._read_capped(resp, url)
                return Page(
                    url=url,
                    final_url=strip_userinfo(str(resp.url)),
                    status=200,
                    body=body,
                    etag=resp.headers.get("ETag"),
                    last_modified=resp.headers.get("Last-Modified"),
                    media_type=resp.content_type,
                    charset=resp.charset,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _raise_for_status(
        self, url: str, status: int, retry_after_header: str | None
    ) -> NoReturn:
        if status in TRANSIENT_STATUSES:
            retry_after = parse_retry_after(retry_after_header)
            if status in PAUSE_STATUSES:
                await self.politeness.pause(
                    url, retry_after if retry_after is not None else DEFAULT_PAUSE
                )
            raise TransientFetchError(
                f"HTTP {status} from {url}",
                url=url,
                status=status,
                reason=f"http {status}",
                retry_after=retry_after,
            )
        reason = "not found" if status in (404, 410) else f"http {status}"
        raise PermanentFetchError(
            f"HTTP {status} from {url}",
            url=url,
            status=status,
            reason=f"{reason} ({status})" if status in (404, 410) else reason,
        )

    async def _read_prefix(self, resp: aiohttp.ClientResponse) -> bytes:
        """At most `max_page_bytes` of a body; the rest is ignored (RFC 9309 lets a
        crawler stop parsing a robots.txt past a limit of at least 500 KiB)."""
        cap = self._settings.max_page_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            chunks.append(chunk[: cap - size])
            size += len(chunks[-1])
            if size >= cap:
                break
        return b"".join(chunks)

    async def _read_capped(self, resp: aiohttp.ClientResponse, url: str) -> bytes:
        return await read_capped(resp, url, self._settings.max_page_bytes, "page")


async def read_capped(resp: aiohttp.ClientResponse, url: str, cap: int, what: str) -> bytes:
    """A response's body, at most `cap` bytes (by its Content-Length, then as it streams
    in): more is a permanent `too large` error naming `what` (a page, an API answer)."""
    if resp.content_length is not None and resp.content_length > cap:
        raise PermanentFetchError(
            f"{what} larger than {cap} bytes at {url}", url=url, reason="too large"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > cap:
            raise PermanentFetchError(
                f"{what} larger than {cap} bytes at {url}", url=url, reason="too large"
            )
        chunks.append(chunk)
    return b"".join(chunks)
