"""Fault injection for the local citation site: which request gets which fault.

A fault spec is a comma-separated list of `NAME=VALUE` items (spaces ignored)::

    500=0.05,429=0.05,reset=0.03,truncate=0.03,slow=0.02@1,captcha=0.01,first=1,seed=7

*Transient* kinds take a rate, the chance that one attempt at a URL gets the fault, decided
per (URL, attempt number) by a seeded hash, so a run is reproducible. Their rates add up
to at most 1; `KIND=RATE@N` limits that kind to the first N attempts of each URL, and
`first=N` does so for every transient kind without its own `@N`. With a limit, a client
that retries long enough ends with every page.

    500 502 503   that status, a small HTML error page
    429           429 with `Retry-After: <seconds>`
    429-date      429 with `Retry-After: <HTTP date>`
    429-bare      429 without `Retry-After`
    503-date      503 with `Retry-After: <HTTP date>`
    reset         headers and part of the body, then a TCP reset
    truncate      `Content-Length` larger than the bytes sent, then the connection closes
    slow          the normal answer after `delay` seconds

*Permanent* kinds take a rate decided per report (per DOI, not per attempt): a report that
draws one gets it on every request to any of its pages, always. (Tests can also assign
them to chosen DOIs, in Python: see `FaultSpec.permanent`.)

    captcha       200 text/html challenge page: no DOI, no tallies (not a report)
    login         200 text/html login wall (not a report)
    json          200 application/json
    image         200 image/png
    offsite       302 to another host (`http://127.0.0.2:9/elsewhere` by default)
    loop          302 between /reports/{doi} and /reports/{slug}, forever

*Hostile site modes* change how the whole site behaves; `NAME=1` turns one on::

    creds         every link and redirect carries credentials: next links and the canonical
                  read `http://user:secret@host:port/reports/...`, and `/reports/{doi}`
                  redirects there (a client must strip them and never send Basic auth)
    dots          the server decodes and normalises dot segments (`..`, `%2E%2E`, backslashes)
                  before routing, as many servers do: a path that leads out of `/reports/`
                  is served a 200 "private" page, logged with the fault `escaped`

Hostile pagination and numbers (also permanent, per report). The pages are served (200)
and are good reports; only their next links or counts misbehave. A careful client ends
such a report *incomplete*, with a reason, after a bounded number of requests:

    cycle           page 1 -> `?page=2` -> `?page=1`: a relative two-page cycle
    cycle-absolute  page 1 -> `{canonical}?page=2` -> `{canonical}` (absolute links)
    cycle-long      page 1 -> `?page=2` -> `?page=3` -> `/reports/{slug}`
    endless         page N -> `?page=N+1`, for every N, each with new statements
    truncated       pages stop early: half the statements, no next link after them
    next-offsite    page 1's next link names another host (`offsite_url`'s)
    suffixed        counts written `1.2k`, `3.4M` (the report is whole: read them right)

Options: `first=N`; `seed=N` (default 0); `delay=SECONDS` for `slow` (default 2);
`retry-after=SECONDS` for 429/503 (default 1); `api-max=N`: the API answers 422 to a
request of more than N DOIs (default 500, scite's limit).

The transient kinds apply to the API's batch requests too (`citesite/api.py`), decided per
(path and DOIs of the batch, attempt): a retry of the same batch is its next attempt. A
rate may be written `5%`. Anything else is refused with a message that says what is wrong
and where.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from citesite.doi import site_doi
from citesite.style import stable_hash

TRANSIENT_KINDS = (
    "500",
    "502",
    "503",
    "429",
    "429-date",
    "429-bare",
    "503-date",
    "reset",
    "truncate",
    "slow",
)
DEAD_KINDS = ("captcha", "login", "json", "image", "offsite", "loop")
# hostile pagination: the reason kind a careful client records on the paper
INCOMPLETE_KINDS: Mapping[str, str] = MappingProxyType(
    {
        "cycle": "pagination cycle",
        "cycle-absolute": "pagination cycle",
        "cycle-long": "pagination cycle",
        "endless": "more pages than the report counts",
        "truncated": "fewer statements than the report counts",
        "next-offsite": "next page off the site",
    }
)
PAGE_KINDS = (*INCOMPLETE_KINDS, "suffixed")  # served as report pages, altered
PERMANENT_KINDS = (*DEAD_KINDS, *PAGE_KINDS)
OPTIONS = ("first", "seed", "delay", "retry-after", "api-max")
API_MAX = 500  # the most DOIs one API request may carry (scite's documented limit)
MODES = ("creds", "dots")
CREDENTIALS = "user:secret"  # what the `creds` mode puts in every link
_SCALE = float(1 << 64)


class FaultSpecError(ValueError):
    """A fault spec is not valid. The site's own error (it knows nothing of the crawler's
    error tree); `citepipe site` reports it as a configuration error (exit 2)."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault kind with its rate; `first` limits a transient kind to early attempts."""

    kind: str
    rate: float
    first: int | None = None


