"""Heterogeneous ensemble teachers (Geng et al., 2024): scores from different retrievers (a dense model and BM25,
say) live on different scales, so each teacher's scores are normalized per query before they are combined into one
target distribution for distillation."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def normalize_per_query(scores: torch.Tensor, method: str = "minmax", eps: float = 1e-6) -> torch.Tensor:
    """Normalize each row of [Q, C] teacher scores: ``minmax`` maps a row to [0, 1], ``zscore`` to mean 0 / std 1.
    A row whose scores are all equal becomes all zeros (no preference), never NaN."""
    scores = torch.as_tensor(scores, dtype=torch.float32)
    if method == "minmax":
        low = scores.min(dim=-1, keepdim=True).values
        span = scores.max(dim=-1, keepdim=True).values - low
        return torch.where(span > eps, (scores - low) / span.clamp_min(eps), torch.zeros_like(scores))
    if method == "zscore":
        mean = scores.mean(dim=-1, keepdim=True)
        std = scores.std(dim=-1, keepdim=True, unbiased=False)
        return torch.where(std > eps, (scores - mean) / std.clamp_min(eps), torch.zeros_like(scores))
    raise ValueError(f"unknown normalization '{method}' (minmax or zscore)")


def ensemble_teacher(teacher_scores: Sequence[torch.Tensor], weights: Sequence[float] | None = None,
                     method: str = "minmax", scale: float = 1.0) -> torch.Tensor:
    """Combine several teachers' [Q, C] scores for the same candidates: scale · Σ_k w_k · normalize(scores_k).

    ``scale`` sets how peaked the softmax target is when the result feeds ``kl_distillation`` (normalized scores lie
    in [0, Σw] for min-max, so without it the target distribution would be nearly flat)."""
    if not teacher_scores:
        raise ValueError("ensemble_teacher needs at least one teacher")
    shapes = {tuple(torch.as_tensor(s).shape) for s in teacher_scores}
    if len(shapes) != 1:
        raise ValueError(f"teachers must score the same candidates (got shapes {sorted(shapes)})")
    weights = list(weights) if weights is not None else [1.0 / len(teacher_scores)] * len(teacher_scores)
    if len(weights) != len(teacher_scores):
        raise ValueError("one weight per teacher")
    combined = sum(w * normalize_per_query(s, method) for w, s in zip(weights, teacher_scores, strict=True))
    return scale * combined
