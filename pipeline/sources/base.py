"""The Source protocol: one site profile owns its site's addresses and reads its pages.

As a Scrapy spider owns its requests, the Source says where a DOI's report lives
(`address`), which followed links (next pages, redirects) belong to it (`in_scope`), and
turns a fetched page into a ParseResult (`parse`); the worker never builds a URL itself.

Parsing is pure and synchronous (no I/O), so it can be tested from files and moved to a
process pool later without changes; a page that is not a report raises ParseError.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from pipeline.models import ApiResult, NewJob, Page, ParseResult


class Source(Protocol):
    """A site profile."""

    name: str

    def address(self, doi: str) -> str:
        """The address of a (normalised) DOI's report on the site, without credentials.

        Raise `pipeline.errors.BadInputError` for a DOI no safe address can be built for
        (one whose path a server could normalise out of the report pages).
        """
        ...

    def in_scope(self, url: str) -> bool:
        """Whether a followed link (a next page, a redirect target) is one of the site's
        report pages: same scheme, host and port, and a path that stays among them."""
        ...

    def relocate(self, url: str) -> str | None:
        """A stored address of one of the site's pages (a later page of a report), as it
        reads under the current `base_url`: the same report path and query, or None when
        there is none (`citepipe retry` after a wrong `--base-url`)."""
        ...

    def parse(self, page: Page) -> ParseResult:
        """Read a report page; raise `pipeline.errors.ParseError` for a broken one.

        Addresses in the result (`report_url`, `next_page_url`) carry no credentials.
        """
        ...


class BatchSource(Protocol):
    """An API answering many DOIs a request (scite's API: `sources/scite_api.py`).

    It names its endpoints' addresses, makes the batch jobs (one endpoint, up to `batch`
    DOIs), splits a batch the API refused as too large, and reads an answer into an
    ApiResult (pure; a broken answer raises ParseError)."""

    name: str
    batch: int

    def url(self, endpoint: str) -> str: ...

    def paper_url(self, doi: str) -> str: ...

    def jobs(
        self, dois: Sequence[str], endpoints: Iterable[str], round: int = 0
    ) -> list[NewJob]: ...

    def split(self, job_dois: Sequence[str], endpoint: str, round: int) -> tuple[NewJob, ...]: ...

    def parse(self, endpoint: str, dois: Sequence[str], data: Any) -> ApiResult: ...
