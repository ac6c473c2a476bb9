"""Seconds per training step of a splade-tiny student, before planning runs: one batch of 4 queries x 8 documents
(scifact texts), forward with the training-time pooling, backward, AdamW step; bf16 autocast and fp32; documents cut
at 128 and 256 tokens.

    nice -n 15 python scripts/measure_train_step.py     # writes results/training/splade-tiny/step_seconds.json
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

import tremor
from tremor.encoders.training.student import SparseStudent, load_mlm_backbone
from tremor.models import model_path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir"
OUT = Path(__file__).resolve().parents[1] / "results" / "training" / "splade-tiny"


def main(steps: int = 6) -> None:
    rng = random.Random(0)
    docs = [d.full_text for d in tremor.read_documents(DATA / "scifact")][:400]
    model, tokenizer, _ = load_mlm_backbone(model_path("splade-tiny"))
    idf = np.ones(model.config.vocab_size, np.float32)
    results = []
    for kind in ("inference_free", "splade"):
        for length in (128, 256):
            for bf16 in (True, False):
                student = SparseStudent(model, tokenizer, kind, idf if kind == "inference_free" else None, 64, length)
                optimizer = torch.optim.AdamW(student.parameters(), 1e-5)
                seconds = []
                for _ in range(steps):
                    started = time.perf_counter()
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        documents = student.document_representations(rng.sample(docs, 32))
                        queries = student.query_representations(["vitamin d and bone density in older adults"] * 4)
                        loss = (queries @ documents.T).mean() + 1e-3 * (documents.mean(0) ** 2).sum()
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    seconds.append(time.perf_counter() - started)
                row = {"kind": kind, "document_max_length": length, "bf16": bf16, "queries": 4, "documents": 32,
                       "threads": torch.get_num_threads(), "median_seconds": float(np.median(seconds[1:]))}
                results.append(row)
                print(json.dumps(row), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "step_seconds.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
