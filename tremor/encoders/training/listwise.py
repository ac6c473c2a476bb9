"""Document training with the query-term table's objective: each training query's judged documents against its whole
collection, for inference-free students whose query side (a weight table) is fixed.

The loss of a query q is the listwise cross-entropy -Σ_j t_j · log softmax_j(scale · s(q, ·)) over all N documents
of q's collection, t spread over q's judged documents in proportion to their grades (what
``query_weights.fit_query_weights`` minimises over the table). Re-encoding the collection every step is out of
reach, so the scores come from two places: a cache of every document's vectors under the model at the start of the
pass (no gradient), and, for a small pool per query — a few of its judged documents and hard negatives from the top
of its cached ranking — the live model's vectors (with gradient), which replace those documents' cached scores. The
partition function thus still covers the whole collection, and the gradient reaches the documents that matter most.
The cache goes stale as the model moves; a new pass re-encodes it (``ListwiseCollection.refresh``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from tremor.encoders.training.losses import flops, idf_flops, quadratic_warmup
from tremor.encoders.training.trainer import TrainableSparseModel, TrainConfig, Trainer
from tremor.errors import TremorError


@dataclass
class ListwiseCollection:
    """One collection: its documents' texts (row order), their cached [N, V] weights under the current model, and the
    training queries (token ids, as the inference-free query side looks them up) with their judged rows."""

    name: str
    texts: list[str]
    documents: sp.csr_matrix
    queries: list[np.ndarray]
    judged: list[dict[int, float]]
    weight: float = 1.0  # relative sampling weight of this collection's steps

    def __post_init__(self) -> None:
        if len(self.queries) != len(self.judged):
            raise TremorError(f"{self.name}: {len(self.queries)} queries but {len(self.judged)} judgement lists")
        if self.documents.shape[0] != len(self.texts):
            raise TremorError(f"{self.name}: {self.documents.shape[0]} cached vectors for {len(self.texts)} texts")
        keep = [i for i, j in enumerate(self.judged) if any(g > 0 for g in j.values())]
        self.queries = [self.queries[i] for i in keep]
        self.judged = [{r: float(g) for r, g in self.judged[i].items() if g > 0} for i in keep]
        if not self.queries:
            raise TremorError(f"{self.name}: no training query has a judged document")
        self.documents = sp.csr_matrix(self.documents, dtype=np.float32)
        self.cached_scores: np.ndarray | None = None
        self.hard: list[np.ndarray] = []

    def refresh(self, table: np.ndarray, depth: int, documents: sp.csr_matrix | None = None) -> None:
        """Score every training query against the cached vectors (``documents`` replaces them first) under the
        weight table, and keep each query's top-``depth`` unjudged rows as its hard negatives."""
        if documents is not None:
            self.documents = sp.csr_matrix(documents, dtype=np.float32)
        rows = np.repeat(np.arange(len(self.queries)), [q.size for q in self.queries])
        cols = np.concatenate(self.queries) if self.queries else np.zeros(0, np.int64)
        matrix = sp.csr_matrix((table[cols].astype(np.float32), (rows, cols)),
                               shape=(len(self.queries), self.documents.shape[1]))
        self.cached_scores = (matrix @ self.documents.T).toarray().astype(np.float32)
        self.hard = []
        for i, judged in enumerate(self.judged):
            order = np.argsort(-self.cached_scores[i], kind="stable")
            self.hard.append(np.array([r for r in order[:depth + len(judged)] if r not in judged][:depth],
                                      dtype=np.int64))


@dataclass
class ListwiseConfig:
    """The pool each query's live scores come from, and the softmax scale (the table fit's learned scale)."""

    positives: int = 2  # judged documents per query encoded live (sampled by grade)
    negatives: int = 6  # hard negatives per query encoded live (sampled from the top ``depth``)
    random: int = 4  # other documents of the collection per query encoded live (sampled uniformly)
    depth: int = 50
    scale: float = 0.25
    estimator: str = "sampled"  # "sampled": importance-weighted strata; "mixed": plain cross-entropy over live+cache
    dropout: bool = False  # keep the backbone's dropout; off by default, so live scores match the cached ones


def query_matrix(table: torch.Tensor, queries: Sequence[np.ndarray]) -> torch.Tensor:
    """[B, V] query vectors: the table's weight at each query token."""
    out = torch.zeros(len(queries), table.shape[0], device=table.device)
    for row, ids in enumerate(queries):
        if ids.size:
            index = torch.as_tensor(ids, device=table.device)
            out[row, index] = table[index]
    return out


