"""Settings: one typed object, loaded from defaults < TOML file < CITEPIPE_* env < flags.

Every setting is a field of `Settings`; its TOML key is the field name and its environment
variable is `CITEPIPE_<NAME>` (upper case). A bad value raises `ConfigError` naming the
setting and where the value came from.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from pipeline.errors import ConfigError
from pipeline.logs import redact_text, redact_url
from pipeline.models import KEEP_PAGES
from pipeline.normalise import DAY, format_duration, parse_duration
from pipeline.urls import has_userinfo, is_public_host, strip_userinfo

DEFAULT_CONFIG_PATH = Path("config/citepipe.toml")
YEAR = 365 * DAY
ENV_PREFIX = "CITEPIPE_"
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "console")
NOTIFY_FORMATS = ("json", "slack")
SOURCE_MODES = ("report", "api", "both")

# The store's defaults (the store's rules and drivers take them from here).
DEFAULT_WRITER_BATCH = 100  # completions committed per transaction, at most
# PostgreSQL connections per process: one is the completion writer's, the others serve
# claims, heartbeats and politeness bookings (docs/store-postgres.md, "Pool").
DEFAULT_PG_POOL_MIN = 1
DEFAULT_PG_POOL_MAX = 8
DEFAULT_REFRESH_INTERVAL = 7 * 86400.0
DEFAULT_REFRESH_MIN = 86400.0
DEFAULT_REFRESH_MAX = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class SettingInfo:
    """What the command line and the docs need to know of one setting."""

    name: str
    default: Any
    help: str
    flags: tuple[str, ...]  # the flag groups that carry it (empty: file and env only)
    flag_type: Any  # the argparse `type` of its flag
    flag: str = ""  # its flag, when not `--<name>`


def setting(
    default: Any,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    strict: bool = False,
    flags: tuple[str, ...] = (),
    flag_type: Any = None,
    flag: str = "",
    secret: bool = False,
) -> Any:
    """One setting's whole declaration: a dataclass field whose metadata carries its help,
    its bounds (numbers: `low`, excluded when `strict`, to `high`), its flag groups and
    its flag's name when it is not `--<name>`. A `secret` (a token) is left out of the
    settings' repr, so no log line can carry it."""
    meta: dict[str, Any] = {"help": help, "flags": flags, "flag_type": flag_type, "flag": flag}
    if low is not None and high is not None:
        meta["bounds"] = (low, strict, high)
    return field(default=default, metadata=meta, repr=not secret)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a citepipe process can be told. Defaults are polite for a real site.

    Each field is declared once, by `setting(...)`: its default, its help text, the
    bounds a number must keep, and which commands take it as a flag (`flags`: groups the
    command table names, `cli/_base.py`). docs/settings.md lists them all (a test checks).
    """

    base_url: str = setting("https://scite.ai", "the citation site's base URL", flags=("site",))
    db: str = setting(
        "data/citepipe.sqlite",
        "the store: a SQLite file path, sqlite:///path or postgresql://user@host/db",
        flags=("store",),
    )
    concurrency: int = setting(
        16, "pages in flight in each process", low=1, high=10_000, flags=("crawl",)
    )
    processes: int = setting(
        1,
        "worker processes on the store, or auto (one per CPU core)",
        low=0,
        high=1_000,
        flags=("work",),
        flag_type=str,  # `auto` is 0
    )
    per_host_concurrency: int = setting(
        2, "pages in flight per host", low=1, high=1_000, flags=("crawl",)
    )
    request_delay: float = setting(
        1.0, "seconds between request starts to one host", low=0, high=DAY, flags=("crawl",)
    )
    timeout: float = setting(
        30.0, "seconds before a request times out", low=0, strict=True, high=DAY, flags=("crawl",)
    )
    connect_timeout: float = setting(
        10.0, "seconds before a connection attempt times out", low=0, strict=True, high=DAY
    )
    max_attempts: int = setting(
        5, "attempts before a page is given up (dead)", low=1, high=1_000, flags=("crawl",)
    )
    quick_retries: int = setting(
        2, "retries of a page within the same claim before it waits", low=0, high=100
    )
    retry_base: float = setting(2.0, "first backoff between attempts (seconds)", low=0, high=YEAR)
    retry_cap: float = setting(
        900.0, "longest backoff between attempts (seconds)", low=0, high=YEAR
    )
    max_page_bytes: int = setting(5_000_000, "largest page body read", low=1, high=2**31)
    parse_cpu_seconds: float = setting(
        5.0,
        "CPU seconds one page's parse may take (a report takes ~1 ms); over it, a broken page",
        low=1,
        high=DAY,
        flags=("crawl",),
    )
    parse_memory_mb: int = setting(
        512,
        "megabytes of memory one page's parse may take; over it, a broken page",
        low=16,
        high=1_000_000,
        flags=("crawl",),
    )
    max_redirects: int = setting(5, "redirects followed per request", low=0, high=100)
    max_pages_per_report: int = setting(
        500, "a report's crawl follows at most this many pages", low=1, high=1_000_000
    )
    respect_robots: bool = setting(True, "obey the site's robots.txt")
    user_agent: str = setting(
        "citepipe/0.1 (+https://github.com/citepipe/citepipe; citepipe@example.org)",
        "User-Agent header: name the tool and a contact",
        flags=("crawl",),
    )
    depth: int = setting(
        0, "also crawl the papers citing each report (all its pages), this many levels deep",
        low=0, high=1_000,
    )  # fmt: skip
    lease_seconds: float = setting(
        30.0,
        "how long a claimed job is held before others may take it",
        low=0,
        strict=True,
        high=DAY,
    )
    claim_batch: int = setting(64, "jobs claimed at once", low=1, high=100_000)
    writer_batch: int = setting(
        DEFAULT_WRITER_BATCH,
        "completions committed per transaction, at most",
        low=1,
        high=100_000,
    )
    pg_pool_min: int = setting(
        DEFAULT_PG_POOL_MIN, "PostgreSQL: connections kept open", low=1, high=1_000
    )
    pg_pool_max: int = setting(
        DEFAULT_PG_POOL_MAX, "PostgreSQL: most connections per process", low=1, high=1_000
    )
    refresh_interval: float = setting(
        DEFAULT_REFRESH_INTERVAL,
        "a report's first refresh after this long",
        low=0,
        strict=True,
        high=10 * YEAR,
    )
    refresh_min: float = setting(
        DEFAULT_REFRESH_MIN, "shortest refresh interval", low=0, strict=True, high=10 * YEAR
    )
    refresh_max: float = setting(
        DEFAULT_REFRESH_MAX, "longest refresh interval", low=0, strict=True, high=10 * YEAR
    )
    schedule: str = setting(
        "0 3 * * *",
        "cron expression of `citepipe schedule` (minute hour day month weekday)",
        flags=("schedule",),
    )
    timezone: str = setting(
        "UTC",
        "the zone `schedule` is read in (IANA name, e.g. Europe/Paris)",
        flags=("schedule",),
    )
    max_duration: float = setting(0.0, "a crawl's time budget; 0 = none", low=0, high=YEAR)
    selectors: str = setting(
        "", "a TOML file overriding the report page selectors", flags=("crawl", "selectors")
    )
    keep_pages: str = setting(
        "broken",
        "fetched pages kept in the store for `reparse`: broken or all",
        flags=("crawl", "keep"),
    )
    source: str = setting(
        "report",
        "what is read: report (report pages), api (scite's API: tallies, metadata, notices, "
        "section counts) or both (the API first, then report pages for the statements)",
        flags=("work",),
    )
    api_url: str = setting("https://api.scite.ai", "scite's API base URL", flags=("site",))
    api_token: str = setting(
        "",
        "scite API token (environment or config file only; never logged or stored)",
        secret=True,
    )
    api_batch: int = setting(
        500, "DOIs per API request (the API takes at most 500)", low=1, high=500
    )
    api_requests_per_second: int = setting(
        10,
        "API requests per second, all processes on the store together (not with a token)",
        low=0,
        strict=True,
        high=10_000,
    )
    api_requests_per_minute: int = setting(
        40,
        "API requests per minute, all processes on the store together (not with a token)",
        low=0,
        strict=True,
        high=600_000,
    )
    log_level: str = setting("info", "debug, info, warning or error", flags=("log",))
    log_format: str = setting(
        "auto", "auto (console on a TTY, else JSON), json or console", flags=("log",)
    )
    progress: bool = setting(True, "a progress bar on a terminal")
    progress_interval: float = setting(
        60.0, "seconds between progress log lines; 0 = none", low=0, high=YEAR
    )
    digest: str = setting(
        "",
        "after each run, write its Markdown digest (what changed) to this file",
        flags=("digest",),
    )
    notify_url: str = setting(
        "",
        "after each run, POST its digest to this webhook URL (a secret: never logged whole)",
        flags=("digest",),
        flag="--notify",
    )
    notify_format: str = setting(
        "json", 'the webhook\'s body: json (the digest) or slack ({"text": ...})'
    )
    notify_empty: bool = setting(False, "notify even when a run changed nothing")

    def validate(self) -> Settings:
        """Raise ConfigError, naming the setting, for a value no run could use; return the
        settings, with any `user:password@` removed from `base_url` (never stored or sent).
        """
        for f in fields(self):
            check_value(f.name, getattr(self, f.name))
        if self.refresh_min > self.refresh_max:
            raise ConfigError("refresh_min: must not exceed refresh_max")
        if self.pg_pool_min > self.pg_pool_max:
            raise ConfigError("pg_pool_min: must not exceed pg_pool_max")
        _check_api_url(self.api_url)
        _check_notify(self)
        check_shareable(self)
        if has_userinfo(self.base_url):
            return replace(self, base_url=strip_userinfo(self.base_url))
        return self

    @property
    def zone(self) -> tzinfo:
        """The time zone of `schedule`."""
        return schedule_zone(self.timezone)

    @property
    def api_base(self) -> str:
        """`api_url` without a trailing slash."""
        return self.api_url.rstrip("/")

    @property
    def base(self) -> str:
        """`base_url` without a trailing slash."""
        return self.base_url.rstrip("/")


# What each number may be: (lowest, lowest excluded?, highest), from the fields' own
# declarations. NaN and infinity never pass. The highest values are far beyond any
# sensible setting; they keep a typo (or `1e308`) from overflowing time arithmetic or the
# database's integers mid-run.
NUMBER_BOUNDS: dict[str, tuple[float, bool, float]] = {
    f.name: f.metadata["bounds"] for f in fields(Settings) if f.metadata.get("bounds")
}


def _check_number(name: str, value: float, low: float, strict: bool, high: float) -> None:
    """ConfigError naming `name` unless `value` is finite and within its bounds. Seconds
    are said as durations (`365 days`), counts with thousands separators."""
    if not math.isfinite(value):
        raise ConfigError(f"{name}: must be a finite number, got {value!r}")
    say = format_duration if _FIELD_TYPES.get(name) is float else _count
    if strict and value <= low:
        raise ConfigError(f"{name}: must be more than {say(low)}, got {say(value)}")
    if value < low:
        raise ConfigError(f"{name}: must be at least {say(low)}, got {say(value)}")
    if value > high:
        raise ConfigError(f"{name}: must be at most {say(high)}, got {say(value)}")


def _count(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"


def check_value(name: str, value: Any) -> None:
    """ConfigError (`name: ...`) unless `value` is one the setting `name` may take on its
    own (bounds, choices, forms); checked for every layer's value, so that a bad value in
    the file is reported even when a flag overrides it."""
    bounds = NUMBER_BOUNDS.get(name)
    if bounds is not None:
        _check_number(name, value, *bounds)
    elif name == "base_url":
        try:
            parts = urlsplit(value)
            _ = parts.port  # ValueError for a port that is not one
        except ValueError:
            parts = urlsplit("")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"base_url: {redact_text(value)!r} is not an http(s) URL")
    elif name in _CHOICES:
        choices = _CHOICES[name]
        if value not in choices:
            raise ConfigError(f"{name}: must be one of {', '.join(choices)}, got {value!r}")
    elif name == "schedule" and not croniter.is_valid(value):
        raise ConfigError(
            f"schedule: {value!r} is not a cron expression (five fields, e.g. '0 3 * * *')"
        )
    elif name == "timezone":
        schedule_zone(value)  # raises ConfigError naming `timezone`
    elif name == "user_agent" and not value.strip():
        raise ConfigError("user_agent: must not be empty")


_CHOICES: dict[str, tuple[str, ...]] = {
    "keep_pages": KEEP_PAGES,
    "source": SOURCE_MODES,
    "notify_format": NOTIFY_FORMATS,
    "log_level": LOG_LEVELS,
    "log_format": LOG_FORMATS,
}


def _check_notify(s: Settings) -> None:
    """`notify_url` is an http(s) URL (named without its secret), `notify_format` known."""
    if s.notify_format not in NOTIFY_FORMATS:
        raise ConfigError(
            f"notify_format: must be one of {', '.join(NOTIFY_FORMATS)}, got {s.notify_format!r}"
        )
    if not s.notify_url:
        return
    try:
        parts = urlsplit(s.notify_url)
        _ = parts.port
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"notify_url: {redact_url(s.notify_url)!r} is not an http(s) URL")


def _check_api_url(url: str) -> None:
    """ConfigError unless `api_url` is an http(s) URL without credentials (the token is
    sent as a header, never in the address)."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"api_url: {redact_text(url)!r} is not an http(s) URL")
    if has_userinfo(url):
        raise ConfigError("api_url: must not carry credentials (set api_token instead)")


