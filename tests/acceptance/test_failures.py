"""Failing commands: one line, a documented exit code, and nothing created or changed.

Most run `cli.main` in-process (capsys reads what it printed); the ones where a traceback
could come from a thread or an interpreter shutdown run the real command.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from citesite.server import CitationSite
from pipeline import app, cli
from pipeline.cli import _base as cli_base
from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.models import NewJob
from pipeline.runs import demo
from pipeline.runs.lifecycle import Stop

from .conftest import ROOT, fast_env, fast_settings, query, reports, run_cli, start_cli, write_dois


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


async def amake_store(db: Path) -> None:
    """A real store with one job, made by the store's own migrations (no network)."""
    async with app.open_pipeline(fast_settings("http://127.0.0.1:9", db)) as p:
        await p.store.enqueue([NewJob(doi="10.1/x", url="http://127.0.0.1:9/reports/10.1/x")])


def make_store(db: Path) -> None:
    asyncio.run(amake_store(db))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("CITEPIPE_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("CITEPIPE_LOG_FORMAT", "json")
    monkeypatch.chdir(tmp_path)
    yield
    structlog.reset_defaults()  # cli.main configured logging onto capsys's stream


@pytest.mark.parametrize("target", ["missing-folder/out.csv", "a-folder", "/dev/full"])
def test_export_to_a_bad_output_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, target: str
) -> None:
    db = tmp_path / "s.sqlite"
    make_store(db)
    (tmp_path / "a-folder").mkdir()
    code, _, err = run_main(capsys, "export", "--table", "jobs", "-o", target, "--db", str(db))
    assert code == 2
    assert "--output" in one_line(err)
    assert not (tmp_path / "missing-folder").exists()


def test_config_naming_a_binary_file_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xd0\xff\xfe" * 10)
    code, _, err = run_main(capsys, "status", "--config", str(binary), "--db", "x.sqlite")
    assert code == 2 and "bin.toml" in one_line(err)
    assert not (tmp_path / "x.sqlite").exists()


@pytest.mark.parametrize(
    ("argv", "word"),
    [
        (["site", "--per-page", "0"], "--per-page"),
        (["site", "--port", "70000"], "--port"),
        (["site", "--crawl-delay", "nan"], "--crawl-delay"),
        (["site", "--crawl-delay", "inf"], "--crawl-delay"),
        (["site", "--crawl-delay=-1"], "--crawl-delay"),
        (["site", "--cache-size", "0"], "--cache-size"),
        (["site", "--generate=-5"], "--generate"),
        (["site", "--seed=-1"], "--seed"),
    ],
)
def test_bad_site_options_are_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], word: str
) -> None:
    code, _, err = run_main(capsys, *argv)
    assert code == 2 and word in one_line(err)


@pytest.mark.parametrize("command", [["status"], ["backfill", "in.txt"], ["crawl"]])
def test_db_naming_a_directory_is_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "in.txt").write_text("10.1/x\n", encoding="utf-8")
    folder = tmp_path / "store-dir"
    folder.mkdir()
    code, _, err = run_main(capsys, *command, "--db", str(folder))
    assert code == 2 and "directory" in one_line(err)
    assert list(folder.iterdir()) == []


async def test_db_naming_a_directory_in_the_real_command(tmp_path: Path) -> None:
    """The process itself: no traceback at interpreter exit from a database thread."""
    folder = tmp_path / "store-dir"
    folder.mkdir()
    res = await run_cli("backfill", "-", env=fast_env("http://127.0.0.1:9", folder), stdin=b"")
    assert res.code == 2 and "directory" in one_line(res.err)
    assert list(folder.iterdir()) == []


