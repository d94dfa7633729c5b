from __future__ import annotations

import io

from pipeline.inputs import read_doi_lines


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
