"""Cross-checking two engines on the same integer-weighted vectors: equal top-k lists, ties aside.

With integer weights every score is an exact integer in float32 arithmetic (below 2**24), so two correct engines must
report the same top-k scores; they may only differ in which of several equally scored documents they keep or how
they order them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tremor.errors import TremorError
from tremor.sparse import SparseVectors

EXACT_INTEGER_LIMIT = 2**24  # float32 represents every integer up to here exactly


def quantize(vectors: SparseVectors, scale: float) -> SparseVectors:
    """Integer weights ``round(w * scale)`` (zeros dropped), the same on every engine given the same vectors."""
    if not scale > 0:
        raise TremorError(f"quantization scale must be positive (got {scale})")
    values = np.rint(vectors.values.astype(np.float64) * scale)
    if values.size and values.max() >= EXACT_INTEGER_LIMIT:
        raise TremorError(f"quantized weights reach {values.max():.0f}; choose a smaller scale")
    out = SparseVectors(vectors.indptr, vectors.indices, values.astype(np.float32), vectors.vocab_size,
                        vectors.vocab_id)
    return out.prune(threshold=0.0)


def exact_scores(docs: SparseVectors, queries: SparseVectors, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Inner products of (query row, document row) pairs, in float64 (exact for integer weights)."""
    out = np.zeros(len(pairs), dtype=np.float64)
    for n, (qi, di) in enumerate(pairs):
        q_idx, q_val = queries.row(qi)
        d_idx, d_val = docs.row(di)
        _, qa, da = np.intersect1d(q_idx, d_idx, assume_unique=True, return_indices=True)
        out[n] = float(np.dot(q_val[qa].astype(np.float64), d_val[da].astype(np.float64)))
    return out


@dataclass
class TopKAgreement:
    """How two engines' top-k lists compare over a query set.

    identical: same documents in the same order with the same scores. tie_equivalent: same score sequence, the same
    documents with the same scores above the k-th score, and every document either side kept at the k-th score
    truly has that score (so both are correct top-k lists). differing: query ids that are neither.
    """

    k: int
    queries: int
    identical: int = 0
    tie_equivalent: int = 0
    differing: list[str] = field(default_factory=list)
    max_score_difference: float = 0.0

    @property
    def agreeing(self) -> int:
        return self.identical + self.tie_equivalent

    def to_dict(self) -> dict:
        return {"k": self.k, "queries": self.queries, "identical": self.identical,
                "tie_equivalent": self.tie_equivalent, "agreeing": self.agreeing,
                "differing": len(self.differing), "differing_query_ids": self.differing[:20],
                "max_score_difference": self.max_score_difference}


def compare_top_k(query_ids: Sequence[str], first: Sequence[dict[str, float]], second: Sequence[dict[str, float]],
                  true_score, k: int = 10) -> TopKAgreement:
    """Compare two engines' ranked {doc id: score} lists per query, scores compared exactly.
    ``true_score(query index, doc ids)`` gives the exact scores of those documents, to confirm documents kept at
    the k-th score on either side."""
    if not len(query_ids) == len(first) == len(second):
        raise TremorError("compare_top_k: one result list per query id on each side")
    agreement = TopKAgreement(k=k, queries=len(query_ids))
    for qi, (qid, a, b) in enumerate(zip(query_ids, first, second, strict=True)):
        top_a = sorted(a.items(), key=lambda item: -item[1])[:k]
        top_b = sorted(b.items(), key=lambda item: -item[1])[:k]
        if len(top_a) != len(top_b):
            agreement.differing.append(qid)
            continue
        if not top_a:
            agreement.identical += 1
            continue
        scores_a = np.array([s for _, s in top_a])
        scores_b = np.array([s for _, s in top_b])
        gap = float(np.max(np.abs(scores_a - scores_b)))
        agreement.max_score_difference = max(agreement.max_score_difference, gap)
        if gap == 0.0 and [d for d, _ in top_a] == [d for d, _ in top_b]:
            agreement.identical += 1
            continue
        boundary = scores_a[-1]
        above_a = {d: s for d, s in top_a if s > boundary}
        above_b = {d: s for d, s in top_b if s > boundary}
        at_boundary = [d for d, s in top_a + top_b if s == boundary]
        if gap == 0.0 and above_a == above_b and np.all(true_score(qi, at_boundary) == boundary):
            agreement.tie_equivalent += 1
        else:
            agreement.differing.append(qid)
    return agreement
