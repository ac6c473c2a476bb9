import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from tremor.errors import QueryError, TremorError, VocabularyMismatchError
from tremor.index import parse_index_spec
from tremor.index.builder import build_index, write_index
from tremor.index.exact import ExactIndex
from tremor.index.seismic import SeismicIndex
from tremor.search import Searcher
from tremor.search.searcher import open_index
from tremor.sparse import SparseVectors

ROOT = Path(__file__).resolve().parents[1]


def clustered_set(n_docs=3000, n_queries=60, vocab=800, seed=0):
    """Documents drawn around a few dozen topics (so that blocks mean something), queries from random documents."""
    rng = np.random.default_rng(seed)
    topics = [rng.choice(vocab, 60, replace=False) for _ in range(40)]
    rows, cols, vals = [], [], []
    for d in range(n_docs):
        topic = topics[rng.integers(len(topics))]
        terms = np.concatenate([rng.choice(topic, 20), rng.integers(0, vocab, 10)])
        rows += [d] * terms.size
        cols += terms.tolist()
        vals += rng.lognormal(-0.5, 0.7, terms.size).tolist()
    docs = SparseVectors.from_coo(np.array(rows), np.array(cols), np.array(vals), n_docs, vocab, reduce="max")
    q_rows, q_cols, q_vals = [], [], []
    for q in range(n_queries):
        idx, val = docs.row(int(rng.integers(n_docs)))
        keep = rng.random(idx.size) < 0.6
        q_rows += [q] * int(keep.sum())
        q_cols += idx[keep].tolist()
        q_vals += (val[keep] * rng.lognormal(0, 0.3, int(keep.sum()))).tolist()
    queries = SparseVectors.from_coo(np.array(q_rows), np.array(q_cols), np.array(q_vals), n_queries, vocab)
    return docs, queries


def as_stored(docs: SparseVectors) -> SparseVectors:
    """The document vectors as the Seismic forward index stores them (float16 values)."""
    return SparseVectors(docs.indptr, docs.indices, docs.values.astype(np.float16).astype(np.float32),
                         docs.vocab_size, docs.vocab_id)


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, (b >= 0).sum())
                          for a, b in zip(found, exact, strict=True)]))


@pytest.fixture(scope="module")
def data():
    return clustered_set()


@pytest.fixture(scope="module")
def index(data):
    return SeismicIndex.build(data[0], progress=False)


def test_default_parameters_reach_high_recall(data, index):
    docs, queries = data
    _, exact = ExactIndex.build(docs).search(queries, 10)
    scores, found = index.search(queries, 10)
    assert scores.dtype == np.float32 and found.dtype == np.int64 and found.shape == (len(queries), 10)
    assert recall(found, exact) >= 0.9
    # scores are the exact inner products of the returned documents (over the stored float16 values)
    true = as_stored(docs).dot(queries)
    for qi in range(len(queries)):
        valid = found[qi] >= 0
        assert np.allclose(scores[qi][valid], true[found[qi][valid], qi], rtol=1e-4)
        assert np.all(np.diff(scores[qi][valid]) <= 0)
    # a cheaper setting loses recall, a lower heap factor does not
    _, rough = index.search(queries, 10, query_cut=1, heap_factor=1.5)
    _, careful = index.search(queries, 10, query_cut=30, heap_factor=0.2)
    assert recall(rough, exact) < recall(careful, exact)


def test_single_query_path_matches_batch(data, index):
    _, queries = data
    scores, found = index.search(queries, 10, query_cut=3, heap_factor=0.9)
    for qi in range(0, len(queries), 7):
        s, f = index.search(queries[qi], 10, query_cut=3, heap_factor=0.9)
        assert np.array_equal(f[0], found[qi]) and np.array_equal(s[0], scores[qi])


@pytest.mark.parametrize("direct_postings", [0, 16, 100_000])
@pytest.mark.parametrize("heap_factor, summary_energy", [(1.0, 1.0), (0.0, 0.4)])
def test_exact_settings_equal_the_exact_index(data, heap_factor, summary_energy, direct_postings):
    docs, queries = data
    exact_scores, exact = ExactIndex.build(as_stored(docs)).search(queries, 20)
    index = SeismicIndex.build(docs, n_postings=float("inf"), summary_energy=summary_energy, progress=False)
    scores, found = index.search(queries, 20, query_cut=10_000, heap_factor=heap_factor,
                                 direct_postings=direct_postings)
    assert np.array_equal(found, exact)
    assert np.allclose(scores[found >= 0], exact_scores[exact >= 0], rtol=1e-5)


