"""Search over the segments of a live index: one snapshot (commit) of segments searched as a single index.

Each segment is searched with the same encoded query; its deleted documents are excluded inside the kernels (the
segment's deletion bitmap is its ``allow`` filter, see ``tremor.index.filtered``), so every segment returns k live
hits; the per-segment lists are merged into one global top k. Internal document numbers are global: segment i's
documents follow those of segments 0..i-1, in commit order (for an index built in one go and grown by ``add``, the
order in which documents arrived).

Segments written before a live vocabulary grew (BM25 in live mode) have a smaller vocabulary whose ids are a prefix of
the commit's: a query's entries at ids a segment lacks are dropped for that segment (they match nothing there).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numba
import numpy as np

from tremor.corpus import Document
from tremor.encoders import load_saved_encoder
from tremor.errors import IndexFormatError, QueryError, TremorError
from tremor.index.filtered import check_allow
from tremor.index.segments import current_commit, open_segment
from tremor.sparse import SparseVectors

OPEN_RETRIES = 20  # a commit read while a writer removes its files is retried on the newer commit


class SegmentedIndex:
    """The segments of one commit behind the index interface (``search``, ``n_docs``, ``vocab_id``, ...)."""

    def __init__(self, indexes: Sequence, deleted: Sequence[np.ndarray | None], index_type: str, vocab_size: int,
                 vocab_id: str | None) -> None:
        self.indexes = list(indexes)
        self.deleted = list(deleted)
        self.index_type = index_type
        self.vocab_size = int(vocab_size or 0)
        self.vocab_id = vocab_id
        sizes = [index.n_docs for index in self.indexes]
        self.offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)]).astype(np.int64)
        # each segment's standing filter: its live documents (None without deletions)
        self._live_filters = [None if d is None else check_allow(~d, d.shape[0]) for d in self.deleted]
        self._documents: SparseVectors | None = None
        self._exact_args: tuple | None = None
        self._seismic_args: tuple | None = None
        self._scratch = threading.local()

    @property
    def n_docs(self) -> int:
        """Documents numbered by this snapshot, deleted ones included (numbers are stable within a snapshot)."""
        return int(self.offsets[-1])

    @property
    def n_live(self) -> int:
        return self.n_docs - sum(int(d.sum()) for d in self.deleted if d is not None)

    @property
    def n_segments(self) -> int:
        return len(self.indexes)

    def live_mask(self) -> np.ndarray:
        """True for every live (not deleted) document number."""
        parts = [np.ones(index.n_docs, bool) if d is None else ~d
                 for index, d in zip(self.indexes, self.deleted, strict=True)]
        return np.concatenate(parts) if parts else np.zeros(0, bool)

    def search(self, queries: SparseVectors, k: int = 10, allow: np.ndarray | None = None,
               **search_params) -> tuple[np.ndarray, np.ndarray]:
        """Top-k live documents per query over all segments: (scores [n, k], global numbers [n, k]), best first, ties
        to the smaller number, padded with (-inf, -1); k is clamped to the live document count. ``allow``: an optional
        boolean mask over the global numbers."""
        from tremor.index.exact import check_search_args

        k = check_search_args(queries, k, self.vocab_size, self.vocab_id, self.n_live)  # k clamped to live docs
        if allow is not None:
            allow = np.asarray(allow)
            if allow.dtype != np.bool_ or allow.shape != (self.n_docs,):
                raise QueryError(f"allow must be a boolean mask of length {self.n_docs} (got {allow.dtype}"
                                 f"{list(allow.shape)})")
        if allow is None and len(self.indexes) > 1:
            if self.index_type == "exact" and not search_params:
                return self._search_exact_at_once(queries, k)
            if self.index_type == "seismic" and all(i.vocab_size == self.vocab_size for i in self.indexes):
                checked = self.indexes[0]._check_search_params(search_params)
                if checked[2] == 0:  # no κ-NN expansion (it reads one segment's graph)
                    return self._search_seismic_at_once(queries, k, checked)
        n_queries = len(queries)
        all_scores = [np.full((n_queries, 0), -np.inf, np.float32)]
        all_docs = [np.full((n_queries, 0), -1, np.int64)]
        for i, index in enumerate(self.indexes):
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            segment_filter = self._live_filters[i]
            if allow is not None:
                mask = allow[lo:hi] if self.deleted[i] is None else allow[lo:hi] & ~self.deleted[i]
                segment_filter = check_allow(mask, hi - lo)
            segment_queries = queries if index.vocab_size == queries.vocab_size \
                else queries.with_vocab_size(index.vocab_size)
            scores, docs = index.search(segment_queries, k, allow=segment_filter, **search_params)
            all_scores.append(scores)
            all_docs.append(np.where(docs >= 0, docs + lo, -1))
        if len(all_scores) == 2:
            return all_scores[1], all_docs[1]
        scores = np.concatenate(all_scores, axis=1)
        docs = np.concatenate(all_docs, axis=1)
        if scores.shape[1] < k:
            pad = k - scores.shape[1]
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
            docs = np.pad(docs, ((0, 0), (0, pad)), constant_values=-1)
        tie = np.where(docs >= 0, docs, np.iinfo(np.int64).max)
        order = np.lexsort((tie, -scores), axis=-1)[:, :k]  # score descending, then number ascending
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(docs, order, axis=1)

    def _search_exact_at_once(self, queries: SparseVectors, k: int) -> tuple[np.ndarray, np.ndarray]:
        """All exact segments in one kernel call (no per-segment dispatch and merge in Python)."""
        from tremor.index.exact import check_search_args
        from tremor.index.segment_kernels import (
            concat_exact_segments,
            search_exact_segments,
            search_exact_segments_serial,
        )

        check_search_args(queries, k, self.vocab_size, self.vocab_id)
        if self._exact_args is None:
            self._exact_args = concat_exact_segments(self.indexes, self.deleted)
        if len(queries) == 1 or numba.get_num_threads() == 1:
            return search_exact_segments_serial(queries.indptr, queries.indices, queries.values, *self._exact_args, k)
        return search_exact_segments(queries.indptr, queries.indices, queries.values, *self._exact_args, k,
                                     max(1, min(len(queries), numba.get_num_threads())))

    def _search_seismic_at_once(self, queries: SparseVectors, k: int, checked: tuple) -> tuple[np.ndarray, np.ndarray]:
        """All Seismic segments in one kernel call with one heap (each segment prunes against the global k-th
        score)."""
        from tremor.index.exact import check_search_args
        from tremor.index.segment_kernels import (
            concat_seismic_segments,
            search_seismic_segments,
            search_seismic_segments_serial,
        )

        check_search_args(queries, k, self.vocab_size, self.vocab_id)
        if self._seismic_args is None:
            self._seismic_args = concat_seismic_segments(self.indexes, self.deleted)
        query_cut, heap_factor, _, sort_first, direct_postings = checked
        n_chunks = max(1, min(len(queries), numba.get_num_threads()))
        if n_chunks == 1:
            return search_seismic_segments_serial(queries.indptr, queries.indices, queries.values, k, query_cut,
                                                  heap_factor, sort_first, direct_postings, *self._seismic_args[:-1],
                                                  *self._seismic_scratch())
        return search_seismic_segments(queries.indptr, queries.indices, queries.values, k, query_cut, heap_factor,
                                       sort_first, direct_postings, *self._seismic_args, n_chunks)

    def _seismic_scratch(self) -> tuple:
        """This thread's scratch arrays for the serial Seismic kernel (it leaves them as it found them)."""
        scratch = getattr(self._scratch, "seismic", None)
        if scratch is None:
            blocked_words, max_blocks = self._seismic_args[-2], self._seismic_args[-1]
            # the one-call kernel runs only when every segment has the commit's vocabulary
            scratch = (np.zeros(self.vocab_size, np.float32), blocked_words.copy(),
                       np.empty(max(self.n_docs, 1), np.int32), np.zeros(max_blocks, np.float32),
                       np.zeros(max_blocks, np.float32), np.empty(max_blocks, np.int32),
                       np.empty(max_blocks, np.int64))
            self._scratch.seismic = scratch
        return scratch

    def documents(self) -> SparseVectors:
        """Document vectors of all segments by global number (deleted ones included), for PRF."""
        if self._documents is None:
            from tremor.index.segments import segment_vectors

            self._documents = SparseVectors.concat([segment_vectors(index).with_vocab_size(self.vocab_size)
                                                    for index in self.indexes])
        return self._documents

    def params(self) -> dict:
        return self.indexes[0].params() if self.indexes else {}


