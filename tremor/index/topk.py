"""Numba top-k selection shared by all index kernels: a bounded min-heap of (score, doc) pairs.

Order is total and deterministic: a higher score ranks first; equal scores rank the smaller document id first. The
heap's root is therefore the *worst* kept pair, the one a new candidate must beat.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, inline="always")
def worse(score_a: float, doc_a: int, score_b: float, doc_b: int) -> bool:
    """True when (score_a, doc_a) ranks below (score_b, doc_b)."""
    return score_a < score_b or (score_a == score_b and doc_a > doc_b)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _sift_down(scores: np.ndarray, docs: np.ndarray, size: int, i: int) -> None:
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        smallest = left
        right = left + 1
        if right < size and worse(scores[right], docs[right], scores[left], docs[left]):
            smallest = right
        if worse(scores[smallest], docs[smallest], scores[i], docs[i]):
            scores[i], scores[smallest] = scores[smallest], scores[i]
            docs[i], docs[smallest] = docs[smallest], docs[i]
            i = smallest
        else:
            return


@numba.njit(cache=True, nogil=True, _nrt=False)
def heap_push(scores: np.ndarray, docs: np.ndarray, size: int, k: int, score: float, doc: int) -> int:
    """Offer (score, doc) to a heap holding `size` of at most `k` pairs; returns the new size."""
    if size < k:
        i = size
        scores[i] = score
        docs[i] = doc
        while i > 0:
            parent = (i - 1) // 2
            if worse(scores[i], docs[i], scores[parent], docs[parent]):
                scores[i], scores[parent] = scores[parent], scores[i]
                docs[i], docs[parent] = docs[parent], docs[i]
                i = parent
            else:
                break
        return size + 1
    if k > 0 and worse(scores[0], docs[0], score, doc):
        scores[0] = score
        docs[0] = doc
        _sift_down(scores, docs, size, 0)
    return size


@numba.njit(cache=True, nogil=True)
def heap_drain_sorted(scores: np.ndarray, docs: np.ndarray, size: int, out_scores: np.ndarray,
                      out_docs: np.ndarray) -> None:
    """Write the heap's pairs best-first into out_* (length >= size); the heap is consumed."""
    for pos in range(size - 1, -1, -1):
        out_scores[pos] = scores[0]
        out_docs[pos] = docs[0]
        last = pos
        scores[0] = scores[last]
        docs[0] = docs[last]
        _sift_down(scores, docs, last, 0)


@numba.njit(cache=True, nogil=True)
def heap_select_ascending(cand_scores: np.ndarray, cand_docs: np.ndarray, m: int, k: int, heap_scores: np.ndarray,
                          heap_docs: np.ndarray, out_scores: np.ndarray, out_docs: np.ndarray) -> None:
    """The best min(k, m) of the first ``m`` candidates, best first, into out_*, through a bounded heap; candidates
    must come in ascending document order. A candidate that only ties the heap's worst then ranks below it (ties go
    to the smaller id), so it is offered only when it beats that score: a branch that is predictable once the heap
    fills. For small k; ``select_top_k`` for large k."""
    size = 0
    floor = np.float32(0.0)
    for i in range(m):
        score = cand_scores[i]
        if score > floor:
            size = heap_push(heap_scores, heap_docs, size, k, score, cand_docs[i])
            if size == k:
                floor = heap_scores[0]
    heap_drain_sorted(heap_scores, heap_docs, size, out_scores, out_docs)


@numba.njit(cache=True, nogil=True)
def select_top_k(cand_scores: np.ndarray, cand_docs: np.ndarray, m: int, k: int, out_scores: np.ndarray,
                 out_docs: np.ndarray) -> None:
    """The best min(k, m) of the first ``m`` candidates, best first, into out_*; candidates must come in ascending
    document order (ties then keep the smaller id first). A partition finds the k-th score in linear time, so this
    beats a heap when k is large (BEIR's depth of 1,000); the candidate arrays are reordered."""
    if m > k:
        kth = np.partition(cand_scores[:m], m - k)[m - k]  # the k-th largest score (on a copy)
        above = 0
        for i in range(m):
            if cand_scores[i] > kth:
                above += 1
        ties = k - above  # documents scoring exactly the k-th score that still fit, smallest ids first
        kept = 0
        for i in range(m):
            score = cand_scores[i]
            if score > kth or (score == kth and ties > 0):
                if score == kth:
                    ties -= 1
                cand_scores[kept] = score
                cand_docs[kept] = cand_docs[i]
                kept += 1
        m = kept
    order = np.argsort(-cand_scores[:m], kind="mergesort")  # stable: equal scores stay in ascending id order
    for rank in range(m):
        out_scores[rank] = cand_scores[order[rank]]
        out_docs[rank] = cand_docs[order[rank]]


@numba.njit(cache=True, nogil=True)
def select_accumulated(acc: np.ndarray, dense: bool, touched: np.ndarray, n_touched: int, seen: np.ndarray, k: int,
                       heap_max_k: int, cand_scores: np.ndarray, heap_scores: np.ndarray, heap_docs: np.ndarray,
                       out_scores: np.ndarray, out_docs: np.ndarray) -> None:
    """The top k of a term-at-a-time accumulator (ties to the smaller document), leaving ``acc``, ``seen`` cleared.

    ``dense``: every document may be scored, so a linear scan reads ``acc`` (small k: a heap offered a document only
    when it beats the heap's worst, a predictable branch once it fills); otherwise only the ``n_touched`` documents
    listed in ``touched`` are gathered, in ascending order. Above ``heap_max_k`` the scored documents are partitioned
    by ``select_top_k``."""
    n_docs = acc.shape[0]
    if dense:
        if k <= heap_max_k:
            # heap_select_ascending's loop, reading the accumulator directly: gathering the candidates first would
            # cost a quarter more on a BEIR query.
            size = 0
            floor = np.float32(0.0)
            for doc in range(n_docs):
                score = acc[doc]
                if score > floor:
                    size = heap_push(heap_scores, heap_docs, size, k, score, doc)
                    if size == k:
                        floor = heap_scores[0]
            acc[:] = 0.0
            heap_drain_sorted(heap_scores, heap_docs, size, out_scores, out_docs)
            return
        m = 0
        for doc in range(n_docs):  # branch-free gather of the scored documents, in ascending order
            score = acc[doc]
            touched[m] = doc
            cand_scores[m] = score
            m += score > 0
        acc[:] = 0.0
    else:
        touched[:n_touched].sort()  # ascending ids, for the tie order
        m = 0
        for i in range(n_touched):
            doc = touched[i]
            score = acc[doc]
            touched[m] = doc
            cand_scores[m] = score
            m += score > 0
            acc[doc] = 0.0
            seen[doc] = False
        if k <= heap_max_k:
            heap_select_ascending(cand_scores, touched, m, k, heap_scores, heap_docs, out_scores, out_docs)
            return
    select_top_k(cand_scores, touched, m, k, out_scores, out_docs)
