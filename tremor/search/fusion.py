"""Fusing two ranked lists per query: score interpolation with per-query normalization, and reciprocal rank fusion.

A ranked list is the pair every index returns: scores float32 [n, k] and internal document numbers int64 [n, k],
best first, padded with (-inf, -1). Interpolation scores a document α·s₁ + (1−α)·s₂ after normalizing each list per
query (min-max or z-score); a document missing from one list gets that list's floor, its lowest normalized score (the
hybrid scheme of Li et al., "To Interpolate or not to Interpolate: PRF, Dense and Sparse Retrievers", SIGIR 2022,
which takes the missing side's minimum). Raw interpolation (no normalization) is available but mostly follows the
side with the larger scale. Reciprocal rank fusion scores Σ 1/(rrf_k + rank) (Cormack, Clarke & Büttcher, SIGIR
2009). The merge runs in a Numba kernel, one query per thread.
"""

from __future__ import annotations

import numba
import numpy as np

from tremor.errors import QueryError
from tremor.index.topk import heap_drain_sorted, heap_push

NORMALIZATIONS = ("minmax", "zscore", "raw")
FUSION_METHODS = ("minmax", "zscore", "rrf", "raw")
# A list with no spread (one hit, or all scores equal) puts its documents one unit above its floor.
_FLAT_GAP = 1.0


