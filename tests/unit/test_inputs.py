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


def test_input_dois_keep_each_doi_once_out_of_memory() -> None:
    from pipeline.inputs import InputDois

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
