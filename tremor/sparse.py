"""SparseVectors: a batch of sparse vectors over a vocabulary, stored as CSR arrays.

This is the one representation at every boundary of tremor: encoders produce it, indexes consume it, fusion and
pseudo-relevance feedback work on it. Rows are vectors; column ids index the encoder's vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse as sp

from tremor.errors import TremorError, VocabularyMismatchError


@numba.njit(cache=True, nogil=True)
def _first_invalid_row(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, vocab_size: int) -> tuple:
    """Return (row, reason) of the first row breaking the CSR invariants, or (-1, 0). Reasons: 1 unsorted or duplicate
    indices, 2 index out of range, 3 value negative or not finite."""
    n = indptr.shape[0] - 1
    for row in range(n):
        start = indptr[row]
        end = indptr[row + 1]
        previous = -1
        for p in range(start, end):
            col = indices[p]
            if col < 0 or col >= vocab_size:
                return row, 2
            if col <= previous:
                return row, 1
            previous = col
            v = values[p]
            if not np.isfinite(v) or v < 0:
                return row, 3
    return -1, 0


@numba.njit(cache=True, nogil=True)
def _top_k_rows(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, k: int,
                threshold: float) -> tuple:
    """Keep, per row, the k largest values above `threshold` (ties broken by smaller index); indices stay sorted."""
    n = indptr.shape[0] - 1
    new_indptr = np.zeros(n + 1, dtype=np.int64)
    keep = np.zeros(values.shape[0], dtype=np.bool_)
    for row in range(n):
        start = indptr[row]
        end = indptr[row + 1]
        length = end - start
        row_values = values[start:end]
        if length <= k:
            count = 0
            for p in range(start, end):
                if values[p] > threshold:
                    keep[p] = True
                    count += 1
            new_indptr[row + 1] = new_indptr[row] + count
            continue
        # argsort by (-value, index): stable sort on -value keeps index order among ties
        order = np.argsort(-row_values, kind="mergesort")
        count = 0
        for j in range(k):
            p = start + order[j]
            if values[p] > threshold:
                keep[p] = True
                count += 1
        new_indptr[row + 1] = new_indptr[row] + count
    return new_indptr, keep


@numba.njit(cache=True, nogil=True)
def _merge_coo(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n_rows: int, reduce_max: bool) -> tuple:
    """Turn (row, col, value) triples, sorted by (row, col), into CSR, combining duplicates by sum or max."""
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    out_cols = np.empty(cols.shape[0], dtype=np.int32)
    out_vals = np.empty(vals.shape[0], dtype=np.float32)
    m = -1
    last_row = -1
    last_col = -1
    for p in range(rows.shape[0]):
        r = rows[p]
        c = cols[p]
        if r == last_row and c == last_col:
            if reduce_max:
                if vals[p] > out_vals[m]:
                    out_vals[m] = vals[p]
            else:
                out_vals[m] += vals[p]
        else:
            m += 1
            out_cols[m] = c
            out_vals[m] = vals[p]
            indptr[r + 1] += 1
            last_row = r
            last_col = c
    for r in range(n_rows):
        indptr[r + 1] += indptr[r]
    return indptr, out_cols[: m + 1], out_vals[: m + 1]


@dataclass(frozen=True, eq=False)
class SparseVectors:
    """A batch of sparse vectors in CSR form.

    indptr (int64, n+1), indices (int32, sorted and unique within a row), values (float32, finite, >= 0), the
    vocabulary size, and an optional vocabulary identity (``"<encoder>:<vocab hash>"``) that indexes check queries
    against.
    """

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    vocab_size: int
    vocab_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "indptr", np.ascontiguousarray(self.indptr, dtype=np.int64))
        object.__setattr__(self, "indices", np.ascontiguousarray(self.indices, dtype=np.int32))
        object.__setattr__(self, "values", np.ascontiguousarray(self.values, dtype=np.float32))
        object.__setattr__(self, "vocab_size", int(self.vocab_size))
        if self.indptr.ndim != 1 or self.indptr.shape[0] < 1 or self.indptr[0] != 0:
            raise TremorError("SparseVectors: indptr must be a 1-d array starting at 0")
        if self.indices.shape != self.values.shape or self.indices.ndim != 1:
            raise TremorError("SparseVectors: indices and values must be 1-d arrays of the same length")
        if int(self.indptr[-1]) != self.indices.shape[0] or np.any(np.diff(self.indptr) < 0):
            raise TremorError("SparseVectors: indptr must be non-decreasing and end at len(indices)")
        if self.vocab_size <= 0:
            raise TremorError("SparseVectors: vocab_size must be positive")
        row, reason = _first_invalid_row(self.indptr, self.indices, self.values, self.vocab_size)
        if row >= 0:
            what = {1: "indices not sorted or not unique", 2: f"index outside vocabulary of size {self.vocab_size}",
                    3: "value negative or not finite"}[reason]
            raise TremorError(f"SparseVectors: row {row}: {what}")

    # ----------------------------------------------------------------------------------------------------- basics
    def __len__(self) -> int:
        return self.indptr.shape[0] - 1

    @property
    def nnz(self) -> int:
        """Number of stored non-zeros over all rows."""
        return int(self.indices.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return len(self), self.vocab_size

    def row_nnz(self) -> np.ndarray:
        """Non-zeros per row."""
        return np.diff(self.indptr)

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(indices, values) of row i, as views."""
        start, end = self.indptr[i], self.indptr[i + 1]
        return self.indices[start:end], self.values[start:end]

    def __getitem__(self, item: int | slice | Sequence[int] | np.ndarray) -> SparseVectors:
        """Select rows (always returns SparseVectors, a single row as a batch of one)."""
        if isinstance(item, (int, np.integer)):
            i = int(item)
            if i < 0:
                i += len(self)
            if not 0 <= i < len(self):
                raise IndexError(f"row {item} out of range for {len(self)} vectors")
            item = [i]
        if isinstance(item, slice):
            start, stop, step = item.indices(len(self))
            if step == 1:
                lo, hi = self.indptr[start], self.indptr[max(stop, start)]
                return SparseVectors(self.indptr[start:max(stop, start) + 1] - lo, self.indices[lo:hi],
                                     self.values[lo:hi], self.vocab_size, self.vocab_id)
            item = np.arange(start, stop, step)
        rows = np.asarray(item, dtype=np.int64)
        csr = self.to_scipy()[rows]
        return SparseVectors.from_scipy(csr, vocab_id=self.vocab_id)

    def with_vocab_id(self, vocab_id: str | None) -> SparseVectors:
        """The same vectors (arrays shared, not copied or checked again) under another vocabulary identity."""
        return SparseVectors.trusted(self.indptr, self.indices, self.values, self.vocab_size, vocab_id)

    def with_vocab_size(self, vocab_size: int) -> SparseVectors:
        """The same vectors over a larger vocabulary (one whose first ids are this one's, as a live BM25 vocabulary
        grows), or over a smaller one with the entries at ids it lacks dropped (they match nothing there)."""
        vocab_size = int(vocab_size)
        if vocab_size >= self.vocab_size or not self.nnz or int(self.indices.max()) < vocab_size:
            return SparseVectors.trusted(self.indptr, self.indices, self.values, vocab_size, self.vocab_id)
        keep = self.indices < vocab_size
        kept_before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
        return SparseVectors.trusted(kept_before[self.indptr], self.indices[keep], self.values[keep], vocab_size,
                                     self.vocab_id)

    @classmethod
    def trusted(cls, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, vocab_size: int,
                vocab_id: str | None = None) -> SparseVectors:
        """Wrap arrays that already hold every invariant, with the exact dtypes (int64, int32, float32), without
        checking them: for hot paths that build valid vectors by construction (one query at a time). Anything
        else should use the checking constructor."""
        out = object.__new__(cls)
        for name, value in (("indptr", indptr), ("indices", indices), ("values", values),
                            ("vocab_size", int(vocab_size)), ("vocab_id", vocab_id)):
            object.__setattr__(out, name, value)
        return out

    def check_vocab(self, expected: str | None) -> None:
        """Raise VocabularyMismatchError when both sides name a vocabulary and they differ."""
        if expected is not None and self.vocab_id is not None and expected != self.vocab_id:
            raise VocabularyMismatchError(
                f"vectors use vocabulary '{self.vocab_id}' but the index was built with '{expected}'; "
                "encode queries with the index's own encoder")

    # ------------------------------------------------------------------------------------------------ conversion
    @classmethod
    def empty(cls, n: int, vocab_size: int, vocab_id: str | None = None) -> SparseVectors:
        """n all-zero vectors."""
        return cls(np.zeros(n + 1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), vocab_size, vocab_id)

    @classmethod
    def from_coo(cls, rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int, vocab_size: int,
                 vocab_id: str | None = None, reduce: str = "sum") -> SparseVectors:
        """Build from unordered (row, col, value) triples; duplicates are combined by ``reduce`` ("sum" or "max")
        and explicit zeros are dropped."""
        if reduce not in ("sum", "max"):
            raise ValueError("reduce must be 'sum' or 'max'")
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int32)
        values = np.asarray(values, dtype=np.float32)
        if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
            raise TremorError(f"SparseVectors.from_coo: row ids must lie in [0, {n_rows})")
        order = np.lexsort((cols, rows))
        indptr, indices, vals = _merge_coo(rows[order], cols[order], values[order], n_rows, reduce == "max")
        out = cls(indptr, indices, vals, vocab_size, vocab_id)
        return out.prune(threshold=0.0) if np.any(vals == 0) else out

    @classmethod
    def from_dicts(cls, rows: Iterable[Mapping[int | str, float]], vocab_size: int | None = None,
                   vocab: Mapping[str, int] | None = None, vocab_id: str | None = None) -> SparseVectors:
        """Build from one {token id or token: weight} mapping per vector. String keys need ``vocab``; unknown
        tokens raise. Zero weights are dropped."""
        row_ids: list[int] = []
        col_ids: list[int] = []
        weights: list[float] = []
        n = 0
        for n, mapping in enumerate(rows, start=1):
            for key, weight in mapping.items():
                if isinstance(key, str):
                    if vocab is None:
                        raise TremorError("SparseVectors.from_dicts: string tokens need a vocab mapping")
                    if key not in vocab:
                        raise TremorError(f"SparseVectors.from_dicts: token '{key}' (vector {n - 1}) not in vocab")
                    key = vocab[key]
                row_ids.append(n - 1)
                col_ids.append(int(key))
                weights.append(float(weight))
        if vocab_size is None:
            if vocab is not None:
                vocab_size = max(vocab.values()) + 1
            else:
                vocab_size = max(col_ids) + 1 if col_ids else 1
        if col_ids and (min(col_ids) < 0 or max(col_ids) >= vocab_size):
            raise TremorError(f"SparseVectors.from_dicts: token id outside vocabulary of size {vocab_size}")
        return cls.from_coo(np.array(row_ids, np.int64), np.array(col_ids, np.int32),
                            np.array(weights, np.float32), n, vocab_size, vocab_id)

    def to_dicts(self, vocab: Sequence[str] | None = None) -> list[dict[int | str, float]]:
        """One {token id (or token, given the id-to-token list) : weight} dict per vector."""
        out: list[dict[int | str, float]] = []
        for i in range(len(self)):
            idx, val = self.row(i)
            if vocab is None:
                out.append(dict(zip(idx.tolist(), val.tolist(), strict=True)))
            else:
                out.append({vocab[j]: v for j, v in zip(idx.tolist(), val.tolist(), strict=True)})
        return out

    @classmethod
    def from_scipy(cls, matrix: sp.spmatrix | sp.sparray, vocab_id: str | None = None) -> SparseVectors:
        """Build from any scipy sparse matrix (rows = vectors); duplicates are summed, explicit zeros dropped."""
        csr = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
        csr.sum_duplicates()
        csr.eliminate_zeros()
        csr.sort_indices()
        return cls(csr.indptr.astype(np.int64), csr.indices.astype(np.int32), csr.data, csr.shape[1], vocab_id)

    def to_scipy(self) -> sp.csr_matrix:
        """A scipy CSR matrix sharing nothing with this object."""
        return sp.csr_matrix((self.values.copy(), self.indices.copy(), self.indptr.copy()), shape=self.shape)

    def to_dense(self) -> np.ndarray:
        return self.to_scipy().toarray()

    @classmethod
    def concat(cls, parts: Sequence[SparseVectors]) -> SparseVectors:
        """Stack batches over the same vocabulary."""
        if not parts:
            raise TremorError("SparseVectors.concat: nothing to concatenate")
        sizes = {p.vocab_size for p in parts}
        ids = {p.vocab_id for p in parts}
        if len(sizes) != 1 or len(ids) != 1:
            raise VocabularyMismatchError("SparseVectors.concat: batches use different vocabularies")
        offsets = np.cumsum([0] + [p.nnz for p in parts[:-1]])
        indptr = np.concatenate([np.zeros(1, np.int64)] + [p.indptr[1:] + o for p, o in zip(parts, offsets,
                                                                                            strict=True)])
        return cls(indptr, np.concatenate([p.indices for p in parts]), np.concatenate([p.values for p in parts]),
                   parts[0].vocab_size, parts[0].vocab_id)

    # --------------------------------------------------------------------------------------------------- pruning
    def prune(self, k: int | None = None, threshold: float = 0.0) -> SparseVectors:
        """Keep at most the k largest weights per vector (all if k is None), and only weights > threshold."""
        kk = np.iinfo(np.int64).max if k is None else int(k)
        if kk < 0:
            raise ValueError("k must be >= 0")
        indptr, keep = _top_k_rows(self.indptr, self.indices, self.values, kk, float(threshold))
        return SparseVectors(indptr, self.indices[keep], self.values[keep], self.vocab_size, self.vocab_id)

    def top_k(self, k: int) -> SparseVectors:
        """Keep the k largest weights of each vector (ties to the smaller token id)."""
        return self.prune(k=k, threshold=0.0)

    # ------------------------------------------------------------------------------------------------ arithmetic
    def dot(self, other: SparseVectors) -> np.ndarray:
        """Dense matrix of inner products, self @ other.T (for tests and small batches)."""
        if other.vocab_size != self.vocab_size:
            raise VocabularyMismatchError("dot: vocabulary sizes differ")
        return (self.to_scipy() @ other.to_scipy().T).toarray()

    def scale(self, factor: float) -> SparseVectors:
        if factor < 0:
            raise ValueError("factor must be >= 0")
        return SparseVectors(self.indptr, self.indices, self.values * np.float32(factor), self.vocab_size,
                             self.vocab_id)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseVectors):
            return NotImplemented
        return (self.vocab_size == other.vocab_size and np.array_equal(self.indptr, other.indptr)
                and np.array_equal(self.indices, other.indices) and np.array_equal(self.values, other.values))

    def __repr__(self) -> str:
        return (f"SparseVectors(n={len(self)}, vocab_size={self.vocab_size}, nnz={self.nnz}, "
                f"vocab_id={self.vocab_id!r})")