@dataclass(frozen=True)
class FaultSpec:
    """Which faults the site injects; see the module docstring. Empty means none."""

    transient: tuple[Fault, ...] = ()
    permanent_rates: tuple[Fault, ...] = ()
    permanent: Mapping[str, str] = field(default_factory=dict, hash=False)
    first: int | None = None
    seed: int = 0
    delay: float = 2.0
    retry_after: int = 1
    api_max: int = API_MAX  # the API's 422 threshold (DOIs per request)
    creds: bool = False  # hostile mode: credentials in every link and redirect
    dots: bool = False  # hostile mode: dot segments normalised before routing

    def __post_init__(self) -> None:
        for f in self.transient:
            if f.kind not in TRANSIENT_KINDS:
                raise FaultSpecError(
                    f"{f.kind!r} is not a transient fault kind "
                    f"(known: {', '.join(TRANSIENT_KINDS)})"
                )
            if f.first is not None and f.first < 1:
                raise FaultSpecError(f"{f.kind}: first must be >= 1")
        for f in self.permanent_rates:
            if f.kind not in PERMANENT_KINDS:
                raise FaultSpecError(
                    f"{f.kind!r} is not a permanent fault kind "
                    f"(known: {', '.join(PERMANENT_KINDS)})"
                )
        for group in (self.transient, self.permanent_rates):
            for f in group:
                if not 0.0 <= f.rate <= 1.0:
                    raise FaultSpecError(f"{f.kind}: rate {f.rate} is not between 0 and 1")
            if sum(f.rate for f in group) > 1.0 + 1e-9:
                raise FaultSpecError(
                    "the rates of "
                    + ("transient" if group is self.transient else "permanent")
                    + " faults add up to more than 1"
                )
        if self.first is not None and self.first < 1:
            raise FaultSpecError("first must be >= 1")
        if not 1 <= self.api_max <= API_MAX:
            raise FaultSpecError(f"api-max must be between 1 and {API_MAX}")
        if self.delay < 0 or self.retry_after < 0 or self.seed < 0:
            raise FaultSpecError("delay, retry-after and seed must be >= 0")
        fixed: dict[str, str] = {}
        for doi, kind in self.permanent.items():
            if kind not in PERMANENT_KINDS:
                raise FaultSpecError(
                    f"{doi}: {kind!r} is not a permanent fault kind "
                    f"(known: {', '.join(PERMANENT_KINDS)})"
                )
            fixed[site_doi(doi) or doi.strip().lower()] = kind
        object.__setattr__(self, "permanent", MappingProxyType(fixed))

    # ------------------------------------------------------------------ parsing

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """Parse a spec string (grammar in the module docstring); raise FaultSpecError."""
        transient: list[Fault] = []
        permanent: list[Fault] = []
        opts: dict[str, float] = {}
        modes: dict[str, bool] = {}
        seen: set[str] = set()
        for pos, raw in enumerate(text.split(","), 1):
            item = raw.strip().replace(" ", "")
            if not item:
                if text.strip():
                    raise FaultSpecError(f"fault spec {text!r}: empty item at position {pos}")
                continue
            where = f"fault spec item {pos} ({raw.strip()!r})"
            name, eq, value = item.partition("=")
            name = name.lower()
            if not eq or not value:
                raise FaultSpecError(f"{where}: expected NAME=VALUE")
            if name in seen:
                raise FaultSpecError(f"{where}: {name} given twice")
            seen.add(name)
            if name in OPTIONS:
                opts[name] = _number(value, where, integer=name in ("first", "seed", "api-max"))
                continue
            if name in MODES:
                if value not in ("0", "1"):
                    raise FaultSpecError(f"{where}: {name} is a mode: {name}=1 (on) or 0")
                modes[name] = value == "1"
                continue
            if name not in TRANSIENT_KINDS and name not in PERMANENT_KINDS:
                raise FaultSpecError(
                    f"{where}: unknown fault {name!r}; transient kinds: "
                    f"{', '.join(TRANSIENT_KINDS)}; permanent kinds: "
                    f"{', '.join(PERMANENT_KINDS)}; options: {', '.join(OPTIONS)}; "
                    f"modes: {', '.join(MODES)}"
                )
            rate_text, at, first_text = value.partition("@")
            rate = _rate(rate_text, where)
            first = int(_number(first_text, where, integer=True)) if at else None
            if name in PERMANENT_KINDS:
                if at:
                    raise FaultSpecError(
                        f"{where}: {name} is permanent (per DOI); "
                        "@N applies to transient kinds only"
                    )
                permanent.append(Fault(name, rate))
            else:
                if first is not None and first < 1:
                    raise FaultSpecError(f"{where}: @N needs N >= 1")
                transient.append(Fault(name, rate, first))
        try:
            return cls(
                transient=tuple(transient),
                permanent_rates=tuple(permanent),
                first=int(opts["first"]) if "first" in opts else None,
                seed=int(opts.get("seed", 0)),
                delay=float(opts.get("delay", 2.0)),
                retry_after=math.ceil(opts.get("retry-after", 1)),
                api_max=int(opts.get("api-max", API_MAX)),
                creds=modes.get("creds", False),
                dots=modes.get("dots", False),
            )
        except FaultSpecError as exc:
            raise FaultSpecError(f"fault spec {text!r}: {exc}") from exc

    @classmethod
    def coerce(cls, spec: FaultSpec | str | None) -> FaultSpec:
        """A FaultSpec from a spec, a spec string, or None (no faults)."""
        if spec is None:
            return cls()
        if isinstance(spec, FaultSpec):
            return spec
        return cls.parse(spec)

    def __str__(self) -> str:
        items = [
            f"{f.kind}={f.rate:g}" + (f"@{f.first}" if f.first else "") for f in self.transient
        ]
        items += [f"{f.kind}={f.rate:g}" for f in self.permanent_rates]
        if self.first is not None:
            items.append(f"first={self.first}")
        if self.seed:
            items.append(f"seed={self.seed}")
        if self.delay != 2.0:
            items.append(f"delay={self.delay:g}")
        if self.retry_after != 1:
            items.append(f"retry-after={self.retry_after}")
        if self.api_max != API_MAX:
            items.append(f"api-max={self.api_max}")
        items += [f"{name}=1" for name in MODES if getattr(self, name)]
        if self.permanent:
            items.append(f"+{len(self.permanent)} assigned")
        return ",".join(items) or "none"

    # ------------------------------------------------------------------ decisions

    @property
    def active(self) -> bool:
        """True if this spec can inject anything at all."""
        return bool(
            self.creds
            or self.dots
            or self.api_max < API_MAX
            or any(f.rate > 0 for f in self.transient)
            or any(f.rate > 0 for f in self.permanent_rates)
            or self.permanent
        )

    def transient_fault(self, path_qs: str, attempt: int) -> str | None:
        """The transient fault for attempt `attempt` (1-based) at `path_qs`, or None."""
        if not self.transient:
            return None
        u = stable_hash("transient", self.seed, path_qs, attempt) / _SCALE
        edge = 0.0
        for f in self.transient:
            edge += f.rate
            if u < edge:
                limit = f.first if f.first is not None else self.first
                return f.kind if limit is None or attempt <= limit else None
        return None

    def permanent_fault(self, doi: str) -> str | None:
        """The permanent fault of the report `doi` (normalised), or None."""
        kind = self.permanent.get(doi)
        if kind is not None or not self.permanent_rates:
            return kind
        u = stable_hash("permanent", self.seed, doi) / _SCALE
        edge = 0.0
        for f in self.permanent_rates:
            edge += f.rate
            if u < edge:
                return f.kind
        return None

    def dead(self, dois: Iterable[str]) -> dict[str, str]:
        """Of `dois`, those a correct client must end with as failed, and the fault."""
        out: dict[str, str] = {}
        for doi in dois:
            kind = self.permanent_fault(doi)
            if kind is not None and kind in DEAD_KINDS:
                out[doi] = kind
        return out

    def incomplete(self, dois: Iterable[str]) -> dict[str, str]:
        """Of `dois`, those a correct client must store as incomplete, and the kind of
        reason it must record (`INCOMPLETE_KINDS`)."""
        out: dict[str, str] = {}
        for doi in dois:
            kind = self.permanent_fault(doi)
            if kind is not None and kind in INCOMPLETE_KINDS:
                out[doi] = INCOMPLETE_KINDS[kind]
        return out


def _rate(text: str, where: str) -> float:
    pct = text.endswith("%")
    value = _number(text[:-1] if pct else text, where, integer=False)
    value = value / 100.0 if pct else value
    if not 0.0 <= value <= 1.0:
        raise FaultSpecError(f"{where}: rate {text!r} is not between 0 and 1")
    return value


def _number(text: str, where: str, *, integer: bool) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise FaultSpecError(f"{where}: {text!r} is not {kind}") from None
    if value < 0 or not math.isfinite(value):
        raise FaultSpecError(f"{where}: {text!r} must be >= 0")
    return float(value)
