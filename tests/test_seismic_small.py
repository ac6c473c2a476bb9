"""Seismic on small collections (exact below ``approximate_threshold``) and the named search presets."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tremor.cli import cli
from tremor.errors import QueryError, TremorError
from tremor.index.exact import ExactIndex
from tremor.index.seismic import (
    MEASURED_APPROXIMATE_THRESHOLD,
    THRESHOLD_ENV,
    SeismicIndex,
    default_approximate_threshold,
)
from tremor.index.seismic_presets import PRESETS
from tremor.search import Searcher
from tremor.sparse import SparseVectors


def grid_set(n_docs=600, n_queries=25, vocab=300, seed=1):
    """Vectors whose weights are multiples of 1/8 and 1/4 (exact in float16, and every dot product exact in
    float32), so the exact index and Seismic's float16 forward index give bit-identical scores."""
    rng = np.random.default_rng(seed)

    def make(n, per_row, scale):
        rows = np.repeat(np.arange(n), per_row)
        cols = rng.integers(0, vocab, n * per_row)
        vals = rng.integers(1, 64, n * per_row) / scale
        return SparseVectors.from_coo(rows, cols, vals, n, vocab, reduce="max")

    return make(n_docs, 20, 8.0), make(n_queries, 12, 4.0)


@pytest.fixture(scope="module")
def small():
    docs, queries = grid_set()
    return docs, queries, SeismicIndex.build(docs, progress=False), ExactIndex.build(docs)


def test_below_the_threshold_results_equal_the_exact_index(small):
    docs, queries, index, exact = small
    want_scores, want_docs = exact.search(queries, 10)
    # the cheapest approximate setting: ignored below the threshold
    scores, found = index.search(queries, 10, query_cut=1, heap_factor=1.5, approximate_threshold=index.n_docs + 1)
    assert np.array_equal(scores, want_scores)
    true = docs.to_dense() @ queries.to_dense().T
    for qi in range(len(queries)):
        valid = found[qi] >= 0
        assert np.array_equal(true[found[qi][valid], qi].astype(np.float32), scores[qi][valid])
        unique = np.flatnonzero(np.sum(want_scores[qi][:, None] == want_scores[qi][None, :], axis=1) == 1)
        assert np.array_equal(found[qi][unique], want_docs[qi][unique])


def test_at_or_above_the_threshold_the_approximate_search_runs(small):
    _, queries, index, exact = small
    _, want = exact.search(queries, 10)
    _, rough = index.search(queries, 10, query_cut=1, heap_factor=1.5, approximate_threshold=index.n_docs)
    _, rough_always = index.search(queries, 10, query_cut=1, heap_factor=1.5, approximate_threshold=0)
    assert np.array_equal(rough, rough_always)
    hit = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rough, want, strict=True)])
    assert hit < 0.9  # one query term visited: the approximate search misses documents the exact one finds


def test_threshold_with_a_filter_scores_the_allowed_documents_exactly(small):
    _, queries, index, exact = small
    allow = np.zeros(index.n_docs, bool)
    allow[::3] = True
    want_scores, _ = exact.search(queries, 10, allow=allow)
    scores, found = index.search(queries, 10, allow=allow, approximate_threshold=10_000)
    assert np.array_equal(scores, want_scores)
    assert np.all(allow[found[found >= 0]])


def test_threshold_errors_and_default(monkeypatch):
    docs, queries = grid_set(n_docs=50, n_queries=2)
    index = SeismicIndex.build(docs, progress=False)
    for bad in (-1, 2.5, True, "10"):
        with pytest.raises(QueryError, match="approximate_threshold"):
            index.search(queries, 5, approximate_threshold=bad)
    monkeypatch.delenv(THRESHOLD_ENV, raising=False)
    assert default_approximate_threshold() == MEASURED_APPROXIMATE_THRESHOLD
    monkeypatch.setenv(THRESHOLD_ENV, "123")
    assert default_approximate_threshold() == 123
    monkeypatch.setenv(THRESHOLD_ENV, "many")
    with pytest.raises(TremorError, match=THRESHOLD_ENV):
        default_approximate_threshold()