@pytest.mark.parametrize(("direct_postings", "summary_bits"), [(0, 8), (16, 8), (0, 4), (16, 4)])
def test_summaries_split_into_segments_stay_exact(direct_postings, summary_bits):
    # a 40,000-term vocabulary packs 8 bits of block number per entry: lists of 600 one-document blocks need 3
    # summary segments (in both layouts: 4-bit segments of such a long list hold 256 blocks too)
    rng = np.random.default_rng(3)
    n_docs, vocab = 600, 40_000
    dense = np.zeros((n_docs, vocab), np.float32)
    dense[:, 7] = rng.random(n_docs) + 0.1  # one term in every document
    for d in range(n_docs):
        dense[d, rng.choice(vocab, 12, replace=False)] = rng.random(12) + 0.1
    docs = SparseVectors.from_scipy(sp.csr_matrix(dense))
    queries = docs[rng.choice(n_docs, 25, replace=False)]
    index = SeismicIndex.build(docs, n_postings=None, centroid_fraction=1.0, min_cluster_size=0,
                               summary_energy=1.0, summary_bits=summary_bits, progress=False)
    assert index.summary_bits == summary_bits and np.diff(index.list_segment_indptr)[7] == 3
    _, exact = ExactIndex.build(as_stored(docs)).search(queries, 10)
    _, found = index.search(queries, 10, query_cut=1000, heap_factor=1.0, direct_postings=direct_postings)
    assert np.array_equal(found, exact)


def test_short_lists_are_scored_without_their_summaries(data):
    # a heap factor so large that every block whose summary is read gets skipped once the heap is full: lists scored
    # directly (at most direct_postings postings) still give the exact top k, lists read through summaries do not
    docs, queries = data
    _, exact = ExactIndex.build(as_stored(docs)).search(queries, 10)
    index = SeismicIndex.build(docs, n_postings=float("inf"), progress=False)
    longest = int(np.diff(index.block_indptr[index.list_block_indptr]).max())
    _, direct = index.search(queries, 10, query_cut=10_000, heap_factor=1e6, direct_postings=longest)
    assert np.array_equal(direct, exact)
    _, through_summaries = index.search(queries, 10, query_cut=10_000, heap_factor=1e6, direct_postings=0)
    assert recall(through_summaries, exact) < 0.9
    # a threshold below the longest list: the short lists go direct, the long ones through their summaries
    lengths = np.diff(index.block_indptr[index.list_block_indptr])
    middle = int(np.median(lengths[lengths > 0]))
    _, mixed = index.search(queries, 10, query_cut=10_000, heap_factor=1e6, direct_postings=middle)
    assert recall(through_summaries, exact) <= recall(mixed, exact) <= 1.0


def test_empty_query_unknown_terms_and_large_k():
    docs = SparseVectors.from_dicts([{0: 1.0, 2: 0.5}, {1: 2.0}, {0: 0.3, 1: 0.1}], vocab_size=6)
    index = SeismicIndex.build(docs, progress=False)
    scores, found = index.search(SparseVectors.empty(2, 6), k=3)
    assert np.all(found == -1) and np.all(scores == -np.inf)
    # terms 4 and 5 are in the vocabulary but in no document
    scores, found = index.search(SparseVectors.from_dicts([{4: 1.0, 5: 2.0}, {5: 1.0, 0: 1.0}], vocab_size=6), k=10)
    assert np.all(found[0] == -1)
    # k is clamped to the 3 documents
    assert found[1].tolist() == [0, 2, -1] and scores[1][2:].tolist() == [-np.inf]
    with pytest.raises(TremorError):
        index.search(SparseVectors.from_dicts([{7: 1.0}], vocab_size=9), k=1)
    with pytest.raises(QueryError):
        index.search(SparseVectors.empty(1, 6), k=0)


def test_bad_parameters_are_refused(data, index):
    docs, queries = data
    for bad in ({"summary_energy": 0.0}, {"centroid_fraction": 2.0}, {"n_postings": 0}, {"pruning": "best"},
                {"doc_cut": 0}, {"colour": "red"}):
        with pytest.raises(TremorError):
            SeismicIndex.build(docs[:10], progress=False, **bad)
    for bad in ({"query_cut": 0}, {"heap_factor": -1.0}, {"n_knn": 2}, {"colour": 1}, {"direct_postings": -1},
                {"direct_postings": 2.5}, {"direct_postings": True}):
        with pytest.raises(QueryError):
            index.search(queries, 10, **bad)
    with pytest.raises(TremorError, match="float16"):
        SeismicIndex.build(SparseVectors.from_dicts([{0: 1e6}], vocab_size=2), progress=False)
    foreign = SparseVectors.from_dicts([{0: 1.0}], vocab_size=2, vocab_id="bm25:other")
    mine = SeismicIndex.build(SparseVectors.from_dicts([{0: 1.0}], vocab_size=2, vocab_id="bm25:mine"),
                              progress=False)
    with pytest.raises(VocabularyMismatchError):
        mine.search(foreign, 1)