class ListwiseTrainer(Trainer):
    """``Trainer``'s loop, checkpoints and snapshots, with the listwise collection loss in place of the candidate
    losses. A step draws one collection (by ``weight``), ``queries_per_batch`` of its queries, and encodes their
    pools live."""

    def __init__(self, model: TrainableSparseModel, collections: Sequence[ListwiseCollection], config: TrainConfig,
                 listwise: ListwiseConfig, out_dir: str | Path) -> None:
        if model.query_idf is None:
            raise TremorError("listwise document training needs an inference-free student (a query weight table)")
        if not collections:
            raise TremorError("no training collections")
        if listwise.estimator not in ("sampled", "mixed"):
            raise TremorError(f"unknown estimator '{listwise.estimator}' (sampled, mixed)")
        self._prepare(model, config, out_dir)
        self.collections = list(collections)
        self.listwise = listwise
        if not listwise.dropout:  # the cache was encoded without dropout; live vectors are compared with it
            for module in model.modules():
                if isinstance(module, torch.nn.Dropout):
                    module.p = 0.0
        table = model.query_idf.detach().cpu().numpy()
        for collection in self.collections:
            if collection.cached_scores is None:
                collection.refresh(table, listwise.depth)

    def _batch(self, step: int) -> tuple[ListwiseCollection, list[int], list[int], list[list[tuple[int, float]]]]:
        """(collection, query rows, document rows to encode live, per query its own pool as (position in the live
        rows, importance weight): the judged, hard-negative and remaining documents are three strata, each sampled
        uniformly, and a sample's weight is its stratum's size over the samples drawn from it)."""
        rng = random.Random(self.config.seed * 1_000_003 + step)
        lw = self.listwise
        collection = rng.choices(self.collections, weights=[c.weight for c in self.collections])[0]
        n_docs = len(collection.texts)
        rows = rng.sample(range(len(collection.queries)), min(self.config.queries_per_batch,
                                                               len(collection.queries)))
        live: list[int] = []
        pools: list[list[tuple[int, float]]] = []
        for row in rows:
            judged = list(collection.judged[row])
            hard = collection.hard[row].tolist()
            taken = set(judged) | set(hard)
            rest = n_docs - len(taken)
            strata = [(rng.sample(judged, min(lw.positives, len(judged))), len(judged)),
                      (rng.sample(hard, min(lw.negatives, len(hard))), len(hard))]
            randoms: list[int] = []
            while len(randoms) < min(lw.random, rest):
                r = rng.randrange(n_docs)
                if r not in taken and r not in randoms:
                    randoms.append(r)
            strata.append((randoms, rest))
            pool = []
            for picked, size in strata:
                for r in picked:
                    if r not in live:
                        live.append(r)
                    pool.append((live.index(r), size / len(picked)))
            pools.append(pool)
        return collection, rows, live, pools

    def _losses(self, batch, step: int) -> dict[str, torch.Tensor]:
        collection, rows, live, pools = batch
        c = self.config
        idf = self.model.query_idf
        scale = self.listwise.scale
        documents = self.model.document_representations([collection.texts[r] for r in live])  # [M, V]
        queries = query_matrix(idf, [collection.queries[r] for r in rows])  # [B, V]
        live_scores = queries @ documents.float().T  # [B, M]
        live_index = torch.as_tensor(live, device=live_scores.device)
        scores = torch.as_tensor(collection.cached_scores[rows], device=live_scores.device)
        scores = scores.index_copy(1, live_index, live_scores)
        target = torch.zeros_like(scores)
        for i, row in enumerate(rows):
            judged = collection.judged[row]
            target[i, list(judged)] = torch.tensor(list(judged.values()), device=scores.device)
        target = target / target.sum(1, keepdim=True)
        log_p = torch.log_softmax(scale * scores, dim=1)
        ranking = -(target * log_p).sum(1).mean()
        if self.listwise.estimator == "mixed":  # the cross-entropy itself: gradient only from the live documents
            out = {"rank": ranking}
        else:
            # d(loss)/d(score_j) = scale · (p_j - t_j) / B for every document j of the collection; each stratum's
            # samples stand for the whole stratum, so this surrogate's gradient is an unbiased estimate of the
            # whole-collection gradient through the model (its value is 0; "rank" logs the cross-entropy)
            with torch.no_grad():
                residual = (torch.exp(log_p) - target)[:, live_index]  # [B, M]
                coefficient = torch.zeros_like(residual)
                for i, pool in enumerate(pools):
                    for position, weight in pool:
                        coefficient[i, position] += weight * residual[i, position]
            surrogate = scale * (coefficient * (live_scores - live_scores.detach())).sum() / len(rows)
            out = {"rank": ranking.detach(), "surrogate": surrogate}
        contributions = documents.float() * idf
        out["doc_reg"] = idf_flops(contributions, idf) if c.regularizer == "idf_flops" else flops(contributions)
        out["doc_reg"] = quadratic_warmup(step, c.reg_warmup_steps, c.doc_reg_weight) * out["doc_reg"]
        out["doc_nnz"] = (documents > 0).float().sum(-1).mean().detach()
        return out
