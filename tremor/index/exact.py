"""Exhaustive top-k by inner product over an inverted index: the reference every approximate index is checked against.

Each query walks the full posting lists of its terms into a dense accumulator (term-at-a-time), then selects the top k
(a bounded heap for small k, a partition for large k). Queries run in parallel over threads (Numba prange), each
thread reusing one accumulator; a single query runs on the calling thread.
"""

from __future__ import annotations

import numba
import numpy as np

from tremor.errors import IndexFormatError, QueryError, TremorError, VocabularyMismatchError
from tremor.index.filtered import DocFilter, check_allow, pad_results, score_subset_csr
from tremor.index.topk import select_accumulated
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


HEAP_MAX_K = 64  # up to this k a bounded heap selects the top k; above it, a linear-time partition


@numba.njit(cache=True, nogil=True)
def _search_one(q_indices: np.ndarray, q_values: np.ndarray, post_indptr: np.ndarray, post_docs: np.ndarray,
                post_values: np.ndarray, acc: np.ndarray, seen: np.ndarray, touched: np.ndarray,
                cand_scores: np.ndarray, heap_scores: np.ndarray, heap_docs: np.ndarray, k: int,
                out_scores: np.ndarray, out_docs: np.ndarray, allow: np.ndarray | None = None,
                blocked: np.ndarray | None = None) -> None:
    """Score one query term-at-a-time into ``acc`` and keep its top k; the scratch arrays are left cleared.

    When the query's postings are many for the collection (at least an eighth of its size), the scatter runs without
    bookkeeping and a linear scan over ``acc`` finds the scored documents: no branch per posting. Otherwise the
    documents touched are listed as they are first scored, so a short query on a large collection stays cheap.
    Small k: a heap that is offered a document only when it beats the heap's worst, a branch that is predictable
    once the heap fills. Large k: the scored documents are gathered and ``select_top_k`` partitions them.
    With a filter (``allow``, a boolean mask, and ``blocked``, the documents it excludes) the excluded documents'
    scores are cleared before selection, so k allowed documents come back; without one (None) Numba compiles the
    filter code out."""
    n_terms = post_indptr.shape[0] - 1
    n_docs = acc.shape[0]
    n_postings = 0
    for p in range(q_indices.shape[0]):
        term = q_indices[p]
        if term < n_terms:
            n_postings += post_indptr[term + 1] - post_indptr[term]
    dense = 8 * n_postings >= n_docs
    n_touched = 0
    for p in range(q_indices.shape[0]):
        term = q_indices[p]
        if term >= n_terms:
            continue
        weight = q_values[p]
        if dense:
            for pp in range(post_indptr[term], post_indptr[term + 1]):
                acc[post_docs[pp]] += weight * post_values[pp]
        else:
            for pp in range(post_indptr[term], post_indptr[term + 1]):
                doc = post_docs[pp]
                if not seen[doc]:
                    seen[doc] = True
                    touched[n_touched] = doc
                    n_touched += 1
                acc[doc] += weight * post_values[pp]
    if allow is not None:
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
def _search_exact(q_indptr: np.ndarray, q_indices: np.ndarray, q_values: np.ndarray, post_indptr: np.ndarray,
                  post_docs: np.ndarray, post_values: np.ndarray, n_docs: int, k: int, n_chunks: int,
                  allow: np.ndarray | None = None, blocked: np.ndarray | None = None) -> tuple:
    """A batch of queries, in parallel over ``n_chunks`` interleaved slices, each with its own scratch arrays."""
    n_queries = q_indptr.shape[0] - 1
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
            _search_one(q_indices[lo:hi], q_values[lo:hi], post_indptr, post_docs, post_values, acc, seen, touched,
                        cand_scores, heap_scores, heap_docs, k, out_scores[qi], out_docs[qi], allow, blocked)
    return out_scores, out_docs


