"""Fault spec grammar and the deterministic fault decisions of the local site."""

from __future__ import annotations

import pytest

from citesite.answers import normalise_dots
from citesite.faults import Fault, FaultSpec, FaultSpecError
from pipeline.errors import ConfigError

EXAMPLE = "500=0.05,429=0.05,reset=0.03,truncate=0.03,slow=0.02,captcha=0.01,first=1"


def test_parse_example() -> None:
    spec = FaultSpec.parse(EXAMPLE)
    assert [f.kind for f in spec.transient] == ["500", "429", "reset", "truncate", "slow"]
    assert spec.permanent_rates == (Fault("captcha", 0.01),)
    assert spec.first == 1 and spec.seed == 0
    assert FaultSpec.parse(str(spec)) == spec


def test_parse_options_percent_and_per_kind_first() -> None:
    spec = FaultSpec.parse(" 503-date = 5% , 502=0.1@3, seed=7, delay=0.5, retry-after=2 ")
    assert spec.transient == (Fault("503-date", 0.05), Fault("502", 0.1, 3))
    assert (spec.seed, spec.delay, spec.retry_after) == (7, 0.5, 2)
    assert FaultSpec.parse("") == FaultSpec() and not FaultSpec().active
    assert FaultSpec.coerce(None) == FaultSpec()
    assert FaultSpec.coerce("500=1") == FaultSpec.parse("500=1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("501=0.1", "unknown fault '501'"),
        ("500", "expected NAME=VALUE"),
        ("500=", "expected NAME=VALUE"),
        ("500=abc", "'abc' is not a number"),
        ("500=1.5", "not between 0 and 1"),
        ("500=0.6,502=0.6", "add up to more than 1"),
        ("500=0.1,500=0.2", "given twice"),
        ("captcha=0.1@2", "permanent"),
        ("500=0.1@0", "N >= 1"),
        ("first=0", "first must be >= 1"),
        ("first=x", "not an integer"),
        ("500=0.1,,502=0.1", "empty item"),
        ("500=-0.1", "must be >= 0"),
    ],
)
def test_bad_specs_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message) as info:
        FaultSpec.parse(text)
    # the site's own error, not the crawler's (`citepipe site` maps it to a ConfigError:
    # tests/unit/test_cli.py)
    assert isinstance(info.value, ValueError) and not isinstance(info.value, ConfigError)


def test_bad_programmatic_specs() -> None:
    with pytest.raises(FaultSpecError, match="not a permanent fault kind"):
        FaultSpec(permanent={"10.1/x": "500"})
    with pytest.raises(FaultSpecError, match="not a transient fault kind"):
        FaultSpec(transient=(Fault("captcha", 0.1),))


def test_transient_decisions_are_deterministic_and_near_the_rate() -> None:
    spec = FaultSpec.parse("500=0.2,reset=0.1,seed=3")
    urls = [f"/reports/x-{i}" for i in range(5000)]
    kinds = [spec.transient_fault(u, 1) for u in urls]
    assert kinds == [spec.transient_fault(u, 1) for u in urls]
    assert 0.17 < kinds.count("500") / 5000 < 0.23
    assert 0.08 < kinds.count("reset") / 5000 < 0.12
    other_seed = FaultSpec.parse("500=0.2,reset=0.1,seed=4")
    assert kinds != [other_seed.transient_fault(u, 1) for u in urls]


def test_first_n_limits_faults_to_early_attempts() -> None:
    spec = FaultSpec.parse("500=1,first=2")
    assert [spec.transient_fault("/a", n) for n in (1, 2, 3, 4)] == ["500", "500", None, None]
    per_kind = FaultSpec.parse("429=0.5@1,503=0.5,first=3")
    for url in (f"/u{i}" for i in range(200)):
        assert per_kind.transient_fault(url, 2) in (None, "503")
        assert per_kind.transient_fault(url, 4) is None
    unlimited = FaultSpec.parse("502=1")
    assert unlimited.transient_fault("/a", 100) == "502"


def test_permanent_faults_are_per_doi() -> None:
    spec = FaultSpec.parse("captcha=0.1,offsite=0.1,seed=1")
    dois = [f"10.5555/x.{i}" for i in range(3000)]
    dead = spec.dead(dois)
    assert dead == spec.dead(dois)
    assert 0.08 < sum(1 for k in dead.values() if k == "captcha") / 3000 < 0.12
    assert set(dead.values()) == {"captcha", "offsite"}
    assigned = FaultSpec(permanent={"DOI:10.1000/ABC": "loop"})
    assert assigned.permanent_fault("10.1000/abc") == "loop"
    assert assigned.permanent_fault("10.1000/abd") is None
    assert assigned.dead(["10.1000/abc", "10.1000/x"]) == {"10.1000/abc": "loop"}
    assert "1 assigned" in str(assigned)


def test_hostile_modes_parse_and_print() -> None:
    spec = FaultSpec.parse("creds=1, dots=1, 500=0.1")
    assert (spec.creds, spec.dots, spec.active) == (True, True, True)
    assert FaultSpec.parse(str(spec)) == spec
    assert FaultSpec.parse("creds=0") == FaultSpec()
    with pytest.raises(FaultSpecError, match="creds is a mode"):
        FaultSpec.parse("creds=0.5")


@pytest.mark.parametrize(
    ("path", "routed"),
    [
        ("/reports/10.1038/../../private/x", "/private/x"),
        ("/reports/10.1038/%2E%2E/%2E%2E/private/x?page=2", "/private/x?page=2"),
        ("/reports/10.1/%252e%252e/x", "/reports/x"),
        ("/reports/a/..;x/b", "/reports/b"),
        ("/reports/10.1002/a;2-K", "/reports/10.1002/a;2-K"),  # no dot segment: unchanged
        ("/reports/10.1000/x%3Cy%3E", "/reports/10.1000/x%3Cy%3E"),
    ],
)
def test_the_dots_mode_routes_as_a_normalising_server(path: str, routed: str) -> None:
    assert normalise_dots(path) == routed


def test_hostile_pagination_kinds_end_incomplete_not_dead() -> None:
    spec = FaultSpec.parse("cycle=0.5,endless=0.5,seed=3")
    dois = [f"10.5555/x{i}" for i in range(40)]
    assert spec.dead(dois) == {}
    incomplete = spec.incomplete(dois)
    assert set(incomplete.values()) == {"pagination cycle", "more pages than the report counts"}
    assert len(incomplete) == 40
    fixed = FaultSpec(permanent={"10.1/a": "truncated", "10.1/b": "captcha", "10.1/c": "suffixed"})
    assert fixed.dead(["10.1/a", "10.1/b", "10.1/c"]) == {"10.1/b": "captcha"}
    assert fixed.incomplete(["10.1/a", "10.1/b", "10.1/c"]) == {
        "10.1/a": "fewer statements than the report counts"
    }


def test_the_site_command_takes_hostile_modes_by_name() -> None:
    from citesite.cli import build_parser

    args = build_parser().parse_args(["--fault", "cycle-long=1,suffixed=0"])
    assert args.faults.permanent_fault("10.1/any") == "cycle-long"
