"""After the crawl, on the demo store (issue 12): `show`, `search`, Parquet export with
filters, the tally history picture, and Datasette serving the store over HTTP."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog

from pipeline import app, cli
from pipeline.logs import configure_logging
from pipeline.models import Completion, NewJob, Paper, ParseResult, Statement, Tally
from pipeline.ops import read as ops_read
from pipeline.runs import demo
from pipeline.store import SQLiteStore
from pipeline.store.tables import COLUMNS

from .conftest import fast_settings, query, quiet_ui

SEED = "10.1038/bmt.2012.184"


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """Logs of in-process commands go to a stream of their own, forgotten afterwards (a
    command configures logging onto capsys's stream, which closes after its test)."""
    configure_logging("warning", "json", stream=io.StringIO())
    yield
    structlog.reset_defaults()


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo store, made once for this module by `citepipe demo`'s own run."""
    db = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    settings = fast_settings("http://127.0.0.1:9", db)
    configure_logging("warning", "json", stream=io.StringIO())
    try:
        summary = asyncio.run(demo.demo(settings, ui=quiet_ui()))
    finally:
        structlog.reset_defaults()
    assert summary.exit_code == 0
    return db


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def contrasting_word(db: Path) -> tuple[str, set[int]]:
    """A word of some contrasting statement, and the ids of the contrasting statements
    whose snippet holds it (as a whole word)."""
    rows = query(db, "select id, snippet from statements where type = 'contrasting'")
    assert rows, "the demo store has contrasting statements"
    words = re.findall(r"[a-z]{9,}", rows[0][1].lower())
    word = words[0]
    ids = {i for i, s in rows if re.search(rf"\b{word}\b", s.lower())}
    return word, ids


# ---------------------------------------------------------------- show


def test_show_gives_one_paper_as_json_and_as_a_table(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main(capsys, "show", SEED.upper(), "--json", "--db", str(demo_db))
    assert code == 0
    view = json.loads(out)
    (title,) = query(demo_db, "select title from papers where doi = ?", SEED)[0]
    assert view["paper"]["doi"] == SEED and view["paper"]["title"] == title
    assert view["authors"] == [
        n
        for (n,) in query(demo_db, "select name from authors where doi = ? order by position", SEED)
    ]
    stored = query(demo_db, "select count(*) from statements where cited_doi = ?", SEED)[0][0]
    assert len(view["statements"]) == stored > 0
    assert (
        view["tallies"]["mentioning"]
        == query(demo_db, "select mentioning from tallies where doi = ?", SEED)[0][0]
    )
    assert len(view["history"]) == 1 and view["facets"]

    code, out, _ = run_main(capsys, "show", SEED, "--db", str(demo_db), "--statements", "2")
    assert code == 0
    assert "Bone Marrow Transplantation" in out
    assert "facets" in out and "statements citing it (2 shown)" in out


def test_show_says_why_a_report_is_incomplete(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stored reason, on the terminal and in JSON (issue 25, point 11)."""
    doi, reason = query(
        demo_db, "select doi, incomplete_reason from papers where incomplete = 1 limit 1"
    )[0]
    assert reason
    code, out, _ = run_main(capsys, "show", doi, "--json", "--db", str(demo_db))
    assert code == 0 and json.loads(out)["paper"]["incomplete_reason"] == reason
    code, out, _ = run_main(capsys, "show", doi, "--db", str(demo_db), "--statements", "0")
    assert code == 0
    assert f"yes: {reason}" in " ".join(out.split())  # a wrapped line is still the reason
    assert "some pages of its report could not be read" not in out


def test_show_of_an_unknown_doi_is_one_line_exit_1(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_main(capsys, "show", "10.9999/nothing", "--db", str(demo_db))
    assert (code, out) == (1, "")
    assert err.strip() == f"citepipe: 10.9999/nothing: no such paper in {demo_db}"


# ---------------------------------------------------------------- search


def test_search_finds_the_matching_statements(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    word, ids = contrasting_word(demo_db)
    code, out, _ = run_main(
        capsys, "search", word, "--type", "contrasting", "--limit", "500", "--json",
        "--db", str(demo_db),
    )  # fmt: skip
    assert code == 0
    hits = json.loads(out)
    assert {h["id"] for h in hits} >= ids  # stemming may find a few more forms
    assert all(h["type"] == "contrasting" for h in hits)
    assert all("[" in h["highlighted"] for h in hits)

    code, out, _ = run_main(capsys, "search", "patients", "--db", str(demo_db), "--limit", "3")
    assert code == 0 and "3 statements matching" in out and "(s)" not in out
    assert "more match" in out  # the 3 shown are not all of them (issue 25, point 14)
    code, out, _ = run_main(capsys, "search", word, "--db", str(demo_db), "--limit", "500")
    assert code == 0 and "more match" not in out
    code, out, _ = run_main(capsys, "search", "patients", "--db", str(demo_db), "--json")
    assert len(json.loads(out)) == 20  # the default --limit, more matched


@pytest.mark.parametrize("term", ["COVID-19", "T-cells", "it's", "e.g.", "graft-versus-host"])
def test_search_takes_terms_with_punctuation(
    demo_db: Path, capsys: pytest.CaptureFixture[str], term: str
) -> None:
    code, out, err = run_main(capsys, "search", term, "--db", str(demo_db), "--json")
    assert (code, err) == (0, "")
    assert isinstance(json.loads(out), list)


def test_a_bad_search_query_is_one_line_exit_2(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main(capsys, "search", '"unbalanced', "--db", str(demo_db))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "bad search query" in err
    assert "configuration error" not in err  # a query is no setting (issue 25, point 14)
    code, _, err = run_main(capsys, "search", "graft OR", "--db", str(demo_db))
    assert code == 2 and "bad search query" in err and "configuration error" not in err


def test_the_fts_index_follows_the_statements(demo_db: Path) -> None:
    (n,) = query(demo_db, "select count(*) from statements")[0]
    assert query(demo_db, "select count(*) from statements_fts") == [(n,)]
    rows = query(
        demo_db,
        "select count(*) from citations where cited_doi = ? and statements > 0",
        SEED,
    )
    assert (
        rows[0][0]
        == query(
            demo_db, "select count(distinct citing_doi) from statements where cited_doi = ?", SEED
        )[0][0]
    )


# ---------------------------------------------------------------- CSV (issue 25, point 16)


def test_csv_has_its_header_when_no_row_matches_and_unix_line_ends(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ("export", "--table", "statements", "--db", str(demo_db))
    code, out, _ = run_main(capsys, *base, "--where", "type=no-such-type")
    assert code == 0 and out == ",".join(COLUMNS["statements"]) + "\n"
    code, out, _ = run_main(capsys, "export", "--table", "papers", "--db", str(demo_db))
    assert code == 0 and "\r" not in out.replace('"', "")  # no CRLF line ends
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == query(demo_db, "select count(*) from papers")[0][0]
    assert list(rows[0]) == list(COLUMNS["papers"])


def test_the_citations_view_is_exported(
    demo_db: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run_main(capsys, "export", "--table", "citations", "--db", str(demo_db))
    assert code == 0, err
    got = {
        (r["citing_doi"], r["cited_doi"], int(r["statements"]), int(r["supporting"]))
        for r in csv.DictReader(io.StringIO(out))
    }
    view = query(demo_db, "select citing_doi, cited_doi, statements, supporting from citations")
    assert got == set(view) and len(view) > 0
    out_file = tmp_path / "citations.parquet"
    code, _, _ = run_main(
        capsys, "export", "--table", "citations", "--format", "parquet", "-o", str(out_file),
        "--where", "statements>=2", "--db", str(demo_db),
    )  # fmt: skip
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(out_file)
    assert code == 0 and table.num_rows == sum(1 for r in view if r[2] >= 2)


def test_datasette_metadata_refuses_row_options(
    demo_db: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    meta = tmp_path / "metadata.json"
    code, _, err = run_main(
        capsys, "export", "--datasette-metadata", "--table", "papers", "-o", str(meta),
        "--db", str(demo_db),
    )  # fmt: skip
    assert code == 2 and not meta.exists()
    (line,) = err.strip().splitlines()
    assert "--datasette-metadata" in line and "--table" in line


# ---------------------------------------------------------------- Parquet


def test_parquet_round_trip_with_filters(
    demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")  # the `parquet` extra, in `test`
    out = tmp_path / "statements.parquet"
    code, _, err = run_main(
        capsys, "export", "--table", "statements", "--format", "parquet", "-o", str(out),
        "--db", str(demo_db),
    )  # fmt: skip
    assert code == 0, err
    table = pq.read_table(out)
    code, jl, _ = run_main(
        capsys, "export", "--table", "statements", "--format", "jsonl", "--db", str(demo_db)
    )
    want = [json.loads(line) for line in jl.splitlines()]
    got = table.to_pylist()
    assert len(got) == len(want) > 0
    for g, w in zip(got, want, strict=True):
        assert g["first_seen_at"] == datetime.fromisoformat(w["first_seen_at"])
        assert {k: v for k, v in g.items() if not k.endswith("_at")} == {
            k: v for k, v in w.items() if not k.endswith("_at")
        }
    assert str(table.schema.field("confidence").type) == "double"
    assert str(table.schema.field("last_seen_at").type) == "timestamp[us, tz=UTC]"

    some = tmp_path / "some.parquet"
    code, _, err = run_main(
        capsys, "export", "--table", "statements", "--format", "parquet", "-o", str(some),
        "--where", "type=contrasting", "--where", "confidence>=0.5", "--since", "1d",
        "--db", str(demo_db),
    )  # fmt: skip
    assert code == 0, err
    rows = pq.read_table(some).to_pylist()
    (n,) = query(
        demo_db,
        "select count(*) from statements where type = 'contrasting' and confidence >= 0.5",
    )[0]
    assert len(rows) == n > 0 and {r["type"] for r in rows} == {"contrasting"}
    code, _, err = run_main(
        capsys, "export", "--table", "statements", "--format", "parquet", "-o", str(some),
        "--since", (datetime.now(UTC) + timedelta(days=1)).date().isoformat(),
        "--db", str(demo_db),
    )  # fmt: skip
    assert code == 0 and pq.read_table(some).num_rows == 0


def test_where_is_validated_and_never_reaches_sql(
    demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ("export", "--table", "statements", "--format", "jsonl", "--db", str(demo_db))
    code, out, _ = run_main(capsys, *base, "--where", "type=x' OR 1=1 --")
    assert (code, out) == (0, "")  # a value like any other: nothing matches it
    code, _, err = run_main(capsys, *base, "--where", "nosuch=1")
    assert code == 2 and "no column 'nosuch'" in err
    code, _, err = run_main(capsys, *base, "--where", "1=1; drop table papers")
    assert code == 2 and "no column '1'" in err
    code, _, err = run_main(capsys, *base, "--where", "type")
    assert code == 2 and "expected COLUMN=VALUE" in err
    code, _, err = run_main(capsys, *base[:2], "authors", "--since", "1d", "--db", str(demo_db))
    assert code == 2 and "no time column" in err
    code, _, err = run_main(capsys, *base[:4], "parquet", "--db", str(demo_db))
    assert code == 2 and "needs --output" in err
    for target in (tmp_path, tmp_path / "no" / "x.parquet", Path("/dev/full")):
        code, _, err = run_main(
            capsys, *base[:4], "parquet", "-o", str(target), "--db", str(demo_db)
        )
        assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert Path("/dev/full").is_char_device()  # written to, never replaced by a file
    assert list(tmp_path.iterdir()) == []  # no partial file left behind
    assert query(demo_db, "select count(*) from papers")[0][0] > 0


# ---------------------------------------------------------------- the picture


async def test_show_plot_draws_the_tally_history(tmp_path: Path) -> None:
    image = pytest.importorskip("matplotlib.image")  # the `plot` extra, in `test`
    from pipeline.cli import views

    db = tmp_path / "s.sqlite"
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    async with SQLiteStore(db) as store:
        for rnd, (sup, men, con) in enumerate(((1, 5, 0), (3, 9, 1), (4, 12, 1))):
            await store.enqueue([NewJob("10.1234/a", "http://site/r/10.1234/a", round=rnd)])
            (job,) = await store.claim("w", 1, 30)
            paper = Paper(doi="10.1234/a", title="A paper")
            res = ParseResult(
                paper, Tally(sup, men, con), statements=(Statement("10.1234/b", "x"),)
            )
            seen = t0 + timedelta(days=30 * rnd)
            await store.complete(Completion(job, res, fetched_at=seen))
    async with app.open_pipeline(fast_settings("http://127.0.0.1:9", db), create=False) as p:
        view = await ops_read.show(p, "10.1234/a")
    assert [h["mentioning"] for h in view.history] == [5, 9, 12]
    png = views.plot_history(view, tmp_path / "history.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = image.imread(png)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert len({tuple(px) for px in pixels.reshape(-1, pixels.shape[2])[::97]}) > 3  # drawn


def test_plot_from_the_command_line(
    demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "seed.png"
    code, _, err = run_main(capsys, "show", SEED, "--plot", str(png), "--db", str(demo_db))
    assert code == 0 and "drawn to" in err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, err = run_main(
        capsys, "show", SEED, "--plot", str(tmp_path / "no" / "x.png"), "--db", str(demo_db)
    )
    assert code == 2 and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- Datasette


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        body: bytes = r.read()
    return body.decode()


@pytest.fixture
def datasette(demo_db: Path, tmp_path: Path) -> Iterator[str]:
    """`datasette serve` on the demo store with `export --datasette-metadata`'s file."""
    pytest.importorskip("datasette")
    meta = tmp_path / "metadata.json"
    assert cli.main(["export", "--datasette-metadata", "-o", str(meta), "--db", str(demo_db)]) == 0
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "datasette", "serve", str(demo_db), "--port", str(port),
         "--host", "127.0.0.1", "--metadata", str(meta)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:  # until it answers (start-up), not a timing assertion
            try:
                get(base + "/-/versions.json")
                break
            except (urllib.error.URLError, ConnectionError) as exc:
                if proc.poll() is not None or time.monotonic() > deadline:
                    assert proc.stderr is not None
                    raise AssertionError(
                        f"datasette did not start: {proc.stderr.read()!r}"
                    ) from exc
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.mark.slow
def test_datasette_serves_the_demo_store(demo_db: Path, datasette: str) -> None:
    name = demo_db.stem
    word, ids = contrasting_word(demo_db)
    found: Any = json.loads(
        get(f"{datasette}/{name}/statements.json?_search={word}&type=contrasting"
            "&_shape=array&_size=max")
    )  # fmt: skip
    assert {row["id"] for row in found} >= ids > set()
    assert all(row["type"] == "contrasting" for row in found)

    page = get(f"{datasette}/{name}/statements?cited_doi={SEED}&_size=1")
    assert f'href="/{name}/papers/' in page  # cited_doi and citing_doi link to their papers
    assert "search" in page.lower()  # the FTS search box Datasette offers by itself

    meta = json.loads(get(f"{datasette}/-/metadata.json"))
    tables = meta["databases"][name]["tables"]
    assert "Citation statements" in tables["statements"]["description"]
    view: Any = json.loads(get(f"{datasette}/{name}/citations.json?_shape=array&_size=3"))
    assert set(view[0]) >= {"citing_doi", "cited_doi", "supporting", "contrasting"}


def test_the_plot_of_one_observation_spans_days_and_equal_series_all_show(
    demo_db: Path,
) -> None:
    """One observation used to span four years; supporting and contrasting, both 3,
    hid each other; the x labels lacked the month."""
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    from matplotlib.dates import num2date

    from pipeline.cli import views

    async def view() -> Any:
        async with app.open_pipeline(
            fast_settings("http://127.0.0.1:9", demo_db), create=False
        ) as p:
            return await ops_read.show(p, SEED)

    fig = views.draw_history(asyncio.run(view()))
    try:
        ax = fig.axes[0]
        low, high = ax.get_xlim()
        assert high - low <= 3  # days
        lines = ax.get_lines()
        assert len(lines) == 3
        styles = {(ln.get_linestyle(), ln.get_linewidth(), ln.get_marker()) for ln in lines}
        assert len(styles) == 3  # each series drawn its own way: equal ones both show
        fig.canvas.draw()
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        when = num2date(low)
        assert labels and all(lbl.startswith(f"{when:%Y}-") for lbl in labels), labels
        assert all(len(lbl.split("-")) == 3 for lbl in labels), labels  # year-month-day
    finally:
        plt.close(fig)


def test_the_demo_seed_tallies_agree_with_its_stored_statements(demo_db: Path) -> None:
    """The bundled tallies of the seed said 0 supporting and 0 contrasting while 3 and
    3 were stored."""
    [tallies] = query(
        demo_db, "select supporting, mentioning, contrasting from tallies where doi = ?", SEED
    )
    counts = dict(
        query(demo_db, "select type, count(*) from statements where cited_doi = ? group by 1", SEED)
    )
    assert tallies == (
        counts.get("supporting", 0),
        counts.get("mentioning", 0),
        counts.get("contrasting", 0),
    )
