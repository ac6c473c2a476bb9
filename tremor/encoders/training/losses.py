"""Training losses for sparse encoders: sparsity regularizers (FLOPS, IDF-aware FLOPS) and ranking losses.

Shapes: a batch of B sparse representations is a dense tensor [B, V] of non-negative term weights (the output of the
encoder before any top-k pruning). Scores are [Q, C] tensors: Q queries, C candidate documents each.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def flops(representations: torch.Tensor) -> torch.Tensor:
    """FLOPS regularizer (Paria et al., 2020; used by SPLADE): Σ_j (mean over the batch of |w_j|)².

    It approximates the expected number of floating-point operations of a sparse dot product, so it pushes down
    terms that are active in many vectors more than rare ones.
    """
    return (representations.abs().mean(dim=0) ** 2).sum()


def idf_flops(contributions: torch.Tensor, idf: torch.Tensor) -> torch.Tensor:
    """IDF-aware FLOPS for inference-free models (Geng et al., 2024, "Towards Competitive Search Relevance For
    Inference-Free Learned Sparse Retrievers"): Σ_t (mean_i c_it / idf_t)².

    Derivation. An inference-free model scores s(q, d) = Σ_{t∈q} idf_t · d_t: the query side is an IDF lookup, the
    document side the model's weight d_t. What a term adds to the score is its contribution c_t = idf_t · d_t, and
    that is the document representation the loss sees (``contributions``, [B, V]). Plain FLOPS on it,
    Σ_t (mean c_t)², has gradient ∂/∂c_it = (2/B)·mean_i c_it = (2/B)·idf_t·mean_i d_it: for equal model weights it
    pushes high-IDF (informative) terms down *harder*, which is what hurts relevance. The IDF-aware form applies the
    FLOPS penalty to the model weight d_t = c_t / idf_t instead:

        L = Σ_t (mean_i c_it / idf_t)²,   ∂L/∂c_it = (2/B)·mean_i c_it / idf_t² = (2/B)·mean_i d_it / idf_t.

    So for the same document weights, the pressure on a term's score contribution scales with 1/idf_t: a low-IDF term
    (frequent, uninformative) is penalised harder than a high-IDF one, and the model spends its sparsity budget on
    informative terms. ``idf`` is [V] and strictly positive.
    """
    if torch.any(idf <= 0):
        raise ValueError("idf_flops needs strictly positive IDF weights")
    return ((contributions.abs().mean(dim=0) / idf) ** 2).sum()


def quadratic_warmup(step: int, warmup_steps: int, final_weight: float) -> float:
    """Regularization weight after `step` steps: final_weight · min(1, (step / warmup_steps)²), as in SPLADE, so
    sparsity pressure starts at zero and grows while the ranking objective settles."""
    if warmup_steps <= 0:
        return final_weight
    return final_weight * min(1.0, (step / warmup_steps) ** 2)


def in_batch_contrastive(query_reps: torch.Tensor, doc_reps: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """InfoNCE with in-batch negatives: query i's positive is document i; every other document in ``doc_reps``
    (the other positives, and any extra hard negatives appended after the first Q rows) is a negative."""
    n_queries = query_reps.shape[0]
    if doc_reps.shape[0] < n_queries:
        raise ValueError("need at least one document (the positive) per query")
    scores = query_reps @ doc_reps.T / temperature
    return F.cross_entropy(scores, torch.arange(n_queries, device=scores.device))


def candidate_cross_entropy(scores: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Supervised contrastive loss over each query's own candidates ([Q, C] scores, the judged positive in column 0,
    hard negatives after it): cross-entropy of the positive under the softmax over the row. Unlike distillation it
    needs no teacher, so it still teaches where the teachers rank the positive low."""
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError("need [Q, C] scores with the positive and at least one negative per query")
    targets = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
    return F.cross_entropy(scores / temperature, targets)


def margin_mse(student_pos: torch.Tensor, student_neg: torch.Tensor, teacher_pos: torch.Tensor,
               teacher_neg: torch.Tensor) -> torch.Tensor:
    """MarginMSE (Hofstätter et al., 2020): the student's positive-negative score margin regresses the teacher's."""
    return F.mse_loss(student_pos - student_neg, teacher_pos - teacher_neg)


def kl_distillation(student_scores: torch.Tensor, teacher_scores: torch.Tensor,
                    temperature: float = 1.0) -> torch.Tensor:
    """KL(teacher ‖ student) between the softmax distributions over each query's candidates ([Q, C] scores); the
    student learns the teacher's whole ranking distribution, not just its top document."""
    teacher = F.softmax(teacher_scores / temperature, dim=-1)
    student_log = F.log_softmax(student_scores / temperature, dim=-1)
    return F.kl_div(student_log, teacher, reduction="batchmean")
