"""Deterministic markup choices per report and per page, shared by renderer and ground truth.

A report's *style* is fixed by its DOI (so every page of a report says the same thing):
whether `/reports/{doi}` answers 200 directly or redirects, and which Highwire Press meta
tags are missing (the visible header is then the fallback). The only choice that changes
what a correct parser returns is the publication date: with the date tag missing (or
written as a bare year) only the year is known. Pure markup choices (entities, wrappers,
inline markup, attribute order, ...) are made per page by `page_seed`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

DateFormat = Literal["slash", "dash", "year"]


def stable_hash(*parts: object) -> int:
    """A 64-bit hash of `parts`, stable across processes (unlike `hash`)."""
    key = "\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big")


@dataclass(frozen=True, slots=True)
class ReportStyle:
    """Per-report choices; see the module docstring."""

    direct: bool  # /reports/{doi} answers 200 with page 1 instead of redirecting
    redirect_status: int  # 301 or 302
    meta_title: bool
    meta_authors: bool
    meta_journal: bool
    meta_date: bool
    meta_doi: bool
    date_format: DateFormat


def report_style(doi: str) -> ReportStyle:
    """The style of the report for `doi` (normalised)."""
    h = stable_hash("style", doi)
    bits = [(h >> i) & 0xF for i in range(0, 64, 4)]
    all_meta = bits[2] < 10  # ~62% of reports carry every Highwire tag
    date_format: DateFormat = ("slash", "slash", "dash", "year")[bits[8] & 3]
    return ReportStyle(
        direct=bits[0] < 4,
        redirect_status=301 if bits[1] < 8 else 302,
        meta_title=all_meta or bits[3] < 8,
        meta_authors=all_meta or bits[4] < 8,
        meta_journal=all_meta or bits[5] < 8,
        meta_date=all_meta or bits[6] < 8,
        meta_doi=all_meta or bits[7] < 8,
        date_format=date_format,
    )


def page_seed(doi: str, page: int) -> int:
    """Seed of the per-page markup choices."""
    return stable_hash("page", doi, page)