def process_count(settings: Settings) -> int:
    """How many worker processes `settings.processes` asks for (0 = one per CPU core)."""
    if settings.processes > 0:
        return settings.processes
    return cpu_cores()


def cpu_cores() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def check_shareable(settings: Settings) -> None:
    """Several processes need a store they can all open: not a private memory store.

    A contradiction between two settings (`processes` and `db`), so it is caught when the
    settings are validated, before anything is opened."""
    if process_count(settings) > 1 and (
        settings.db.removeprefix("sqlite:///") in (":memory:", "")
        or settings.db.lower().startswith("memory://")
    ):
        raise ConfigError("processes: a memory store cannot be shared; name a store file (db)")


# A contact at a domain reserved for examples (RFC 2606): the default user_agent's, the
# example config's. Sent to a real site it names nobody the site could write to.
_PLACEHOLDER_CONTACT = re.compile(r"@example\.(?:org|com|net)\b", re.IGNORECASE)


def check_contact(settings: Settings) -> None:
    """ConfigError before a placeholder contact would be sent to a real site.

    A site that is crawled wants to know whom to write to (the User-Agent's contact);
    the default `user_agent` names citepipe@example.org, nobody. Against the local site,
    a compose service or any loopback/private address it is fine, and not asked for."""
    if _PLACEHOLDER_CONTACT.search(settings.user_agent) and is_public_host(settings.base_url):
        raise ConfigError(
            f"user_agent: {settings.user_agent!r} names a placeholder contact, and "
            f"{settings.base_url} is a real site: set user_agent (the config file or "
            "CITEPIPE_USER_AGENT) to name your project and an address that reaches you, "
            "e.g. 'myproject/1.0 (mailto:me@my-lab.org)'"
        )


