"""What changed in a window of time: `citepipe changes`, and each run's digest.

A window is two times, both included. `WHEN` (`--since`, `--until`) is a run id (as
`citepipe status` lists them: its start for `--since`, its end for `--until`), a UTC date
or time (`2026-12-01`, `2026-12-01T03:00`, an explicit offset is kept), or an age before
now (`36h`, `7d`). Without `--since` the window is the latest finished run that fetched
anything (`crawl`, `backfill`, `worker --burst`, `demo`), from its start to its end.

The facts come from the rows' own times (`ChangeLog.changes_in`): statements first seen
in the window, the tallies of each paper whose tally history moved in it (the last row
before the window and the last inside it), editorial notices first seen in it, and the
reports whose completeness changed (`completeness_history`: the last row before the window
and the last inside it, when they differ). `Digest`
holds them per paper, papers with contrasting news (a contrasting statement, a notice)
first; `as_json` is the stable document of docs/changes.md, `render_text` and
`render_markdown` say the same facts for people.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, NotFoundError
from pipeline.models import (
    CompletenessChange,
    NewNotice,
    NewStatement,
    RunRecord,
    StatementType,
    TallyChange,
    WindowChanges,
)
from pipeline.normalise import parse_duration
from pipeline.ops.output import replacing
from pipeline.store.base import Store

RUN_KINDS = ("backfill", "crawl", "worker", "demo")  # runs that fetch pages
TYPES: tuple[StatementType, ...] = ("contrasting", "supporting", "mentioning")  # shown order
JSON_TYPES: tuple[StatementType, ...] = ("supporting", "mentioning", "contrasting")
_RUN_ID = re.compile(r"#?([0-9]+)")
_AGE = re.compile(r"[0-9.]+\s*[smhd]", re.IGNORECASE)


# ---------------------------------------------------------------------------- windows


@dataclass(frozen=True, slots=True)
class Window:
    """[since, until], both included; `runs` names the run(s) it was taken from."""

    since: datetime
    until: datetime
    runs: tuple[int, ...] = ()

    @classmethod
    def of_run(cls, run: RunRecord) -> Window:
        """A finished run, from its start to its end."""
        if run.finished_at is None:
            raise ConfigError(f"run {run.id} has not finished")
        return cls(run.started_at, run.finished_at, (run.id,))


def parse_when(text: str, now: datetime, flag: str = "--since") -> int | datetime:
    """`WHEN`: a run id (an int), else a time (an aware datetime): a UTC date or time, or
    an age before `now`. A clear ConfigError naming `flag` for anything else."""
    raw = text.strip()
    m = _RUN_ID.fullmatch(raw)
    if m:
        return int(m.group(1))
    if _AGE.fullmatch(raw):
        try:
            return now - timedelta(seconds=parse_duration(raw))
        except (ValueError, OverflowError):
            pass
    else:
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            pass
        else:
            return when if when.tzinfo else when.replace(tzinfo=UTC)
    raise ConfigError(
        f"{flag} {text!r}: expected a run id (as `citepipe status` lists them), a UTC "
        "date or time (2026-12-01, 2026-12-01T03:00) or an age (36h, 7d)"
    )


async def _run(store: Store, run_id: int, flag: str) -> RunRecord:
    run = await store.run_record(run_id)
    if run is None:
        raise NotFoundError(f"{flag} {run_id}: the store has no run {run_id}")
    return run


async def resolve_window(
    store: Store, since: str | None, until: str | None, now: datetime
) -> Window:
    """The window of `--since`/`--until` (see the module docstring)."""
    if since is None:
        if until is not None:
            raise ConfigError("--until: needs --since (without it, the latest run is the window)")
        run = await store.last_fetching_run(RUN_KINDS)
        if run is None:
            raise NotFoundError(
                "no finished run fetched anything yet: nothing to compare "
                "(run `citepipe crawl` or `citepipe backfill`, or give --since)"
            )
        return Window.of_run(run)
    runs: list[int] = []
    start = parse_when(since, now, "--since")
    if isinstance(start, int):
        runs.append(start)
        start = (await _run(store, start, "--since")).started_at
    end: int | datetime = now if until is None else parse_when(until, now, "--until")
    if isinstance(end, int):
        record = await _run(store, end, "--until")
        if record.finished_at is None:
            raise ConfigError(f"--until {end}: run {end} has not finished")
        runs.append(end)
        end = record.finished_at
    if end < start:
        raise ConfigError(f"--until: {iso_z(end)} is before --since {iso_z(start)}")
    return Window(start, end, tuple(sorted(set(runs))))


def iso_z(when: datetime) -> str:
    """A time as the document writes it: ISO 8601 in UTC with a `Z`."""
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------- the facts


def _sort_key(s: NewStatement) -> tuple[int, str]:
    order = TYPES.index(s.type) if s.type in TYPES else len(TYPES)
    return order, s.citing_doi


@dataclass(frozen=True, slots=True)
class PaperChanges:
    """One paper's changes in the window: statements (grouped by type, contrasting
    first), its tallies before and after (None when they did not move), notices, and its
    report's completeness before and after (None when it did not change)."""

    doi: str
    title: str | None
    statements: tuple[NewStatement, ...]
    tallies: TallyChange | None
    notices: tuple[NewNotice, ...]
    completeness: CompletenessChange | None = None

    def count(self, kind: StatementType) -> int:
        return sum(1 for s in self.statements if s.type == kind)

    @property
    def is_new(self) -> bool:
        """New to the store: its first tally history row is inside the window."""
        return self.tallies is not None and self.tallies.before is None

    @property
    def contrasting_news(self) -> bool:
        return bool(self.notices) or self.count("contrasting") > 0


