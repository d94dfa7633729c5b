"""Decoding a page as a browser does (WHATWG): BOM, header, <meta>, else UTF-8."""

from __future__ import annotations

import codecs

import pytest

from pipeline.errors import ParseError
from pipeline.sources.charset import decode_page, sniff


def test_the_header_names_the_encoding_by_its_whatwg_label() -> None:
    body = "<p>Café “x”</p>".encode("cp1252")
    assert sniff(body, "latin1") == ("windows-1252", "header", 0)  # latin1 means 1252
    assert decode_page(body, "ISO-8859-1").text == "<p>Café “x”</p>"


def test_a_bom_wins_over_the_header_and_meta() -> None:
    body = codecs.BOM_UTF8 + '<meta charset="windows-1252"><p>Café</p>'.encode()
    assert sniff(body, "iso-8859-1") == ("utf-8", "bom", 3)
    assert decode_page(body, "iso-8859-1").text.endswith("<p>Café</p>")


@pytest.mark.parametrize(
    "head",
    [
        '<meta charset="windows-1252">',
        "<meta charset=windows-1252>",
        '<meta http-equiv="Content-Type" content="text/html; charset=windows-1252">',
    ],
)
def test_a_meta_in_the_first_1024_bytes_declares_it(head: str) -> None:
    body = f"<!DOCTYPE html><html><head>{head}</head><p>“q”</p>".encode("cp1252")
    assert sniff(body) == ("windows-1252", "meta", 0)
    assert decode_page(body).text.endswith("<p>“q”</p>")


def test_a_meta_too_late_in_a_comment_or_unknown_is_not_read() -> None:
    late = b"<!-- " + b"x" * 1100 + b' --><meta charset="windows-1252">'
    assert sniff(late)[:2] == ("utf-8", "default")
    hidden = b'<!-- <meta charset="windows-1252"> --><p>'
    assert sniff(hidden)[:2] == ("utf-8", "default")
    assert sniff(b"<p>", "no-such-charset")[:2] == ("utf-8", "default")


def test_undefined_windows_1252_bytes_are_c1_controls_as_in_browsers() -> None:
    assert decode_page(b"a\x81b", "windows-1252").text == "a\x81b"


def test_invalid_bytes_are_an_error_never_replacement_characters() -> None:
    with pytest.raises(ParseError, match=r"undecodable page: invalid utf-8 bytes at byte 3"):
        decode_page(b"<p>\xe9</p>", "utf-8")
    with pytest.raises(ParseError, match="no charset declared, read as UTF-8"):
        decode_page(b"<p>Caf\xe9</p>")
