"""Numba kernels that search every segment of a live index in one call, with one global top k.

Calling an index's kernel once per segment costs a dispatch and a top-k merge per segment, which for a short query
on a small index is more than the search itself. The exact kernel takes the segments' posting arrays concatenated
(once per snapshot), scores every segment's postings into one accumulator over global document numbers and selects
once, as a merged index would; deleted documents are cleared before that selection, so k live hits come back.
The Seismic kernel visits segments term-major: the query terms are ordered and cut once, and each kept term's
blocks in every segment are scored and visited as one list against one heap, as in a merged index.
"""

from __future__ import annotations

import numba
import numpy as np

from tremor.errors import TremorError
from tremor.index import seismic_nibble as nibble
from tremor.index.exact import HEAP_MAX_K
from tremor.index.seismic_compact import SEGMENT_BITS, add_summary_segment
from tremor.index.seismic_kernels import BOUND_SLACK, LINEAR_SUMMARY, _score_block, _sift_blocks
from tremor.index.seismic_nibble import list_block_bits
from tremor.index.topk import heap_drain_sorted, select_accumulated


def concat_exact_segments(indexes, deleted) -> tuple:
    """The kernels' arguments for a list of exact segments and their deleted flags (None: no deletions): posting
    arrays concatenated (row s of ``post_indptr`` points into them for segment s), the global live mask and the
    global numbers of deleted documents, segment offsets. One copy per snapshot, so that a query is one call."""
    sizes = [index.post_docs.shape[0] for index in indexes]
    bases = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    # a segment written before a live vocabulary grew has fewer terms: its rows end in empty posting lists
    width = max(index.post_indptr.shape[0] for index in indexes)
    post_indptr = np.stack([np.pad(np.asarray(index.post_indptr, np.int64) + bases[s],
                                   (0, width - index.post_indptr.shape[0]), mode="edge")
                            for s, index in enumerate(indexes)])
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
    else:
        for i in range(n_touched):
            if not allow[touched[i]]:
                acc[touched[i]] = 0.0
    select_accumulated(acc, dense, touched, n_touched, seen, k, HEAP_MAX_K, cand_scores, heap_scores, heap_docs,
                       out_scores, out_docs)


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
    made global (compact summary buckets keep their offsets relative to the concatenated entries); per-term tables
    (list offsets, list maxima) one row per segment; the deleted documents as a global bitset; the scratch size for
    one term's blocks in all segments together."""

    def bases(sizes) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    doc_base = bases([index.n_docs for index in indexes])
    nnz_base = bases([index.doc_components.shape[0] for index in indexes])
    block_base = bases([index.block_min.shape[0] for index in indexes])
    posting_base = bases([index.posting_docs.shape[0] for index in indexes])
    if len({index.summary_bits for index in indexes}) > 1:
        raise TremorError("the Seismic segments of this index hold summaries in different layouts (8-bit and 4-bit); "
                          "rebuild it with one 'summary_bits' setting")
    summary_segment_base = bases([index.n_summary_segments for index in indexes])
    entry_base = bases([index.summary_keys.shape[0] for index in indexes])
    doc_indptr = np.concatenate([[0]] + [np.asarray(index.doc_indptr[1:], np.int64) + nnz_base[s]
                                         for s, index in enumerate(indexes)]).astype(np.int64)
    first = indexes[0]
    keys = np.concatenate([np.asarray(index.summary_keys) for index in indexes])
    if first.summary_bits == 4:  # table starts and table rows (entry positions) made global, rows re-anchored
        table_base = bases([index.summary_bucket_offsets.shape[0] for index in indexes])
        rows = np.concatenate([nibble.table_rows(index.summary_bucket_anchor, index.summary_bucket_offsets)
                               + entry_base[s] for s, index in enumerate(indexes)])
        summary = (np.concatenate([[0]] + [np.asarray(index.summary_table_start[1:], np.int64) + table_base[s]
                                           for s, index in enumerate(indexes)]).astype(np.int64),
                   *nibble.anchored(rows), keys, np.zeros(0, np.uint8))
    else:
        summary = (np.zeros(0, np.int64), np.zeros(0, np.int64),
                   np.concatenate([[0]] + [np.asarray(index.summary_bucket_indptr[1:], np.int64) + entry_base[s]
                                           for s, index in enumerate(indexes)]).astype(np.int64),
                   keys, np.concatenate([np.asarray(index.summary_codes) for index in indexes]))
    if len({np.asarray(index.doc_values).dtype for index in indexes}) > 1:
        raise TremorError("the Seismic segments of this index store their forward values in different formats "
                          "(float16 and uint8); rebuild it with one 'forward' setting")
    forward = (np.concatenate([np.asarray(index.doc_values_bits) for index in indexes]),
               np.concatenate([np.asarray(index.doc_scale, np.float32) for index in indexes]))
    n_docs = int(doc_base[-1])
    live = np.concatenate([np.ones(index.n_docs, bool) if d is None else ~d
                           for index, d in zip(indexes, deleted, strict=True)])
    blocked = np.flatnonzero(~live)
    # scratch for one term's blocks in all segments at once
    block_counts = np.stack([np.diff(np.asarray(index.list_block_indptr, np.int64)) for index in indexes])
    words = np.zeros((n_docs >> 6) + 1, dtype=np.uint64)
    np.bitwise_or.at(words, blocked >> 6, np.left_shift(np.uint64(1), (blocked & 63).astype(np.uint64)))
    return (
        doc_indptr,
        np.concatenate([np.asarray(index.doc_components) for index in indexes]),
        forward,
        np.stack([np.asarray(index.list_block_indptr, np.int64) + block_base[s] for s, index in enumerate(indexes)]),
        np.concatenate([[0]] + [np.asarray(index.block_indptr[1:], np.int64) + posting_base[s]
                                for s, index in enumerate(indexes)]).astype(np.int64),
        np.concatenate([np.asarray(index.block_min) for index in indexes]),
        np.concatenate([np.asarray(index.block_scale) for index in indexes]),
        np.concatenate([np.asarray(index.posting_docs, np.int64) + doc_base[s]
                        for s, index in enumerate(indexes)]).astype(np.int32),
        np.stack([np.asarray(index.list_segment_indptr, np.int64) + summary_segment_base[s]
                  for s, index in enumerate(indexes)]),
        summary,
        int(first.n_bucket),
        np.stack([np.asarray(index.list_max, np.float32) for index in indexes]),
        words,
        int(max(int(block_counts.sum(axis=0).max()) if block_counts.size else 0, 1)),
    )


