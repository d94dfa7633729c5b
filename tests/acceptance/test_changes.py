"""What changed after each crawl (issue 22): `citepipe changes`, `--digest`, `--notify`.

Two crawls of the local site with its data moved to the next epoch in between (new
statements for some reports, a tally move, a notice), refresh intervals made short by
settings, real sockets, a real SQLite file, a loopback webhook receiver."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web

from citesite.epochs import Epoch
from citesite.faults import FaultSpec
from citesite.server import CitationSite
from pipeline import app, cli
from pipeline.config import Settings
from pipeline.crawl.fetcher import AiohttpFetcher
from pipeline.logs import configure_logging
from pipeline.models import Page, Validators
from pipeline.ops.changes import md
from pipeline.ops.digest import after_run
from pipeline.runs import commands
from pipeline.runs.summary import RunSummary
from pipeline.store.rules import iso

from .conftest import fast_settings, query, quiet_ui, reports

SECRET = "T0KEN-s3cret-path"
SHORT = {"refresh_interval": 0.001, "refresh_min": 0.001, "refresh_max": 0.001}


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    configure_logging("info", "json", stream=buf)
    yield buf
    structlog.reset_defaults()


@dataclass
class Receiver:
    """A webhook on loopback: records each POST's JSON; answers `statuses` in turn,
    then 200."""

    statuses: list[int] = field(default_factory=list)
    posts: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        assert request.path == f"/hook/{SECRET}"
        self.posts.append(await request.json())
        status = self.statuses.pop(0) if self.statuses else 200
        return web.Response(status=status, text="ok")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    application = web.Application()
    application.router.add_post("/hook/{secret}", hook.handle)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    hook.url = f"http://127.0.0.1:{port}/hook/{SECRET}"
    yield hook
    await runner.cleanup()


class NoticeFetcher(AiohttpFetcher):
    """The real fetcher; before its first request it also stores the site's notices, as
    the API source of issue 21 will (a direct row in the real SQLite file)."""

    def __init__(self, settings: Settings, site: CitationSite, db: Path) -> None:
        super().__init__(settings)
        self.site, self.db, self.done = site, db, False

    async def fetch(self, url: str, validators: Validators | None = None) -> Page:
        if not self.done:
            self.done = True
            now = iso(datetime.now(UTC))
            with sqlite3.connect(self.db, timeout=10) as conn:
                conn.executemany(
                    "insert into notices (doi, status, date, notice_doi, url, first_seen_at,"
                    " last_seen_at) values (?, ?, ?, ?, NULL, ?, ?)",
                    [(n.doi, n.status, n.date, n.notice_doi, now, now) for n in self.site.notices],
                )
            conn.close()
        return await super().fetch(url, validators)


async def backfill(settings: Settings, dois: list[str]) -> RunSummary:
    async with app.open_pipeline(settings) as p:
        return await commands.backfill(p, dois, ui=quiet_ui())


async def crawl(settings: Settings, fetcher: AiohttpFetcher | None = None) -> RunSummary:
    try:
        async with app.open_pipeline(settings, fetcher=fetcher) as p:
            return await commands.crawl(p, None, ui=quiet_ui())
    finally:
        if fetcher is not None:
            await fetcher.close()


async def changes_cli(capsys: pytest.CaptureFixture[str], db: Path, *args: str) -> str:
    """`citepipe changes` in-process (its own event loop, on a thread of its own)."""
    capsys.readouterr()
    assert await asyncio.to_thread(cli.main, ["changes", "--db", str(db), *args]) == 0
    return capsys.readouterr().out


def expected_document_papers(epoch: Epoch, titles: dict[str, str]) -> dict[str, Any]:
    """The `papers` of the digest, by DOI, as the epoch says they must be."""

    def counts(t: Any) -> dict[str, int]:
        return {
            "supporting": t.supporting,
            "mentioning": t.mentioning,
            "contrasting": t.contrasting,
        }

    order = {"contrasting": 0, "supporting": 1, "mentioning": 2}
    out: dict[str, Any] = {}
    for doi, report in epoch.reports.items():
        new = sorted(epoch.new_statements.get(doi, ()), key=lambda s: (order[s.type], s.citing_doi))
        out[doi] = {
            "doi": doi,
            "title": titles[doi],
            "new_statements": {k: sum(s.type == k for s in new) for k in order},
            "statements": [
                {
                    "citing_doi": s.citing_doi,
                    "citing_title": s.citing_title,
                    "type": s.type,
                    "section": s.section,
                    "confidence": s.confidence,
                    "snippet": s.snippet,
                }
                for s in new
            ],
            "tallies": {
                "before": counts(epoch.tallies_before[doi]),
                "after": counts(report.tallies),
            },
            "notices": [
                {"status": n.status, "date": n.date} for n in epoch.notices if n.doi == doi
            ],
            "completeness": None,
        }
    return out


async def test_two_crawls_digest_changes_and_notify(
    tmp_path: Path,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
    _fresh_logging: io.StringIO,
) -> None:
    data = reports(24, seed=22)
    db = tmp_path / "store.sqlite"
    async with CitationSite(data) as site:
        settings = fast_settings(
            site.base_url,
            db,
            notify_url=receiver.url,
            retry_base=0.01,
            retry_cap=0.05,
            **SHORT,
        )
        first = await backfill(settings, sorted(data))
        assert first.exit_code == 0
        assert len(receiver.posts) == 1  # the first run: every paper is new
        assert receiver.posts[0]["totals"]["papers"] == len(data)
        assert all(p["tallies"]["before"] is None for p in receiver.posts[0]["papers"])

        epoch = site.next_epoch()
        assert len(epoch.reports) >= 3 and epoch.notices
        receiver.statuses = [500]  # the first POST of the next run fails once
        digest_file = tmp_path / "digest.md"
        with_digest = fast_settings(
            site.base_url,
            db,
            notify_url=receiver.url,
            digest=str(digest_file),
            retry_base=0.01,
            retry_cap=0.05,
            **SHORT,
        )
        second = await crawl(with_digest, NoticeFetcher(with_digest, site, db))
        assert second.exit_code == 0
        assert len(receiver.posts) == 3  # one 500, then the retry taken
        assert receiver.posts[1] == receiver.posts[2]
        sent = receiver.posts[2]

        # `changes --format json` (the latest run) is the POSTed document, exactly
        document = json.loads(await changes_cli(capsys, db, "--format", "json"))
        assert document == sent
        titles = {d: r.title for d, r in data.items()}
        expected = expected_document_papers(epoch, titles)
        assert {p["doi"]: p for p in document["papers"]} == expected
        new = sum(len(s) for s in epoch.new_statements.values())
        assert document["totals"] == {
            "papers": len(epoch.reports),
            "new_statements": new,
            "supporting": sum(p["new_statements"]["supporting"] for p in expected.values()),
            "mentioning": sum(p["new_statements"]["mentioning"] for p in expected.values()),
            "contrasting": sum(p["new_statements"]["contrasting"] for p in expected.values()),
            "notices": len(epoch.notices),
            "became_incomplete": 0,
            "complete_again": 0,
        }
        # contrasting news first: the papers with a contrasting statement or a notice
        news = [
            bool(p["new_statements"]["contrasting"] or p["notices"]) for p in document["papers"]
        ]
        assert news == sorted(news, reverse=True) and news[0]

        # text and Markdown say the same facts
        text = await changes_cli(capsys, db)
        markdown = await changes_cli(capsys, db, "--format", "markdown")
        assert digest_file.read_text(encoding="utf-8") == markdown
        assert text.startswith("citepipe changes ") and markdown.startswith("# What changed: ")
        for paper in document["papers"]:
            assert paper["doi"] in text and md(paper["doi"]) in markdown
            assert paper["title"] in text and md(paper["title"]) in markdown
            for s in paper["statements"]:
                for value in (s["citing_doi"], s["citing_title"], s["snippet"], s["section"]):
                    assert value in text and md(value) in markdown
            for n in paper["notices"]:
                assert f"{n['status']} ({n['date']})" in text
                assert md(f"{n['status']} ({n['date']})") in markdown
            before, after = paper["tallies"]["before"], paper["tallies"]["after"]
            for kind in ("supporting", "mentioning", "contrasting"):
                assert f"{kind} {before[kind]} -> {after[kind]}" in text
                assert f"{kind} {before[kind]} → {after[kind]}" in markdown
        assert "nothing changed" not in text

        # a crawl that finds nothing new sends nothing
        third = await crawl(settings)
        assert third.exit_code == 0 and third.counters.pages_done > 0
        assert len(receiver.posts) == 3
        assert "notify: nothing changed, nothing sent" in third.epilogue
        assert "nothing changed" in await changes_cli(capsys, db)

        # each run's digest is sent at most once
        runs = [r[0] for r in query(db, "select id from runs order by id")]
        async with app.open_pipeline(settings) as p:
            assert await after_run(p, runs[1]) == [
                f"notify: run {runs[1]}'s digest was handled already"
            ]
        assert len(receiver.posts) == 3
        assert query(db, "select run_id, state, attempts from digests order by run_id") == [
            (runs[0], "sent", 1),
            (runs[1], "sent", 2),
            (runs[2], "empty", 0),
        ]
    # the webhook's secret is never logged, nor stored
    assert SECRET not in _fresh_logging.getvalue()
    assert "http://127.0.0.1" in _fresh_logging.getvalue()
    dump = "\n".join(sqlite3.connect(db).iterdump())
    assert SECRET not in dump


async def test_a_failed_notification_is_sent_with_the_next_runs(
    tmp_path: Path, receiver: Receiver, _fresh_logging: io.StringIO
) -> None:
    data = reports(9, seed=23)
    db = tmp_path / "store.sqlite"
    async with CitationSite(data) as site:
        settings = fast_settings(
            site.base_url, db, notify_url=receiver.url, retry_base=0.01, retry_cap=0.05, **SHORT
        )
        receiver.statuses = [500, 503, 502, 500]  # every attempt of the first run fails
        first = await backfill(settings, sorted(data))
        assert first.exit_code == 0  # the notification's failure alone changes nothing
        assert len(receiver.posts) == 4
        assert any(line.startswith("notify: failed after 4 attempts") for line in first.epilogue)
        (run_1,) = [r[0] for r in query(db, "select id from runs")]
        state, attempts, error = query(
            db, "select state, attempts, last_error from digests where run_id = ?", run_1
        )[0]
        assert (state, attempts) == ("failed", 4) and "HTTP 500" in error

        epoch = site.next_epoch(every=4, most=1)
        second = await crawl(settings)
        assert second.exit_code == 0
        assert len(receiver.posts) == 5  # one message for both runs
        both = receiver.posts[4]
        # the first run's news (every paper new) and the second's, in one document
        assert both["totals"]["papers"] == len(data)
        changed = {p["doi"]: p for p in both["papers"]}
        for doi in epoch.new_statements:
            assert changed[doi]["tallies"]["before"] is None  # new since the first run began
        assert [r[1] for r in query(db, "select run_id, state from digests order by run_id")] == [
            "sent",
            "sent",
        ]


async def test_reports_that_became_incomplete_or_complete_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A report cut short by the site (`truncated`: half its statements, then no next
    link) in the first run, whole in the second; another whole first, cut in the second.
    Each run's `changes` names the reports whose completeness changed in it, and only
    those; a third run that changes nothing lists nothing (a report staying incomplete is
    not news, nor is page 1's reset while its later pages are to come)."""
    data = reports(10, seed=33)
    whole = sorted(  # reports the site serves whole, with statements enough to cut
        d for d, r in data.items() if len(r.statements) == r.tallies.citation_statements >= 4
    )
    assert len(whole) >= 2
    cut_first, cut_second = whole[0], whole[1]
    db = tmp_path / "store.sqlite"
    async with CitationSite(data, faults=FaultSpec(permanent={cut_first: "truncated"})) as site:
        settings = fast_settings(site.base_url, db, **SHORT)
        first = await backfill(settings, sorted(data))
        assert first.exit_code == 0
        cut = dict(query(db, "select doi, incomplete_reason from papers where incomplete = 1"))
        assert cut_first in cut and cut_second not in cut
        reason_first = [(cut[cut_first],)]
        assert reason_first[0][0].startswith("fewer")
        doc = json.loads(await changes_cli(capsys, db, "--format", "json"))
        moved = {p["doi"]: p["completeness"] for p in doc["papers"] if p["completeness"]}
        # every paper is new: each report served short (the site's own, and the cut one)
        assert moved == {
            doi: {"before": "complete", "after": f"incomplete: {reason}"}
            for doi, reason in cut.items()
        }

        site.faults = FaultSpec(permanent={cut_second: "truncated"})
        for doi in (cut_first, cut_second):  # served anew (a new ETag), not as 304s
            site.set_report(dataclasses.replace(data[doi], updated_at="2031-01-01T00:00:00Z"))
        second = await crawl(settings)
        assert second.exit_code == 0
        (reason_second,) = query(
            db, "select incomplete_reason from papers where doi = ?", cut_second
        )[0]
        doc = json.loads(await changes_cli(capsys, db, "--format", "json"))
        moved = {p["doi"]: p["completeness"] for p in doc["papers"] if p["completeness"]}
        assert moved == {
            cut_first: {"before": f"incomplete: {reason_first[0][0]}", "after": "complete"},
            cut_second: {"before": "complete", "after": f"incomplete: {reason_second}"},
        }
        assert doc["totals"]["became_incomplete"] == 1 and doc["totals"]["complete_again"] == 1
        # the first report's other half is new in this run; nothing else changed
        assert {p["doi"] for p in doc["papers"]} == {cut_first, cut_second}
        text = await changes_cli(capsys, db)
        markdown = await changes_cli(capsys, db, "--format", "markdown")
        assert f"report: incomplete: {reason_first[0][0]} -> complete" in text
        assert f"report: complete -> incomplete: {reason_second}" in text
        assert md(f"complete → incomplete: {reason_second}") in markdown
        assert "1 report incomplete, 1 report complete again" in text.splitlines()[0]

        third = await crawl(settings)
        assert third.exit_code == 0 and third.counters.pages_done > 0
        assert "nothing changed" in await changes_cli(capsys, db)
    history = query(db, "select doi, incomplete from completeness_history order by id")
    assert sorted(history[: len(cut)]) == sorted((doi, 1) for doi in cut)
    assert sorted(history[len(cut) :]) == sorted([(cut_first, 0), (cut_second, 1)])