def schedule_zone(name: str) -> tzinfo:
    """The zone named by the `timezone` setting (UTC needs no time zone database)."""
    if name.strip().upper() in ("UTC", "Z", "ETC/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"timezone: {name!r} is not a known time zone (an IANA name such as Europe/Paris)"
        ) from None


_FIELD_TYPES: dict[str, type] = {
    f.name: {"str": str, "int": int, "float": float, "bool": bool}[str(f.type)]
    for f in fields(Settings)
}


def setting_names() -> tuple[str, ...]:
    return tuple(_FIELD_TYPES)


def setting_infos() -> tuple[SettingInfo, ...]:
    """Every setting's declaration, in field order (for flags and docs)."""
    return tuple(
        SettingInfo(
            f.name,
            f.default,
            f.metadata["help"],
            f.metadata["flags"],
            f.metadata["flag_type"],
            f.metadata["flag"],
        )
        for f in fields(Settings)
    )


def _coerce(name: str, value: Any, source: str) -> Any:
    kind = _FIELD_TYPES[name]
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind is int:
            if name == "processes" and str(value).strip().lower() == "auto":
                return 0
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind is float:  # every float setting is seconds: a string is a duration
            if isinstance(value, bool):
                raise ValueError(value)
            return parse_duration(value) if isinstance(value, str) else float(value)
        if not isinstance(value, str):  # `db = 5` in TOML: a number where a text belongs
            raise TypeError(value)
        return value
    except (TypeError, ValueError):
        what = _KIND_WORDS.get(kind, kind.__name__)
        raise ConfigError(f"{name}: {value!r} from {source} is not {what}") from None


