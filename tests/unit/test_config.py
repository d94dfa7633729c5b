from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import Settings, load_settings
from pipeline.errors import ConfigError


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


def test_keep_pages_is_broken_or_all() -> None:
    assert Settings().keep_pages == "broken"
    assert load_settings(env={"CITEPIPE_KEEP_PAGES": "all"}).keep_pages == "all"
    with pytest.raises(ConfigError, match="keep_pages: must be one of broken, all"):
        load_settings(env={"CITEPIPE_KEEP_PAGES": "some"})