def _moved(change: TallyChange) -> bool:
    return change.before is None or change.before != change.after


@dataclass(frozen=True, slots=True)
class Digest:
    """Every paper that changed in a window, papers with contrasting news first."""

    since: datetime
    until: datetime
    papers: tuple[PaperChanges, ...]

    @classmethod
    def build(cls, window: Window, changes: WindowChanges) -> Digest:
        statements: dict[str, list[NewStatement]] = {}
        for s in changes.statements:
            statements.setdefault(s.cited_doi, []).append(s)
        tallies = {t.doi: t for t in changes.tallies if _moved(t)}
        notices: dict[str, list[NewNotice]] = {}
        for n in changes.notices:
            notices.setdefault(n.doi, []).append(n)
        completeness = {c.doi: c for c in changes.completeness if c.before.differs(c.after)}
        papers = [
            PaperChanges(
                doi,
                changes.titles.get(doi),
                tuple(sorted(statements.get(doi, ()), key=_sort_key)),
                tallies.get(doi),
                tuple(notices.get(doi, ())),
                completeness.get(doi),
            )
            for doi in sorted(set(statements) | set(tallies) | set(notices) | set(completeness))
        ]
        papers.sort(key=lambda p: (not p.contrasting_news, p.doi))
        return cls(window.since, window.until, tuple(papers))

    @property
    def empty(self) -> bool:
        return not self.papers

    def totals(self) -> dict[str, int]:
        counts: dict[str, int] = {k: sum(p.count(k) for p in self.papers) for k in JSON_TYPES}
        return {
            "papers": len(self.papers),
            "new_statements": sum(len(p.statements) for p in self.papers),
            **counts,
            "notices": sum(len(p.notices) for p in self.papers),
            "became_incomplete": sum(
                1 for p in self.papers if p.completeness and p.completeness.after.incomplete
            ),
            "complete_again": sum(
                1 for p in self.papers if p.completeness and not p.completeness.after.incomplete
            ),
        }

    def as_json(self) -> dict[str, Any]:
        """The stable document (docs/changes.md, "The JSON document")."""
        return {
            "since": iso_z(self.since),
            "until": iso_z(self.until),
            "totals": self.totals(),
            "papers": [_paper_json(p) for p in self.papers],
        }


def _counts_json(counts: tuple[int | None, ...] | None) -> dict[str, int | None] | None:
    return None if counts is None else dict(zip(JSON_TYPES, counts, strict=True))


def _paper_json(p: PaperChanges) -> dict[str, Any]:
    return {
        "doi": p.doi,
        "title": p.title,
        "new_statements": {kind: p.count(kind) for kind in JSON_TYPES},
        "statements": [
            {
                "citing_doi": s.citing_doi,
                "citing_title": s.citing_title,
                "type": s.type,
                "section": s.section,
                "confidence": s.confidence,
                "snippet": s.snippet,
            }
            for s in p.statements
        ],
        "tallies": None
        if p.tallies is None
        else {"before": _counts_json(p.tallies.before), "after": _counts_json(p.tallies.after)},
        "notices": [{"status": n.status, "date": n.date} for n in p.notices],
        "completeness": None
        if p.completeness is None
        else {"before": str(p.completeness.before), "after": str(p.completeness.after)},
    }


async def collect(store: Store, window: Window, dois: Sequence[str] | None = None) -> Digest:
    """The digest of a window, from the store."""
    changes = await store.changes_in(window.since, window.until, dois=dois)
    return Digest.build(window, changes)


# ---------------------------------------------------------------------------- for people


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def headline(d: Digest) -> str:
    """`2 papers, 5 new statements (1 contrasting, 1 supporting, 3 mentioning), 1 notice`."""
    if d.empty:
        return "nothing changed"
    t = d.totals()
    parts = [_plural(t["papers"], "paper"), _plural(t["new_statements"], "new statement")]
    by_type = ", ".join(f"{t[k]} {k}" for k in TYPES if t[k])
    if by_type:
        parts[1] += f" ({by_type})"
    if t["notices"]:
        parts.append(_plural(t["notices"], "notice"))
    if t["became_incomplete"]:
        parts.append(f"{_plural(t['became_incomplete'], 'report')} incomplete")
    if t["complete_again"]:
        parts.append(f"{_plural(t['complete_again'], 'report')} complete again")
    return ", ".join(parts)