_KIND_WORDS: dict[type, str] = {
    float: "a duration (a number of seconds, or e.g. 90s, 15m, 2h, 1d)",
    int: "a whole number",
    bool: "true or false",
    str: 'a text (in TOML, in quotes: name = "value")',
}


def _checked(name: str, value: Any, source: str) -> Any:
    """`value` of setting `name` from `source`, coerced and checked on its own."""
    coerced = _coerce(name, value, source)
    try:
        check_value(name, coerced)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (from {source})") from None
    return coerced


def _from_mapping(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in _FIELD_TYPES:
            raise ConfigError(f"{key}: unknown setting in {source}{_did_you_mean(name)}")
        out[name] = _checked(name, value, source)
    return out


# `CITEPIPE_*` variables that are not settings (every other one must name a setting: a
# typo such as CITEPIPE_CONCURENCY is an error, like an unknown key in the TOML file).
OTHER_VARIABLES = frozenset(
    {
        "CITEPIPE_TEST_POSTGRES",  # the test suite's PostgreSQL server (tests/conftest.py)
        "CITEPIPE_PG_PASSWORD",  # docker-compose.yml: the PostgreSQL service's password
        "CITEPIPE_IMAGE",  # docker-compose.yml: the image to run
    }
)


def _did_you_mean(name: str, env: bool = False) -> str:
    """` (did you mean concurrency?)` for a near miss of a setting's name."""
    close = difflib.get_close_matches(name, _FIELD_TYPES, n=1)
    if not close:
        return ""
    return f" (did you mean {ENV_PREFIX + close[0].upper() if env else close[0]}?)"


def load_settings(
    config_path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge defaults, the TOML file, `CITEPIPE_*` variables and flags, in that order.

    With no `config_path`, `config/citepipe.toml` is read if it exists; a path that was
    named explicitly must exist.
    """
    merged: dict[str, Any] = {}
    path = Path(config_path) if config_path else DEFAULT_CONFIG_PATH
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
        table = data.get("citepipe", data)
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: [citepipe] must be a table")
        merged.update(_from_mapping(table, str(path)))
    elif config_path:
        raise ConfigError(f"config file {path}: not found")
    environ = os.environ if env is None else env
    for key in environ:
        if key.startswith(ENV_PREFIX) and key not in OTHER_VARIABLES:
            name = key[len(ENV_PREFIX) :].lower()
            if name not in _FIELD_TYPES:
                raise ConfigError(f"${key}: unknown setting{_did_you_mean(name, env=True)}")
            merged[name] = _checked(name, environ[key], f"${key}")
    if overrides:
        merged.update(
            _from_mapping({k: v for k, v in overrides.items() if v is not None}, "the command line")
        )
    return replace(Settings(), **merged).validate()