def test_pruning_keeps_the_largest_postings(data):
    docs, _ = data
    fixed = SeismicIndex.build(docs, n_postings=50, pruning="fixed", progress=False)

    def kept(term: int) -> np.ndarray:
        first, last = fixed.list_block_indptr[term], fixed.list_block_indptr[term + 1]
        return np.sort(fixed.posting_docs[fixed.block_indptr[first]:fixed.block_indptr[last]])

    assert max(kept(t).size for t in range(docs.vocab_size)) == 50
    # a list keeps its 50 largest values
    columns = docs.to_scipy().tocsc()
    term = int(np.argmax(np.diff(columns.indptr)))
    column = columns[:, term].toarray().ravel().astype(np.float16).astype(np.float32)
    assert np.array_equal(kept(term), np.sort(np.argsort(-column, kind="stable")[:50]))
    budget = SeismicIndex.build(docs, n_postings=20, max_fraction=2.0, progress=False)
    assert budget.posting_docs.shape[0] <= 20 * docs.vocab_size + 50  # ties at the threshold may add a few
    assert np.diff(budget.block_indptr).sum() == budget.posting_docs.shape[0]


def test_build_is_deterministic(data):
    docs, _ = data
    a = SeismicIndex.build(docs[:800], progress=False).arrays()
    b = SeismicIndex.build(docs[:800], progress=False).arrays()
    assert all(np.array_equal(a[name], b[name]) for name in a)


def test_knn_refinement(data):
    docs, queries = data
    index = SeismicIndex.build(docs, knn=8, progress=False)
    assert index.knn_neighbors.shape == (len(docs), 8)
    assert not np.any(index.knn_neighbors == np.arange(len(docs))[:, None])
    _, exact = ExactIndex.build(docs).search(queries, 10)
    _, plain = index.search(queries, 10, query_cut=1, heap_factor=1.5)
    _, wave = index.search(queries, 10, query_cut=1, heap_factor=1.5, n_knn=8)
    assert recall(wave, exact) > recall(plain, exact)


def test_save_load_round_trip(tmp_path, data, index):
    _, queries = data
    write_index(tmp_path / "idx", index, None, None)
    loaded, manifest = open_index(tmp_path / "idx")
    assert manifest["index_type"] == "seismic" and manifest["params"]["summary_energy"] == 0.4
    assert isinstance(loaded.posting_docs, np.memmap)
    for params in ({}, {"query_cut": 2, "heap_factor": 1.0}):
        expected = index.search(queries, 10, **params)
        got = loaded.search(queries, 10, **params)
        assert np.array_equal(expected[1], got[1]) and np.array_equal(expected[0], got[0])
        single = loaded.search(queries[3], 10, **params)
        assert np.array_equal(single[1][0], expected[1][3])


def test_spec_builder_and_searcher(tmp_path, tiny_corpus):
    assert parse_index_spec("seismic,lambda=inf,beta=0.2,alpha=0.5,kappa=3") == (
        "seismic", {"n_postings": float("inf"), "centroid_fraction": 0.2, "summary_energy": 0.5, "knn": 3})
    path = build_index(tiny_corpus, tmp_path / "idx", index="seismic,lambda=100,beta=0.5,alpha=0.6", progress=False)
    searcher = Searcher.load(path)
    assert searcher.manifest["params"]["centroid_fraction"] == 0.5
    hits = searcher.search("cat on a mat", k=2, query_cut=5, heap_factor=0.9)
    exact = Searcher.load(build_index(tiny_corpus, tmp_path / "exact", progress=False)).search("cat on a mat", k=2)
    assert [h.id for h in hits] == [h.id for h in exact]


