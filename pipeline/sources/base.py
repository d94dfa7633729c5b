"""The Source protocol: one site profile turns a fetched page into a ParseResult.

Parsing is pure and synchronous (no I/O), so it can be tested from files and moved to a
process pool later without changes; a page that is not a report raises ParseError.
"""

from __future__ import annotations

from typing import Protocol

from pipeline.models import Page, ParseResult


class Source(Protocol):
    """A site profile."""

    name: str

    def parse(self, page: Page) -> ParseResult:
        """Read a report page; raise `pipeline.errors.ParseError` for a broken one."""
        ...
