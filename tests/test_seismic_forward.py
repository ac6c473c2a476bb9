"""The quantized forward index of Seismic (build parameter forward="u8": 8-bit codes with a scale per document)."""

import numpy as np
import pytest
from test_seismic_compact import random_docs

import tremor
from tremor.errors import TremorError
from tremor.index.exact import ExactIndex
from tremor.index.seismic import SeismicIndex
from tremor.search import Searcher

QUERY = "cat mat park earthquake seismic waves"


@pytest.fixture(scope="module")
def data():
    docs = random_docs(500, 900, 30, seed=5)
    queries = docs[np.arange(0, 500, 11)]
    return docs, queries


def test_u8_forward_is_exact_over_its_own_values_and_close_to_float(data):
    docs, queries = data
    index = SeismicIndex.build(docs, n_postings=None, summary_energy=1.0, forward="u8", progress=False)
    assert index.doc_values.dtype == np.uint8 and index.doc_scale.shape == (len(docs),)
    assert index.doc_values.nbytes == index.doc_components.shape[0]  # one byte per entry
    # heap_factor 1 with untrimmed summaries is exact over the values the index holds
    stored = index.documents()
    exact_scores, exact = ExactIndex.build(stored).search(queries, 10)
    scores, found = index.search(queries, 10, query_cut=1000, heap_factor=1.0)
    assert np.array_equal(found, exact)
    assert np.allclose(scores, exact_scores, rtol=1e-5)
    # each stored value is within half a code step of the float one, so a score is within
    # 0.5 × scale × (sum of query weights) of the float score
    float_exact = ExactIndex.build(docs)
    q_sum = np.asarray([queries.values[queries.indptr[i]:queries.indptr[i + 1]].sum() for i in range(len(queries))])
    for i in range(len(queries)):
        true = float_exact.search(queries[i:i + 1], len(docs))
        true_score = dict(zip(true[1][0].tolist(), true[0][0].tolist(), strict=True))
        for s, d in zip(scores[i], found[i], strict=True):
            assert abs(s - true_score[int(d)]) <= 0.5 * index.doc_scale[d] * q_sum[i] * (1 + 1e-4) + 1e-6
    float_top = float_exact.search(queries, 10)[1]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, float_top, strict=True)])
    assert recall >= 0.9


def test_u8_forward_with_a_filter(data):
    docs, queries = data
    index = SeismicIndex.build(docs, n_postings=None, summary_energy=1.0, forward="u8", progress=False)
    allow = np.zeros(len(docs), bool)
    allow[1::4] = True
    _, exact = ExactIndex.build(index.documents()).search(queries, 10, allow=allow)
    _, found = index.search(queries, 10, query_cut=1000, heap_factor=1.0, allow=allow)
    assert np.array_equal(found, exact)
    assert np.all(allow[found[found >= 0]])


def test_u8_forward_saves_loads_and_is_checked(tmp_path, tiny_corpus):
    path = tremor.build_index(tiny_corpus, tmp_path / "u8", index="seismic,lambda=inf,forward=u8", progress=False)
    searcher = Searcher.load(path)
    assert searcher.index.doc_values.dtype == np.uint8
    reference = Searcher.load(tremor.build_index(tiny_corpus, tmp_path / "f16", index="seismic,lambda=inf",
                                                 progress=False))
    hits = [h.id for h in searcher.search(QUERY, k=3, heap_factor=1.0, query_cut=100)]
    assert hits == [h.id for h in reference.search(QUERY, k=3, heap_factor=1.0, query_cut=100)]
    with pytest.raises(TremorError, match="forward must be"):
        SeismicIndex.build(random_docs(10, 50, 3, seed=0), forward="u4", progress=False)


def test_summary_rounding_nearest(data):
    docs, queries = data
    up = SeismicIndex.build(docs, n_postings=None, summary_bits=8, progress=False)
    nearest = SeismicIndex.build(docs, n_postings=None, summary_rounding="nearest", summary_bits=8, progress=False)
    assert np.array_equal(up.list_block_indptr, nearest.list_block_indptr)  # same blocks, other codes
    assert int(nearest.summary_codes.astype(np.int64).sum()) <= int(up.summary_codes.astype(np.int64).sum())
    _, exact = ExactIndex.build(nearest.documents()).search(queries, 10)
    _, found = nearest.search(queries, 10, query_cut=1000, heap_factor=0.5)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)]) >= 0.9
    with pytest.raises(TremorError, match="summary_rounding must be"):
        SeismicIndex.build(docs, summary_rounding="down", progress=False)
