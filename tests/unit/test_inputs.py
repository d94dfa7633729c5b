from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.runs.inputs import read_doi_lines
from pipeline.runs.lifecycle import open_input


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


def bad_lines(text: str) -> list[tuple[int, str | None]]:
    return [
        (x.lineno, x.problem)
        for x in read_doi_lines(io.StringIO(text, newline=None))
        if x.doi is None
    ]


def test_control_characters_are_bad_lines_with_their_numbers() -> None:
    text = "10.1000/a\n10.1000/b\x00c\n# a comment\x00 is still a comment\n10.1000/\x1b[2Jd\n"
    text += "10.1000/e\u200bf\n10.1000/\u202eg\ndoi:\t10.1000/h\n10.1000/i\n"
    lines = list(read_doi_lines(io.StringIO(text, newline=None)))
    assert [(x.lineno, x.doi) for x in lines if x.doi] == [
        (1, "10.1000/a"),
        (7, "10.1000/h"),
        (8, "10.1000/i"),
    ]
    bad = bad_lines(text)
    assert [n for n, _ in bad] == [2, 4, 5, 6]
    assert bad[0][1] == "control character U+0000 at column 10"
    assert bad[1][1] is not None and "U+001B" in bad[1][1]
    assert bad[2][1] is not None and "U+200B" in bad[2][1]


def test_lines_that_are_not_utf8_are_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(
        b"\xef\xbb\xbf10.1000/a\r\n10.1000/caf\xe9\r\n# r\xe9sum\xe9 comment\n\xff\xfe\n"
        b"10.1000/\xc3\xa9t\xc3\xa9\n"
    )
    with open_input(str(path)) as f:
        lines = list(read_doi_lines(f))
    assert [(x.lineno, x.doi) for x in lines if x.doi] == [(1, "10.1000/a"), (5, "10.1000/été")]
    bad = [x for x in lines if x.doi is None]
    assert [x.lineno for x in bad] == [2, 4]
    assert bad[0].problem == "not valid UTF-8 (byte 0xE9 at column 12)"
    assert bad[0].raw == "10.1000/caf\\xe9"  # printable, never U+FFFD
    assert "\ufffd" not in "".join(x.raw for x in lines)


def test_standard_input_that_is_not_utf8_is_read_line_by_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = io.BytesIO(b"10.1000/a\n10.1000/\xe9\n10.1000/b\n")
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(raw, encoding="ascii"))
    with open_input("-") as f:
        lines = list(read_doi_lines(f))
    assert [x.doi for x in lines] == ["10.1000/a", None, "10.1000/b"]
    assert not raw.closed  # stdin is left open for its owner


@pytest.mark.parametrize(
    "line",
    [
        "10.1038/../../private/x",
        "https://doi.org/10.1038/%2E%2E/%2E%2E/private/x",
        "10.1038/a/./b",
        "https://doi.org/10.1038/%252e%252e/x",
    ],
)
def test_dois_with_dot_segments_are_bad_lines(line: str) -> None:
    bad = bad_lines(f"10.1000/ok\n{line}\n10.1000/also-ok\n")
    assert len(bad) == 1 and bad[0][0] == 2
    assert bad[0][1] is not None and "path segment" in bad[0][1]


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


def test_a_stray_nul_in_a_text_list_is_a_bad_line_not_binary(tmp_path: Path) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(b"10.1038/a\n10.1038/b\x00c\n10.1038/d\n")
    with open_input(str(path)) as f:
        lines = list(read_doi_lines(f))
    assert [(x.lineno, x.doi, x.problem) for x in lines] == [
        (1, "10.1038/a", None),
        (2, None, "control character U+0000 at column 10"),
        (3, "10.1038/d", None),
    ]


@pytest.mark.parametrize(
    "data",
    [
        "10.1038/a\n10.1038/b\n".encode("utf-16"),  # NULs on every other byte
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03abc\n",  # gzip: NULs, not UTF-8
    ],
)
def test_dense_or_non_utf8_nuls_are_binary(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "in.txt"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match="binary data"), open_input(str(path)):
        pass


def test_input_dois_keep_each_doi_once_out_of_memory() -> None:
    from pipeline.runs.inputs import InputDois

    with InputDois() as dois:
        assert not dois and len(dois) == 0
        dois.update(f"10.1234/{i:05d}" for i in range(2500))
        dois.update(["10.1234/00007", "10.1234/00007", "10.1234/new"])  # repeats kept once
        assert len(dois) == 2501
        assert "10.1234/00007" in dois and "10.1234/absent" not in dois
        assert dois.members(["10.1234/new", "10.1234/absent", "10.1234/02499"]) == {
            "10.1234/new",
            "10.1234/02499",
        }
        listed = list(dois)  # read back in pages of 1000
        assert len(listed) == 2501 == len(set(listed)) and listed == sorted(listed)
