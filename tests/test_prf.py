import numpy as np
import pytest

import tremor
from tremor.errors import QueryError, TremorError
from tremor.search.dense import DenseIndex, DenseSearcher
from tremor.search.pipeline import DenseRetrieve, DenseVectorPRF, Run, SparseRetrieve, SparseRocchio
from tremor.search.prf import feedback_documents, rocchio, sparse_document_vectors, vector_prf
from tremor.sparse import SparseVectors

DOCS = SparseVectors.from_dicts([{1: 3.0, 2: 4.0}, {3: 1.0}, {0: 2.0, 4: 1.0}], vocab_size=6)


def doc_vectors(numbers):
    return DOCS[np.asarray(numbers)]


def test_rocchio_by_hand():
    queries = SparseVectors.from_dicts([{0: 1.0, 1: 1.0}, {5: 2.0}], vocab_size=6)
    feedback = np.array([[0, 1], [2, -1]])
    got = rocchio(queries, feedback, doc_vectors, alpha=1.0, beta=0.5, fb_terms=None, normalize=False).to_dicts()
    # query 0: q + 0.5 * mean(d0, d1); query 1: q + 0.5 * d2 (one feedback document)
    assert got[0] == pytest.approx({0: 1.0, 1: 1.0 + 0.5 * 1.5, 2: 0.5 * 2.0, 3: 0.5 * 0.5})
    assert got[1] == pytest.approx({5: 2.0, 0: 1.0, 4: 0.5})
    # the term budget keeps the largest weights (ties to the smaller token id)
    pruned = rocchio(queries, feedback, doc_vectors, 1.0, 0.5, fb_terms=2, normalize=False).to_dicts()
    assert set(pruned[0]) == {0, 1} and set(pruned[1]) == {5, 0}
    # normalized: unit query and unit documents, so alpha and beta weigh directions
    unit = rocchio(queries, feedback, doc_vectors, 1.0, 1.0, fb_terms=None, normalize=True).to_dicts()
    s = 1 / np.sqrt(2)
    assert unit[0] == pytest.approx({0: s, 1: s + 0.5 * 0.6, 2: 0.5 * 0.8, 3: 0.5 * 1.0})


def test_rocchio_without_feedback_keeps_the_query_exactly():
    queries = SparseVectors.from_dicts([{0: 1.0, 1: 1.0, 2: 1.0}, {5: 2.0}], vocab_size=6)
    same = rocchio(queries, np.full((2, 3), -1), doc_vectors, 0.3, 0.7, fb_terms=1)
    assert same == queries
    mixed = rocchio(queries, np.array([[-1], [0]]), doc_vectors, 1.0, 1.0, fb_terms=1)
    assert mixed.to_dicts()[0] == queries.to_dicts()[0]  # no feedback, no pruning
    with pytest.raises(QueryError):
        rocchio(queries, np.zeros((3, 1), np.int64), doc_vectors)


def test_vector_prf_by_hand():
    q = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    docs = np.array([[[0.0, 1.0], [1.0, 1.0]], [[5.0, 5.0], [0.0, 0.0]]], np.float32)
    mask = np.array([[True, True], [False, False]])
    average = vector_prf(q, docs, mask, "average")
    np.testing.assert_allclose(average[0], [(1 + 0 + 1) / 3, (0 + 1 + 1) / 3])
    np.testing.assert_array_equal(average[1], q[1])  # no feedback
    rocchio_q = vector_prf(q, docs, mask, "rocchio", alpha=0.4, beta=0.6)
    np.testing.assert_allclose(rocchio_q[0], [0.4 + 0.6 * 0.5, 0.6 * 1.0])
    with pytest.raises(QueryError):
        vector_prf(q, docs, mask, "median")


def test_feedback_documents_pads_short_lists():
    numbers = np.array([[4, 7, -1], [2, -1, -1]])
    np.testing.assert_array_equal(feedback_documents(numbers, 2), [[4, 7], [2, -1]])
    np.testing.assert_array_equal(feedback_documents(numbers, 5)[:, 3:], -1)
    assert feedback_documents(numbers, 0).shape == (2, 0)


@pytest.fixture(scope="module")
def bm25_searcher(tmp_path_factory):
    corpus = tremor.read_documents(__import__("pathlib").Path(__file__).parent / "data" / "tiny_corpus.jsonl")
    path = tremor.build_index(list(corpus), tmp_path_factory.mktemp("prf") / "idx", progress=False)
    return tremor.Searcher.load(path)


QUERIES = ["cat on a mat", "earthquake waves", "parks and ducks"]


def test_sparse_prf_with_zero_feedback_docs_equals_the_original_run(bm25_searcher):
    original = SparseRetrieve(bm25_searcher, k=6)(QUERIES)
    again = SparseRocchio(bm25_searcher, fb_docs=0, fb_terms=1, alpha=0.2, beta=5.0, k=6).transform(original)
    np.testing.assert_array_equal(again.numbers, original.numbers)
    np.testing.assert_array_equal(again.scores, original.scores)


