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
from tremor.index.seismic_kernels import SKIP, _visit_lists
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


# ------------------------------------------------------------------------------------------------------- Seismic
def concat_seismic_segments(indexes, deleted) -> tuple:
    """The arguments of ``search_seismic_segments`` for Seismic segments (same vocabulary, so same entry layout) and
    their deleted flags: forward indexes, blocks and summaries concatenated with every position and document number
    made global; per-term tables (list offsets, list maxima) one row per segment; the summary skip list sampled again
    over the concatenated entries; the deleted documents as a global bitset."""

    def bases(sizes) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    doc_base = bases([index.n_docs for index in indexes])
    nnz_base = bases([index.doc_components.shape[0] for index in indexes])
    block_base = bases([index.block_min.shape[0] for index in indexes])
    posting_base = bases([index.posting_docs.shape[0] for index in indexes])
    summary_segment_base = bases([index.segment_entry_indptr.shape[0] - 1 for index in indexes])
    entry_base = bases([index.summary_entries.shape[0] for index in indexes])
    doc_indptr = np.concatenate([[0]] + [np.asarray(index.doc_indptr[1:], np.int64) + nnz_base[s]
                                         for s, index in enumerate(indexes)]).astype(np.int64)
    summary_entries = np.concatenate([np.asarray(index.summary_entries) for index in indexes])
    first = indexes[0]
    shift = np.asarray(first.block_bits + 8, summary_entries.dtype)
    n_docs = int(doc_base[-1])
    live = np.concatenate([np.ones(index.n_docs, bool) if d is None else ~d
                           for index, d in zip(indexes, deleted, strict=True)])
    blocked = np.flatnonzero(~live)
    words = np.zeros((n_docs >> 6) + 1, dtype=np.uint64)
    np.bitwise_or.at(words, blocked >> 6, np.left_shift(np.uint64(1), (blocked & 63).astype(np.uint64)))
    return (
        doc_indptr,
        np.concatenate([np.asarray(index.doc_components) for index in indexes]),
        np.concatenate([np.asarray(index.doc_values_bits) for index in indexes]),
        np.stack([np.asarray(index.list_block_indptr, np.int64) + block_base[s] for s, index in enumerate(indexes)]),
        np.concatenate([[0]] + [np.asarray(index.block_indptr[1:], np.int64) + posting_base[s]
                                for s, index in enumerate(indexes)]).astype(np.int64),
        np.concatenate([np.asarray(index.block_min) for index in indexes]),
        np.concatenate([np.asarray(index.block_scale) for index in indexes]),
        np.concatenate([np.asarray(index.posting_docs, np.int64) + doc_base[s]
                        for s, index in enumerate(indexes)]).astype(np.int32),
        np.stack([np.asarray(index.list_segment_indptr, np.int64) + summary_segment_base[s]
                  for s, index in enumerate(indexes)]),
        np.concatenate([[0]] + [np.asarray(index.segment_entry_indptr[1:], np.int64) + entry_base[s]
                                for s, index in enumerate(indexes)]).astype(np.int64),
        summary_entries,
        (summary_entries[::SKIP] >> shift).astype(np.asarray(first.summary_skip).dtype),
        int(first.block_bits),
        np.stack([np.asarray(index.list_max, np.float32) for index in indexes]),
        words,
        int(max(max(index.max_blocks, 1) for index in indexes)),
    )


@numba.njit(cache=True, nogil=True)
def _seismic_segments_one(q_indices: np.ndarray, q_values: np.ndarray, k: int, query_cut: int, heap_factor: float,
                          sort_first: bool, doc_indptr: np.ndarray, doc_components: np.ndarray,
                          doc_values: np.ndarray, list_block_indptr: np.ndarray, block_indptr: np.ndarray,
                          block_min: np.ndarray, block_scale: np.ndarray, posting_docs: np.ndarray,
                          list_segment_indptr: np.ndarray, segment_entry_indptr: np.ndarray,
                          summary_entries: np.ndarray, summary_skip: np.ndarray, block_bits: int,
                          list_max: np.ndarray, blocked_words: np.ndarray, q_dense: np.ndarray, visited: np.ndarray,
                          visited_docs: np.ndarray, block_codes: np.ndarray, block_weight: np.ndarray,
                          block_order: np.ndarray, heap_scores: np.ndarray, heap_docs: np.ndarray,
                          out_scores: np.ndarray, out_docs: np.ndarray) -> None:
    """One query over every segment with one heap: each segment's lists are visited in turn, pruning against the
    k-th score found so far in all segments (as one merged index would). ``visited`` comes in equal to
    ``blocked_words`` (deleted documents count as seen) and is left so; ``q_dense`` comes in zeroed and is left so."""
    n_terms = list_block_indptr.shape[1] - 1
    n_q = q_indices.shape[0]
    if n_q == 0:
        return
    for p in range(n_q):
        if q_indices[p] < n_terms:
            q_dense[q_indices[p]] = q_values[p]
    size = 0
    n_visited = 0
    for s in range(list_block_indptr.shape[0]):
        size, n_visited = _visit_lists(q_indices, q_values, k, query_cut, heap_factor, sort_first, doc_indptr,
                                       doc_components, doc_values, list_block_indptr[s], block_indptr, block_min,
                                       block_scale, posting_docs, list_segment_indptr[s], segment_entry_indptr,
                                       summary_entries, summary_skip, block_bits, list_max[s], q_dense, visited,
                                       visited_docs, block_codes, block_weight, block_order, heap_scores, heap_docs,
                                       size, n_visited)
    heap_drain_sorted(heap_scores, heap_docs, size, out_scores, out_docs)
    for i in range(n_visited):
        word = visited_docs[i] >> 6
        visited[word] = blocked_words[word]
    for p in range(n_q):
        if q_indices[p] < n_terms:
            q_dense[q_indices[p]] = 0.0


