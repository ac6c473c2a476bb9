"""A trainer for sparse encoders that runs the same code on CPU (small scale) and GPU: distillation from teacher
scores, optional in-batch negatives, FLOPS or IDF-aware FLOPS with quadratic warm-up, checkpoints and resumption.

The student is any ``TrainableSparseModel``: a torch module that maps texts to dense [B, V] term-weight tensors with
gradients, and saves itself as a model directory the encoders can load.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from tremor.corpus import Document
from tremor.encoders.training.data import Example
from tremor.encoders.training.losses import (
    candidate_cross_entropy,
    flops,
    idf_flops,
    in_batch_contrastive,
    kl_distillation,
    margin_mse,
    quadratic_warmup,
)
from tremor.errors import TremorError


class TrainableSparseModel(Protocol):
    """What the trainer needs from a student model."""

    query_idf: torch.Tensor | None  # [V] for inference-free students (queries are an IDF lookup), else None

    def query_representations(self, texts: Sequence[str]) -> torch.Tensor: ...

    def document_representations(self, texts: Sequence[str]) -> torch.Tensor: ...

    def parameters(self): ...

    def train(self, mode: bool = True): ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict): ...

    def save_model(self, directory: Path) -> None: ...


@dataclass
class TrainConfig:
    """Training hyper-parameters. ``regularizer`` is "flops" or "idf_flops" (inference-free students only)."""

    steps: int = 200
    queries_per_batch: int = 4
    learning_rate: float = 3e-5
    lr_warmup_steps: int = 20
    loss: str = "kl"  # kl | margin_mse | contrastive
    in_batch_weight: float = 0.0  # extra in-batch-negatives contrastive term
    contrastive_weight: float = 0.0  # extra cross-entropy of the judged positive over its candidates (with kl)
    contrastive_temperature: float = 0.0  # temperature of that extra term (0: ``temperature``)
    contrastive_sources: tuple[str, ...] = ()  # only examples whose source starts with one of these (empty: all)
    temperature: float = 1.0
    regularizer: str = "flops"
    doc_reg_weight: float = 1e-3
    query_reg_weight: float = 1e-3
    reg_warmup_steps: int = 100
    checkpoint_every: int = 50
    snapshot_every: int = 0  # also save a loadable model directory every N steps (snapshots/step-N), 0: never
    seed: int = 0
    device: str = "auto"
    bf16: bool = True  # autocast to bfloat16 (CPUs with AMX/AVX-512 bf16, recent GPUs)


@dataclass
class TrainState:
    step: int = 0
    history: list[dict] = field(default_factory=list)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Trainer:
    """Distil teacher scores into a sparse student; checkpoints under ``out_dir/checkpoint`` and resumes from them."""

    def __init__(self, model: TrainableSparseModel, examples: Sequence[Example], corpus: dict[str, Document],
                 config: TrainConfig, out_dir: str | Path) -> None:
        if not examples:
            raise TremorError("no training examples")
        if config.loss in ("kl", "margin_mse") and any(e.teacher_scores is None for e in examples):
            raise TremorError(f"loss '{config.loss}' needs teacher scores on every example; score them first")
        if config.contrastive_weight > 0 and config.loss == "contrastive":
            raise TremorError("contrastive_weight adds a contrastive term to a distillation loss (kl, margin_mse); "
                              "with loss 'contrastive' it is already the ranking loss")
        if config.regularizer == "idf_flops" and model.query_idf is None:
            raise TremorError("idf_flops applies to inference-free students (a model with a query IDF table)")
        self._prepare(model, config, out_dir)
        self.examples = list(examples)
        self.corpus = corpus

    def _prepare(self, model: TrainableSparseModel, config: TrainConfig, out_dir: str | Path) -> None:
        """What every trainer holds: the model, its configuration (regularizer checked), output directory, device,
        optimizer over the trainable parameters and a fresh training state."""
        if config.regularizer not in ("flops", "idf_flops"):
            raise TremorError(f"unknown regularizer '{config.regularizer}'")
        self.model = model
        self.config = config
        self.out_dir = Path(out_dir)
        self.device = resolve_device(config.device)
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                           lr=config.learning_rate)
        self.state = TrainState()

    # ------------------------------------------------------------------------------------------- checkpoints
    @property
    def checkpoint_dir(self) -> Path:
        return self.out_dir / "checkpoint"

    def save_checkpoint(self) -> None:
        """Model, optimizer, RNG states and history, written to a temp folder then renamed."""
        tmp = self.out_dir / "checkpoint.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "torch_rng": torch.get_rng_state(), "python_rng": random.getstate(),
                    "numpy_rng": np.random.get_state()}, tmp / "state.pt")
        (tmp / "progress.json").write_text(json.dumps({"step": self.state.step, "history": self.state.history,
                                                       "config": asdict(self.config)}))
        old = self.out_dir / "checkpoint.old"
        if self.checkpoint_dir.exists():
            self.checkpoint_dir.rename(old)
        tmp.rename(self.checkpoint_dir)
        shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self) -> bool:
        """Resume from ``out_dir/checkpoint`` if there is one; returns whether it did."""
        if not (self.checkpoint_dir / "state.pt").is_file():
            return False
        saved = torch.load(self.checkpoint_dir / "state.pt", weights_only=False)
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["torch_rng"])
        random.setstate(saved["python_rng"])
        np.random.set_state(saved["numpy_rng"])
        progress = json.loads((self.checkpoint_dir / "progress.json").read_text())
        self.state = TrainState(progress["step"], progress["history"])
        return True

    # ------------------------------------------------------------------------------------------------ steps
    def _learning_rate(self, step: int) -> float:
        """Linear warm-up then linear decay to zero at the last step."""
        c = self.config
        if step < c.lr_warmup_steps:
            return c.learning_rate * (step + 1) / c.lr_warmup_steps
        remaining = max(c.steps - step, 0) / max(c.steps - c.lr_warmup_steps, 1)
        return c.learning_rate * remaining

    def _batch(self, step: int) -> list[Example]:
        rng = random.Random(self.config.seed * 1_000_003 + step)
        return rng.sample(self.examples, min(self.config.queries_per_batch, len(self.examples)))

    def _losses(self, batch: list[Example], step: int) -> dict[str, torch.Tensor]:
        c = self.config
        n_queries, n_candidates = len(batch), len(batch[0].candidates)
        doc_texts = [e.document_text(self.corpus[d]) for e in batch for d in e.candidates]
        queries = self.model.query_representations([e.query for e in batch])  # [Q, V]
        documents = self.model.document_representations(doc_texts)  # [Q*C, V]
        per_query = documents.view(n_queries, n_candidates, -1)
        scores = torch.einsum("qv,qcv->qc", queries, per_query)
        out: dict[str, torch.Tensor] = {}
        if c.loss == "kl":
            teacher = torch.tensor([e.teacher_scores for e in batch], dtype=scores.dtype, device=scores.device)
            out["rank"] = kl_distillation(scores, teacher, c.temperature)
        elif c.loss == "margin_mse":
            teacher = torch.tensor([e.teacher_scores for e in batch], dtype=scores.dtype, device=scores.device)
            positives = scores[:, :1].expand(-1, n_candidates - 1)
            teacher_pos = teacher[:, :1].expand(-1, n_candidates - 1)
            out["rank"] = margin_mse(positives, scores[:, 1:], teacher_pos, teacher[:, 1:])
        elif c.loss == "contrastive":
            out["rank"] = candidate_cross_entropy(scores, c.temperature)
        else:
            raise TremorError(f"unknown loss '{c.loss}'")
        if c.contrastive_weight > 0:
            rows = [i for i, e in enumerate(batch)
                    if not c.contrastive_sources or e.source.startswith(tuple(c.contrastive_sources))]
            if rows:  # a batch without such examples adds nothing
                picked = scores[torch.tensor(rows, device=scores.device)]
                out["contrastive"] = c.contrastive_weight * candidate_cross_entropy(
                    picked, c.contrastive_temperature or c.temperature) * len(rows) / n_queries
            else:
                out["contrastive"] = scores.new_zeros(())
        if c.in_batch_weight > 0:
            positives_first = torch.cat([per_query[:, 0], per_query[:, 1:].reshape(-1, per_query.shape[-1])])
            out["in_batch"] = c.in_batch_weight * in_batch_contrastive(queries, positives_first, c.temperature)
        idf = self.model.query_idf
        if idf is not None:
            contributions = documents * idf  # what each term adds to the score
            out["doc_reg"] = idf_flops(contributions, idf) if c.regularizer == "idf_flops" else flops(contributions)
        else:
            out["doc_reg"] = flops(documents)
            out["query_reg"] = flops(queries)
        out["doc_reg"] = quadratic_warmup(step, c.reg_warmup_steps, c.doc_reg_weight) * out["doc_reg"]
        if "query_reg" in out:
            out["query_reg"] = quadratic_warmup(step, c.reg_warmup_steps, c.query_reg_weight) * out["query_reg"]
        out["doc_nnz"] = (documents > 0).float().sum(-1).mean().detach()
        return out

    def train(self, resume: bool = True, progress: bool = True) -> TrainState:
        """Run until ``config.steps``; with ``resume``, continue from the last checkpoint in ``out_dir``."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self.load_checkpoint()
        self.model.train()
        c = self.config
        use_bf16 = c.bf16 and (self.device.type == "cuda" or self.device.type == "cpu")
        bar = tqdm(total=c.steps, initial=self.state.step, desc="training", unit="step", disable=not progress)
        while self.state.step < c.steps:
            step = self.state.step
            started = time.perf_counter()
            for group in self.optimizer.param_groups:
                group["lr"] = self._learning_rate(step)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                parts = self._losses(self._batch(step), step)
            loss = sum(v for k, v in parts.items() if k != "doc_nnz")
            if not torch.isfinite(loss):
                raise TremorError(f"training diverged at step {step} (loss {loss.item()})")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.optimizer.step()
            record = {"step": step + 1, "loss": float(loss.detach()),
                      "seconds": round(time.perf_counter() - started, 3), "lr": self._learning_rate(step),
                      **{k: float(v.detach()) for k, v in parts.items()}}
            self.state.history.append(record)
            self.state.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.3f}", nnz=f"{record['doc_nnz']:.0f}")
            if self.state.step % c.checkpoint_every == 0 or self.state.step == c.steps:
                self.save_checkpoint()
            if c.snapshot_every and self.state.step % c.snapshot_every == 0:
                self.save_model(self.out_dir / "snapshots" / f"step-{self.state.step}")
        bar.close()
        with open(self.out_dir / "history.jsonl", "w", encoding="utf-8") as handle:
            for record in self.state.history:
                handle.write(json.dumps(record) + "\n")
        return self.state

    def save_model(self, target: Path | None = None) -> Path:
        """Write the model as a loadable model directory, ``out_dir/model`` unless ``target`` (atomically)."""
        target = Path(target) if target is not None else self.out_dir / "model"
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        was_training = self.model.training
        self.model.save_model(tmp)
        self.model.train(was_training)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        return target


def smoothed(history: Sequence[dict], key: str = "loss", window: int = 20) -> list[float]:
    """Moving average of a logged quantity (for learning curves)."""
    values = [h[key] for h in history]
    return [float(np.mean(values[max(0, i - window + 1): i + 1])) for i in range(len(values))]