def test_sparse_prf_expands_from_feedback_documents(bm25_searcher):
    original = SparseRetrieve(bm25_searcher, k=6)(["cat"])
    expanded = SparseRocchio(bm25_searcher, fb_docs=1, fb_terms=50, k=6).transform(original)
    terms = bm25_searcher.encoder.terms
    top_doc = bm25_searcher.docstore.ids()[original.numbers[0, 0]]
    assert top_doc == "d1"
    words = {terms[i] for i in expanded.sparse_queries.indices}
    assert {"cat", "mat", "warm"} <= words  # d1's terms joined the query
    assert expanded.numbers[0, 0] == original.numbers[0, 0]
    assert (expanded.numbers[0] >= 0).sum() > (original.numbers[0] >= 0).sum()  # it now matches mat documents


def test_document_vector_sources_agree(bm25_searcher):
    numbers = np.array([3, 0, 3, 5])
    forward = sparse_document_vectors(bm25_searcher, numbers)
    assert forward == bm25_searcher.index.documents()[numbers]

    class NoForwardIndex:  # an index type that keeps no document vectors: re-encode from the doc store
        n_docs = bm25_searcher.index.n_docs
        index_type = "opaque"

    class Fallback:
        index = NoForwardIndex()
        encoder = bm25_searcher.encoder
        docstore = bm25_searcher.docstore

    reencoded = sparse_document_vectors(Fallback(), numbers)
    np.testing.assert_allclose(reencoded.to_dense(), forward.to_dense(), rtol=1e-6)

    class Bare:
        index = NoForwardIndex()

    with pytest.raises(TremorError, match="keeps no document vectors"):
        sparse_document_vectors(Bare(), numbers)
    with pytest.raises(TremorError):
        sparse_document_vectors(bm25_searcher, np.array([99]))


@pytest.mark.parametrize("method", ["average", "rocchio"])
def test_dense_prf_with_zero_feedback_docs_equals_the_original_run(method):
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((50, 8)).astype(np.float32)
    queries = rng.standard_normal((4, 8)).astype(np.float32)
    searcher = DenseSearcher(DenseIndex.build(docs))
    original = DenseRetrieve(searcher, k=20)(Run.start(["a", "b", "c", "d"], dense_queries=queries))
    again = DenseVectorPRF(searcher, fb_docs=0, method=method, alpha=0.3, beta=0.9, k=20).transform(original)
    np.testing.assert_array_equal(again.numbers, original.numbers)
    np.testing.assert_array_equal(again.scores, original.scores)
    moved = DenseVectorPRF(searcher, fb_docs=2, method=method, alpha=1.0, beta=1.0, k=20).transform(original)
    top2 = docs[original.numbers[:, :2]]
    expected = (queries + top2.sum(axis=1)) / 3 if method == "average" else queries + top2.mean(axis=1)
    np.testing.assert_allclose(moved.dense_queries, expected, rtol=1e-5)
    np.testing.assert_array_equal(moved.numbers, searcher.search_vectors(expected, 20)[1])


def test_sparse_prf_over_a_live_bm25_index_expands_as_over_a_full_build(bm25_searcher, tmp_path):
    """Live BM25 keeps the idf on the query side; Rocchio moves it to the document side and back, so after a forced
    merge (vectors re-encoded: the full build's statistics) PRF gives the full build's ranking and scores."""
    from tremor.index.segments import IndexWriter

    corpus = list(tremor.read_documents(__import__("pathlib").Path(__file__).parent / "data" / "tiny_corpus.jsonl"))
    with IndexWriter(tmp_path / "live") as writer:
        writer.add(corpus[:3])
        writer.commit()
        writer.add(corpus[3:])
        writer.merge(force=True)
    live = tremor.Searcher.load(tmp_path / "live")
    assert live.encoder.live and live.index.n_segments == 1
    for searcher in (bm25_searcher, live):
        assert searcher.docstore.ids() == [d.id for d in corpus]
    want = SparseRocchio(bm25_searcher, fb_docs=2, fb_terms=5, k=6).transform(
        SparseRetrieve(bm25_searcher, k=6)(QUERIES))
    live_run = SparseRetrieve(live, k=6)(QUERIES)
    got = SparseRocchio(live, fb_docs=2, fb_terms=5, k=6).transform(live_run)
    np.testing.assert_array_equal(got.numbers, want.numbers)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)
    # without moving the idf the expansion terms (and so the scores) differ
    unmoved = rocchio(live.encode_queries(QUERIES), feedback_documents(live_run.numbers, 2),
                      lambda numbers: sparse_document_vectors(live, numbers), fb_terms=5)
    assert not np.allclose(unmoved.to_scipy().toarray(), got.sparse_queries.to_scipy().toarray())
