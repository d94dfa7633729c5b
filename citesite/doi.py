"""The site's own DOI handling: read a DOI from what a client sends, put one into a path.

The site does not borrow the crawler's normalisers: it is the crawler's test bench, and a
rule written once and shared would make any mistake in it on both sides, where no test
could see it. These functions are written from the contract
(`shared/spec/report-page.md`, Normalisation) on their own; `tests/unit/test_site_doi.py`
checks that both sides read the same DOIs the same way.
"""

from __future__ import annotations

from urllib.parse import unquote

# What may stand in a report address as it is; every other character is percent-encoded
# as UTF-8 (RFC 3986 unreserved characters, sub-delimiters, `:`, `@`, `/`, brackets).
_KEEP = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" + "/;:@&=+$,!*'()[]~-._"
)
_RESOLVER_HOSTS = ("doi.org/", "dx.doi.org/", "www.doi.org/")
_SCHEMES = ("https://", "http://", "")
_ASCII_DIGITS = frozenset("0123456789")


def _without_prefix(text: str) -> str:
    """`text` less one leading `doi:` or doi.org resolver address (any case)."""
    low = text.lower()
    if low.startswith("doi:"):
        return text[4:].lstrip()
    for scheme in _SCHEMES:
        for host in _RESOLVER_HOSTS:
            head = scheme + host
            if low.startswith(head):
                return text[len(head) :]
    return text


def _is_doi(text: str) -> bool:
    """`10.` + 4 to 9 ASCII digits + `/` + a suffix of one or more non-space characters."""
    if not text.startswith("10."):
        return False
    registrant, slash, suffix = text[3:].partition("/")
    return (
        bool(slash)
        and 4 <= len(registrant) <= 9
        and all(c in _ASCII_DIGITS for c in registrant)
        and bool(suffix)
        and not any(c.isspace() for c in suffix)
    )


def site_doi(raw: str) -> str | None:
    """The DOI `raw` names (trimmed, prefix dropped, percent-decoded, lower case), or None
    when it names none."""
    text = unquote(_without_prefix(raw.strip()).strip()).lower()
    return text if _is_doi(text) else None


def quote_doi(doi: str) -> str:
    """The DOI as a path: each character outside `_KEEP` percent-encoded as UTF-8."""
    out: list[str] = []
    for ch in doi:
        if ch in _KEEP:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def report_url(base_url: str, doi: str) -> str:
    """`{base}/reports/{doi}`: where a client asks for the report on `doi`."""
    return base_url.rstrip("/") + "/reports/" + quote_doi(doi)
