import math

import pytest
import torch

from tremor.encoders.training.ensemble import ensemble_teacher, normalize_per_query
from tremor.encoders.training.losses import (
    candidate_cross_entropy,
    flops,
    idf_flops,
    in_batch_contrastive,
    kl_distillation,
    margin_mse,
    quadratic_warmup,
)

REPS = torch.tensor([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])


def test_flops_on_hand_made_batch():
    # batch means [2, 0, 1] -> 4 + 0 + 1
    assert flops(REPS).item() == pytest.approx(5.0)


def test_idf_flops_on_hand_made_batch():
    idf = torch.tensor([1.0, 2.0, 4.0])
    # means / idf = [2, 0, 0.25] -> 4 + 0.0625
    assert idf_flops(REPS, idf).item() == pytest.approx(4.0625)
    with pytest.raises(ValueError, match="positive"):
        idf_flops(REPS, torch.tensor([1.0, 0.0, 1.0]))


def test_idf_flops_gradient_scales_with_inverse_idf():
    """Same model weights d for two terms with idf 1 and 4: the gradient on each term's score contribution
    c = idf·d is (2/B)·mean(d)/idf, so it is 4x larger for the low-IDF term; plain FLOPS does the opposite."""
    idf = torch.tensor([1.0, 4.0])
    weights = torch.tensor([[0.5, 0.5], [1.5, 1.5]])  # B = 2, mean d = 1 for both terms
    contributions = (weights * idf).requires_grad_(True)
    idf_flops(contributions, idf).backward()
    grad = contributions.grad[0]
    assert grad[0].item() == pytest.approx(2 / 2 * 1.0 / 1.0)
    assert grad[1].item() == pytest.approx(2 / 2 * 1.0 / 4.0)
    assert (grad[0] / grad[1]).item() == pytest.approx(4.0)
    plain = (weights * idf).requires_grad_(True)
    flops(plain).backward()
    assert (plain.grad[0, 0] / plain.grad[0, 1]).item() == pytest.approx(1 / 4)


def test_quadratic_warmup():
    assert quadratic_warmup(0, 100, 0.5) == 0.0
    assert quadratic_warmup(50, 100, 0.5) == pytest.approx(0.125)
    assert quadratic_warmup(100, 100, 0.5) == 0.5 and quadratic_warmup(500, 100, 0.5) == 0.5
    assert quadratic_warmup(3, 0, 0.5) == 0.5


def test_in_batch_contrastive_by_hand():
    queries = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    docs = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]])  # two positives + one extra negative
    # scores: q0 -> [2, 1, 0] (target 0); q1 -> [0, 1, 3] (target 1)
    expected = (-(2 - math.log(math.exp(2) + math.exp(1) + 1)) - (1 - math.log(1 + math.exp(1) + math.exp(3)))) / 2
    assert in_batch_contrastive(queries, docs).item() == pytest.approx(expected, rel=1e-6)


def test_candidate_cross_entropy_by_hand():
    scores = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 3.0]])  # the positive is column 0 of each row
    expected = (-(2 - math.log(math.exp(2) + math.exp(1) + 1)) - (0 - math.log(1 + math.exp(1) + math.exp(3)))) / 2
    assert candidate_cross_entropy(scores).item() == pytest.approx(expected, rel=1e-6)
    # temperature divides the scores: T = 2 on these scores equals T = 1 on half of them
    assert candidate_cross_entropy(scores, 2.0).item() == pytest.approx(candidate_cross_entropy(scores / 2).item())
    # the gradient raises the positive and lowers the negatives, in proportion to their softmax mass
    grad_scores = scores.clone().requires_grad_(True)
    candidate_cross_entropy(grad_scores).backward()
    assert (grad_scores.grad[:, 0] < 0).all() and (grad_scores.grad[:, 1:] > 0).all()
    assert grad_scores.grad.sum().item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="negative"):
        candidate_cross_entropy(torch.tensor([[1.0], [2.0]]))


def test_margin_mse_and_kl_by_hand():
    loss = margin_mse(torch.tensor([3.0, 1.0]), torch.tensor([1.0, 1.0]), torch.tensor([4.0, 2.0]),
                      torch.tensor([1.0, 0.0]))
    # margins student [2, 0], teacher [3, 2] -> ((1)^2 + (2)^2) / 2
    assert loss.item() == pytest.approx(2.5)
    same = torch.tensor([[1.0, 2.0, 3.0]])
    assert kl_distillation(same, same).item() == pytest.approx(0.0, abs=1e-7)
    student, teacher = torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]])
    # teacher p = [3/4, 1/4], student q = [1/2, 1/2]
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert kl_distillation(student, teacher).item() == pytest.approx(expected, rel=1e-6)


def test_per_query_normalization_and_ensemble():
    scores = torch.tensor([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0]])
    assert torch.allclose(normalize_per_query(scores, "minmax"), torch.tensor([[0.0, 1.0, 0.5], [0.0, 0.0, 0.0]]))
    z = normalize_per_query(scores, "zscore")
    assert torch.allclose(z[0], torch.tensor([-1.0, 1.0, 0.0]) * math.sqrt(1.5), atol=1e-6)
    assert torch.all(z[1] == 0)
    dense = torch.tensor([[0.2, 0.4, 0.9]])   # cosine-like scale
    sparse = torch.tensor([[30.0, 10.0, 20.0]])  # BM25-like scale
    combined = ensemble_teacher([dense, sparse], weights=[0.5, 0.5], method="minmax", scale=2.0)
    # dense minmax [0, 2/7, 1], sparse minmax [1, 0, 0.5]
    assert torch.allclose(combined, 2.0 * 0.5 * torch.tensor([[1.0, 2 / 7, 1.5]]), atol=1e-6)
    with pytest.raises(ValueError, match="same candidates"):
        ensemble_teacher([dense, torch.zeros(1, 4)])