class SegmentedDocStore:
    """The document stores of a snapshot's segments behind the DocStore interface, by global number."""

    def __init__(self, stores: Sequence, offsets: np.ndarray) -> None:
        self.stores = list(stores)
        self.offsets = offsets
        self.count = int(offsets[-1])
        self._ids: list[str] | None = None
        self._lookup: dict[str, int] | None = None

    def __len__(self) -> int:
        return self.count

    def ids(self) -> list[str]:
        """External ids by global number (a deleted document keeps its id here until a merge drops it)."""
        if self._ids is None:
            ids: list[str] = []
            for store in self.stores:
                ids.extend(store.ids())
            self._ids = ids
        return self._ids

    def get(self, numbers: Sequence[int]) -> list[Document]:
        wanted = np.asarray([int(n) for n in numbers], dtype=np.int64)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= self.count):
            raise IndexFormatError(f"document numbers {wanted.tolist()[:5]} outside this index ({self.count})")
        segment = np.searchsorted(self.offsets, wanted, side="right") - 1
        out: list[Document | None] = [None] * len(wanted)
        for s in np.unique(segment).tolist():
            positions = np.flatnonzero(segment == s)
            found = self.stores[s].get((wanted[positions] - self.offsets[s]).tolist())
            for position, doc in zip(positions.tolist(), found, strict=True):
                out[position] = doc
        return out  # type: ignore[return-value]

    def number_of(self, doc_ids) -> list[int]:
        if self._lookup is None:
            self._lookup = {d: i for i, d in enumerate(self.ids())}
        return [self._lookup[d] for d in doc_ids]

    def close(self) -> None:
        for store in self.stores:
            store.close()


