"""`--processes N` shows one summary: the helpers' counters, sent over a pipe, add up to
the starting process's own, every count of `RunCounters` included."""

from __future__ import annotations

import dataclasses
from collections import Counter

from pipeline.models import RunCounters
from pipeline.runs.processes import Helpers, _snapshot


def counters(seed: int) -> RunCounters:
    return RunCounters(
        started=1.0,
        pages_done=10 * seed,
        reports_done=3 * seed,
        pages_unchanged=seed,
        statements=100 * seed,
        retries=2 * seed,
        dead=Counter({"not found (404)": seed}),
        incomplete=Counter({"fewer statements than the report counts": seed, "cut": 1}),
    )


def test_combined_adds_every_count_of_every_process() -> None:
    own, helper_a, helper_b = counters(1), counters(2), counters(4)
    helpers = Helpers(reported={0: _snapshot(helper_a), 1: _snapshot(helper_b)})
    total = helpers.combined(own)
    assert total.started == own.started
    assert total.pages_done == 70 and total.reports_done == 21 and total.statements == 700
    assert total.pages_unchanged == 7 and total.retries == 14
    assert total.dead == Counter({"not found (404)": 7})
    assert total.incomplete == Counter({"fewer statements than the report counts": 7, "cut": 3})


def test_every_count_crosses_the_pipe() -> None:
    """A count added to RunCounters is in the snapshot, or the summary would lose it."""
    names = {f.name for f in dataclasses.fields(RunCounters)} - {"started"}
    assert set(_snapshot(RunCounters())) == names


def test_a_helper_that_has_not_reported_adds_nothing() -> None:
    own = counters(3)
    total = Helpers().combined(own)
    assert dataclasses.replace(total, started=own.started) == own
    assert total.dead is not own.dead  # the summary's counters are its own copies
