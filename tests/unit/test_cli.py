"""The command line's surface: help per command, `parse -`, plurals in what it prints."""

from __future__ import annotations

import argparse
import io
import json
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline import cli
from pipeline.cli import tools
from pipeline.cli._base import Invocation
from pipeline.config import Settings
from pipeline.errors import ConfigError
from pipeline.runs.summary import plural

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"
CRAWL_ONLY = ("--concurrency", "--request-delay", "--base-url", "--max-attempts", "--timeout")


def help_of(command: str) -> str:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text: str = sub.choices[command].format_help()
    return " ".join(text.split())  # argparse wraps lines anywhere


@pytest.mark.parametrize("command", ["parse", "status", "export"])
def test_read_only_commands_list_no_crawl_options(command: str) -> None:
    text = help_of(command)
    for flag in CRAWL_ONLY:
        assert flag not in text, (command, flag)


def test_demo_help_shows_the_defaults_demo_applies_and_no_base_url() -> None:
    text = help_of("demo")
    assert "--base-url" not in text
    assert "(default data/demo.sqlite, or the db setting when it is set)" in text
    assert (
        "--request-delay REQUEST_DELAY seconds between request starts to one host (default 0.0)"
        in text
    )
    assert "(default 8)" in text and "--force" in text


def test_backfill_help_shows_the_settings_defaults() -> None:
    text = help_of("backfill")
    assert "(default data/citepipe.sqlite)" in text
    assert "--concurrency CONCURRENCY pages in flight in each process (default 16)" in text
    assert (
        "--request-delay REQUEST_DELAY seconds between request starts to one host (default 1.0)"
        in text
    )
    assert "--processes PROCESSES worker processes on the store, or auto" in text


def test_site_help_lists_every_fault_kind() -> None:
    from citesite.faults import OPTIONS, PERMANENT_KINDS, TRANSIENT_KINDS

    text = help_of("site")
    for kind in (*TRANSIENT_KINDS, *PERMANENT_KINDS, *OPTIONS):
        assert kind in text, kind


def test_site_reports_a_bad_fault_spec_as_a_configuration_error() -> None:
    # The site raises its own FaultSpecError (a ValueError: it knows nothing of the
    # crawler's errors); `citepipe site` turns it into a ConfigError, so main() exits 2.
    args = cli.build_parser().parse_args(["site", "--port", "0"])
    args.faults = "500=2"  # past argparse's own check, as a programmatic caller may pass
    with pytest.raises(ConfigError, match=r"500=2.*not between 0 and 1"):
        tools.site(Invocation(args, Settings()))