def _tally_line(change: TallyChange, arrow: str) -> str:
    if change.before is None:
        return "new to the store: " + ", ".join(
            f"{k} {_n(v)}" for k, v in zip(JSON_TYPES, change.after, strict=True)
        )
    return ", ".join(
        f"{k} {_n(b)} {arrow} {_n(a)}"
        for k, b, a in zip(JSON_TYPES, change.before, change.after, strict=True)
    )


def _n(value: int | None) -> str:
    return "?" if value is None else str(value)


def _completeness_text(c: CompletenessChange, arrow: str) -> str:
    return f"{c.before} {arrow} {c.after}"


def _notice_text(n: NewNotice) -> str:
    return n.status + (f" ({n.date})" if n.date else "")


def _details(s: NewStatement) -> str:
    bits = [s.section or "no section"]
    if s.confidence is not None:
        bits.append(f"confidence {s.confidence:.2f}")
    return ", ".join(bits)


def _groups(p: PaperChanges) -> list[tuple[str, list[NewStatement]]]:
    out: list[tuple[str, list[NewStatement]]] = []
    for kind in (*TYPES, None):
        group = [s for s in p.statements if s.type == kind]
        if group:
            out.append((kind or "unclassified", group))
    return out


def render_text(d: Digest) -> str:
    """The plain-text form: a headline, then each paper."""
    lines = [f"citepipe changes {iso_z(d.since)} .. {iso_z(d.until)}: {headline(d)}"]
    for p in d.papers:
        lines += ["", f"{p.doi}  {p.title or '(no title)'}"]
        lines += [f"  notice: {_notice_text(n)}" for n in p.notices]
        if p.completeness is not None:
            lines.append(f"  report: {_completeness_text(p.completeness, '->')}")
        if p.tallies is not None:
            lines.append(f"  tallies: {_tally_line(p.tallies, '->')}")
        for kind, group in _groups(p):
            lines.append(f"  {kind} ({len(group)}):")
            for s in group:
                lines.append(f"    - {s.citing_doi}  {s.citing_title or '(no title)'}")
                lines.append(f"      [{_details(s)}] {s.snippet}")
    return "\n".join(lines) + "\n"


def render_short(d: Digest) -> str:
    """A few lines for a terminal (the demo): the headline, then one line a paper."""
    lines = [headline(d)]
    for p in d.papers:
        facts = [", ".join(f"{p.count(k)} {k}" for k in TYPES if p.count(k))]
        facts += [f"notice {_notice_text(n)}" for n in p.notices]
        if p.tallies is not None:
            facts.append(f"tallies {_tally_line(p.tallies, '->')}")
        if p.completeness is not None:
            facts.append(f"report {_completeness_text(p.completeness, '->')}")
        title = p.title or "(no title)"
        title = title if len(title) <= 48 else title[:47] + "…"
        lines.append(f"  {p.doi}  {title}: " + "; ".join(f for f in facts if f))
    return "\n".join(lines) + "\n"


def write_output(path: str, text: str) -> None:
    """`changes -o FILE`: the rendering to a file, written whole, then renamed into place."""
    try:
        with replacing(Path(path)) as target:
            target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--output {path}: {exc.strerror or exc}") from None


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#|])")


def md(text: str) -> str:
    """Text as Markdown shows it literally (its special characters escaped)."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def render_markdown(d: Digest) -> str:
    """The Markdown form (`--digest FILE`): the same facts as `render_text`."""
    lines = [
        f"# What changed: {headline(d)}",
        "",
        f"From {iso_z(d.since)} to {iso_z(d.until)}.",
    ]
    for p in d.papers:
        lines += ["", f"## {md(p.doi)}: {md(p.title or '(no title)')}", ""]
        lines += [f"- **Notice:** {md(_notice_text(n))}" for n in p.notices]
        if p.completeness is not None:
            lines.append(f"- **Report:** {md(_completeness_text(p.completeness, '→'))}")
        if p.tallies is not None:
            lines.append(f"- **Tallies:** {_tally_line(p.tallies, '→')}")
        for kind, group in _groups(p):
            lines += ["", f"### {kind.capitalize()} ({len(group)})", ""]
            for s in group:
                lines.append(
                    f"- {md(s.citing_doi)}: *{md(s.citing_title or '(no title)')}* "
                    f"({md(_details(s))})"
                )
                lines.append(f"  > {md(s.snippet)}")
    return "\n".join(lines) + "\n"
