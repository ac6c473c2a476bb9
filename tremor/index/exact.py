"""Exhaustive top-k by inner product over an inverted index: the reference every approximate index is checked against.

Each query walks the full posting lists of its terms into a dense accumulator (term-at-a-time), then selects the top k
with a bounded heap. Queries run in parallel over threads (Numba prange), each thread reusing one accumulator.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numba
import numpy as np

from tremor.errors import QueryError, TremorError
from tremor.index.topk import heap_drain_sorted, heap_push
from tremor.sparse import SparseVectors


@numba.njit(cache=True, nogil=True)
def _transpose(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, n_terms: int) -> tuple:
    """CSR (docs x terms) to posting lists (terms x docs), doc ids ascending within each list."""
    counts = np.zeros(n_terms + 1, dtype=np.int64)
    for p in range(indices.shape[0]):
        counts[indices[p] + 1] += 1
    for t in range(n_terms):
        counts[t + 1] += counts[t]
    cursor = counts[:-1].copy()
    post_docs = np.empty(indices.shape[0], dtype=np.int32)
    post_values = np.empty(indices.shape[0], dtype=np.float32)
    for doc in range(indptr.shape[0] - 1):
        for p in range(indptr[doc], indptr[doc + 1]):
            t = indices[p]
            q = cursor[t]
            post_docs[q] = doc
            post_values[q] = values[p]
            cursor[t] = q + 1
    return counts, post_docs, post_values


@numba.njit(cache=True, nogil=True, parallel=True)
def _search_exact(q_indptr: np.ndarray, q_indices: np.ndarray, q_values: np.ndarray, post_indptr: np.ndarray,
                  post_docs: np.ndarray, post_values: np.ndarray, n_docs: int, k: int, n_chunks: int) -> tuple:
    n_queries = q_indptr.shape[0] - 1
    out_scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
    out_docs = np.full((n_queries, k), -1, dtype=np.int64)
    n_terms = post_indptr.shape[0] - 1
    for chunk in numba.prange(n_chunks):
        acc = np.zeros(n_docs, dtype=np.float32)
        seen = np.zeros(n_docs, dtype=np.bool_)
        touched = np.empty(n_docs, dtype=np.int32)
        heap_scores = np.empty(k, dtype=np.float32)
        heap_docs = np.empty(k, dtype=np.int64)
        for qi in range(chunk, n_queries, n_chunks):
            n_touched = 0
            for p in range(q_indptr[qi], q_indptr[qi + 1]):
                term = q_indices[p]
                if term >= n_terms:
                    continue
                weight = q_values[p]
                for pp in range(post_indptr[term], post_indptr[term + 1]):
                    doc = post_docs[pp]
                    if not seen[doc]:
                        seen[doc] = True
                        touched[n_touched] = doc
                        n_touched += 1
                    acc[doc] += weight * post_values[pp]
            size = 0
            for i in range(n_touched):
                doc = touched[i]
                if acc[doc] > 0:
                    size = heap_push(heap_scores, heap_docs, size, k, acc[doc], doc)
                acc[doc] = 0.0
                seen[doc] = False
            heap_drain_sorted(heap_scores, heap_docs, size, out_scores[qi], out_docs[qi])
    return out_scores, out_docs


class ExactIndex:
    """Brute-force (exhaustive) inner-product search over an inverted index of the document vectors."""

    index_type = "exact"

    def __init__(self, doc_indptr: np.ndarray, doc_indices: np.ndarray, doc_values: np.ndarray,
                 post_indptr: np.ndarray, post_docs: np.ndarray, post_values: np.ndarray, vocab_size: int,
                 vocab_id: str | None = None) -> None:
        self.doc_indptr = doc_indptr
        self.doc_indices = doc_indices
        self.doc_values = doc_values
        self.post_indptr = post_indptr
        self.post_docs = post_docs
        self.post_values = post_values
        self.vocab_size = int(vocab_size)
        self.vocab_id = vocab_id

    @classmethod
    def build(cls, docs: SparseVectors) -> ExactIndex:
        """Index a batch of document vectors (row i is document i)."""
        post_indptr, post_docs, post_values = _transpose(docs.indptr, docs.indices, docs.values, docs.vocab_size)
        return cls(docs.indptr, docs.indices, docs.values, post_indptr, post_docs, post_values, docs.vocab_size,
                   docs.vocab_id)

    @property
    def n_docs(self) -> int:
        return self.doc_indptr.shape[0] - 1

    def documents(self) -> SparseVectors:
        """The indexed document vectors."""
        return SparseVectors(self.doc_indptr, self.doc_indices, self.doc_values, self.vocab_size, self.vocab_id)

    def search(self, queries: SparseVectors, k: int = 10, **search_params) -> tuple[np.ndarray, np.ndarray]:
        """Top-k documents per query: (scores float32 [n, k], doc ids int64 [n, k]), best first; rows are padded
        with (-inf, -1) where fewer than k documents share a term with the query. Exhaustive search has no
        search-time parameters; passing any is an error."""
        if search_params:
            raise QueryError(f"the exact index takes no search parameters (got {', '.join(sorted(search_params))})")
        check_search_args(queries, k, self.vocab_size, self.vocab_id)
        n_chunks = max(1, min(len(queries), numba.get_num_threads()))
        with threads_for(len(queries)):
            return _search_exact(queries.indptr, queries.indices, queries.values, self.post_indptr, self.post_docs,
                                 self.post_values, self.n_docs, int(k), n_chunks)

    # --------------------------------------------------------------------------------------------- persistence
    def params(self) -> dict:
        return {}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"doc_indptr": self.doc_indptr, "doc_indices": self.doc_indices, "doc_values": self.doc_values,
                "post_indptr": self.post_indptr, "post_docs": self.post_docs, "post_values": self.post_values}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict, vocab_size: int,
                    vocab_id: str | None) -> ExactIndex:
        return cls(arrays["doc_indptr"], arrays["doc_indices"], arrays["doc_values"], arrays["post_indptr"],
                   arrays["post_docs"], arrays["post_values"], vocab_size, vocab_id)


@contextlib.contextmanager
def threads_for(n_queries: int) -> Iterator[None]:
    """Run a parallel kernel on one thread when there is a single query: waking the thread pool costs more than a
    small query's whole search on busy cores. Numba's thread count is per calling thread, so this is safe."""
    if n_queries > 1:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def check_search_args(queries: SparseVectors, k: int, vocab_size: int, vocab_id: str | None) -> None:
    """Validation shared by all indexes: a positive k and query vectors from the index's vocabulary."""
    if not isinstance(queries, SparseVectors):
        raise TremorError("search expects SparseVectors; encode query text with the index's encoder first")
    if int(k) < 1:
        raise QueryError(f"k must be at least 1 (got {k})")
    queries.check_vocab(vocab_id)
    if vocab_id is None and queries.vocab_size > vocab_size:
        raise TremorError(f"query vocabulary ({queries.vocab_size}) is larger than the index's ({vocab_size})")
