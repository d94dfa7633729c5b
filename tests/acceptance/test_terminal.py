"""The command on a terminal, through a pseudo-terminal: the progress bar shows totals,
log lines and messages are printed above it (never into it), and a terminal that
reports no width gets no bar but progress log lines."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import struct
import sys
import termios
from pathlib import Path

from citesite.server import CitationSite

from .conftest import ROOT, fast_env, query, reports, write_dois

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
BAR = "━"


async def run_on_terminal(args: list[str], env: dict[str, str], cols: int) -> tuple[int, str]:
    """Run citepipe with stdin, stdout and stderr on a pseudo-terminal `cols` wide;
    return its exit code and everything it wrote, control sequences removed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pipeline",
        *args,
        env=env,
        cwd=str(ROOT),
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    loop = asyncio.get_running_loop()
    chunks: list[bytes] = []
    done = asyncio.Event()

    def readable() -> None:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            data = b""
        if data:
            chunks.append(data)
        else:
            loop.remove_reader(master)
            done.set()

    loop.add_reader(master, readable)
    try:
        code = await asyncio.wait_for(proc.wait(), 120)
        await asyncio.wait_for(done.wait(), 10)
    finally:
        loop.remove_reader(master)
        os.close(master)
    return code, _ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


def screen_lines(text: str) -> list[str]:
    """What ended up on lines: a carriage return starts the line again."""
    out = []
    for line in text.replace("\r\n", "\n").split("\n"):
        out.extend(part for part in line.split("\r") if part.strip())
    return out


async def test_the_bar_shows_totals_and_log_lines_stay_above_it(tmp_path: Path) -> None:
    reps = reports(12, seed=41)
    dois = list(reps)
    async with CitationSite(reps, faults="slow=1.0,delay=0.05") as site:
        db = tmp_path / "c.sqlite"
        env = fast_env(site.base_url, db, concurrency=2, log_format="console")
        env["CITEPIPE_PROGRESS"] = "true"
        inp = write_dois(tmp_path / "in.txt", [*dois, "not-a-doi", "10.5555/missing"])
        code, text = await run_on_terminal(["backfill", str(inp)], env, cols=120)
    assert code == 1, text[-3000:]  # one DOI is not on the site: dead, exit 1
    done = query(db, "select count(*) from jobs where state = 'done'")[0][0]
    lines = screen_lines(text)
    bars = [x for x in lines if BAR in x or "pages/s" in x]
    # the crawl line ends with every page done, out of the true total (follow-ups included)
    assert any(x.startswith("backfill pages") and f" {done}/{done} " in x for x in bars), bars[-4:]
    assert done > len(dois)  # some reports had more than one page: the total grew
    # reports: every one on the site complete, out of the DOIs queued (one was missing)
    assert any(f"reports {len(dois)}/{len(dois) + 1}, retries 0, dead 1" in x for x in bars)
    assert any("reading input" in x or "input read" in x for x in lines)
    assert any("ETA" in x and "retries" in x and "dead" in x for x in bars)
    # the message and the log line are whole lines of their own, not glued to a bar
    bad = [x for x in lines if "not a DOI" in x]
    dead = [x for x in lines if "job dead" in x]
    assert bad and dead, text[-3000:]
    for line in bad + dead:
        assert BAR not in line and "pages/s" not in line, line
    assert bad[0].startswith("line 13: not a DOI")


async def test_a_terminal_without_width_gets_progress_lines_not_a_bar(tmp_path: Path) -> None:
    reps = reports(6, seed=42)
    async with CitationSite(reps, faults="slow=1.0,delay=0.1") as site:
        db = tmp_path / "c.sqlite"
        env = fast_env(site.base_url, db, concurrency=1, progress_interval="0.2")
        env["CITEPIPE_PROGRESS"] = "true"
        env.pop("COLUMNS", None)
        inp = write_dois(tmp_path / "in.txt", list(reps))
        code, text = await run_on_terminal(["backfill", str(inp)], env, cols=0)
    assert code == 0, text[-3000:]
    assert BAR not in text and "pages/s " not in text
    assert '"event": "progress"' in text


async def test_with_two_processes_the_bar_counts_each_page_once(tmp_path: Path) -> None:
    """The helper's pages used to be added a second time at the end (1762/1762 on the
    bar for 1,211 pages)."""
    reps = reports(16, seed=43)
    async with CitationSite(reps, faults="slow=1.0,delay=0.02") as site:
        db = tmp_path / "c.sqlite"
        env = fast_env(site.base_url, db, concurrency=2, log_format="console")
        env["CITEPIPE_PROGRESS"] = "true"
        inp = write_dois(tmp_path / "in.txt", list(reps))
        code, text = await run_on_terminal(
            ["backfill", str(inp), "--processes", "2"], env, cols=160
        )
    assert code == 0, text[-3000:]
    done = query(db, "select count(*) from jobs where state = 'done'")[0][0]
    bars = [x for x in screen_lines(text) if x.startswith("backfill pages")]
    assert bars, text[-3000:]
    assert f" {done}/{done} " in bars[-1], (done, bars[-3:])
    assert f"reports {len(reps)}/{len(reps)}," in bars[-1], bars[-1]


async def test_a_resumed_backfill_counts_the_reports_of_its_whole_input(tmp_path: Path) -> None:
    """A second run over an input whose first half is done: `reports 10/10` at the end,
    not `5/5` (the reports of this run only)."""
    reps = reports(10, seed=44)
    dois = list(reps)
    async with CitationSite(reps, faults="slow=1.0,delay=0.02") as site:
        db = tmp_path / "c.sqlite"
        env = fast_env(site.base_url, db, concurrency=2, log_format="console")
        first = write_dois(tmp_path / "first.txt", dois[:5])
        code, _ = await run_on_terminal(["backfill", str(first)], env, cols=160)
        assert code == 0
        env["CITEPIPE_PROGRESS"] = "true"
        inp = write_dois(tmp_path / "in.txt", dois)
        code, text = await run_on_terminal(["backfill", str(inp)], env, cols=160)
    assert code == 0, text[-3000:]
    bars = [x for x in screen_lines(text) if x.startswith("backfill pages")]
    assert bars and "reports 10/10," in bars[-1], bars[-3:]


async def test_a_narrow_terminal_keeps_the_numbers(tmp_path: Path) -> None:
    """At 60 columns the bar used to squeeze its numbers out; the summary on a terminal
    is for people: no `citepipe-summary` JSON line."""
    reps = reports(6, seed=45)
    async with CitationSite(reps, faults="slow=1.0,delay=0.02") as site:
        db = tmp_path / "c.sqlite"
        env = fast_env(site.base_url, db, concurrency=2, log_format="console")
        env["CITEPIPE_PROGRESS"] = "true"
        inp = write_dois(tmp_path / "in.txt", list(reps))
        code, text = await run_on_terminal(["backfill", str(inp)], env, cols=60)
    assert code == 0, text[-3000:]
    done = query(db, "select count(*) from jobs where state = 'done'")[0][0]
    bars = [x for x in screen_lines(text) if f"{done}/{done}" in x]
    assert bars, text[-3000:]
    assert all(len(x) <= 60 for x in bars), bars
    assert any(f"reports {len(reps)}/{len(reps)}" in x and "dead 0" in x for x in bars), bars
    assert "citepipe-summary" not in text
    assert "exit code:  0" in text