def _as_arrays(ranked: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    scores, numbers = ranked
    scores = np.asarray(scores, dtype=np.float64)
    numbers = np.asarray(numbers, dtype=np.int64)
    if scores.shape != numbers.shape or scores.ndim != 2:
        raise QueryError(f"a ranked list is two [n, k] arrays of the same shape (got {scores.shape} and "
                         f"{numbers.shape})")
    return scores, numbers


def normalize_scores(scores: np.ndarray, numbers: np.ndarray, method: str = "minmax") -> tuple[np.ndarray, np.ndarray]:
    """Per-query normalized scores (float64 [n, k], 0 at padding) and each query's floor (float64 [n]), the score a
    document absent from the list receives.

    minmax: (s − min)/(max − min), floor 0. zscore: (s − mean)/std, floor the lowest z. raw: scores unchanged, floor
    the lowest score. A list with one hit or all-equal scores has no spread: its documents get 1 (minmax) or 0
    (zscore, raw: the score itself) and the floor lies one unit below. An empty list has floor 0.
    """
    if method not in NORMALIZATIONS:
        raise QueryError(f"unknown normalization '{method}' (known: {', '.join(NORMALIZATIONS)})")
    scores, numbers = _as_arrays((scores, numbers))
    valid = numbers >= 0
    count = valid.sum(axis=1)
    has_any = count > 0
    low = np.where(has_any, np.where(valid, scores, np.inf).min(axis=1, initial=np.inf), 0.0)
    high = np.where(has_any, np.where(valid, scores, -np.inf).max(axis=1, initial=-np.inf), 0.0)
    present = np.where(valid, scores, 0.0)
    mean = present.sum(axis=1) / np.maximum(count, 1)
    std = np.sqrt((np.where(valid, present - mean[:, None], 0.0) ** 2).sum(axis=1) / np.maximum(count, 1))
    spread = high - low
    flat = spread <= 0
    if method == "minmax":
        out = np.where(flat[:, None], 1.0, (present - low[:, None]) / np.where(flat, 1.0, spread)[:, None])
        floor = np.zeros(len(scores))
    elif method == "zscore":
        out = np.where(flat[:, None], 0.0, (present - mean[:, None]) / np.where(flat, 1.0, std)[:, None])
        floor = np.where(flat, -_FLAT_GAP, (low - mean) / np.where(flat, 1.0, std))
    else:
        out = present
        floor = np.where(flat, low - _FLAT_GAP, low)
    out = np.where(valid, out, 0.0)
    floor = np.where(has_any, floor, 0.0)
    return out, floor


def reciprocal_ranks(numbers: np.ndarray, rrf_k: float = 60.0) -> np.ndarray:
    """1/(rrf_k + rank) for each listed document (rank 1 = first), 0 at padding."""
    numbers = np.asarray(numbers, dtype=np.int64)
    if rrf_k < 0:
        raise QueryError(f"rrf_k must be >= 0 (got {rrf_k})")
    valid = numbers >= 0
    ranks = np.cumsum(valid, axis=1)
    return np.where(valid, 1.0 / (rrf_k + ranks), 0.0)


@numba.njit(cache=True, nogil=True, parallel=True)
def _combine(a_values: np.ndarray, a_numbers: np.ndarray, a_floor: np.ndarray, b_values: np.ndarray,
             b_numbers: np.ndarray, b_floor: np.ndarray, weight_a: float, weight_b: float, k: int) -> tuple:
    """Per query, the top k of weight_a·a + weight_b·b over the union of both lists (a missing side counts its
    floor); ties rank the smaller document number first."""
    n = a_values.shape[0]
    out_scores = np.full((n, k), -np.inf, dtype=np.float64)
    out_numbers = np.full((n, k), -1, dtype=np.int64)
    width = a_values.shape[1] + b_values.shape[1]
    for q in numba.prange(n):
        docs = np.empty(width, dtype=np.int64)
        values = np.empty(width, dtype=np.float64)
        from_a = np.empty(width, dtype=np.bool_)
        m = 0
        for i in range(a_values.shape[1]):
            if a_numbers[q, i] >= 0:
                docs[m] = a_numbers[q, i]
                values[m] = a_values[q, i]
                from_a[m] = True
                m += 1
        for i in range(b_values.shape[1]):
            if b_numbers[q, i] >= 0:
                docs[m] = b_numbers[q, i]
                values[m] = b_values[q, i]
                from_a[m] = False
                m += 1
        order = np.argsort(docs[:m], kind="mergesort")
        heap_scores = np.empty(k, dtype=np.float64)
        heap_docs = np.empty(k, dtype=np.int64)
        size = 0
        j = 0
        while j < m:
            doc = docs[order[j]]
            score_a = a_floor[q]
            score_b = b_floor[q]
            while j < m and docs[order[j]] == doc:
                p = order[j]
                if from_a[p]:
                    score_a = values[p]
                else:
                    score_b = values[p]
                j += 1
            fused = weight_a * score_a + weight_b * score_b
            size = heap_push(heap_scores, heap_docs, size, k, fused, doc)
        heap_drain_sorted(heap_scores, heap_docs, size, out_scores[q], out_numbers[q])
    return out_scores, out_numbers


def _combined(a_values, a_numbers, a_floor, b_values, b_numbers, b_floor, weight_a, weight_b, k):
    scores, numbers = _combine(a_values, a_numbers, a_floor, b_values, b_numbers, b_floor, weight_a, weight_b, k)
    return scores.astype(np.float32), numbers


def _check_pair(a: tuple, b: tuple) -> tuple:
    a_scores, a_numbers = _as_arrays(a)
    b_scores, b_numbers = _as_arrays(b)
    if len(a_scores) != len(b_scores):
        raise QueryError(f"cannot fuse lists for {len(a_scores)} and {len(b_scores)} queries")
    return a_scores, a_numbers, b_scores, b_numbers


def _out_k(k: int | None, a_numbers: np.ndarray, b_numbers: np.ndarray) -> int:
    union = max(a_numbers.shape[1] + b_numbers.shape[1], 1)
    if k is None:
        return union
    if int(k) < 1:
        raise QueryError(f"k must be at least 1 (got {k})")
    return min(int(k), union)  # the union of both lists holds no more documents than that


def interpolate(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], alpha: float = 0.5,
                normalization: str = "minmax", k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """α·norm(a) + (1−α)·norm(b) per query over the union of both lists (Li et al., SIGIR 2022). ``a`` is the
    sparse side by convention. Returns (scores float32 [n, k], numbers int64 [n, k]); k defaults to the size of
    the union (both widths)."""
    if not 0.0 <= alpha <= 1.0:
        raise QueryError(f"alpha must lie in [0, 1] (got {alpha})")
    a_scores, a_numbers, b_scores, b_numbers = _check_pair(a, b)
    a_values, a_floor = normalize_scores(a_scores, a_numbers, normalization)
    b_values, b_floor = normalize_scores(b_scores, b_numbers, normalization)
    return _combined(a_values, a_numbers, a_floor, b_values, b_numbers, b_floor, float(alpha), 1.0 - float(alpha),
                    _out_k(k, a_numbers, b_numbers))


def reciprocal_rank_fusion(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray],
                           rrf_k: float = 60.0, weights: tuple[float, float] = (1.0, 1.0),
                           k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Σ wᵢ/(rrf_k + rankᵢ) over the lists a document appears in (Cormack et al., SIGIR 2009; rrf_k = 60 there)."""
    a_scores, a_numbers, _, b_numbers = _check_pair(a, b)
    zero = np.zeros(len(a_scores))
    return _combined(reciprocal_ranks(a_numbers, rrf_k), a_numbers, zero, reciprocal_ranks(b_numbers, rrf_k),
                    b_numbers, zero, float(weights[0]), float(weights[1]), _out_k(k, a_numbers, b_numbers))


def fuse(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], method: str = "minmax",
         alpha: float = 0.5, k: int | None = None, rrf_k: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """Fuse two ranked lists by ``method``: 'minmax', 'zscore' or 'raw' interpolation with weight ``alpha`` on
    ``a``, or 'rrf' (alpha unused)."""
    if method == "rrf":
        return reciprocal_rank_fusion(a, b, rrf_k=rrf_k, k=k)
    if method not in FUSION_METHODS:
        raise QueryError(f"unknown fusion method '{method}' (known: {', '.join(FUSION_METHODS)})")
    return interpolate(a, b, alpha=alpha, normalization=method, k=k)


# ------------------------------------------------------------------------------------------ more than two lists
@numba.njit(cache=True, nogil=True, parallel=True)
def _combine_many(values: np.ndarray, numbers: np.ndarray, floors: np.ndarray, weights: np.ndarray,
                  k: int) -> tuple:
    """Per query, the top k of Σ_l weights[l]·value_l over the union of m lists (values/numbers [m, n, width],
    floors [m, n]; a list a document is missing from counts its floor); ties rank the smaller document number
    first."""
    m, n, width = values.shape
    out_scores = np.full((n, k), -np.inf, dtype=np.float64)
    out_numbers = np.full((n, k), -1, dtype=np.int64)
    for q in numba.prange(n):
        docs = np.empty(m * width, dtype=np.int64)
        vals = np.empty(m * width, dtype=np.float64)
        source = np.empty(m * width, dtype=np.int64)
        count = 0
        for lst in range(m):
            for i in range(width):
                if numbers[lst, q, i] >= 0:
                    docs[count] = numbers[lst, q, i]
                    vals[count] = values[lst, q, i]
                    source[count] = lst
                    count += 1
        order = np.argsort(docs[:count], kind="mergesort")
        base = 0.0
        for lst in range(m):
            base += weights[lst] * floors[lst, q]
        heap_scores = np.empty(k, dtype=np.float64)
        heap_docs = np.empty(k, dtype=np.int64)
        size = 0
        j = 0
        while j < count:
            doc = docs[order[j]]
            fused = base
            while j < count and docs[order[j]] == doc:
                p = order[j]
                fused += weights[source[p]] * (vals[p] - floors[source[p], q])
                j += 1
            size = heap_push(heap_scores, heap_docs, size, k, fused, doc)
        heap_drain_sorted(heap_scores, heap_docs, size, out_scores[q], out_numbers[q])
    return out_scores, out_numbers


def fuse_many(lists: list[tuple[np.ndarray, np.ndarray]], method: str = "minmax",
              weights: list[float] | tuple[float, ...] | None = None, k: int | None = None,
              rrf_k: float = 60.0) -> tuple[np.ndarray, np.ndarray]:
    """Fuse any number of ranked lists over the same documents (e.g. SPLADE + dense + BM25): Σ wᵢ·norm(sᵢ) per
    query after 'minmax', 'zscore' or 'raw' normalization (a list missing a document counts its floor, as in
    ``interpolate``), or 'rrf' with Σ wᵢ/(rrf_k + rankᵢ). Weights default to equal shares summing to 1 (1 each for
    RRF). Two lists give what ``fuse`` gives with alpha = weights[0] (to float rounding)."""
    if len(lists) < 2:
        raise QueryError(f"fuse_many needs at least two ranked lists (got {len(lists)})")
    if method not in FUSION_METHODS:
        raise QueryError(f"unknown fusion method '{method}' (known: {', '.join(FUSION_METHODS)})")
    arrays = [_as_arrays(ranked) for ranked in lists]
    n = len(arrays[0][0])
    if any(len(scores) != n for scores, _ in arrays):
        raise QueryError(f"cannot fuse lists for {[len(scores) for scores, _ in arrays]} queries")
    if weights is None:
        weights = [1.0] * len(arrays) if method == "rrf" else [1.0 / len(arrays)] * len(arrays)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (len(arrays),) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise QueryError(f"give one weight >= 0 per list ({len(arrays)} lists, got {list(weights)})")
    width = max(max(numbers.shape[1] for _, numbers in arrays), 1)
    values = np.zeros((len(arrays), n, width))
    numbers_all = np.full((len(arrays), n, width), -1, dtype=np.int64)
    floors = np.zeros((len(arrays), n))
    for i, (scores, numbers) in enumerate(arrays):
        if method == "rrf":
            normalized, floor = reciprocal_ranks(numbers, rrf_k), np.zeros(n)
        else:
            normalized, floor = normalize_scores(scores, numbers, method)
        values[i, :, :numbers.shape[1]] = normalized
        numbers_all[i, :, :numbers.shape[1]] = numbers
        floors[i] = floor
    k = max(sum(numbers.shape[1] for _, numbers in arrays), 1) if k is None else int(k)
    if k < 1:
        raise QueryError(f"k must be at least 1 (got {k})")
    scores, numbers = _combine_many(values, numbers_all, floors, weights, k)
    return scores.astype(np.float32), numbers
