"""The site's own text cleaning (not the crawler's: see `citesite.doi` for why)."""

from __future__ import annotations

import unicodedata


def clean_text(text: str | None) -> str | None:
    """`text` in NFC with each run of whitespace made one space and the ends trimmed;
    None for None or for text that is all whitespace."""
    if text is None:
        return None
    words = unicodedata.normalize("NFC", text).split()
    return " ".join(words) if words else None