@numba.njit(cache=True, nogil=True, parallel=True)
def search_seismic_segments(q_indptr: np.ndarray, q_indices: np.ndarray, q_values: np.ndarray, k: int,
                            query_cut: int, heap_factor: float, sort_first: bool, doc_indptr: np.ndarray,
                            doc_components: np.ndarray, doc_values: np.ndarray, list_block_indptr: np.ndarray,
                            block_indptr: np.ndarray, block_min: np.ndarray, block_scale: np.ndarray,
                            posting_docs: np.ndarray, list_segment_indptr: np.ndarray,
                            segment_entry_indptr: np.ndarray, summary_entries: np.ndarray, summary_skip: np.ndarray,
                            block_bits: int, list_max: np.ndarray, blocked_words: np.ndarray, max_blocks: int,
                            n_chunks: int) -> tuple:
    """Seismic search of a batch of queries over all segments (arguments from ``concat_seismic_segments``), in
    parallel over ``n_chunks`` interleaved slices (1: one thread), each with its own scratch arrays."""
    n_queries = q_indptr.shape[0] - 1
    n_docs = doc_indptr.shape[0] - 1
    n_terms = list_block_indptr.shape[1] - 1
    out_scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
    out_docs = np.full((n_queries, k), -1, dtype=np.int64)
    for chunk in numba.prange(n_chunks):
        q_dense = np.zeros(n_terms, dtype=np.float32)
        visited = blocked_words.copy()
        visited_docs = np.empty(max(n_docs, 1), dtype=np.int32)
        block_codes = np.zeros(max_blocks, dtype=np.float32)
        block_weight = np.zeros(max_blocks, dtype=np.float32)
        block_order = np.empty(max_blocks, dtype=np.int32)
        heap_scores = np.empty(k, dtype=np.float32)
        heap_docs = np.empty(k, dtype=np.int64)
        for qi in range(chunk, n_queries, n_chunks):
            lo, hi = q_indptr[qi], q_indptr[qi + 1]
            _seismic_segments_one(q_indices[lo:hi], q_values[lo:hi], k, query_cut, heap_factor, sort_first,
                                  doc_indptr, doc_components, doc_values, list_block_indptr, block_indptr, block_min,
                                  block_scale, posting_docs, list_segment_indptr, segment_entry_indptr,
                                  summary_entries, summary_skip, block_bits, list_max, blocked_words, q_dense,
                                  visited, visited_docs, block_codes, block_weight, block_order, heap_scores,
                                  heap_docs, out_scores[qi], out_docs[qi])
    return out_scores, out_docs


@numba.njit(cache=True, nogil=True)
def search_seismic_segments_serial(q_indptr: np.ndarray, q_indices: np.ndarray, q_values: np.ndarray, k: int,
                                   query_cut: int, heap_factor: float, sort_first: bool, doc_indptr: np.ndarray,
                                   doc_components: np.ndarray, doc_values: np.ndarray, list_block_indptr: np.ndarray,
                                   block_indptr: np.ndarray, block_min: np.ndarray, block_scale: np.ndarray,
                                   posting_docs: np.ndarray, list_segment_indptr: np.ndarray,
                                   segment_entry_indptr: np.ndarray, summary_entries: np.ndarray,
                                   summary_skip: np.ndarray, block_bits: int, list_max: np.ndarray,
                                   blocked_words: np.ndarray, max_blocks: int, n_chunks: int) -> tuple:
    """``search_seismic_segments`` on the calling thread (entering a parallel region costs more than one query)."""
    n_queries = q_indptr.shape[0] - 1
    n_docs = doc_indptr.shape[0] - 1
    n_terms = list_block_indptr.shape[1] - 1
    out_scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
    out_docs = np.full((n_queries, k), -1, dtype=np.int64)
    for chunk in range(n_chunks):
        q_dense = np.zeros(n_terms, dtype=np.float32)
        visited = blocked_words.copy()
        visited_docs = np.empty(max(n_docs, 1), dtype=np.int32)
        block_codes = np.zeros(max_blocks, dtype=np.float32)
        block_weight = np.zeros(max_blocks, dtype=np.float32)
        block_order = np.empty(max_blocks, dtype=np.int32)
        heap_scores = np.empty(k, dtype=np.float32)
        heap_docs = np.empty(k, dtype=np.int64)
        for qi in range(chunk, n_queries, n_chunks):
            lo, hi = q_indptr[qi], q_indptr[qi + 1]
            _seismic_segments_one(q_indices[lo:hi], q_values[lo:hi], k, query_cut, heap_factor, sort_first,
                                  doc_indptr, doc_components, doc_values, list_block_indptr, block_indptr, block_min,
                                  block_scale, posting_docs, list_segment_indptr, segment_entry_indptr,
                                  summary_entries, summary_skip, block_bits, list_max, blocked_words, q_dense,
                                  visited, visited_docs, block_codes, block_weight, block_order, heap_scores,
                                  heap_docs, out_scores[qi], out_docs[qi])
    return out_scores, out_docs
