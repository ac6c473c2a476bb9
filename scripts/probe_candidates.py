"""How the untrained splade-tiny students rank the judged positive among its BM25 hard negatives, per collection, and
the cross-entropy of the positive at several softmax temperatures (chance: log 8 = 2.079). A loss above chance is
lowered by shrinking every score towards uniform, which a sparse model does by dropping terms.

    python scripts/probe_candidates.py          # results/training/splade-tiny/candidate_probe.json
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_sparse as ts

from tremor.encoders.training.data import load_corpus, load_examples

TEMPERATURES = (1, 2, 3, 5, 10)


def main() -> None:
    ts.use_backbone("splade-tiny")
    torch.set_num_threads(1)
    examples = load_examples(ts.OUT / "examples.jsonl")
    corpus = {}
    for name in ts.DATASETS:
        corpus.update(load_corpus(ts.DATA / name))
    results = {"examples_per_collection": 96, "chance_cross_entropy": math.log(8), "students": {}}
    for kind in ("splade", "inference_free"):
        student = ts.make_student(kind, 128, "splade-tiny")
        student.eval()
        results["students"][kind] = {}
        for source in ts.DATASETS:
            sample = random.Random(1).sample([e for e in examples if e.source.startswith(source)], 96)
            scores = []
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                for start in range(0, len(sample), 8):
                    batch = sample[start:start + 8]
                    q = student.query_representations([e.query for e in batch]).float()
                    d = student.document_representations([corpus[c].full_text for e in batch for c in e.candidates])
                    scores.append(torch.einsum("qv,qcv->qc", q, d.float().view(len(batch), 8, -1)))
            s = torch.cat(scores)
            rank = (s > s[:, :1]).sum(1).float() + 1
            zeros = torch.zeros(len(s), dtype=torch.long)
            row = {"positive_first": float((rank == 1).float().mean()), "mean_positive_rank": float(rank.mean()),
                   "score_std_within_query": float(s.std(1).mean()),
                   "cross_entropy": {str(t): float(torch.nn.functional.cross_entropy(s / t, zeros))
                                     for t in TEMPERATURES}}
            results["students"][kind][source] = row
            print(kind, source, json.dumps(row), flush=True)
    (ts.OUT / "candidate_probe.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
