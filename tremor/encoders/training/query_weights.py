"""A learned query-term weight table for inference-free models: the query side stays a lookup (no model at query
time), but the weight of each token seen in training queries is fitted to judged relevance instead of fixed at IDF.

The document model is frozen: documents are encoded once (sparse [N, V]), and a query's score against every document
of its collection is s(q, d) = Σ_{t ∈ q} w_t · d_t. The weights are w_t = idf_t · exp(u_t) (always > 0), with u = 0
at the start (the IDF table) and u_t trainable only for tokens of the training queries; every other token keeps its
IDF weight exactly. The loss is a listwise cross-entropy over the whole collection, the target spread over each
query's judged documents in proportion to their relevance grades, plus ``l2`` · Σ_t u_t² (a pull towards the IDF
table, against overfitting the tokens of a few training queries). A global score scale is learned alongside (the
ranking does not depend on it, so it is not part of the table). The result is written as the model directory's
``idf.json``, which every loader of inference-free models already reads.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from tremor.encoders.inference_free import IDF_FILE, write_idf_json
from tremor.errors import TremorError
from tremor.index.storage import atomic_directory, replaceable_if


def query_token_ids(tokenizer, texts: Sequence[str], max_length: int = 64) -> list[np.ndarray]:
    """The distinct non-special token ids of each query, as the inference-free query side looks them up."""
    special = set(tokenizer.all_special_ids)
    encoded = tokenizer(list(texts), add_special_tokens=False, truncation=True, max_length=max_length,
                        return_attention_mask=False, return_token_type_ids=False)["input_ids"]
    return [np.array(sorted(set(ids) - special), dtype=np.int64) for ids in encoded]


@dataclass
class QueryCollection:
    """One collection's training (or dev) data: its documents' frozen vectors and judged queries.

    ``documents``: CSR [N, V] document term weights; ``queries``: token ids per query (``query_token_ids``);
    ``judged``: per query, {document row: relevance grade > 0}."""

    documents: sp.csr_matrix
    queries: list[np.ndarray]
    judged: list[dict[int, float]]

    def __post_init__(self) -> None:
        if len(self.queries) != len(self.judged):
            raise TremorError(f"{len(self.queries)} queries but {len(self.judged)} judgement lists")
        self.documents = sp.csr_matrix(self.documents, dtype=np.float32)


@dataclass
class QueryWeightConfig:
    """Hyper-parameters of ``fit_query_weights``."""

    epochs: int = 20
    queries_per_batch: int = 32
    learning_rate: float = 0.02
    l2: float = 1e-3  # weight of Σ_t u_t², u_t = log(w_t / idf_t)
    initial_scale: float = 1.0  # starting score scale of the softmax (learned)
    seed: int = 0


@dataclass
class FitResult:
    table: np.ndarray  # the best table (by ``evaluate``, else the last)
    best_epoch: int
    history: list[dict] = field(default_factory=list)


class QueryTermWeights(torch.nn.Module):
    """w_t = idf_t · exp(u_t) for the trainable token ids, idf_t for the rest."""

    def __init__(self, idf: np.ndarray, trainable: np.ndarray, initial_scale: float = 1.0) -> None:
        super().__init__()
        idf = np.asarray(idf, dtype=np.float32)
        if idf.ndim != 1 or not np.all(np.isfinite(idf)) or np.any(idf < 0):
            raise TremorError("the IDF table must be a finite vector of weights >= 0")
        self.register_buffer("idf", torch.from_numpy(idf.copy()))
        self.register_buffer("trainable", torch.as_tensor(np.unique(trainable), dtype=torch.long))
        self.log_ratio = torch.nn.Parameter(torch.zeros(self.trainable.shape[0]))
        self.log_scale = torch.nn.Parameter(torch.tensor(float(np.log(initial_scale))))

    def weights(self) -> torch.Tensor:
        """[V] query-term weights (with gradient through the trainable entries)."""
        moved = self.idf[self.trainable] * torch.exp(self.log_ratio)
        return self.idf.index_put((self.trainable,), moved)

    def table(self) -> np.ndarray:
        """The weight table as float32 numpy (for ``write_idf_json``)."""
        with torch.no_grad():
            return self.weights().cpu().numpy().astype(np.float32)


class _Prepared:
    """A collection's dense document columns for the tokens its queries use, and padded query token rows."""

    def __init__(self, collection: QueryCollection) -> None:
        self.columns = np.unique(np.concatenate([q for q in collection.queries if q.size] or [np.zeros(0, np.int64)]))
        position = {int(t): i for i, t in enumerate(self.columns)}
        dense = collection.documents[:, self.columns].T.toarray() if self.columns.size else \
            np.zeros((0, collection.documents.shape[0]), np.float32)
        # [C + 1, N]: the last row is zeros, the padding target of short queries
        self.doc_columns = torch.from_numpy(np.vstack([dense, np.zeros((1, dense.shape[1]), np.float32)]))
        width = max((q.size for q in collection.queries), default=0)
        self.slots = torch.full((len(collection.queries), max(width, 1)), self.columns.size, dtype=torch.long)
        self.token_ids = torch.zeros_like(self.slots)
        for i, q in enumerate(collection.queries):
            self.slots[i, :q.size] = torch.tensor([position[int(t)] for t in q], dtype=torch.long)
            self.token_ids[i, :q.size] = torch.from_numpy(q)
        self.valid = self.slots < self.columns.size
        n_docs = dense.shape[1]
        self.target = torch.zeros(len(collection.queries), n_docs)
        for i, judged in enumerate(collection.judged):
            for row, grade in judged.items():
                self.target[i, row] = float(grade)
        sums = self.target.sum(1, keepdim=True)
        self.usable = (sums[:, 0] > 0).nonzero(as_tuple=True)[0]  # queries with at least one judged document
        self.target = self.target / sums.clamp_min(1e-12)

    def scores(self, weights: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """[B, N] scores of the queries ``rows`` under the [V] weights."""
        w = weights[self.token_ids[rows]] * self.valid[rows]  # [B, L]
        return torch.einsum("bl,bln->bn", w, self.doc_columns[self.slots[rows]])


def fit_query_weights(idf: np.ndarray, collections: Sequence[QueryCollection],
                      config: QueryWeightConfig | None = None,
                      evaluate: Callable[[np.ndarray], float] | None = None,
                      progress: Callable[[dict], None] | None = None) -> FitResult:
    """Fit the weights of the training queries' tokens (documents frozen). After every epoch ``evaluate(table)``
    (a dev score, higher is better) is recorded, and the best epoch's table is returned (epoch 0: the IDF table)."""
    config = config or QueryWeightConfig()
    prepared = [_Prepared(c) for c in collections]
    trainable = np.unique(np.concatenate([p.columns for p in prepared])) if prepared else np.zeros(0, np.int64)
    if trainable.size == 0:
        raise TremorError("no training query has a token to weight")
    module = QueryTermWeights(idf, trainable, config.initial_scale)
    optimizer = torch.optim.Adam(module.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict] = []
    best_table, best_epoch, best_score = module.table(), 0, None
    if evaluate is not None:
        best_score = evaluate(best_table)
        history.append({"epoch": 0, "dev": best_score})
        if progress:
            progress(history[-1])
    for epoch in range(1, config.epochs + 1):
        batches = [(k, rows) for k, p in enumerate(prepared)
                   for rows in p.usable[torch.randperm(p.usable.shape[0], generator=generator)]
                   .split(config.queries_per_batch)]
        order = torch.randperm(len(batches), generator=generator).tolist()
        losses = []
        for index in order:
            k, rows = batches[index]
            p = prepared[k]
            scores = p.scores(module.weights(), rows) * torch.exp(module.log_scale)
            ranking = -(p.target[rows] * torch.log_softmax(scores, dim=1)).sum(1).mean()
            loss = ranking + config.l2 * (module.log_ratio ** 2).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(float(ranking.detach()))
        record = {"epoch": epoch, "loss": float(np.mean(losses)), "scale": float(torch.exp(module.log_scale.detach())),
                  "mean_abs_log_ratio": float(module.log_ratio.detach().abs().mean())}
        if evaluate is not None:
            record["dev"] = evaluate(module.table())
            if record["dev"] > best_score:
                best_table, best_epoch, best_score = module.table(), epoch, record["dev"]
        else:
            best_table, best_epoch = module.table(), epoch
        history.append(record)
        if progress:
            progress(record)
    return FitResult(best_table, best_epoch, history)


def save_with_query_table(model_dir: str | Path, table: np.ndarray, out: str | Path) -> Path:
    """A copy of the inference-free model directory ``model_dir`` at ``out`` whose ``idf.json`` holds ``table``,
    written as every tremor directory is (``atomic_directory``: a temporary folder swapped in whole). An existing
    ``out`` is replaced only when it is an inference-free model directory too (it holds an ``idf.json``)."""
    from transformers import AutoTokenizer

    model_dir, out = Path(model_dir), Path(out)
    if not (model_dir / IDF_FILE).is_file():
        raise TremorError(f"{model_dir}: not an inference-free model directory (no {IDF_FILE})")
    table = np.asarray(table, dtype=np.float32)
    if not np.all(np.isfinite(table)) or np.any(table < 0):
        raise TremorError("query-term weights must be finite and >= 0")
    with atomic_directory(out, overwrite=True, replaceable=replaceable_if(IDF_FILE)) as tmp:
        shutil.copytree(model_dir, tmp, dirs_exist_ok=True)
        write_idf_json(tmp / IDF_FILE, table, AutoTokenizer.from_pretrained(str(model_dir)))
    return out
