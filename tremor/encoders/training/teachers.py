"""Teacher scores for training examples: a sparse teacher (any tremor sparse encoder, e.g. the trained splade-tiny
model) scores each example's candidates by the dot product of its query and document vectors, and a weighted
ensemble of named teachers becomes the distillation target (each teacher min-max normalized per query first)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from tremor.corpus import Document
from tremor.encoders.training.data import Example
from tremor.encoders.training.ensemble import ensemble_teacher
from tremor.errors import TremorError
from tremor.sparse import SparseVectors


def candidate_scores(queries: SparseVectors, documents: SparseVectors, number_of: Mapping[str, int],
                     examples: Sequence[Example]) -> list[list[float]]:
    """For example i, the dot products of query vector i with the vectors of its candidates (positive first),
    looked up by document id in ``documents`` through ``number_of``."""
    if len(queries) != len(examples):
        raise TremorError(f"{len(queries)} query vectors for {len(examples)} examples")
    missing = sorted({d for e in examples for d in e.candidates if d not in number_of})
    if missing:
        raise TremorError(f"{len(missing)} candidate document(s) have no teacher vector (first: '{missing[0]}')")
    out = []
    for i, example in enumerate(examples):
        rows = documents[[number_of[d] for d in example.candidates]]
        out.append([float(x) for x in queries[i].dot(rows)[0]])
    return out


def sparse_teacher(examples: Sequence[Example], encoder, corpus: Mapping[str, Document],
                   documents: SparseVectors | None = None, number_of: Mapping[str, int] | None = None,
                   name: str = "splade") -> None:
    """Score every example's candidates with a sparse encoder and store them as ``example.teachers[name]``.

    Documents are encoded (title + text) unless ``documents`` (with ``number_of``: id -> row) already holds the
    encoder's vectors, for instance a ``tremor encode`` output of the whole corpus."""
    if documents is None:
        ids = sorted({d for e in examples for d in e.candidates})
        documents = encoder.encode_documents([corpus[d].full_text for d in ids])
        number_of = {doc_id: i for i, doc_id in enumerate(ids)}
    elif number_of is None:
        raise TremorError("precomputed teacher documents need their id -> row mapping")
    queries = encoder.encode_queries([e.query for e in examples])
    for example, scores in zip(examples, candidate_scores(queries, documents, number_of, examples), strict=True):
        example.teachers = {**(example.teachers or {}), name: scores}


def parse_weights(spec: str) -> dict[str, float]:
    """``dense=1,bm25=1,splade=0.5`` -> {"dense": 1.0, "bm25": 1.0, "splade": 0.5}."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, value = part.partition("=")
        try:
            weights[name.strip()] = float(value) if sep else 1.0
        except ValueError:
            raise TremorError(f"teacher weight '{part}' is not name=number") from None
    if not weights or any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
        raise TremorError(f"teacher weights '{spec}' need at least one positive weight and none negative")
    return weights


def weighted_target(example: Example, weights: Mapping[str, float], scale: float,
                    method: str = "minmax") -> list[float]:
    """The distillation target of one example: scale · Σ_k w_k · normalize(teacher_k), with the weights
    normalized to sum to 1, over the teachers named in ``weights`` (each must have scored the example)."""
    teachers = example.teachers or {}
    missing = [name for name in weights if name not in teachers]
    if missing:
        raise TremorError(f"example '{example.query[:40]}' has no scores from teacher(s) {missing} "
                          f"(it has {sorted(teachers)})")
    names = [name for name, w in weights.items() if w > 0]
    total = sum(weights[n] for n in names)
    combined = ensemble_teacher([torch.tensor([teachers[n]], dtype=torch.float32) for n in names],
                                [weights[n] / total for n in names], method=method, scale=scale)
    return combined[0].tolist()


def set_targets(examples: Sequence[Example], weights: Mapping[str, float], scale: float) -> None:
    """Recompute every example's ``teacher_scores`` from its stored per-teacher scores."""
    for example in examples:
        example.teacher_scores = weighted_target(example, weights, scale)


def teacher_agreement(examples: Sequence[Example], name: str) -> float:
    """Fraction of examples whose teacher ``name`` scores the judged positive above every negative (a cheap sanity
    figure for a teacher on the training candidates)."""
    hits = [int(np.argmax(e.teachers[name]) == 0) for e in examples if e.teachers and name in e.teachers]
    return float(np.mean(hits)) if hits else float("nan")
