"""`citepipe backfill` end to end: real sockets against the local site, a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from pathlib import Path

import pytest

from citesite.server import CitationSite

from .conftest import (
    expected_statements,
    fast_env,
    messy_input,
    query,
    reports,
    run_cli,
    snapshot,
    start_cli,
    stored_statements,
    summary_of,
    write_dois,
)

TRANSIENT = (
    "500=0.05,502=0.04,503=0.04,429=0.05,429-date=0.03,503-date=0.03,"
    "reset=0.03,truncate=0.02,slow=0.01,first=1,delay=0.3,seed=11"
)


async def test_bad_lines_are_reported_with_numbers_and_the_rest_stored(tmp_path: Path) -> None:
    reps = reports(5, seed=8)
    text = messy_input(list(reps))
    async with CitationSite(reps) as site:
        db = tmp_path / "c.sqlite"
        res = await run_cli("backfill", "-", env=fast_env(site.base_url, db), stdin=text.encode())
    assert res.code == 1
    assert "line 2: not a DOI: 'not-a-doi'" in res.err
    assert "line 5: not a DOI: '10.12/short'" in res.err
    assert set(stored_statements(db)) == expected_statements(reps)
    assert query(db, "select count(*) from jobs where state != 'done'") == [(0,)]
    s = summary_of(res.out)
    assert s["bad_lines"] == 2 and s["input_dois"] == 6


async def test_two_backfills_of_one_input_share_the_work(tmp_path: Path) -> None:
    """The README's way to use more cores: the same backfill in two processes on one store.
    Each page is fetched once, by one of them, and the store ends exactly complete."""
    reps = reports(30, seed=6)
    async with CitationSite(reps, faults="slow=1.0,delay=0.1") as site:  # seconds of work
        db = tmp_path / "c.sqlite"
        env = fast_env(site.base_url, db, concurrency=2, per_host_concurrency=4)
        inp = write_dois(tmp_path / "in.txt", list(reps))
        a = await start_cli("backfill", str(inp), env=env)
        await _wait_for_progress(db, 1)  # the second one joins a crawl under way
        b = await start_cli("backfill", str(inp), env=env)
        (out_a, err_a), (out_b, err_b) = await asyncio.wait_for(
            asyncio.gather(a.communicate(), b.communicate()), 120
        )
        fetched = [r.path_qs for r in site.requests if r.path_qs.startswith("/reports/")]
    assert a.returncode == 0 and b.returncode == 0, (err_a[-1500:], err_b[-1500:])
    assert [p for p, n in Counter(fetched).items() if n > 1] == []
    pages = [summary_of(out.decode())["pages"] for out in (out_a, out_b)]
    assert sum(pages) == query(db, "select count(*) from jobs")[0][0]  # type: ignore[operator]
    assert all(n > 0 for n in pages)  # type: ignore[operator]
    rows = stored_statements(db)
    assert len(rows) == len(set(rows)) and set(rows) == expected_statements(reps)


async def _wait_for_progress(db: Path, at_least: int, timeout: float = 60) -> None:
    for _ in range(int(timeout * 20)):
        if db.exists():
            try:
                done = query(db, "select count(*) from jobs where state = 'done'")[0][0]
            except Exception:  # the schema may not exist yet
                done = 0
            if done >= at_least:
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the backfill made no progress")


@pytest.mark.slow  # many seconds of real faults and waits: make test-all
async def test_sigkill_mid_run_then_rerun_gives_the_same_rows(tmp_path: Path) -> None:
    reps = reports(40, seed=9)
    async with CitationSite(reps, faults="slow=0.3,delay=0.2,seed=1") as site:
        inp = write_dois(tmp_path / "in.txt", list(reps))
        clean_db, killed_db = tmp_path / "clean.sqlite", tmp_path / "killed.sqlite"
        clean = await run_cli("backfill", str(inp), env=fast_env(site.base_url, clean_db))
        assert clean.code == 0, clean.err[-2000:]
        env = fast_env(site.base_url, killed_db, concurrency=4, per_host_concurrency=4)
        for at_least in (3, 20):  # kill twice, at different moments
            proc = await start_cli("backfill", str(inp), env=env)
            await _wait_for_progress(killed_db, at_least)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        assert query(killed_db, "select count(*) from jobs where state = 'leased'")[0][0] > 0
        again = await run_cli("backfill", str(inp), env=fast_env(site.base_url, killed_db))
    assert again.code == 0, again.err[-2000:]
    assert snapshot(killed_db) == snapshot(clean_db)
    assert set(stored_statements(killed_db)) == expected_statements(reps)
    assert query(killed_db, "pragma integrity_check") == [("ok",)]


async def test_sigterm_stops_cleanly_and_loses_nothing(tmp_path: Path) -> None:
    reps = reports(40, seed=4)
    async with CitationSite(reps, faults="slow=0.5,delay=0.3,seed=2") as site:
        inp = write_dois(tmp_path / "in.txt", list(reps))
        db = tmp_path / "c.sqlite"
        env = fast_env(site.base_url, db, concurrency=4, per_host_concurrency=4)
        proc = await start_cli("backfill", str(inp), env=env)
        await _wait_for_progress(db, 5)
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 15)
        assert proc.returncode == 143  # 128 + SIGTERM
        assert "stopped by signal" in out.decode()
        assert query(db, "select count(*) from jobs where state = 'leased'") == [(0,)]
        left = query(db, "select count(*) from jobs where state = 'queued'")[0][0]
        assert left > 0
        again = await run_cli("backfill", str(inp), env=fast_env(site.base_url, db))
    assert again.code == 0
    assert set(stored_statements(db)) == expected_statements(reps)


async def test_status_and_export(tmp_path: Path) -> None:
    reps = reports(6, seed=1)
    async with CitationSite(reps) as site:
        inp = write_dois(tmp_path / "in.txt", [*reps, "10.5555/missing"])
        db = tmp_path / "data" / "c.sqlite"  # a folder that does not exist yet
        env = fast_env(site.base_url, db)
        before = await run_cli("status", env=env)
        assert before.code == 2 and "no store at" in before.err  # a store that cannot be opened
        assert not db.parent.exists()  # status looked; it created nothing
        await run_cli("backfill", str(inp), env=env)
    status = await run_cli("status", env=env)
    assert status.code == 0 and "not found" in status.out and "statements" in status.out
    js = json.loads((await run_cli("status", "--json", env=env)).out)
    assert js["jobs_by_state"]["dead"] == 1
    csv_out = tmp_path / "s.csv"
    exp = await run_cli(
        "export", "--table", "statements", "--format", "csv", "-o", str(csv_out), env=env
    )
    assert exp.code == 0
    lines = csv_out.read_text(encoding="utf-8").splitlines()
    n = query(db, "select count(*) from statements")[0][0]
    assert lines[0].startswith("id,") and "snippet" in lines[0]
    jl = await run_cli("export", "--table", "papers", "--format", "jsonl", env=env)
    papers = [json.loads(x) for x in jl.out.splitlines()]
    assert len(papers) == query(db, "select count(*) from papers")[0][0]
    assert n > 0 and len(lines) >= n + 1


async def test_config_errors_exit_2_and_name_the_setting(tmp_path: Path) -> None:
    env = fast_env("http://127.0.0.1:9", tmp_path / "c.sqlite", concurrency="many")
    res = await run_cli("status", env=env)
    assert res.code == 2 and "concurrency" in res.err
    res = await run_cli(
        "backfill",
        str(tmp_path / "missing.txt"),
        env=fast_env("http://127.0.0.1:9", tmp_path / "c.sqlite"),
    )
    assert res.code == 2 and "missing.txt" in res.err
    env = fast_env("http://127.0.0.1:9", tmp_path / "c.sqlite")
    env["CITEPIPE_DB"] = "postgresql://citepipe:hunter2@db.internal/crawl"
    res = await run_cli("status", env=env)
    assert res.code == 2 and "db:" in res.err and "PostgreSQL" in res.err
    assert "hunter2" not in res.err + res.out


async def test_demo_runs_offline(tmp_path: Path) -> None:
    res = await run_cli(
        "demo",
        "--db",
        str(tmp_path / "demo.sqlite"),
        env=fast_env("http://unused.invalid", tmp_path / "x.sqlite"),
    )
    assert res.code == 0, res.err[-2000:]
    assert "10.1038/bmt.2012.184" in res.out
    assert (
        query(
            tmp_path / "demo.sqlite",
            "select count(*) from statements where cited_doi = '10.1038/bmt.2012.184'",
        )[0][0]
        > 0
    )
    # then the site moves to its next epoch, a crawl refreshes the store, and the demo
    # prints the short digest of what that crawl found (issue 22)
    db = tmp_path / "demo.sqlite"
    assert [k for (k,) in query(db, "select kind from runs order by id")] == ["demo", "demo"]
    out = res.out.split("after the site's next epoch, a crawl", 1)[1]
    headline = out.splitlines()[1].strip()
    new = query(
        db,
        "select count(*) from statements where first_seen_at >= (select max(started_at) from runs)",
    )[0][0]
    assert new > 0 and headline.split(", ")[1].startswith(f"{new} new statement")
    assert "(citepipe changes --db " in out


async def test_a_site_reached_by_another_name_is_crawled_whole(tmp_path: Path) -> None:
    """The site binds 127.0.0.1 and is crawled as `localhost` (as compose's demo crawls
    `http://site:8080` of a site bound to 0.0.0.0): its links name the address it was
    reached at, so every next page is followed, not just page 1 of each report."""
    reps = reports(8, seed=21)
    async with CitationSite(reps, per_page=5) as site:
        db = tmp_path / "c.sqlite"
        inp = write_dois(tmp_path / "in.txt", list(reps))
        env = fast_env(f"http://localhost:{site.port}", db)
        res = await run_cli("backfill", str(inp), env=env)
        pages = sum(site.pages(d) for d in reps)
    assert res.code == 0, res.err[-2000:]
    assert pages > len(reps)  # reports of several pages
    assert set(stored_statements(db)) == expected_statements(reps)
    assert query(db, "select count(*) from jobs where state = 'done'") == [(pages,)]
    assert {
        u for (u,) in query(db, "select report_url from papers where report_url is not null")
    } <= {f"http://localhost:{site.port}/reports/{r.slug}" for r in reps.values()}


async def test_statements_read_again_are_not_counted_as_stored(tmp_path: Path) -> None:
    """Every page fetched and parsed again (as a refresh does): the statements are read
    again but the store gains none; the summary says so."""
    import sqlite3

    reps = reports(6, seed=51)
    async with CitationSite(reps) as site:
        db = tmp_path / "c.sqlite"
        env = fast_env(site.base_url, db)
        inp = tmp_path / "in.txt"
        inp.write_text("".join(d + "\n" for d in reps))
        first = await run_cli("backfill", str(inp), env=env)
        stored = len(stored_statements(db))
        assert summary_of(first.out)["statements_stored"] == stored > 0
        with sqlite3.connect(db) as conn:  # every page to be fetched and parsed again
            conn.execute(
                "UPDATE jobs SET state = 'queued', content_hash = NULL, etag = NULL, "
                "last_modified = NULL"
            )
        again = await run_cli("backfill", str(inp), env=env)
    assert again.code == 0, again.err[-2000:]
    s = summary_of(again.out)
    assert s["statements_stored"] == 0 and s["statements_read"] == stored, again.out
    assert f"statements: 0 new in the store this run ({stored} statements read" in again.out
    assert "exit code:  0 (every job done" in again.out


async def test_not_on_a_terminal_the_summary_and_bad_lines_come_once(tmp_path: Path) -> None:
    """A cron log got the summary three times (the text, its JSON line, a `summary` log
    line) and each bad line twice (a message and a log line)."""
    reps = reports(3, seed=52)
    async with CitationSite(reps) as site:
        db = tmp_path / "c.sqlite"
        text = "".join(d + "\n" for d in reps) + "not-a-doi\n"
        res = await run_cli("backfill", "-", env=fast_env(site.base_url, db), stdin=text.encode())
    assert res.code == 1
    both = res.out + res.err
    assert both.count("citepipe backfill: finished in") == 1
    assert both.count("citepipe-summary ") == 1 and '"event": "summary"' not in both
    assert both.count("not-a-doi") == 1, res.err
