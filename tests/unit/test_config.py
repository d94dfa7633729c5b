from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from pipeline.config import NUMBER_BOUNDS, Settings, load_settings
from pipeline.errors import ConfigError
from pipeline.normalise import parse_duration


def test_precedence_defaults_file_env_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('concurrency = 3\nrequest_delay = 0.5\nbase_url = "http://a.test"\n')
    env = {"CITEPIPE_CONCURRENCY": "7", "CITEPIPE_DEPTH": "2"}
    s = load_settings(cfg, env=env, overrides={"depth": 4, "timeout": None})
    assert s.request_delay == 0.5  # file
    assert s.concurrency == 7  # env beats file
    assert s.depth == 4  # flag beats env
    assert s.base_url == "http://a.test"
    assert s.timeout == Settings().timeout  # None flag leaves it


def test_bad_values_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="concurrency"):
        load_settings(tmp_path / "none.toml" if False else None, env={"CITEPIPE_CONCURRENCY": "x"})
    with pytest.raises(ConfigError, match="base_url"):
        load_settings(None, env={"CITEPIPE_BASE_URL": "ftp://x"})
    cfg = tmp_path / "c.toml"
    cfg.write_text("no_such = 1\n")
    with pytest.raises(ConfigError, match="no_such"):
        load_settings(cfg, env={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml", env={})


def test_schedule_must_be_a_cron_expression() -> None:
    assert load_settings(None, env={"CITEPIPE_SCHEDULE": "*/5 * * * *"}).schedule == "*/5 * * * *"
    with pytest.raises(ConfigError, match="schedule"):
        load_settings(None, env={"CITEPIPE_SCHEDULE": "every day"})


FLOAT_SETTINGS = [
    "request_delay",
    "timeout",
    "connect_timeout",
    "retry_base",
    "retry_cap",
    "lease_seconds",
    "refresh_interval",
    "refresh_min",
    "refresh_max",
    "max_duration",
    "progress_interval",
    "parse_cpu_seconds",
]


@pytest.mark.parametrize("name", FLOAT_SETTINGS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-5", "1e400", "-5m"])
def test_every_duration_rejects_nan_infinity_and_negatives_from_env(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: "):
        load_settings(None, env={f"CITEPIPE_{name.upper()}": value})


@pytest.mark.parametrize("name", FLOAT_SETTINGS)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1.0", "1e300"])
def test_every_duration_rejects_nan_infinity_and_negatives_from_toml(
    tmp_path: Path, name: str, value: str
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"{name} = {value}\n")
    with pytest.raises(ConfigError, match=f"^{name}: "):
        load_settings(cfg, env={})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("concurrency", 0),
        ("concurrency", 10**9),
        ("max_attempts", 10**6),  # 2**attempts would overflow the backoff
        ("claim_batch", 2**63),  # more than SQLite's integers
        ("depth", -1),
        ("max_redirects", -1),
        ("quick_retries", -2),
        ("per_host_concurrency", 0),
    ],
)
def test_integers_are_bounded(name: str, value: int) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: "):
        load_settings(None, env={}, overrides={name: value})


def test_flags_named_nan_or_inf_name_the_setting() -> None:
    for value in (float("nan"), float("inf")):
        with pytest.raises(ConfigError, match=r"^request_delay: must be a finite number"):
            load_settings(None, env={}, overrides={"request_delay": value})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("1.5m", 90.0), ("2h", 7200.0), ("1d", 86400.0), (" 5M ", 300)],
)
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["-5m", "nan", "inf", "-inf", "1e3", "5 minutes", "", "m", "+5", "0x10", "5ms", "٣"]
)
def test_durations_are_parsed_strictly(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_duration_settings_take_units_from_env_and_toml(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('max_duration = "20m"\nrequest_delay = 0.25\n')
    s = load_settings(cfg, env={"CITEPIPE_LEASE_SECONDS": "1m"})
    assert (s.max_duration, s.request_delay, s.lease_seconds) == (1200.0, 0.25, 60.0)


def test_credentials_in_base_url_are_dropped() -> None:
    s = load_settings(None, env={"CITEPIPE_BASE_URL": "https://user:secret@site.test:8443/x"})
    assert s.base_url == "https://site.test:8443/x"
    with pytest.raises(ConfigError, match="base_url") as info:
        load_settings(None, env={"CITEPIPE_BASE_URL": "http://user:secret@site.test:99999/"})
    assert "secret" not in str(info.value)


def test_every_number_setting_has_bounds() -> None:
    """A new number setting must say what values it may take (NUMBER_BOUNDS)."""
    numbers = {f.name for f in fields(Settings) if str(f.type) in ("int", "float")}
    assert numbers == set(NUMBER_BOUNDS)
    assert set(FLOAT_SETTINGS) == {f.name for f in fields(Settings) if str(f.type) == "float"}


def test_keep_pages_is_broken_or_all() -> None:
    assert Settings().keep_pages == "broken"
    assert load_settings(env={"CITEPIPE_KEEP_PAGES": "all"}).keep_pages == "all"
    with pytest.raises(ConfigError, match="keep_pages: must be one of broken, all"):
        load_settings(env={"CITEPIPE_KEEP_PAGES": "some"})


def test_processes_auto_means_one_per_core() -> None:
    from pipeline.config import process_count

    settings = load_settings(env={"CITEPIPE_PROCESSES": "auto"})
    assert settings.processes == 0
    assert process_count(settings) >= 1
    assert process_count(load_settings(env={"CITEPIPE_PROCESSES": "3"})) == 3


def test_processes_need_a_store_file() -> None:
    """A contradiction between two settings, refused when they are loaded."""
    from pipeline.config import check_shareable

    for db in (":memory:", "memory://", "sqlite:///:memory:"):
        with pytest.raises(ConfigError, match="processes: a memory store cannot be shared"):
            load_settings(env={"CITEPIPE_PROCESSES": "2", "CITEPIPE_DB": db})
        with pytest.raises(ConfigError, match="memory store"):
            check_shareable(Settings(processes=2, db=db))
    check_shareable(Settings(processes=2, db="a.sqlite"))  # a file is shared


# ---------------------------------------------------------------- issue 25, points 15 and 18


def test_a_number_where_a_text_belongs_is_an_error_naming_the_setting(tmp_path: Path) -> None:
    """`db = 5` in TOML used to make a store named `5`."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("db = 5\n")
    with pytest.raises(ConfigError, match=r"^db: 5 from .*c\.toml is not a text"):
        load_settings(cfg, env={})
    cfg.write_text('user_agent = ["a"]\n')
    with pytest.raises(ConfigError, match=r"^user_agent: "):
        load_settings(cfg, env={})


def test_an_unknown_citepipe_variable_is_an_error_like_an_unknown_toml_key() -> None:
    with pytest.raises(ConfigError, match=r"CITEPIPE_CONCURENCY: unknown setting.*CONCURRENCY"):
        load_settings(None, env={"CITEPIPE_CONCURENCY": "4"})
    # the variables the project itself uses for other things are not settings, and pass
    from pipeline.config import OTHER_VARIABLES

    assert "CITEPIPE_TEST_POSTGRES" in OTHER_VARIABLES
    env = dict.fromkeys(OTHER_VARIABLES, "x")
    assert load_settings(None, env=env) == Settings().validate()


def test_an_unknown_toml_key_suggests_the_setting_it_is_near(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("concurency = 4\n")
    with pytest.raises(
        ConfigError, match=r"concurency: unknown setting .*did you mean concurrency"
    ):
        load_settings(cfg, env={})


def test_a_bad_file_value_is_reported_even_when_a_flag_overrides_it(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('concurrency = 0\nlog_level = "loud"\n')
    with pytest.raises(ConfigError, match=r"^concurrency: must be at least 1, got 0 \(from "):
        load_settings(cfg, env={}, overrides={"concurrency": 4, "log_level": "info"})
    cfg.write_text('log_level = "loud"\n')
    with pytest.raises(ConfigError, match=r"^log_level: must be one of"):
        load_settings(cfg, env={}, overrides={"log_level": "info"})
    with pytest.raises(ConfigError, match=r"^schedule: .*\$CITEPIPE_SCHEDULE"):
        load_settings(None, env={"CITEPIPE_SCHEDULE": "daily"}, overrides={"schedule": "0 3 * * *"})


def test_bounds_are_said_in_human_numbers_and_durations() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={"CITEPIPE_RETRY_CAP": "400d"})
    assert str(info.value) == (
        "retry_cap: must be at most 365 days, got 400 days (from $CITEPIPE_RETRY_CAP)"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={"CITEPIPE_CONCURRENCY": "20000"})
    assert str(info.value).startswith("concurrency: must be at most 10,000, got 20,000")
    with pytest.raises(ConfigError, match=r"^timeout: must be more than 0 s, got 0 s"):
        load_settings(None, env={"CITEPIPE_TIMEOUT": "0"})


def test_the_local_config_file_is_not_committed() -> None:
    """config/citepipe.toml may hold a database password: git ignores it."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        ["git", "check-ignore", "-q", "config/citepipe.toml"], cwd=root, check=False
    )
    assert done.returncode == 0
