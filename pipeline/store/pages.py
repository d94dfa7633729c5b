"""Kept pages (`keep_pages`, for `citepipe reparse`): how a page's body is compressed
(`pack_page`) and the row a kept page is written as (`page_params`; `rules` reads one
back). Pure functions, for every driver.
"""

from __future__ import annotations

import zlib
from typing import Any

from pipeline.models import KeptPage

Params = dict[str, Any]

# zlib level. Measured on the demo's 49 KB report pages: level 1 keeps 24% of the bytes in
# ~280 µs a page, level 6 keeps 20% in ~590 µs; with keep_pages = "all" every page pays it.
PAGE_COMPRESSION = 1


def pack_page(body: bytes) -> bytes:
    """A page's body as the store keeps it: zlib (RFC 1950) at `PAGE_COMPRESSION`."""
    return zlib.compress(body, PAGE_COMPRESSION)


def page_params(page: KeptPage) -> Params:
    """Row for the `keep_page` write: the body zlib-compressed (here unless `packed`)."""
    return {
        "doi": page.doi,
        "page": page.page,
        "url": page.url,
        "fetched_at": page.fetched_at,
        "broken": page.broken,
        "error": page.error,
        "size": len(page.body),
        "body": page.packed if page.packed is not None else pack_page(page.body),
        "media_type": page.media_type,
        "charset": page.charset,
    }