def open_live(path: str | Path, mmap: bool = True, verify: bool = False) -> tuple:
    """(SegmentedIndex, encoder or None, SegmentedDocStore, manifest-like dict) of the newest commit in ``path``.

    A commit whose files vanish while it is opened (a writer committed again and removed them) is retried on the
    newer commit."""
    path = Path(path)
    last_error: Exception | None = None
    for attempt in range(OPEN_RETRIES):
        commit = current_commit(path)
        try:
            return _open_commit(path, commit, mmap, verify)
        except (IndexFormatError, FileNotFoundError) as exc:
            last_error = exc
            if current_commit(path)["generation"] == commit["generation"]:
                raise  # nothing newer: the commit itself is damaged
            time.sleep(0.001 * attempt)
    raise TremorError(f"{path}: could not open a stable commit after {OPEN_RETRIES} tries ({last_error})")


def _open_commit(path: Path, commit: dict, mmap: bool, verify: bool) -> tuple:
    indexes, deleted, stores = [], [], []
    try:
        for segment in commit["segments"]:
            index, _, store, flags = open_segment(path, segment, mmap=mmap, verify=verify)
            if store is None:
                raise IndexFormatError(f"{path / segment['path']}: segment without a document store")
            indexes.append(index)
            deleted.append(flags)
            stores.append(store)
        encoder = load_saved_encoder(path / commit["encoder"]) if commit.get("encoder") else None
    except BaseException:
        for store in stores:
            store.close()
        raise
    vocab_size = commit.get("vocab_size") or (encoder.vocab_size if encoder is not None else 0)
    vocab_id = commit.get("vocab_id") or (encoder.vocab_id if encoder is not None else None)
    index = SegmentedIndex(indexes, deleted, commit["index_type"], vocab_size, vocab_id)
    docstore = SegmentedDocStore(stores, index.offsets)
    manifest = {"format": commit["format"], "format_version": commit["format_version"],
                "generation": commit["generation"], "index_type": commit["index_type"], "params": commit["params"],
                "vocab_size": vocab_size, "vocab_id": vocab_id, "arrays": {},
                "segments": [{k: s[k] for k in ("name", "documents", "deleted")} for s in commit["segments"]],
                "counts": {"documents": index.n_live, "numbered": index.n_docs, "segments": index.n_segments}}
    return index, encoder, docstore, manifest