def test_parse_dash_reads_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    html = next(SAMPLES.glob("*.html")).read_bytes()
    monkeypatch.setattr("sys.stdin", SimpleNamespace(buffer=io.BytesIO(html)))
    code = cli.main(["parse", "-", "--url", "https://scite.ai/reports/x"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["doi"] == "10.1038/bmt.2012.184"


@pytest.mark.parametrize(
    ("n", "word", "many", "text"),
    [
        (0, "job", None, "0 jobs"),
        (1, "job", None, "1 job"),
        (2, "bad line", None, "2 bad lines"),
        (1, "retry", "retries", "1 retry"),
        (3, "retry", "retries", "3 retries"),
    ],
)
def test_plural(n: int, word: str, many: str | None, text: str) -> None:
    assert plural(n, word, many) == text


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["crawl", "--max-duration=-5m"], "--max-duration"),
        (["crawl", "--max-duration", "nan"], "--max-duration"),
        (["crawl", "--max-duration", "inf"], "--max-duration"),
        (["schedule", "--max-duration", "1e9"], "--max-duration"),
        (["backfill", "in.txt", "--request-delay", "nan"], "--request-delay"),
        (["backfill", "in.txt", "--timeout", "inf"], "--timeout"),
        (["worker", "--request-delay=-1"], "--request-delay"),
    ],
)
def test_bad_numbers_on_the_command_line_exit_2_naming_the_flag(
    capsys: pytest.CaptureFixture[str], argv: list[str], flag: str
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and "not a duration" in err


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"CITEPIPE_REQUEST_DELAY": "nan"}, "request_delay"),
        ({"CITEPIPE_LEASE_SECONDS": "nan"}, "lease_seconds"),
        ({"CITEPIPE_TIMEOUT": "inf"}, "timeout"),
        ({"CITEPIPE_MAX_DURATION": "-5m"}, "max_duration"),
        ({"CITEPIPE_REQUEST_DELAY": "1e400"}, "request_delay"),
    ],
)
def test_bad_numbers_from_the_environment_exit_2_naming_the_setting(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    env: dict[str, str],
    name: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "in.txt").write_text("10.1000/a\n")
    assert cli.main(["backfill", "in.txt", "--db", "s.sqlite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"configuration error: {name}:" in err
    assert not (tmp_path / "s.sqlite").exists()  # nothing was created


# ---------------------------------------------------------------- issue 25, point 20


@pytest.mark.parametrize("command", [["backfill", "in.txt"], ["crawl"], ["worker"], ["schedule"]])
def test_a_placeholder_contact_is_never_sent_to_a_real_site(
    command: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The default user_agent names citepipe@example.org and the default base_url is
    the real site: refused (exit 2) before anything is queued or sent."""
    monkeypatch.chdir(tmp_path)  # no config/citepipe.toml of the checkout's
    (tmp_path / "in.txt").write_text("10.1038/bmt.2012.184\n")
    for key in [k for k in __import__("os").environ if k.startswith("CITEPIPE_")]:
        monkeypatch.delenv(key)
    db = tmp_path / "s.sqlite"
    assert cli.main([*command, "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "user_agent:" in err and "placeholder contact" in err
    assert "https://scite.ai is a real site" in err
    assert not db.exists() or sqlite3.connect(db).execute(
        "select count(*) from jobs"
    ).fetchone() == (0,)  # nothing queued, nothing sent


def test_a_placeholder_contact_is_fine_for_local_and_private_sites() -> None:
    from pipeline.config import check_contact

    for base in (
        "http://127.0.0.1:8765",
        "http://localhost:8080",
        "http://site:8080",  # a compose service
        "http://10.0.0.5",
        "http://[::1]:80",
    ):
        check_contact(Settings(base_url=base))
    check_contact(Settings(user_agent="lab/1.0 (mailto:me@my-lab.org)"))  # a real contact
    with pytest.raises(ConfigError, match=r"^user_agent: "):
        check_contact(Settings(base_url="https://cite.example.net"))


# ---------------------------------------------------------------- issue 25, point 18


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline import __version__

    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"citepipe {__version__}"


def test_schedule_help_says_how_to_set_the_cron_expression() -> None:
    text = " ".join(help_of("schedule").split())
    assert "--schedule" in text and "CITEPIPE_SCHEDULE" in text and "--timezone" in text
    args = cli.build_parser().parse_args(["schedule", "--schedule", "*/5 * * * *"])
    assert cli.merge_settings(args._command, args).schedule == "*/5 * * * *"


def test_site_help_names_nothing_a_cli_user_cannot_use() -> None:
    text = help_of("site")
    for python_only in ("FaultSpec(", "permanent_fault", "FaultSpecError"):
        assert python_only not in text


def test_the_selectors_file_names_a_command_that_works() -> None:
    import re

    root = Path(__file__).resolve().parents[2]
    comment = (root / "config" / "selectors.toml").read_text()
    found = re.search(r"`citepipe ([^`]*)`", comment)
    assert found is not None
    words = found.group(1).replace("...", "in.txt").split()
    args = cli.build_parser().parse_args(words)  # exits 2 on an unknown flag
    assert args.selectors == "config/selectors.toml"


def test_a_bad_duration_flag_is_said_plainly(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["prune", "--done-older-than", "soon"])
    err = capsys.readouterr().err
    assert "not a duration: 'soon'" in err and "parse_duration" not in err


def test_the_site_says_report_for_one() -> None:
    import subprocess
    import sys

    with subprocess.Popen(
        [sys.executable, "-m", "pipeline", "site", "--generate", "1", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
        finally:
            proc.terminate()
            proc.wait(30)
    assert " serving 1 report (" in line, line


@pytest.mark.parametrize("command", ["crawl", "schedule"])
def test_crawl_and_schedule_take_digest_and_notify_flags(command: str) -> None:
    """`schedule` runs crawls: its flags name the digest file and the webhook as crawl's
    do (issue 22), besides the config file and CITEPIPE_NOTIFY_URL."""
    args = cli.build_parser().parse_args(
        [command, "--digest", "d.md", "--notify", "https://hooks.example.org/x/y"]
    )
    settings = cli._base.merge_settings(args._command, args)
    assert settings.digest == "d.md"
    assert settings.notify_url == "https://hooks.example.org/x/y"
    assert "--digest" in help_of(command) and "--notify" in help_of(command)
