"""The local site's data: generator, slugs, JSONL, demo set, ground truth."""

from __future__ import annotations

import itertools
import json
import re
import time
from pathlib import Path

import pytest

from citesite.corpus import real_reports
from citesite.dataset import (
    MAX_STATEMENTS,
    SEED_DOI,
    demo_dataset_path,
    expected_page,
    generated_index_from_slug,
    generated_short_id,
    iter_dataset,
    load_dataset,
    make_slug,
    page_count,
    write_dataset,
)
from citesite.generator import GeneratedReports, build_demo_dataset, generate, report_at
from pipeline.normalise import clean_text, doi_or_none

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"
SAMPLE_EXPECTED = SAMPLES / "seed-report-page1.expected.json"
SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*-[0-9A-Za-z]{7}$")


def test_generate_is_deterministic_per_seed() -> None:
    assert list(generate(40, seed=3)) == list(generate(40, seed=3))
    a, b = list(generate(40, seed=3)), list(generate(40, seed=4))
    assert {r.doi for r in a}.isdisjoint({r.doi for r in b})
    assert [r.title for r in a] != [r.title for r in b]


def test_generate_is_prefix_stable() -> None:
    assert list(generate(10, seed=1)) == list(generate(30, seed=1))[:10]


def test_generate_streams_a_million() -> None:
    start = time.perf_counter()
    gen = generate(1_000_000, seed=0)
    first = list(itertools.islice(gen, 5))
    assert time.perf_counter() - start < 1.0
    assert len(first) == 5 and first[0].doi != first[1].doi


def test_generated_reports_are_well_formed() -> None:
    reports = list(generate(400, seed=5))
    dois = {r.doi for r in reports}
    assert len(dois) == 400
    cross = pairs = 0
    for r in reports:
        assert doi_or_none(r.doi) == r.doi
        assert SLUG_RE.match(r.slug), r.slug
        assert 0 <= len(r.statements) <= MAX_STATEMENTS
        assert clean_text(r.title) == r.title
        keys = [(s.citing_doi, s.snippet) for s in r.statements]
        assert len(keys) == len(set(keys)), "statement identity must be unique in a report"
        for s in r.statements:
            assert doi_or_none(s.citing_doi) == s.citing_doi
            assert s.citing_doi.startswith("10.5555/")
            assert clean_text(s.snippet) == s.snippet
            assert s.snippet[0] not in '"“' and s.snippet[-1] not in '"”'
            assert s.confidence is None or s.confidence == round(s.confidence, 2)
            cross += s.citing_doi in dois
        pairs += sum(
            1
            for a, b in itertools.pairwise(r.statements)
            if a.snippet == b.snippet and a.citing_doi != b.citing_doi
        )
    assert cross > 50, "some citers must be reports of the same set"
    assert pairs > 20, "preprint + published pairs with the same snippet"
    pages = [page_count(r) for r in reports]
    assert sum(1 for p in pages if p <= 5) == len(pages)
    assert any(p > 2 for p in pages)
    assert any("(" in d or "#" in d or "<" in d for d in dois), "awkward DOIs occur"


def test_slugs_decode_to_their_index() -> None:
    for i in (0, 1, 2, 999, 123_456, 999_999):
        slug = make_slug("A title here", generated_short_id(7, i))
        assert generated_index_from_slug(7, slug) == i
    assert generated_index_from_slug(7, "no-such-slug-!!!") is None


def test_generated_reports_mapping_matches_generate() -> None:
    g = GeneratedReports(300, seed=2)
    reports = list(generate(300, seed=2))
    assert len(g) == 300 and list(g) == [r.doi for r in reports]
    for r in reports[::17]:
        assert g[r.doi] == r
        assert g.by_slug(r.slug) == r
    assert report_at(2, 300).doi not in g  # beyond n
    assert g.by_slug(report_at(2, 300).slug) is None
    assert "10.5555/cp2-000001x" not in g
    with pytest.raises(KeyError):
        g["10.1000/nope"]


def test_jsonl_round_trip(tmp_path: Path) -> None:
    reports = list(generate(25, seed=9))
    path = tmp_path / "set.jsonl"
    assert write_dataset(reports, path) == 25
    assert list(iter_dataset(path)) == reports
    assert load_dataset(path) == {r.doi: r for r in reports}


def test_bad_jsonl_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"doi": "10.1/x"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        load_dataset(path)


def test_demo_file_is_up_to_date() -> None:
    assert list(iter_dataset(demo_dataset_path())) == build_demo_dataset()


def test_demo_set_content() -> None:
    demo = load_dataset(demo_dataset_path())
    assert 20 <= len(demo) <= 40
    real = {r.doi for r in real_reports()}
    assert len(real & demo.keys()) >= 30
    assert sum(1 for r in demo.values() if page_count(r) > 1) >= 5
    seed = demo[SEED_DOI]
    assert seed.slug == "mesenchymal-sct-ameliorates-refractory-cytopenia-14Lxay"
    assert len(seed.statements) == 49 and page_count(seed) == 2
    assert seed.tallies.mentioning == 49 and seed.tallies.citing_publications == 71
    assert any(r.tallies.supporting is None for r in demo.values())


def test_seed_page_one_matches_the_sample() -> None:
    if not SAMPLE_EXPECTED.exists():
        pytest.fail(f"fixture {SAMPLE_EXPECTED} not found")
    sample = json.loads(SAMPLE_EXPECTED.read_text(encoding="utf-8"))
    seed = load_dataset(demo_dataset_path())[SEED_DOI]
    got = expected_page(seed, 1, "https://scite.ai")
    assert got.paper.report_url == sample["report_url"]
    assert got.paper.title == sample["title"]
    assert list(got.paper.authors) == sample["authors"]
    assert got.paper.abstract == sample["abstract"]
    assert [[f.facet, f.label, f.count] for f in got.facets] == sample["facets"]
    first5 = [{k: getattr(s, k) for k in sample["statements"][0]} for s in got.statements[:5]]
    assert first5 == sample["statements"]
    assert got.next_page_url == sample["next_page_url"]


def test_expected_page_bounds_and_next_links() -> None:
    r = next(r for r in generate(200, seed=1) if page_count(r) >= 3)
    n = page_count(r)
    base = "http://127.0.0.1:9999/"
    for p in range(1, n + 1):
        e = expected_page(r, p, base)
        assert e.paper.report_url == f"http://127.0.0.1:9999/reports/{r.slug}"
        assert len(e.statements) == (25 if p < n else len(r.statements) - 25 * (n - 1))
        assert e.next_page_url == (
            None if p == n else f"http://127.0.0.1:9999/reports/{r.slug}?page={p + 1}"
        )
    for bad in (0, n + 1):
        with pytest.raises(ValueError):
            expected_page(r, bad, base)
    assert page_count(r, per_page=10) == -(-len(r.statements) // 10)
