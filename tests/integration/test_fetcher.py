"""The aiohttp fetcher against small real servers on loopback."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from urllib.parse import quote

import pytest
from aiohttp import web

from pipeline.config import Settings
from pipeline.crawl.fetcher import AiohttpFetcher, parse_retry_after
from pipeline.crawl.politeness import MAX_WAIT
from pipeline.errors import PermanentFetchError, TransientFetchError
from pipeline.models import Validators
from pipeline.sources.report import ReportSource

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
HTML = "<html><body>ok</body></html>"


@asynccontextmanager
async def serve(routes: dict[str, Handler], host: str = "127.0.0.1") -> AsyncIterator[str]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def settings(base: str, **kw: object) -> Settings:
    s = Settings(
        base_url=base, request_delay=0.0, per_host_concurrency=4, timeout=2.0, respect_robots=False
    )
    return replace(s, **kw)  # type: ignore[arg-type]


async def html(_: web.Request) -> web.Response:
    return web.Response(text=HTML, content_type="text/html")


async def test_follows_on_site_redirects_and_sends_user_agent() -> None:
    seen: list[str] = []

    async def start(req: web.Request) -> web.Response:
        seen.append(req.headers["User-Agent"])
        raise web.HTTPFound("/b")

    async def b(req: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(str(req.url.with_path("/c")))

    async with serve({"/a": start, "/b": b, "/c": html}) as base:
        f = AiohttpFetcher(settings(base, user_agent="citepipe-test (me@example.org)"))
        try:
            page = await f.fetch(base + "/a")
        finally:
            await f.close()
    assert page.status == 200 and page.body.decode() == HTML
    assert page.final_url == base + "/c"
    assert seen == ["citepipe-test (me@example.org)"]


async def test_off_site_redirect_is_permanent_and_other_host_never_hit() -> None:
    hits: list[str] = []

    async def other(req: web.Request) -> web.Response:
        hits.append(req.path)
        return web.Response(text=HTML, content_type="text/html")

    async with serve({"/x": other}, host="127.0.0.2") as elsewhere:

        async def off(_: web.Request) -> web.Response:
            raise web.HTTPFound(elsewhere + "/x")

        async with serve({"/a": off}) as base:
            f = AiohttpFetcher(settings(base))
            try:
                with pytest.raises(PermanentFetchError) as info:
                    await f.fetch(base + "/a")
            finally:
                await f.close()
    assert info.value.reason == "off-site redirect"
    assert hits == []


async def test_redirect_loop_is_permanent() -> None:
    async def a(_: web.Request) -> web.Response:
        raise web.HTTPFound("/b")

    async def b(_: web.Request) -> web.Response:
        raise web.HTTPFound("/a")

    async with serve({"/a": a, "/b": b}) as base:
        f = AiohttpFetcher(settings(base))
        try:
            with pytest.raises(PermanentFetchError, match="loop"):
                await f.fetch(base + "/a")
        finally:
            await f.close()


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (404, PermanentFetchError),
        (410, PermanentFetchError),
        (403, PermanentFetchError),
        (408, TransientFetchError),
        (500, TransientFetchError),
        (502, TransientFetchError),
    ],
)
async def test_status_mapping(status: int, kind: type[Exception]) -> None:
    async def h(_: web.Request) -> web.Response:
        return web.Response(status=status, text="no")

    async with serve({"/p": h}) as base:
        f = AiohttpFetcher(settings(base))
        try:
            with pytest.raises(kind):
                await f.fetch(base + "/p")
        finally:
            await f.close()


async def test_429_retry_after_pauses_the_whole_host() -> None:
    stamps: dict[str, float] = {}

    async def limited(_: web.Request) -> web.Response:
        stamps["429"] = time.monotonic()
        return web.Response(status=429, headers={"Retry-After": "1"})

    async def other(_: web.Request) -> web.Response:
        stamps["other"] = time.monotonic()
        return web.Response(text=HTML, content_type="text/html")

    async with serve({"/a": limited, "/b": other}) as base:
        f = AiohttpFetcher(settings(base))
        try:
            with pytest.raises(TransientFetchError) as info:
                await f.fetch(base + "/a")
            assert info.value.retry_after == 1.0
            await f.fetch(base + "/b")
        finally:
            await f.close()
    assert stamps["other"] - stamps["429"] >= 0.95


async def test_wrong_type_and_too_large_are_permanent() -> None:
    async def js(_: web.Request) -> web.Response:
        return web.json_response({"a": 1})

    async def big(_: web.Request) -> web.Response:
        return web.Response(text="x" * 5000, content_type="text/html")

    async def big_stream(req: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/html"})
        resp.enable_chunked_encoding()
        await resp.prepare(req)
        for _ in range(10):
            await resp.write(b"y" * 1000)
        await resp.write_eof()
        return resp

    async with serve({"/j": js, "/big": big, "/chunked": big_stream}) as base:
        f = AiohttpFetcher(settings(base, max_page_bytes=4000))
        try:
            with pytest.raises(PermanentFetchError, match="not an HTML"):
                await f.fetch(base + "/j")
            with pytest.raises(PermanentFetchError, match="larger"):
                await f.fetch(base + "/big")
            with pytest.raises(PermanentFetchError, match="larger"):
                await f.fetch(base + "/chunked")
        finally:
            await f.close()


async def test_truncated_body_reset_and_timeout_are_transient() -> None:
    async def truncated(req: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/html", "Content-Length": "10000"})
        await resp.prepare(req)
        await resp.write(b"<html>" * 10)
        assert req.transport is not None
        req.transport.close()
        return resp

    answer = asyncio.Event()  # the slow page answers only once the client has given up

    async def slow(_: web.Request) -> web.Response:
        await answer.wait()
        return web.Response(text=HTML, content_type="text/html")

    async with serve({"/t": truncated, "/slow": slow}) as base:
        f = AiohttpFetcher(settings(base, timeout=0.5))
        try:
            with pytest.raises(TransientFetchError):
                await f.fetch(base + "/t")
            with pytest.raises(TransientFetchError, match="timeout"):
                await f.fetch(base + "/slow")
        finally:
            answer.set()
            await f.close()


async def test_conditional_request_gets_304() -> None:
    async def h(req: web.Request) -> web.Response:
        if req.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"'})
        return web.Response(text=HTML, content_type="text/html", headers={"ETag": '"v1"'})

    async with serve({"/p": h}) as base:
        f = AiohttpFetcher(settings(base))
        try:
            first = await f.fetch(base + "/p")
            second = await f.fetch(base + "/p", Validators(etag=first.etag))
        finally:
            await f.close()
    assert first.status == 200 and first.etag == '"v1"'
    assert second.not_modified and second.body == b""


async def test_robots_disallow_and_crawl_delay() -> None:
    stamps: list[float] = []

    async def robots(_: web.Request) -> web.Response:
        return web.Response(text="User-agent: *\nDisallow: /private\nCrawl-delay: 0.3\n")

    async def page(_: web.Request) -> web.Response:
        stamps.append(time.monotonic())
        return web.Response(text=HTML, content_type="text/html")

    async with serve({"/robots.txt": robots, "/private": page, "/ok": page}) as base:
        f = AiohttpFetcher(settings(base, respect_robots=True))
        try:
            with pytest.raises(PermanentFetchError, match="robots"):
                await f.fetch(base + "/private")
            await asyncio.gather(*(f.fetch(base + "/ok") for _ in range(3)))
        finally:
            await f.close()
    assert len(stamps) == 3
    gaps = [b - a for a, b in zip(sorted(stamps), sorted(stamps)[1:], strict=False)]
    assert all(g >= 0.25 for g in gaps)


def test_parse_retry_after_forms() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:07 GMT", now) == 7.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None


async def test_credentials_in_urls_and_redirects_are_never_sent() -> None:
    """`user:pw@` in the URL asked for or in a redirect's Location: no Authorization
    header ever reaches the server, and the final address holds no credentials."""
    auth: list[str | None] = []

    async def start(req: web.Request) -> web.Response:
        auth.append(req.headers.get("Authorization"))
        host = req.headers["Host"]
        raise web.HTTPFound(f"http://user:secret@{host}/reports/b")

    async def b(req: web.Request) -> web.Response:
        auth.append(req.headers.get("Authorization"))
        return web.Response(text=HTML, content_type="text/html")

    async with serve({"/reports/a": start, "/reports/b": b}) as base:
        creds = base.replace("://", "://user:secret@")
        f = AiohttpFetcher(settings(base))
        try:
            page = await f.fetch(creds + "/reports/a")
        finally:
            await f.close()
    assert page.status == 200
    assert auth == [None, None]
    assert "secret" not in page.final_url and "@" not in page.final_url


async def test_redirects_off_the_report_pages_are_refused_unfetched() -> None:
    """With the Source's scope, a redirect to `/login` or to a path that a server would
    normalise out of `/reports/` is never followed."""
    hits: list[str] = []

    async def start(req: web.Request) -> web.Response:
        raise web.HTTPFound(req.query.get("to", "/login"))

    async def trap(req: web.Request) -> web.Response:
        hits.append(req.raw_path)
        return web.Response(text=HTML, content_type="text/html")

    routes = {"/reports/a": start, "/login": trap, "/private/x": trap, "/reports/{t:.*}": trap}
    async with serve(routes) as base:
        f = AiohttpFetcher(settings(base), scope=ReportSource(base_url=base).in_scope)
        try:
            for to in ("/login", "/reports/q/%2E%2E/%2E%2E/private/x", "/reports/../login"):
                with pytest.raises(PermanentFetchError) as info:
                    await f.fetch(f"{base}/reports/a?to={quote(to)}")
                assert info.value.reason == "redirect off the report pages"
        finally:
            await f.close()
    assert hits == []


def test_retry_after_is_bounded() -> None:
    assert parse_retry_after("9" * 400) == MAX_WAIT
    assert parse_retry_after("\u00b2") is None  # a digit to str.isdigit, not to float


@asynccontextmanager
async def raw_site(answers: dict[str, bytes | None]) -> AsyncIterator[tuple[str, Counter[str]]]:
    """A bare HTTP/1.1 server: each path gets its bytes as they are (None: the connection
    is closed unanswered, a server disconnect); it counts the requests per path."""
    seen: Counter[str] = Counter()

    async def talk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                seen[path] += 1
                answer = answers.get(path)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(talk, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()
        await server.wait_closed()


OK_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n"
    b"Connection: keep-alive\r\n\r\nok"
)


async def test_a_server_disconnect_is_not_retried_by_the_http_client() -> None:
    """aiohttp resends an idempotent request once when a kept-alive connection drops;
    citepipe's retry policy decides retries, so the site sees one request (issue 20)."""
    async with raw_site({"/ok": OK_RESPONSE, "/drop": None}) as (base, seen):
        f = AiohttpFetcher(settings(base))
        try:
            await f.fetch(f"{base}/ok")  # the connection is kept alive for the next one
            with pytest.raises(TransientFetchError):
                await f.fetch(f"{base}/drop")
        finally:
            await f.close()
    assert seen == Counter({"/ok": 1, "/drop": 1})


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Big: "
            + b"a" * 20_000
            + b"\r\nContent-Length: 2\r\n\r\nok",
            "headers too large",
        ),
        (b"HTTP/1.1 abc\r\n\r\n", "malformed response"),
    ],
)
async def test_protocol_errors_are_permanent(answer: bytes, reason: str) -> None:
    async with raw_site({"/p": answer}) as (base, seen):
        f = AiohttpFetcher(settings(base))
        try:
            with pytest.raises(PermanentFetchError) as caught:
                await f.fetch(f"{base}/p")
        finally:
            await f.close()
    assert caught.value.reason == reason
    assert seen == Counter({"/p": 1})