@numba.njit(cache=True, nogil=True)
def _search_exact_single(q_indices: np.ndarray, q_values: np.ndarray, post_indptr: np.ndarray, post_docs: np.ndarray,
                         post_values: np.ndarray, n_docs: int, k: int, allow: np.ndarray | None = None,
                         blocked: np.ndarray | None = None) -> tuple:
    """One query on the calling thread: no parallel region to enter (its set-up costs more than a short query)."""
    out_scores = np.full((1, k), -np.inf, dtype=np.float32)
    out_docs = np.full((1, k), -1, dtype=np.int64)
    _search_one(q_indices, q_values, post_indptr, post_docs, post_values, np.zeros(n_docs, dtype=np.float32),
                np.zeros(n_docs, dtype=np.bool_), np.empty(n_docs, dtype=np.int32),
                np.empty(n_docs, dtype=np.float32), np.empty(k, dtype=np.float32), np.empty(k, dtype=np.int64), k,
                out_scores[0], out_docs[0], allow, blocked)
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

    def search(self, queries: SparseVectors, k: int = 10, allow: np.ndarray | None = None,
               **search_params) -> tuple[np.ndarray, np.ndarray]:
        """Top-k documents per query: (scores float32 [n, k], doc ids int64 [n, k]), best first; rows are padded
        with (-inf, -1) where fewer than k documents share a term with the query; k is clamped to the document
        count. ``allow``: an optional boolean mask over the documents; only those may come back (see
        ``tremor.index.filtered``). Exhaustive search has no search-time parameters; passing any is an error."""
        if search_params:
            raise QueryError(f"the exact index takes no search parameters (got {', '.join(sorted(search_params))})")
        k = check_search_args(queries, k, self.vocab_size, self.vocab_id, self.n_docs)
        doc_filter = check_allow(allow, self.n_docs)
        if doc_filter is not None:
            return self._search_filtered(queries, int(k), doc_filter)
        if len(queries) == 1:
            return _search_exact_single(queries.indices, queries.values, self.post_indptr, self.post_docs,
                                        self.post_values, self.n_docs, int(k))
        n_chunks = max(1, min(len(queries), numba.get_num_threads()))
        return _search_exact(queries.indptr, queries.indices, queries.values, self.post_indptr, self.post_docs,
                             self.post_values, self.n_docs, int(k), n_chunks)

    def _search_filtered(self, queries: SparseVectors, k: int, doc_filter: DocFilter) -> tuple[np.ndarray, np.ndarray]:
        if doc_filter.n_allowed == 0:
            return pad_results(len(queries), k)
        if doc_filter.use_subset(k):
            return score_subset_csr(queries.indptr, queries.indices, queries.values, doc_filter.allowed,
                                    self.doc_indptr, self.doc_indices, self.doc_values, self.vocab_size, k)
        if len(queries) == 1:
            return _search_exact_single(queries.indices, queries.values, self.post_indptr, self.post_docs,
                                        self.post_values, self.n_docs, k, doc_filter.allow, doc_filter.blocked)
        n_chunks = max(1, min(len(queries), numba.get_num_threads()))
        return _search_exact(queries.indptr, queries.indices, queries.values, self.post_indptr, self.post_docs,
                             self.post_values, self.n_docs, k, n_chunks, doc_filter.allow, doc_filter.blocked)

    # --------------------------------------------------------------------------------------------- persistence
    def params(self) -> dict:
        return {}

    def arrays(self) -> dict[str, np.ndarray]:
        return {"doc_indptr": self.doc_indptr, "doc_indices": self.doc_indices, "doc_values": self.doc_values,
                "post_indptr": self.post_indptr, "post_docs": self.post_docs, "post_values": self.post_values}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict, vocab_size: int,
                    vocab_id: str | None) -> ExactIndex:
        """The index over stored arrays, after ``check_arrays`` (a damaged array is an error, not a crash)."""
        cls.check_arrays(arrays, vocab_size)
        return cls(arrays["doc_indptr"], arrays["doc_indices"], arrays["doc_values"], arrays["post_indptr"],
                   arrays["post_docs"], arrays["post_values"], vocab_size, vocab_id)

    @staticmethod
    def check_arrays(arrays: dict[str, np.ndarray], vocab_size: int) -> None:
        """Check what the kernels index with: offsets from 0, non-decreasing, ending at the entry counts; document
        numbers below the document count and term ids below the vocabulary size, sorted within each list; weights
        finite and non-negative. IndexFormatError naming the array otherwise."""
        from tremor.index import validation as v

        missing = sorted({"doc_indptr", "doc_indices", "doc_values", "post_indptr", "post_docs", "post_values"}
                         - set(arrays))
        if missing:
            raise IndexFormatError(f"index arrays incomplete (missing {', '.join(missing)})")
        if not isinstance(vocab_size, (int, np.integer)) or isinstance(vocab_size, bool) or vocab_size < 0:
            raise IndexFormatError(f"manifest vocab_size {vocab_size!r} is not a count")
        doc_indptr, doc_indices, doc_values = arrays["doc_indptr"], arrays["doc_indices"], arrays["doc_values"]
        post_indptr, post_docs, post_values = arrays["post_indptr"], arrays["post_docs"], arrays["post_values"]
        v.check_kind("doc_indptr", doc_indptr, "iu")
        n_docs = doc_indptr.shape[0] - 1
        if n_docs < 0:
            raise v.corrupt("doc_indptr", "is empty")
        v.check_kind("doc_indices", doc_indices, "iu")
        v.check_length("doc_values", doc_values, doc_indices.shape[0], "one per entry of doc_indices")
        v.check_offsets("doc_indptr", doc_indptr, n_docs, doc_indices.shape[0], "document entries")
        v.check_ids("doc_indices", doc_indices, int(vocab_size), "term id")
        v.check_sorted_rows("doc_indices", doc_indptr, doc_indices, "term ids")
        v.check_values("doc_values", doc_values)
        v.check_kind("post_docs", post_docs, "iu")
        v.check_length("post_values", post_values, post_docs.shape[0], "one per entry of post_docs")
        v.check_length("post_docs", post_docs, doc_indices.shape[0], "one posting per document entry")
        v.check_offsets("post_indptr", post_indptr, int(vocab_size), post_docs.shape[0], "postings")
        v.check_ids("post_docs", post_docs, n_docs, "document number")
        v.check_sorted_rows("post_docs", post_indptr, post_docs, "document numbers")
        v.check_values("post_values", post_values)


def check_search_args(queries: SparseVectors, k: int, vocab_size: int, vocab_id: str | None,
                      n_docs: int | None = None) -> int:
    """Validation shared by all indexes: a positive integer k and query vectors from the index's vocabulary (same
    identity where both name one, and the same size). Returns k clamped to ``n_docs`` (at least 1): asking for more
    hits than there are documents cannot give more, and must not allocate for them."""
    if not isinstance(queries, SparseVectors):
        raise TremorError("search expects SparseVectors; encode query text with the index's encoder first")
    k = clamp_k(k, n_docs)
    queries.check_vocab(vocab_id)
    if queries.vocab_size != vocab_size:
        raise VocabularyMismatchError(f"query vectors have a vocabulary of {queries.vocab_size} terms, the index "
                                      f"{vocab_size}; encode queries with the index's own encoder")
    return k


def clamp_k(k: object, n_docs: int | None) -> int:
    """``k`` as an int in [1, max(n_docs, 1)] (QueryError for a k below 1 or not an integer)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise QueryError(f"k must be an integer (got {k!r})")
    if k < 1:
        raise QueryError(f"k must be at least 1 (got {k})")
    return int(min(int(k), max(int(n_docs), 1))) if n_docs is not None else int(k)