def test_cli_build_and_search(tmp_path, tiny_corpus):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "tremor", *args], capture_output=True, text=True, env=env,
                              timeout=600)

    out = tmp_path / "idx"
    built = run("index", "build", "--corpus", str(tiny_corpus), "--out", str(out), "--index", "seismic",
                "--lambda", "100", "--beta", "0.3", "--alpha", "0.5", "--quiet")
    assert built.returncode == 0, built.stderr
    assert "built seismic index of 6 documents" in built.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["params"]["n_postings"] == 100 and manifest["params"]["summary_energy"] == 0.5
    found = run("search", str(out), "cat on a mat", "-k", "2", "--json", "--query-cut", "4", "--heap-factor", "0.8")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["hits"][0]["id"] == "d1"
    refused = run("search", str(out), "cat", "--heap-factor", "-2")
    assert refused.returncode != 0 and "heap_factor" in refused.stderr and "Traceback" not in refused.stderr
    wrong = run("index", "build", "--corpus", str(tiny_corpus), "--out", str(tmp_path / "x"), "--alpha", "0.5")
    assert wrong.returncode != 0 and "--index seismic" in wrong.stderr


@pytest.mark.parametrize("component_dtype", [np.uint16, np.int32])
@pytest.mark.parametrize("forward", ["f16", "u8"])
def test_document_inner_product_matches_numpy_for_every_length(component_dtype, forward):
    """The forward-index inner product (vector gathers 16 entries at a time where the CPU has them, a scalar loop
    for the rest) equals a float64 reference for document lengths around the vector width."""
    import numba

    from tremor.index import seismic_kernels as kernels

    @numba.njit
    def dots(doc_indptr, doc_components, forward_values, q_dense):
        out = np.empty((2, doc_indptr.shape[0] - 1), np.float32)
        for doc in range(out.shape[1]):
            out[0, doc] = kernels._doc_dot(doc, doc_indptr, doc_components, forward_values[0], forward_values[1],
                                           q_dense)
            out[1, doc] = kernels._doc_dot_scalar(doc, doc_indptr, doc_components, forward_values[0],
                                                  forward_values[1], q_dense)
        return out

    rng = np.random.default_rng(7)
    lengths = np.array([0, 1, 15, 16, 17, 31, 32, 33, 250, 257])
    doc_indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    vocab = 70_000 if component_dtype == np.int32 else 30_522
    components = np.concatenate([np.sort(rng.choice(vocab, n, replace=False)) for n in lengths]).astype(component_dtype)
    values = rng.uniform(0.01, 3.0, doc_indptr[-1]).astype(np.float32)
    q_dense = np.zeros(vocab, np.float32)
    q_dense[rng.choice(vocab, vocab // 3, replace=False)] = rng.uniform(0.1, 2.0, vocab // 3)
    if forward == "f16":
        stored = values.astype(np.float16)
        forward_values = (stored.view(np.uint16), np.zeros(0, np.float32))
        decoded = stored.astype(np.float64)
    else:
        codes, scales = kernels.quantize_forward(doc_indptr, values)
        forward_values = (codes, scales)
        decoded = kernels.dequantize_forward(doc_indptr, codes, scales).astype(np.float64)
    got = dots(doc_indptr, components, forward_values, q_dense)  # [this CPU's path, the scalar path]
    weights = q_dense[components.astype(np.int64)].astype(np.float64) * decoded
    expected = np.array([weights[s:e].sum() for s, e in itertools.pairwise(doc_indptr)])
    assert got.dtype == np.float32
    for path in got:
        np.testing.assert_allclose(path, expected, rtol=2e-6, atol=1e-6)
    assert (got[:, lengths > 16] > 0).all()


@pytest.mark.parametrize("forward", ["f16", "u8"])
def test_one_query_searches_equal_a_batch_search(data, forward, tmp_path):
    """A one-query search (serial kernel, per-thread scratch) returns exactly what a batch search (parallel kernel)
    returns for that query, at loose and strict settings and through the κ-NN expansion, also after a save and a
    memory-mapped load (kernels get plain views of the mapped arrays)."""
    docs, queries = data
    index = SeismicIndex.build(docs, progress=False, n_postings=300, centroid_fraction=0.1, knn=4,
                               forward=forward)
    write_index(tmp_path / "idx", index, None, None)
    loaded, _ = open_index(tmp_path / "idx")
    for idx in (index, loaded):
        for params in ({"query_cut": 3, "heap_factor": 0.7}, {"query_cut": 10, "heap_factor": 1.0},
                       {"query_cut": 5, "heap_factor": 0.9, "n_knn": 4}, {"query_cut": 2, "heap_factor": 0.5,
                                                                          "direct_postings": 0}):
            batch_scores, batch_docs = idx.search(queries, 10, approximate_threshold=0, **params)
            for i in range(len(queries)):
                scores, found = idx.search(queries[i:i + 1], 10, approximate_threshold=0, **params)
                assert scores.shape == (1, 10) and found.dtype == np.int64
                np.testing.assert_array_equal(found[0], batch_docs[i])
                np.testing.assert_array_equal(scores[0], batch_scores[i])