def test_status_on_an_empty_file_leaves_it_empty(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = tmp_path / "empty.sqlite"
    db.touch()
    code, _, err = run_main(capsys, "status", "--db", str(db))
    assert code == 2 and "empty" in one_line(err)
    assert db.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.sqlite"]


@pytest.mark.parametrize("command", [["status"], ["backfill", "in.txt"]])
def test_a_foreign_sqlite_file_is_left_unchanged(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "in.txt").write_text("10.1/x\n", encoding="utf-8")
    db = tmp_path / "foreign.sqlite"
    con = sqlite3.connect(db)
    con.execute("create table notes (body text)")
    con.commit()
    con.close()
    before = db.read_bytes()
    code, _, err = run_main(capsys, *command, "--db", str(db))
    assert code == 2 and "another program" in one_line(err)
    assert db.read_bytes() == before
    assert query(db, "select name from sqlite_master") == [("notes",)]


@pytest.mark.parametrize(
    "command", [["backfill", "missing.txt"], ["crawl", "--seeds", "missing.txt"]]
)
def test_a_missing_input_file_creates_no_store(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    code, _, err = run_main(capsys, *command, "--db", "data/new.sqlite")
    assert code == 2 and "missing.txt" in one_line(err)
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------- permissions


def run_as_other_user(*argv: str) -> tuple[int, str]:
    """`citepipe ARGV` as a user who does not own the test's files: `nobody` when the tests
    run as root (root may write anything), else this user (the files are made read-only).
    A forked child, not a new interpreter: `nobody` may not reach the venv's Python."""
    import importlib.readers  # noqa: F401  (what the child reads the selectors with)

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 99
        try:
            os.close(read_end)
            sys.stderr = os.fdopen(write_end, "w")
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
            for key in [k for k in os.environ if k.startswith("CITEPIPE_")]:
                del os.environ[key]
            os.environ |= {"CITEPIPE_PROGRESS": "false", "CITEPIPE_LOG_FORMAT": "json"}
            os.chdir("/")
            if os.getuid() == 0:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
            code = cli.main(list(argv))
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        err = pipe.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err


NOBODY = 65534


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder every user can reach (pytest's tmp_path is private to its user)."""
    folder = Path(tempfile.mkdtemp(prefix="citepipe-perm-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for path in (folder, *folder.iterdir()):
            path.chmod(0o755)
        shutil.rmtree(folder)


@pytest.mark.parametrize("what", ["folder", "file"])
def test_a_store_this_uid_cannot_write_says_so_in_one_line(shared_dir: Path, what: str) -> None:
    """Not SQLite's "unable to open database file": the reason, the uid and the cure;
    exit 2, and nothing is made or changed."""
    db = shared_dir / "c.sqlite"
    if what == "file":
        asyncio.run(amake_store(db))  # a real store, closed
        before = db.read_bytes()
        db.chmod(0o444)
        shared_dir.chmod(0o777)  # the folder is writable: only the file is not
    elif os.getuid() != 0:
        shared_dir.chmod(0o555)
    names = sorted(p.name for p in shared_dir.iterdir())
    code, err = run_as_other_user("crawl", "--db", str(db))
    uid = NOBODY if os.getuid() == 0 else os.getuid()
    line = one_line(err)
    assert code == 2, err
    assert "unable to open" not in line
    assert line.startswith(f"citepipe: configuration error: db: permission denied: uid {uid} ")
    target = shared_dir if what == "folder" else db
    assert f"`chown {uid} {target}`" in line
    if what == "folder":
        assert not db.exists()
    else:
        assert db.read_bytes() == before
    assert sorted(p.name for p in shared_dir.iterdir()) == names


# ---------------------------------------------------------------- demo


def test_demo_refuses_to_overwrite_what_it_did_not_make(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("precious\n", encoding="utf-8")
    store = tmp_path / "real.sqlite"
    make_store(store)
    store_bytes = store.read_bytes()
    for target in (text, store):
        with pytest.raises(ConfigError, match="not a store made by `citepipe demo`"):
            demo.prepare_demo_db(str(target), force=False)
    assert text.read_text(encoding="utf-8") == "precious\n"
    assert store.read_bytes() == store_bytes
    demo.prepare_demo_db(str(text), force=True)  # --force: the user said so
    assert not text.exists()


async def test_demo_replaces_its_own_store_and_refuses_a_real_one(tmp_path: Path) -> None:
    db = tmp_path / "demo.sqlite"
    env = fast_env("http://unused.invalid", tmp_path / "x.sqlite")
    first = await run_cli("demo", "--db", str(db), env=env)
    assert first.code == 0, first.err[-2000:]
    assert demo.is_demo_store(str(db))
    again = await run_cli("demo", "--db", str(db), env=env)  # its own store: replaced
    assert again.code == 0, again.err[-2000:]
    # replaced, not added to: the new demo's two runs (its backfill, its epoch's crawl)
    assert query(db, "select count(*) from runs") == [(2,)]
    real = tmp_path / "real.sqlite"
    await amake_store(real)
    refused = await run_cli("demo", "--db", str(real), env=env)
    assert refused.code == 2 and "--force" in one_line(refused.err)
    assert query(real, "select count(*) from jobs") == [(1,)]


def test_demo_db_is_its_own_file_unless_db_is_set() -> None:
    assert demo.demo_db(Settings()) == demo.DEMO_DB == "data/demo.sqlite"
    assert demo.demo_db(Settings(db="/data/citepipe.sqlite")) == "/data/citepipe.sqlite"


def test_demo_stores_where_citepipe_db_says(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in the container image: CITEPIPE_DB names the data volume, and the working
    folder (here an empty one) is never written."""
    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("CITEPIPE_")]:
        monkeypatch.delenv(key)
    db = tmp_path / "volume" / "store.sqlite"
    monkeypatch.setenv("CITEPIPE_DB", str(db))
    monkeypatch.setenv("CITEPIPE_PROGRESS", "false")
    monkeypatch.setenv("CITEPIPE_LOG_LEVEL", "warning")
    code, out, err = run_main(capsys, "demo")
    assert code == 0, err[-2000:]
    assert demo.is_demo_store(str(db))
    assert query(db, "select count(*) from jobs where state != 'done'") == [(0,)]
    assert f"stored in {db}" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["volume"]


# ---------------------------------------------------------------- signals


async def test_first_ctrl_c_under_politeness_stops_and_releases_leases(tmp_path: Path) -> None:
    """Default politeness (1 s between requests): the first SIGINT ends the run with 130,
    its politeness sleeps cancelled and every lease given back."""
    reps = reports(20, seed=31)
    async with CitationSite(reps) as site:
        db = tmp_path / "c.sqlite"
        env = fast_env(site.base_url, db, request_delay=1.0, per_host_concurrency=2)
        proc = await start_cli(
            "backfill", str(write_dois(tmp_path / "in.txt", list(reps))), env=env
        )
        await _wait_for_done(db, 1)
        proc.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert "stopped by signal" in out.decode()
    assert query(db, "select count(*) from jobs where state = 'leased'") == [(0,)]
    assert query(db, "select count(*) from jobs where state = 'queued'")[0][0] > 0


async def test_a_second_signal_forces_the_quit_and_handlers_are_restored() -> None:
    """The first signal asks the run to stop; the second forces the quit; on the way out
    the handlers that were there before are back."""
    before = {sig: signal.getsignal(sig) for sig in cli_base.STOP_SIGNALS}
    forced: list[int] = []
    stop = Stop()
    err = io.StringIO()
    with cli_base.handle_signals(stop, err, force_quit=forced.append):
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), 5)
        assert stop.signum == signal.SIGTERM and forced == []
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100):  # the handler runs between bytecodes of this thread
            if forced:
                break
            await asyncio.sleep(0)
    assert forced == [143]  # 128 + the first signal, SIGTERM
    assert "quitting now" in err.getvalue()
    assert {sig: signal.getsignal(sig) for sig in cli_base.STOP_SIGNALS} == before


async def _wait_for_done(db: Path, at_least: int) -> None:
    await _wait_for_rows(db, "select count(*) from jobs where state = 'done'", at_least)


async def _wait_for_rows(db: Path, sql: str, at_least: int = 1) -> None:
    for _ in range(1200):
        if db.exists():
            try:
                if query(db, sql)[0][0] >= at_least:
                    return
            except sqlite3.Error:  # no schema yet
                pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"never reached: {sql} >= {at_least}")


def test_an_unknown_timezone_is_a_configuration_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITEPIPE_TIMEZONE", "Mars/Olympus_Mons")
    code, _, err = run_main(capsys, "schedule", "--db", "s.sqlite")
    assert code == 2 and "timezone" in one_line(err)
    assert not Path("s.sqlite").exists()


async def closed_stdout_run(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run citepipe with its standard output a pipe nobody reads (the read end is closed
    before it starts, as `| head` closes it): every write to it fails with EPIPE."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pipeline", *args, env=env, cwd=str(ROOT),
            stdin=asyncio.subprocess.DEVNULL, stdout=write, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    finally:
        os.close(write)
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_a_closed_pipe_does_not_turn_a_failing_run_into_success(tmp_path: Path) -> None:
    """`citepipe backfill ... | head`: the summary cannot be printed, but the run's exit
    code (1: a report the site does not have) is kept; an output command whose reader
    left (`export | head`) still ends quietly with 0 (issue 25, point 6)."""
    reps = reports(2, seed=26)
    db = tmp_path / "s.sqlite"
    inp = write_dois(tmp_path / "in.txt", [*reps, "10.5555/not-on-the-site"])
    async with CitationSite(reps) as site:
        env = fast_env(site.base_url, db)
        code, err = await closed_stdout_run("backfill", str(inp), env=env)
        assert "Traceback" not in err
        assert code == 1  # the run's own code: its input holds a DOI that ended dead
        assert query(db, "SELECT doi, state FROM jobs WHERE state = 'dead'") == [
            ("10.5555/not-on-the-site", "dead")
        ]
        code, err = await closed_stdout_run("export", "--table", "papers", env=env)
        assert (code, err) == (0, "")


def test_parse_of_the_readme_is_not_a_captcha_wall(capsys: pytest.CaptureFixture[str]) -> None:
    """The README explains captcha walls; it is not one (issue 25, point 7)."""
    code, out, err = run_main(capsys, "parse", str(ROOT / "README.md"))
    assert (code, out) == (1, "")
    line = one_line(err)
    assert "not a report page" in line and "wall" not in line
