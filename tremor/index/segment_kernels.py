"""Numba kernels that search every segment of a live index in one call, with one global top k.

Calling an index's kernel once per segment costs a dispatch and a top-k merge per segment, which for a short query
on a small index is more than the search itself. The exact kernel takes the segments' posting arrays concatenated
(once per snapshot), scores every segment's postings into one accumulator over global document numbers and selects
once, as a merged index would; deleted documents are cleared before that selection, so k live hits come back.
"""

from __future__ import annotations

import numba
import numpy as np

from tremor.index.exact import HEAP_MAX_K
from tremor.index.topk import heap_drain_sorted, heap_push, heap_select_ascending, select_top_k


def concat_exact_segments(indexes, deleted) -> tuple:
    """The kernels' arguments for a list of exact segments and their deleted flags (None: no deletions): posting
    arrays concatenated (row s of ``post_indptr`` points into them for segment s), the global live mask and the
    global numbers of deleted documents, segment offsets. One copy per snapshot, so that a query is one call."""
    sizes = [index.post_docs.shape[0] for index in indexes]
    bases = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    post_indptr = np.stack([np.asarray(index.post_indptr, np.int64) + bases[s] for s, index in enumerate(indexes)])
    post_docs = np.concatenate([np.asarray(index.post_docs) for index in indexes])
    post_values = np.concatenate([np.asarray(index.post_values) for index in indexes])
    allow = np.concatenate([np.ones(index.n_docs, bool) if d is None else ~d
                            for index, d in zip(indexes, deleted, strict=True)])
    blocked = np.flatnonzero(~allow).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum([index.n_docs for index in indexes])]).astype(np.int64)
    return post_indptr, post_docs, post_values, allow, blocked, offsets


@numba.njit(cache=True, nogil=True)
def _exact_segments_one(q_indices: np.ndarray, q_values: np.ndarray, post_indptr: np.ndarray, post_docs: np.ndarray,
                        post_values: np.ndarray, allow: np.ndarray, blocked: np.ndarray, offsets: np.ndarray, k: int,
                        acc: np.ndarray, seen: np.ndarray, touched: np.ndarray, cand_scores: np.ndarray,
                        heap_scores: np.ndarray, heap_docs: np.ndarray, out_scores: np.ndarray,
                        out_docs: np.ndarray) -> None:
    """One query over all segments into one accumulator of global numbers (segment offset + its own number), then
    one selection: the work of a single merged index, plus a posting-list lookup per term and segment. Deleted
    documents (``blocked``, global numbers; ``allow``, the global live mask) are cleared before selection."""
    n_segments = offsets.shape[0] - 1
    n_terms = post_indptr.shape[1] - 1
    n_docs = acc.shape[0]
    n_postings = 0
    for s in range(n_segments):
        for p in range(q_indices.shape[0]):
            term = q_indices[p]
            if term < n_terms:
                n_postings += post_indptr[s, term + 1] - post_indptr[s, term]
    dense = 8 * n_postings >= n_docs
    n_touched = 0
    for s in range(n_segments):
        base = offsets[s]
        for p in range(q_indices.shape[0]):
            term = q_indices[p]
            if term >= n_terms:
                continue
            weight = q_values[p]
            if dense:
                for pp in range(post_indptr[s, term], post_indptr[s, term + 1]):
                    acc[base + post_docs[pp]] += weight * post_values[pp]
            else:
                for pp in range(post_indptr[s, term], post_indptr[s, term + 1]):
                    doc = base + post_docs[pp]
                    if not seen[doc]:
                        seen[doc] = True
                        touched[n_touched] = doc
                        n_touched += 1
                    acc[doc] += weight * post_values[pp]
    if dense:
        for i in range(blocked.shape[0]):
            acc[blocked[i]] = 0.0
        if k <= HEAP_MAX_K:
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
        for doc in range(n_docs):
            score = acc[doc]
            touched[m] = doc
            cand_scores[m] = score
            m += score > 0
        acc[:] = 0.0
    else:
        touched[:n_touched].sort()
        m = 0
        for i in range(n_touched):
            doc = touched[i]
            score = acc[doc] if allow[doc] else np.float32(0.0)
            touched[m] = doc
            cand_scores[m] = score
            m += score > 0
            acc[doc] = 0.0
            seen[doc] = False
        if k <= HEAP_MAX_K:
            heap_select_ascending(cand_scores, touched, m, k, heap_scores, heap_docs, out_scores, out_docs)
            return
    select_top_k(cand_scores, touched, m, k, out_scores, out_docs)


@numba.njit(cache=True, nogil=True, parallel=True)
def search_exact_segments(q_indptr: np.ndarray, q_indices: np.ndarray, q_values: np.ndarray, post_indptr: np.ndarray,
                          post_docs: np.ndarray, post_values: np.ndarray, allow: np.ndarray, blocked: np.ndarray,
                          offsets: np.ndarray, k: int, n_chunks: int) -> tuple:
    """Top k of each query over all segments (global numbers); queries in parallel over ``n_chunks`` interleaved
    slices, each with its own scratch arrays."""
    n_queries = q_indptr.shape[0] - 1
    n_docs = offsets[-1]
    out_scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
    out_docs = np.full((n_queries, k), -1, dtype=np.int64)
    for chunk in numba.prange(n_chunks):
        acc = np.zeros(n_docs, dtype=np.float32)
        seen = np.zeros(n_docs, dtype=np.bool_)
        touched = np.empty(n_docs, dtype=np.int32)
        cand_scores = np.empty(n_docs, dtype=np.float32)
        heap_scores = np.empty(k, dtype=np.float32)
        heap_docs = np.empty(k, dtype=np.int64)
        for qi in range(chunk, n_queries, n_chunks):
            lo, hi = q_indptr[qi], q_indptr[qi + 1]
            _exact_segments_one(q_indices[lo:hi], q_values[lo:hi], post_indptr, post_docs, post_values, allow,
                                blocked, offsets, k, acc, seen, touched, cand_scores, heap_scores, heap_docs,
                                out_scores[qi], out_docs[qi])
    return out_scores, out_docs


@numba.njit(cache=True, nogil=True)
def search_exact_segments_serial(q_indptr: np.ndarray, q_indices: np.ndarray, q_values: np.ndarray,
                                 post_indptr: np.ndarray, post_docs: np.ndarray, post_values: np.ndarray,
                                 allow: np.ndarray, blocked: np.ndarray, offsets: np.ndarray, k: int) -> tuple:
    """``search_exact_segments`` on the calling thread (no parallel region to enter for one query)."""
    n_queries = q_indptr.shape[0] - 1
    n_docs = offsets[-1]
    out_scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
    out_docs = np.full((n_queries, k), -1, dtype=np.int64)
    acc = np.zeros(n_docs, dtype=np.float32)
    seen = np.zeros(n_docs, dtype=np.bool_)
    touched = np.empty(n_docs, dtype=np.int32)
    cand_scores = np.empty(n_docs, dtype=np.float32)
    heap_scores = np.empty(k, dtype=np.float32)
    heap_docs = np.empty(k, dtype=np.int64)
    for qi in range(n_queries):
        lo, hi = q_indptr[qi], q_indptr[qi + 1]
        _exact_segments_one(q_indices[lo:hi], q_values[lo:hi], post_indptr, post_docs, post_values, allow, blocked,
                            offsets, k, acc, seen, touched, cand_scores, heap_scores, heap_docs, out_scores[qi],
                            out_docs[qi])
    return out_scores, out_docs
