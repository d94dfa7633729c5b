"""A page's bytes as text, decoded the way a browser decodes them (WHATWG Encoding).

The encoding is, in the order of the HTML standard's sniffing algorithm: a byte order
mark; else the `charset` of the `Content-Type` header; else a `<meta charset>` or
`<meta http-equiv="Content-Type" content="...; charset=...">` in the first 1024 bytes
(the standard's prescan window); else UTF-8. Labels are resolved with the WHATWG label
table (`webencodings`: `latin1`, `iso-8859-1` and `ascii` all mean windows-1252, as in
every browser); an unknown label is ignored, as a browser ignores it.

Unlike a browser, bytes that are invalid in the chosen encoding are never replaced by
U+FFFD: the page is undecodable (`ParseError`, so the worker keeps it as a broken page
for `citepipe reparse`), because a replacement character stored in silence is data lost.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

import webencodings

from pipeline.errors import ParseError

PRESCAN_BYTES = 1024  # the HTML standard's prescan window for a <meta> declaration
UTF8 = "utf-8"
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_BE, "utf-16be"),
    (codecs.BOM_UTF16_LE, "utf-16le"),
)
_COMMENT = re.compile(rb"<!--.*?(?:-->|$)", re.DOTALL)
_META = re.compile(rb"<meta\b[^>]*?\bcharset\s*=\s*[\"']?\s*([^\s\"'/>;]+)", re.IGNORECASE)
_SAID = {
    "bom": "declared by a byte order mark",
    "header": "declared in the Content-Type header",
    "meta": "declared in a <meta>",
}
# windows-1252's five unassigned bytes: WHATWG maps them to the C1 controls, Python refuses
_C1_HANDLER = "citepipe-windows-1252"


def _c1_controls(error: UnicodeError) -> tuple[str, int]:
    if isinstance(error, UnicodeDecodeError):
        byte = error.object[error.start]
        if byte in (0x81, 0x8D, 0x8F, 0x90, 0x9D):
            return chr(byte), error.start + 1
    raise error


codecs.register_error(_C1_HANDLER, _c1_controls)


@dataclass(frozen=True, slots=True)
class Decoded:
    """A page's text, the encoding it was read with (WHATWG name) and where that came
    from: `bom`, `header`, `meta` or `default`."""

    text: str
    encoding: str
    source: str


def sniff(body: bytes, header_charset: str | None = None) -> tuple[str, str, int]:
    """(WHATWG encoding name, where it came from, bytes of BOM to skip) for a page."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name, "bom", len(bom)
    if header_charset:
        found = webencodings.lookup(header_charset.strip().strip("\"'"))
        if found is not None:
            return found.name, "header", 0
    head = _COMMENT.sub(b"", body[:PRESCAN_BYTES])
    for match in _META.finditer(head):
        found = webencodings.lookup(match.group(1).decode("ascii", "replace"))
        if found is not None:
            # the standard: a <meta> naming UTF-16 means UTF-8 (the bytes are ASCII-
            # compatible, or the <meta> could not have been read); x-user-defined, 1252
            if found.name in ("utf-16be", "utf-16le"):
                return UTF8, "meta", 0
            if found.name == "x-user-defined":
                return "windows-1252", "meta", 0
            return found.name, "meta", 0
    return UTF8, "default", 0


def decode_page(body: bytes, header_charset: str | None = None) -> Decoded:
    """The page's text; `ParseError` (`undecodable page: ...`) when its bytes are not
    valid in the encoding it declares (or in UTF-8, when it declares none)."""
    name, source, skip = sniff(body, header_charset)
    encoding = webencodings.lookup(name)
    python_codec = encoding.codec_info.name if encoding is not None else name
    errors = _C1_HANDLER if name == "windows-1252" else "strict"
    try:
        text = codecs.decode(body[skip:], python_codec, errors)
    except (UnicodeDecodeError, LookupError) as exc:
        where = f" at byte {exc.start + skip}" if isinstance(exc, UnicodeDecodeError) else ""
        said = _SAID.get(source, "no charset declared, read as UTF-8")
        raise ParseError(f"undecodable page: invalid {name} bytes{where} ({said})") from None
    return Decoded(text, name, source)
