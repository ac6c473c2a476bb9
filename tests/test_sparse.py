import numpy as np
import pytest
import scipy.sparse as sp

from tremor.errors import TremorError, VocabularyMismatchError
from tremor.sparse import SparseVectors


def random_vectors(n=20, vocab=50, density=0.2, seed=0) -> SparseVectors:
    matrix = sp.random(n, vocab, density=density, format="csr", random_state=seed, dtype=np.float32)
    return SparseVectors.from_scipy(matrix)


def test_layout_and_dtypes():
    v = random_vectors()
    assert v.indptr.dtype == np.int64 and v.indices.dtype == np.int32 and v.values.dtype == np.float32
    assert len(v) == 20 and v.shape == (20, 50) and v.nnz == v.indptr[-1]
    for i in range(len(v)):
        idx, _ = v.row(i)
        assert np.all(np.diff(idx) > 0)


@pytest.mark.parametrize(
    ("indptr", "indices", "values", "message"),
    [
        ([0, 2], [3, 1], [1.0, 1.0], "not sorted"),
        ([0, 2], [1, 1], [1.0, 1.0], "not sorted or not unique"),
        ([0, 1], [10], [1.0], "outside vocabulary"),
        ([0, 1], [1], [-1.0], "negative or not finite"),
        ([0, 1], [1], [np.nan], "negative or not finite"),
        ([0, 1], [1], [np.inf], "negative or not finite"),
        ([0, 3], [1], [1.0], "end at len"),
    ],
)
def test_invalid_vectors_rejected(indptr, indices, values, message):
    with pytest.raises(TremorError, match=message):
        SparseVectors(np.array(indptr), np.array(indices), np.array(values), vocab_size=10)


def test_dict_round_trip_with_tokens():
    vocab = {"a": 0, "b": 1, "c": 2}
    v = SparseVectors.from_dicts([{"b": 2.0, "a": 1.0}, {}, {"c": 0.5, "a": 0.0}], vocab=vocab)
    assert len(v) == 3 and v.vocab_size == 3
    assert v.to_dicts() == [{0: 1.0, 1: 2.0}, {}, {2: 0.5}]  # zero weight dropped
    assert v.to_dicts(["a", "b", "c"])[0] == {"a": 1.0, "b": 2.0}
    with pytest.raises(TremorError, match="not in vocab"):
        SparseVectors.from_dicts([{"zzz": 1.0}], vocab=vocab)


def test_scipy_round_trip_sums_duplicates():
    coo = sp.coo_matrix((np.array([1.0, 2.0, 3.0]), (np.array([0, 0, 1]), np.array([4, 4, 2]))), shape=(2, 6))
    v = SparseVectors.from_scipy(coo)
    assert v.to_dicts() == [{4: 3.0}, {2: 3.0}]
    assert (v.to_scipy() != coo.tocsr()).nnz == 0


def test_from_coo_max_and_sum():
    rows, cols, vals = np.array([1, 0, 1, 1]), np.array([3, 2, 3, 0]), np.array([1.0, 5.0, 4.0, 2.0])
    assert SparseVectors.from_coo(rows, cols, vals, 3, 5, reduce="max").to_dicts() == [{2: 5.0}, {0: 2.0, 3: 4.0}, {}]
    assert SparseVectors.from_coo(rows, cols, vals, 3, 5, reduce="sum").to_dicts()[1] == {0: 2.0, 3: 5.0}


def test_top_k_keeps_largest_and_sorted_indices():
    v = SparseVectors.from_dicts([{0: 0.125, 3: 0.875, 5: 0.5, 7: 0.5, 9: 0.25}], vocab_size=10)
    pruned = v.top_k(3)
    assert pruned.to_dicts() == [{3: 0.875, 5: 0.5, 7: 0.5}]
    assert v.top_k(2).to_dicts() == [{3: 0.875, 5: 0.5}]  # tie broken toward the smaller id
    assert v.prune(threshold=0.3).to_dicts() == [{3: 0.875, 5: 0.5, 7: 0.5}]
    big = random_vectors(50, 200, 0.3, seed=3)
    dense, kept = big.to_dense(), big.top_k(5).to_dense()
    for i in range(len(big)):
        expected = np.sort(dense[i])[::-1][:5]
        assert np.allclose(np.sort(kept[i][kept[i] > 0])[::-1], expected[expected > 0])


def test_slicing_and_concat():
    v = random_vectors(10, 30, 0.3, seed=1)
    assert v[2:5] == SparseVectors.from_scipy(v.to_scipy()[2:5])
    assert v[[4, 1]].to_dicts() == [v.to_dicts()[4], v.to_dicts()[1]]
    assert SparseVectors.concat([v[:3], v[3:]]) == v
    with pytest.raises(VocabularyMismatchError):
        SparseVectors.concat([v, random_vectors(2, 31)])


def test_vocab_identity_checked():
    v = SparseVectors.empty(1, 5, vocab_id="bm25:aaaa")
    v.check_vocab("bm25:aaaa")
    v.check_vocab(None)
    with pytest.raises(VocabularyMismatchError, match="bm25:bbbb"):
        v.check_vocab("bm25:bbbb")
