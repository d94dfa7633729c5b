from __future__ import annotations

import io
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.inputs import read_doi_lines
from pipeline.runs import open_input


def test_spellings_bom_crlf_blank_and_bad_lines() -> None:
    text = (
        "\ufeff10.1038/BMT.2012.184\r\n"
        "\r\n"
        "doi:10.1000/ABC\r\n"
        "https://doi.org/10.1000/x%3Cy%3E\r\n"
        "not a doi\r\n"
        "# a comment\r\n"
        "http://dx.doi.org/10.1234/q\n"
        "10.12/too-short-prefix\n"
    )
    lines = list(read_doi_lines(io.StringIO(text, newline=None)))
    good = [(x.lineno, x.doi) for x in lines if x.doi]
    bad = [(x.lineno, x.raw) for x in lines if x.doi is None]
    assert good == [
        (1, "10.1038/bmt.2012.184"),
        (3, "10.1000/abc"),
        (4, "10.1000/x<y>"),
        (7, "10.1234/q"),
    ]
    assert bad == [(5, "not a doi"), (8, "10.12/too-short-prefix")]


def test_streams_lazily() -> None:
    def endless():  # type: ignore[no-untyped-def]
        n = 0
        while True:
            n += 1
            yield f"10.5555/{n}\n"

    it = read_doi_lines(endless())
    assert next(it).doi == "10.5555/1"
    assert next(it).doi == "10.5555/2"


def test_a_comment_after_a_doi_is_skipped_and_a_hash_inside_a_doi_is_kept() -> None:
    text = "10.1234/abc  # asked for by Ann\n10.1234/a#b\n10.1234/tab\t# why\n  # only\n"
    lines = list(read_doi_lines(io.StringIO(text)))
    assert [(x.lineno, x.doi) for x in lines] == [
        (1, "10.1234/abc"),
        (2, "10.1234/a#b"),
        (3, "10.1234/tab"),
    ]


def test_a_binary_input_is_one_error_not_a_bad_line_per_line(tmp_path: Path) -> None:
    data = tmp_path / "seeds.sqlite"
    data.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    with (
        pytest.raises(
            ConfigError, match=r"binary data, not a DOI list \(a NUL byte at offset 15\)"
        ),
        open_input(str(data)),
    ):
        pass
    text = tmp_path / "seeds.txt"
    text.write_text("10.1234/abc\n", encoding="utf-8")
    with open_input(str(text)) as f:
        assert f.read() == "10.1234/abc\n"
