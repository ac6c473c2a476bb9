import numpy as np
import pytest
import scipy.sparse as sp

from tremor.errors import QueryError, VocabularyMismatchError
from tremor.index.exact import ExactIndex
from tremor.sparse import SparseVectors


def random_set(n_docs=400, n_queries=30, vocab=300, seed=0):
    rng = np.random.default_rng(seed)
    docs = sp.random(n_docs, vocab, density=0.05, format="csr", random_state=rng, dtype=np.float32)
    queries = sp.random(n_queries, vocab, density=0.03, format="csr", random_state=rng, dtype=np.float32)
    return SparseVectors.from_scipy(docs), SparseVectors.from_scipy(queries)


def reference_top_k(docs: SparseVectors, queries: SparseVectors, k: int):
    scores = (queries.to_scipy().astype(np.float64) @ docs.to_scipy().T.astype(np.float64)).toarray()
    out = []
    for row in scores:
        order = np.lexsort((np.arange(row.size), -row))  # score desc, then doc id asc
        out.append([(int(d), row[d]) for d in order[:k] if row[d] > 0])
    return out


@pytest.mark.parametrize("k", [1, 10, 50, 100, 1000])  # a heap up to k = 64, a partition above
def test_exact_equals_scipy_top_k(k):
    docs, queries = random_set()
    scores, ids = ExactIndex.build(docs).search(queries, k)
    assert scores.shape == ids.shape == (len(queries), min(k, len(docs)))  # k clamped to the document count
    for qi, expected in enumerate(reference_top_k(docs, queries, k)):
        got = [(int(d), float(s)) for d, s in zip(ids[qi], scores[qi], strict=True) if d >= 0]
        assert [d for d, _ in got] == [d for d, _ in expected]
        assert np.allclose([s for _, s in got], [s for _, s in expected], rtol=1e-5)


def test_k_larger_than_collection_is_clamped_and_empty_query_returns_nothing():
    docs, queries = random_set(n_docs=5, n_queries=3, vocab=20, seed=4)
    scores, ids = ExactIndex.build(docs).search(queries, k=50)
    assert ids.shape == (3, 5)
    assert np.all((ids >= 0).sum(axis=1) <= 5)
    assert np.all(scores[ids < 0] == -np.inf)
    _, empty_ids = ExactIndex.build(docs).search(SparseVectors.empty(2, 20), k=3)
    assert np.all(empty_ids == -1)


def test_bad_k_and_foreign_vocabulary_rejected():
    docs = SparseVectors.from_dicts([{1: 1.0}], vocab_size=4, vocab_id="bm25:one")
    index = ExactIndex.build(docs)
    with pytest.raises(QueryError):
        index.search(SparseVectors.from_dicts([{1: 1.0}], vocab_size=4, vocab_id="bm25:one"), k=0)
    with pytest.raises(VocabularyMismatchError):
        index.search(SparseVectors.from_dicts([{1: 1.0}], vocab_size=4, vocab_id="bm25:two"), k=1)


def test_single_query_and_unknown_parameters():
    docs, queries = random_set(seed=7)
    index = ExactIndex.build(docs)
    batch_scores, batch_ids = index.search(queries, 10)
    one_scores, one_ids = index.search(queries[3], 10)  # serial path
    assert np.array_equal(one_ids[0], batch_ids[3]) and np.allclose(one_scores[0], batch_scores[3])
    with pytest.raises(QueryError, match="no search parameters"):
        index.search(queries, 10, query_cut=5)


@pytest.mark.parametrize("k", [10, 200])
@pytest.mark.parametrize("n_docs, query_density", [(300, 0.2), (20000, 0.004)])
def test_ties_break_by_document_id_on_both_scoring_paths(n_docs, query_density, k):
    """Integer weights make many exact ties. A query whose postings are many for the collection is scored by a dense
    scan, a short one on a large collection through the list of touched documents; with a heap (small k) or a
    partition (large k), every path ranks ties by id."""
    rng = np.random.default_rng(n_docs)
    vocab = 200
    docs = sp.random(n_docs, vocab, density=0.03, format="csr", random_state=rng, dtype=np.float32,
                     data_rvs=lambda n: rng.integers(1, 3, n).astype(np.float32))
    queries = sp.random(25, vocab, density=query_density, format="csr", random_state=rng, dtype=np.float32,
                        data_rvs=lambda n: np.ones(n, np.float32))
    docs, queries = SparseVectors.from_scipy(docs), SparseVectors.from_scipy(queries)
    index = ExactIndex.build(docs)
    postings = np.diff(index.post_indptr)
    dense = [8 * postings[queries.row(i)[0]].sum() >= n_docs for i in range(len(queries))]
    assert all(dense) if n_docs == 300 else not any(dense)  # the parameters reach the path they are meant to
    expected_all = reference_top_k(docs, queries, k)
    assert any(len(expected) == k for expected in expected_all)  # some queries have more candidates than k
    for searched in (lambda: index.search(queries, k), lambda: tuple(np.vstack(parts) for parts in zip(
            *[index.search(queries[i], k) for i in range(len(queries))], strict=True))):
        scores, ids = searched()
        for qi, expected in enumerate(expected_all):
            assert [int(d) for d in ids[qi] if d >= 0] == [d for d, _ in expected]
            assert np.allclose(scores[qi][ids[qi] >= 0], [s for _, s in expected])