@numba.njit(cache=True, nogil=True)
def _seismic_segments_one(q_indices: np.ndarray, q_values: np.ndarray, k: int, query_cut: int, heap_factor: float,
                          sort_first: bool, direct_postings: int, doc_indptr: np.ndarray,
                          doc_components: np.ndarray,
                          doc_values: tuple, list_block_indptr: np.ndarray, block_indptr: np.ndarray,
                          block_min: np.ndarray, block_scale: np.ndarray, posting_docs: np.ndarray,
                          list_segment_indptr: np.ndarray, summary: tuple, n_bucket: int,
                          list_max: np.ndarray, blocked_words: np.ndarray, q_dense: np.ndarray, visited: np.ndarray,
                          visited_docs: np.ndarray, block_codes: np.ndarray, block_weight: np.ndarray,
                          block_order: np.ndarray, block_ids: np.ndarray, heap_scores: np.ndarray,
                          heap_docs: np.ndarray, out_scores: np.ndarray, out_docs: np.ndarray) -> None:
    """One query over every segment with one heap, term-major: the query terms are ordered and cut once (by their
    largest list value over all segments, as a merged index's list maxima), and each kept term's lists in all segments
    form one list of blocks, visited as a merged index visits its list (the first one best summary first), pruning
    against the k-th score found so far. ``visited`` comes in equal to ``blocked_words`` (deleted documents count as
    seen) and is left so; ``q_dense`` comes in zeroed and is left so."""
    n_segments = list_block_indptr.shape[0]
    n_terms = list_block_indptr.shape[1] - 1
    n_q = q_indices.shape[0]
    if n_q == 0:
        return
    table_start, bucket_anchor, bucket_table, summary_keys, summary_codes = summary
    four_bit = table_start.shape[0] > 0
    for p in range(n_q):
        if q_indices[p] < n_terms:
            q_dense[q_indices[p]] = q_values[p]
    linear_below = LINEAR_SUMMARY * n_q
    bound = np.zeros(n_q, dtype=np.float32)
    for p in range(n_q):
        term = q_indices[p]
        if term < n_terms:
            largest = np.float32(0.0)
            for s in range(n_segments):
                largest = max(largest, list_max[s, term])
            bound[p] = q_values[p] * largest
    bound_order = np.argsort(-bound, kind="mergesort")
    order = bound_order[np.argsort(-q_values[bound_order], kind="mergesort")]
    size = 0
    n_visited = 0
    n_cut = 0
    for r in range(n_q):
        if n_cut >= query_cut:
            break
        term = q_indices[order[r]]
        if term >= n_terms or q_values[order[r]] <= 0:
            continue
        n_cut += 1
        # summary scores of the term's blocks in every segment, numbered one after the other
        n_blocks = 0
        for s in range(n_segments):
            first_block = list_block_indptr[s, term]
            segment_blocks = list_block_indptr[s, term + 1] - first_block
            for j in range(segment_blocks):
                block_ids[n_blocks + j] = first_block + j
            if segment_blocks > 0 and \
                    block_indptr[first_block + segment_blocks] - block_indptr[first_block] <= direct_postings:
                # a short list is scored without its summaries (as in a single index): its blocks get an infinite
                # bound, marked by a weight of -inf, which no sum of query weights reaches
                for j in range(segment_blocks):
                    block_weight[n_blocks + j] = -np.inf
                n_blocks += segment_blocks
                continue
            first_segment = list_segment_indptr[s, term]
            segment_bits = list_block_bits(segment_blocks) if four_bit else SEGMENT_BITS
            for segment in range(first_segment, list_segment_indptr[s, term + 1]):
                add_summary_segment(segment, n_blocks + ((segment - first_segment) << segment_bits), segment_bits,
                                    n_bucket, table_start, bucket_anchor, bucket_table, summary_keys, summary_codes,
                                    q_indices, q_values, q_dense, n_terms, linear_below, block_codes, block_weight)
            n_blocks += segment_blocks
        if n_blocks == 0:
            continue
        for j in range(n_blocks):
            b = block_ids[j]
            weight = block_weight[j]
            block_codes[j] = np.inf if weight == -np.inf else block_scale[b] * block_codes[j] + block_min[b] * weight
            block_weight[j] = 0.0
        if sort_first and n_cut == 1:
            # first list: blocks of all segments by decreasing summary score (a heap, popped until a block fails the
            # test, after which every remaining block fails too)
            for j in range(n_blocks):
                block_order[j] = j
            for j in range(n_blocks // 2 - 1, -1, -1):
                _sift_blocks(block_order, block_codes, n_blocks, j)
            remaining = n_blocks
            while remaining > 0:
                blk = block_order[0]
                if size == k and block_codes[blk] * BOUND_SLACK < heap_factor * heap_scores[0]:
                    break
                size, n_visited = _score_block(block_ids[blk], k, size, n_visited, posting_docs, block_indptr,
                                               doc_indptr, doc_components, doc_values, q_dense, visited,
                                               visited_docs, heap_scores, heap_docs)
                remaining -= 1
                block_order[0] = block_order[remaining]
                _sift_blocks(block_order, block_codes, remaining, 0)
        else:
            for blk in range(n_blocks):
                if size == k and block_codes[blk] * BOUND_SLACK < heap_factor * heap_scores[0]:
                    continue
                size, n_visited = _score_block(block_ids[blk], k, size, n_visited, posting_docs, block_indptr,
                                               doc_indptr, doc_components, doc_values, q_dense, visited,
                                               visited_docs, heap_scores, heap_docs)
        block_codes[:n_blocks] = 0.0
    heap_drain_sorted(heap_scores, heap_docs, size, out_scores, out_docs)
    for i in range(n_visited):
        word = visited_docs[i] >> 6
        visited[word] = blocked_words[word]
    for p in range(n_q):
        if q_indices[p] < n_terms:
            q_dense[q_indices[p]] = 0.0


@numba.njit(cache=True, nogil=True)
def _seismic_segments_range(first: int, step: int, q_indptr: np.ndarray, q_indices: np.ndarray,
                            q_values: np.ndarray, k: int, query_cut: int, heap_factor: float, sort_first: bool,
                            direct_postings: int, doc_indptr: np.ndarray, doc_components: np.ndarray,
                            doc_values: tuple, list_block_indptr: np.ndarray, block_indptr: np.ndarray,
                            block_min: np.ndarray, block_scale: np.ndarray, posting_docs: np.ndarray,
                            list_segment_indptr: np.ndarray, summary: tuple, n_bucket: int, list_max: np.ndarray,
                            blocked_words: np.ndarray, q_dense: np.ndarray, visited: np.ndarray,
                            visited_docs: np.ndarray, block_codes: np.ndarray, block_weight: np.ndarray,
                            block_order: np.ndarray, block_ids: np.ndarray, out_scores: np.ndarray,
                            out_docs: np.ndarray) -> None:
    """Queries ``first``, ``first + step``, ... of the batch, one after the other with one set of scratch arrays
    (the serial kernel's whole batch, or one slice of the parallel kernel's)."""
    heap_scores = np.empty(k, dtype=np.float32)
    heap_docs = np.empty(k, dtype=np.int64)
    for qi in range(first, q_indptr.shape[0] - 1, step):
        lo, hi = q_indptr[qi], q_indptr[qi + 1]
        _seismic_segments_one(q_indices[lo:hi], q_values[lo:hi], k, query_cut, heap_factor, sort_first,
                              direct_postings, doc_indptr, doc_components, doc_values, list_block_indptr,
                              block_indptr, block_min, block_scale, posting_docs, list_segment_indptr, summary,
                              n_bucket, list_max, blocked_words, q_dense, visited,
                              visited_docs, block_codes, block_weight, block_order, block_ids, heap_scores,
                              heap_docs, out_scores[qi], out_docs[qi])


@numba.njit(cache=True, nogil=True, parallel=True)
def search_seismic_segments(q_indptr: np.ndarray, q_indices: np.ndarray, q_values: np.ndarray, k: int,
                            query_cut: int, heap_factor: float, sort_first: bool, direct_postings: int,
                            doc_indptr: np.ndarray,
                            doc_components: np.ndarray, doc_values: tuple, list_block_indptr: np.ndarray,
                            block_indptr: np.ndarray, block_min: np.ndarray, block_scale: np.ndarray,
                            posting_docs: np.ndarray, list_segment_indptr: np.ndarray,
                            summary: tuple,
                            n_bucket: int, list_max: np.ndarray, blocked_words: np.ndarray, max_blocks: int,
                            n_chunks: int) -> tuple:
    """Seismic search of a batch of queries over all segments (arguments from ``concat_seismic_segments``), in
    parallel over ``n_chunks`` interleaved slices (1: one thread), each with its own scratch arrays."""
    n_queries = q_indptr.shape[0] - 1
    n_docs = doc_indptr.shape[0] - 1
    n_terms = list_block_indptr.shape[1] - 1
    out_scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
    out_docs = np.full((n_queries, k), -1, dtype=np.int64)
    for chunk in numba.prange(n_chunks):
        _seismic_segments_range(chunk, n_chunks, q_indptr, q_indices, q_values, k, query_cut, heap_factor,
                                sort_first, direct_postings, doc_indptr, doc_components, doc_values,
                                list_block_indptr, block_indptr, block_min, block_scale, posting_docs,
                                list_segment_indptr, summary, n_bucket, list_max,
                                blocked_words, np.zeros(n_terms, dtype=np.float32), blocked_words.copy(),
                                np.empty(max(n_docs, 1), dtype=np.int32), np.zeros(max_blocks, dtype=np.float32),
                                np.zeros(max_blocks, dtype=np.float32), np.empty(max_blocks, dtype=np.int32),
                                np.empty(max_blocks, dtype=np.int64), out_scores, out_docs)
    return out_scores, out_docs


@numba.njit(cache=True, nogil=True)
def search_seismic_segments_serial(q_indptr: np.ndarray, q_indices: np.ndarray, q_values: np.ndarray, k: int,
                                   query_cut: int, heap_factor: float, sort_first: bool, direct_postings: int,
                                   doc_indptr: np.ndarray,
                                   doc_components: np.ndarray, doc_values: tuple, list_block_indptr: np.ndarray,
                                   block_indptr: np.ndarray, block_min: np.ndarray, block_scale: np.ndarray,
                                   posting_docs: np.ndarray, list_segment_indptr: np.ndarray,
                                   summary: tuple, n_bucket: int, list_max: np.ndarray,
                                   blocked_words: np.ndarray, q_dense: np.ndarray, visited: np.ndarray,
                                   visited_docs: np.ndarray, block_codes: np.ndarray, block_weight: np.ndarray,
                                   block_order: np.ndarray, block_ids: np.ndarray) -> tuple:
    """``search_seismic_segments`` on the calling thread, with caller-owned scratch arrays (a single query is short
    enough for allocating and zeroing them to show): ``q_dense``, ``block_codes`` and ``block_weight`` zeroed,
    ``visited`` equal to ``blocked_words``; the kernel leaves them so."""
    n_queries = q_indptr.shape[0] - 1
    out_scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
    out_docs = np.full((n_queries, k), -1, dtype=np.int64)
    _seismic_segments_range(0, 1, q_indptr, q_indices, q_values, k, query_cut, heap_factor, sort_first,
                            direct_postings, doc_indptr, doc_components, doc_values, list_block_indptr,
                            block_indptr, block_min, block_scale, posting_docs, list_segment_indptr, summary,
                            n_bucket, list_max, blocked_words, q_dense, visited,
                            visited_docs, block_codes, block_weight, block_order, block_ids, out_scores, out_docs)
    return out_scores, out_docs
