"""Filtered search: which documents a search may return, and exact scoring of a small allowed set.

Every index type takes ``allow`` in ``search(queries, k, allow=...)``: a boolean mask over its internal document
numbers (True = may be returned). Deleted documents of a live index are the same thing (allow = not deleted). The
kernels skip excluded documents while they search, so k allowed hits come back whenever k allowed documents score
above zero. When the filter is very selective (at most ``SUBSET_FACTOR`` × k allowed documents) the index scores just
those documents from its forward vectors instead: exact, and cheaper than walking posting lists for a handful of hits.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numba
import numpy as np

from tremor.errors import QueryError
from tremor.index.topk import heap_select_ascending, select_top_k

# at most this many allowed documents per wanted hit: score the allowed documents directly
SUBSET_FACTOR = 32
HEAP_MAX_K = 64


@dataclass(eq=False)
class DocFilter:
    """A checked filter: the mask, the excluded and allowed document numbers (ascending, int32), and as 64-bit words
    with a bit set for every excluded document (what the Seismic kernels start their visited set from)."""

    allow: np.ndarray
    blocked: np.ndarray
    allowed: np.ndarray

    @property
    def n_allowed(self) -> int:
        return int(self.allowed.shape[0])

    @cached_property
    def blocked_words(self) -> np.ndarray:
        """Excluded documents as a bitset of uint64 words (bit d & 63 of word d >> 6), one spare word at the end."""
        n_docs = self.allow.shape[0]
        words = np.zeros((n_docs >> 6) + 1, dtype=np.uint64)
        np.bitwise_or.at(words, self.blocked >> 6, np.left_shift(np.uint64(1), (self.blocked & 63).astype(np.uint64)))
        return words

    def use_subset(self, k: int) -> bool:
        """True when scoring the allowed documents directly is the better plan (a very selective filter)."""
        return self.n_allowed <= SUBSET_FACTOR * k


def check_allow(allow, n_docs: int) -> DocFilter | None:
    """Normalize ``allow`` (a boolean mask of length n_docs, or None) into a DocFilter; None when nothing is excluded
    (the unfiltered kernels then run)."""
    if allow is None:
        return None
    if isinstance(allow, DocFilter):
        return allow
    mask = np.asarray(allow)
    if mask.dtype != np.bool_:
        raise QueryError(f"allow must be a boolean mask over the index's {n_docs} documents (got dtype {mask.dtype}); "
                         "pass external ids through Searcher.search(..., allow=ids)")
    if mask.ndim != 1 or mask.shape[0] != n_docs:
        raise QueryError(f"allow must be a boolean mask of length {n_docs} (got shape {mask.shape})")
    blocked = np.flatnonzero(~mask).astype(np.int32)
    if blocked.shape[0] == 0:
        return None
    return DocFilter(np.ascontiguousarray(mask), blocked, np.flatnonzero(mask).astype(np.int32))


def pad_results(n_queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n_queries, k), -np.inf, dtype=np.float32), np.full((n_queries, k), -1, dtype=np.int64)


@numba.njit(cache=True, nogil=True, parallel=True)
def score_subset_csr(q_indptr: np.ndarray, q_indices: np.ndarray, q_values: np.ndarray, subset: np.ndarray,
                     doc_indptr: np.ndarray, doc_indices: np.ndarray, doc_values: np.ndarray, n_terms: int,
                     k: int) -> tuple:
    """Exact top k of each query over just the documents ``subset`` (ascending), from float32 CSR document vectors."""
    n_queries = q_indptr.shape[0] - 1
    out_scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
    out_docs = np.full((n_queries, k), -1, dtype=np.int64)
    m = subset.shape[0]
    for qi in numba.prange(n_queries):
        q_dense = np.zeros(n_terms, dtype=np.float32)
        for p in range(q_indptr[qi], q_indptr[qi + 1]):
            if q_indices[p] < n_terms:
                q_dense[q_indices[p]] = q_values[p]
        cand_scores = np.empty(m, dtype=np.float32)
        cand_docs = subset.astype(np.int32)
        for i in range(m):
            doc = subset[i]
            score = np.float32(0.0)
            for p in range(doc_indptr[doc], doc_indptr[doc + 1]):
                score += q_dense[doc_indices[p]] * doc_values[p]
            cand_scores[i] = score
        if k <= HEAP_MAX_K:
            heap_select_ascending(cand_scores, cand_docs, m, k, np.empty(k, np.float32), np.empty(k, np.int64),
                                  out_scores[qi], out_docs[qi])
        else:
            n = 0
            for i in range(m):
                if cand_scores[i] > 0:
                    cand_scores[n] = cand_scores[i]
                    cand_docs[n] = cand_docs[i]
                    n += 1
            select_top_k(cand_scores, cand_docs, n, k, out_scores[qi], out_docs[qi])
    return out_scores, out_docs
