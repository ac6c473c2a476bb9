"""Filtered search (allow masks) for the exact and Seismic indexes against an exact filtered reference in scipy."""

import numpy as np
import pytest
import scipy.sparse as sp

from tremor.errors import QueryError
from tremor.index.exact import ExactIndex
from tremor.index.filtered import SUBSET_FACTOR
from tremor.index.seismic import SeismicIndex
from tremor.sparse import SparseVectors


def random_set(n_docs=600, n_queries=25, vocab=300, seed=0):
    rng = np.random.default_rng(seed)
    docs = sp.random(n_docs, vocab, density=0.05, format="csr", random_state=rng, dtype=np.float32)
    queries = sp.random(n_queries, vocab, density=0.03, format="csr", random_state=rng, dtype=np.float32)
    # float16-exact document values, so the Seismic forward index scores exactly what the reference does
    docs.data = docs.data.astype(np.float16).astype(np.float32)
    return SparseVectors.from_scipy(docs), SparseVectors.from_scipy(queries)


def filtered_reference(docs: SparseVectors, queries: SparseVectors, allow: np.ndarray, k: int) -> list[list[int]]:
    scores = (queries.to_scipy().astype(np.float64) @ docs.to_scipy().T.astype(np.float64)).toarray()
    out = []
    for row in scores:
        order = np.lexsort((np.arange(row.size), -row))
        out.append([int(d) for d in order if row[d] > 0 and allow[d]][:k])
    return out


def assert_matches(ids: np.ndarray, expected: list[list[int]], allow: np.ndarray) -> None:
    for qi, want in enumerate(expected):
        got = [int(d) for d in ids[qi] if d >= 0]
        assert all(allow[d] for d in got)
        assert got == want, f"query {qi}"


# fractions of allowed documents: almost all (deletions), half, a selective filter, and below the subset cut-off
@pytest.mark.parametrize("fraction", [0.97, 0.5, 0.1, 0.02])
@pytest.mark.parametrize("k", [1, 10, 100])
def test_exact_filtered_equals_reference(fraction, k):
    docs, queries = random_set()
    rng = np.random.default_rng(int(fraction * 100) + k)
    allow = rng.random(len(docs)) < fraction
    index = ExactIndex.build(docs)
    expected = filtered_reference(docs, queries, allow, k)
    assert_matches(index.search(queries, k, allow=allow)[1], expected, allow)
    assert_matches(index.search(queries[3:4], k, allow=allow)[1], expected[3:4], allow)  # the one-query path


@pytest.mark.parametrize("fraction", [0.97, 0.5, 0.1, 0.02])
@pytest.mark.parametrize("k", [1, 10])
def test_seismic_filtered_with_exact_settings_equals_reference(fraction, k):
    """No pruning and heap_factor 1 make Seismic exact: the filtered search must then equal the reference."""
    docs, queries = random_set()
    rng = np.random.default_rng(int(fraction * 100) + k)
    allow = rng.random(len(docs)) < fraction
    index = SeismicIndex.build(docs, progress=False, n_postings=None, summary_energy=1.0)
    expected = filtered_reference(docs, queries, allow, k)
    params = {"query_cut": 1000, "heap_factor": 1.0}
    assert_matches(index.search(queries, k, allow=allow, **params)[1], expected, allow)
    assert_matches(index.search(queries[5:6], k, allow=allow, **params)[1], expected[5:6], allow)


def test_seismic_selective_filter_still_returns_k_hits():
    """Heavily pruned lists: the allowed documents of a selective filter may be missing from them, yet k hits that
    exist come back (the exact fallback for short results)."""
    docs, queries = random_set(n_docs=2000, vocab=200, seed=3)
    index = SeismicIndex.build(docs, progress=False, n_postings=5)
    rng = np.random.default_rng(1)
    allow = rng.random(len(docs)) < 0.2
    k = 10
    expected = filtered_reference(docs, queries, allow, k)
    _, ids = index.search(queries, k, allow=allow)
    for qi, want in enumerate(expected):
        got = [int(d) for d in ids[qi] if d >= 0]
        assert all(allow[d] for d in got)
        assert len(got) == len(want)


def test_subset_fallback_cut_off_and_all_excluded():
    docs, queries = random_set()
    index = ExactIndex.build(docs)
    allow = np.zeros(len(docs), bool)
    scores, ids = index.search(queries, 10, allow=allow)
    assert (ids == -1).all() and np.isneginf(scores).all()
    allow[: SUBSET_FACTOR * 10] = True  # exactly at the cut-off: the subset path
    assert_matches(index.search(queries, 10, allow=allow)[1], filtered_reference(docs, queries, allow, 10), allow)
    # an all-True mask is the unfiltered search
    full = np.ones(len(docs), bool)
    assert np.array_equal(index.search(queries, 10, allow=full)[1], index.search(queries, 10)[1])


def test_bad_masks_are_refused():
    docs, queries = random_set(n_docs=50)
    index = ExactIndex.build(docs)
    with pytest.raises(QueryError, match="boolean mask"):
        index.search(queries, 5, allow=np.ones(50, np.int64))
    with pytest.raises(QueryError, match="length 50"):
        index.search(queries, 5, allow=np.ones(49, bool))
