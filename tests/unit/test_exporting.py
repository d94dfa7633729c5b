"""Export filters (`--where`, `--since`): validated, typed, applied outside SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.errors import ConfigError
from pipeline.ops.export import RowFilter, column_type, parse_since, parse_where
from pipeline.store.tables import COLUMNS

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def row(**kw: object) -> dict[str, object]:
    base: dict[str, object] = dict.fromkeys(COLUMNS["statements"])
    base.update(kw)
    return base


def test_where_compares_numbers_as_numbers_and_text_as_text() -> None:
    assert parse_where("statements", "confidence>=0.5").matches(row(confidence=0.75))
    assert not parse_where("statements", "confidence>=0.5").matches(row(confidence=0.25))
    assert parse_where("papers", "year<2010").matches({"year": 2009})
    assert not parse_where("papers", "year<2010").matches({"year": 2010})
    assert parse_where("statements", "type=contrasting").matches(row(type="contrasting"))
    assert parse_where("statements", "type != contrasting").matches(row(type="supporting"))
    assert not parse_where("statements", "type=contrasting").matches(row(type=None))


def test_where_values_keep_every_character() -> None:
    cond = parse_where("statements", "snippet=a = b; drop table x --")
    assert cond.value == "a = b; drop table x --"
    assert cond.matches(row(snippet="a = b; drop table x --"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("type", "expected COLUMN=VALUE"),
        ("nosuch=1", "no column 'nosuch'"),
        ("confidence>=high", "not a float value"),
        ("last_seen_at>yesterday", "not a time value"),
    ],
)
def test_bad_where_names_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_where("statements", text)


def test_since_takes_a_time_or_an_age() -> None:
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert parse_since("36h", NOW) == NOW - timedelta(hours=36)
    assert parse_since("2026-11-30", NOW) == datetime(2026, 11, 30, tzinfo=UTC)
    assert parse_since("2026-11-30T10:00+01:00", NOW) == datetime(2026, 11, 30, 9, tzinfo=UTC)
    with pytest.raises(ConfigError, match="--since 'soon'"):
        parse_since("soon", NOW)


def test_since_uses_each_table_time_column() -> None:
    keep = RowFilter.build("statements", (), "1d", now=NOW)
    assert keep(row(last_seen_at="2026-12-01T00:00:00.000000Z"))
    assert not keep(row(last_seen_at="2026-11-29T00:00:00.000000Z"))
    papers = RowFilter.build("papers", (), "1d", now=NOW)
    old = "2026-01-01T00:00:00.000000Z"
    assert papers({"first_seen_at": old, "last_crawled_at": "2026-12-01T11:00:00Z"})
    assert not papers({"first_seen_at": old, "last_crawled_at": None})
    with pytest.raises(ConfigError, match="authors has no time column"):
        RowFilter.build("authors", (), "1d", now=NOW)


def test_every_exported_column_has_a_type() -> None:
    assert column_type("confidence") == "float" and column_type("year") == "int"
    assert column_type("observed_at") == "time" and column_type("snippet") == "text"
    for columns in COLUMNS.values():
        for c in columns:
            if c.endswith("_at"):
                assert column_type(c) == "time", c
    assert column_type("page_statements") == "int" and column_type("chain") == "text"
