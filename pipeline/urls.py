"""Address hygiene: what citepipe may store and send, whatever a site or a user hands it.

Two rules, applied wherever an address enters (a setting, a followed link, a redirect):

- **No credentials.** Userinfo (`user:password@`) is removed before an address is stored
  (`jobs.url`, `papers.report_url`, exports) or requested; aiohttp would otherwise turn it
  into a Basic `Authorization` header.
- **No dot segments.** A path with a `.` or `..` segment, plain or percent-encoded (even
  encoded several times, or behind a `\\` or a `;param` that some servers read as a
  separator), is one a server may normalise to somewhere else. Such a path is refused, not
  encoded: percent-encoding the dots is not enough, because servers decode them.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import unquote, urlsplit, urlunsplit

_SEGMENT_SPLIT = re.compile(r"[/\\]")
_DECODE_ROUNDS = 8  # `%25252E` needs three; more than this is refused outright


def host_key(url: str) -> str:
    """`scheme://host:port`: the unit of politeness, and what "the same site" means.

    Raises ValueError for an address whose port is not a number or out of range.
    """
    p = urlsplit(url)
    port = p.port or (443 if p.scheme == "https" else 80)
    return f"{p.scheme}://{(p.hostname or '').lower()}:{port}"


def strip_userinfo(url: str) -> str:
    """`url` without `user:password@`; other parts unchanged (unparsable input as is)."""
    if "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def has_userinfo(url: str) -> bool:
    """Whether `url` names a user or a password."""
    try:
        return "@" in urlsplit(url).netloc
    except ValueError:
        return False


def fully_decoded(text: str) -> str | None:
    """`text` percent-decoded until nothing changes (NFKC, so that `．．` reads `..`);
    None when it keeps changing (a decoding bomb is refused, not guessed at)."""
    if "%" not in text:  # nothing to decode (the usual path); ASCII is NFKC already
        return text if text.isascii() else unicodedata.normalize("NFKC", text)
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote(text)
        if decoded == text:
            return unicodedata.normalize("NFKC", text)
        text = decoded
    return None


def dot_segment(path: str) -> str | None:
    """The first `.` or `..` segment of `path` as a server might read it, or None.

    Segments are split at `/` and `\\`, after full percent-decoding; a `;param` tail is
    ignored (`..;x` is `..` to some servers). A path that cannot be fully decoded counts
    as one.
    """
    decoded = fully_decoded(path)
    if decoded is None:
        return path
    for segment in _SEGMENT_SPLIT.split(decoded):
        bare = segment.split(";", 1)[0].strip()
        if bare in (".", ".."):
            return segment
    return None


def path_within(url: str, prefix: str) -> bool:
    """Whether `url`'s path stays under `prefix` (e.g. `/reports/`) whatever a server
    decodes or normalises: it starts with `prefix` and has no dot segment."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return False
    return path.startswith(prefix) and dot_segment(path) is None


def without_fragment(url: str) -> str:
    """`url` without its `#fragment`: a fragment is never sent."""
    return url.split("#", 1)[0]


def is_public_host(url: str) -> bool:
    """Whether `url`'s host may be a real site on the internet: a dotted name (not
    `localhost`, not a compose service such as `site`) or a global IP address. Loopback,
    private and link-local addresses are someone's own machines."""
    host = (urlsplit(url).hostname or "").lower()
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        pass
    return "." in host and not host.endswith((".localhost", ".local", ".internal", ".test"))