def test_preset_expands_to_its_parameters_and_explicit_ones_override(small):
    _, queries, index, _ = small
    for name, params in PRESETS.items():
        assert index._check_search_params({"preset": name})[:2] == (params["query_cut"], params["heap_factor"])
        got = index.search(queries, 10, preset=name, approximate_threshold=0)
        want = index.search(queries, 10, approximate_threshold=0, **params)
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    heap = PRESETS["recall95"]["heap_factor"]
    assert index._check_search_params({"preset": "recall95", "query_cut": 2})[:2] == (2, heap)
    got = index.search(queries, 10, preset="recall95", query_cut=2, approximate_threshold=0)
    want = index.search(queries, 10, query_cut=2, heap_factor=heap, approximate_threshold=0)
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))
    with pytest.raises(QueryError, match="unknown seismic preset 'recall80'"):
        index.search(queries, 10, preset="recall80")


def test_preset_on_the_command_line(tmp_path, tiny_corpus):
    out = tmp_path / "idx"
    runner = CliRunner()
    built = runner.invoke(cli, ["index", "build", "--corpus", str(tiny_corpus), "--out", str(out), "--index",
                                "seismic", "--quiet"])
    assert built.exit_code == 0, built.output
    searcher = Searcher.load(out)
    for extra, params in [([], dict(PRESETS["recall90"])),
                          (["--query-cut", "1"], {**PRESETS["recall90"], "query_cut": 1})]:
        result = runner.invoke(cli, ["search", str(out), "cats", "--preset", "recall90", "--json", "--no-text",
                                     *extra])
        assert result.exit_code == 0, result.output
        hits = json.loads(result.output.splitlines()[0])["hits"]
        want = searcher.search("cats", 10, with_text=False, **params)
        assert [(h["id"], h["score"]) for h in hits] == [(h.id, h.score) for h in want]
    exact_dir = tmp_path / "exact"
    assert runner.invoke(cli, ["index", "build", "--corpus", str(tiny_corpus), "--out", str(exact_dir),
                               "--quiet"]).exit_code == 0
    refused = runner.invoke(cli, ["search", str(exact_dir), "cats", "--preset", "recall99"])
    assert refused.exit_code == 1 and "apply to Seismic indexes" in refused.output


def test_preset_in_eval(tmp_path):
    from test_eval_datasets import make_beir

    from tremor.eval.runs import read_run

    root = make_beir(tmp_path / "tiny")
    runner = CliRunner()
    runs = []
    for name, args in [("preset", ["--preset", "recall90", "--param", "query_cut=1"]),
                       ("explicit", ["--param", "query_cut=1", "--param",
                                     f"heap_factor={PRESETS['recall90']['heap_factor']}"])]:
        result = runner.invoke(cli, ["eval", "--dataset", str(root), "--encoder", "bm25", "--index-type", "seismic",
                                     *args, "--out", str(tmp_path / name), "--quiet"])
        assert result.exit_code == 0, result.output
        runs.append(read_run(tmp_path / name / "tremor-bm25-seismic.run"))
    assert runs[0] == runs[1] and any(runs[0].values())


def test_explicit_approximate_settings_are_honoured_below_the_default_threshold(small, monkeypatch):
    """The default threshold (measured at the default settings) applies to a search that names no settings; one that
    asks for its own query_cut / heap_factor / preset gets that approximate search unless it names a threshold."""
    docs, queries, _, exact = small
    monkeypatch.setitem(SeismicIndex.SEARCH_DEFAULTS, "approximate_threshold", 10_000)
    index = SeismicIndex.build(docs, progress=False)  # a fresh index: no cached parameter checks
    want_scores, _ = exact.search(queries, 10)
    assert np.array_equal(index.search(queries, 10)[0], want_scores)  # defaults: exact below the threshold
    _, asked = index.search(queries, 10, query_cut=1, heap_factor=1.5)
    _, approximate = index.search(queries, 10, query_cut=1, heap_factor=1.5, approximate_threshold=0)
    assert np.array_equal(asked, approximate)
    exact_again, _ = index.search(queries, 10, query_cut=1, heap_factor=1.5, approximate_threshold=10_000)
    assert np.array_equal(exact_again, want_scores)
    _, preset = index.search(queries, 10, preset="recall90")
    _, preset_approximate = index.search(queries, 10, preset="recall90", approximate_threshold=0)
    assert np.array_equal(preset, preset_approximate)
