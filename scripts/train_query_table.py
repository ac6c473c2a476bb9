"""Learn the query-term weight table of an inference-free model with its document model frozen, and select on dev.

    python scripts/train_query_table.py encode --base results/training/splade-tiny/if-ce-titles/model --name if-qw
    python scripts/train_query_table.py fit --base results/training/splade-tiny/if-ce-titles/model --name if-qw \
        --l2 1e-3,1e-2 --epochs 20
    python scripts/train_sparse.py evaluate --backbone splade-tiny --name if-qw      # BEIR test, as for the others

``encode`` writes the base model's document vectors of both corpora (``tremor encode``, the model's own 256 tokens:
what the test index holds) under results/training/splade-tiny/<name>/vectors. ``fit`` trains the weights of the
tokens of the training queries (nfcorpus train, scifact train less the 150 held-out queries of ``--holdout-scifact``)
for each setting of the grid (``tremor.encoders.training.query_weights``), scores every epoch on the dev sets (nfcorpus
dev and the held-out scifact train queries, over the same document vectors, exact top 1,000), and writes the
best (setting, epoch) by the mean of the two as <name>/model: the base directory with that table as its idf.json.
Test queries are never read. See BENCHMARKS.md, "Third round".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_sparse import DATA, DATASETS, RESULTS, scifact_holdout

import tremor
from tremor.encoders.inference_free import IDF_FILE, read_idf_json
from tremor.encoders.training.query_weights import (
    QueryCollection,
    QueryWeightConfig,
    fit_query_weights,
    query_token_ids,
    save_with_query_table,
)
from tremor.encoders.vector_files import read_vectors

OUT = RESULTS / "splade-tiny"


def encode(args: argparse.Namespace) -> None:
    """Document vectors of both corpora under the base model, through `tremor encode`'s functions."""
    from tremor.encoders.neural import load_encoder
    from tremor.encoders.vector_files import write_vectors

    torch.set_num_threads(args.threads)
    encoder = load_encoder(args.base, device="cpu")
    for name in DATASETS:
        target = OUT / args.name / "vectors" / f"{name}-docs"
        if target.exists():
            continue
        documents = list(tremor.read_documents(DATA / name))
        started = time.perf_counter()
        vectors = encoder.encode_documents([d.full_text for d in documents], progress=True)
        write_vectors(target, vectors, [d.id for d in documents], {"side": "document", "encoder": encoder.config()})
        print(f"{name}: {len(documents)} documents in {time.perf_counter() - started:.0f}s", flush=True)


def collection(name: str, split: str, tokenizer, only: set[str] | None = None, drop: set[str] = frozenset(),
               vectors: tuple | None = None) -> tuple[QueryCollection, list[str], list[str]]:
    """(training data, query ids, document ids) of one split's judged queries over the frozen document vectors."""
    ids, docs = vectors
    row_of = {d: i for i, d in enumerate(ids)}
    qrels = tremor.read_qrels(DATA / name, split)
    keep = [q for q in sorted(qrels) if (only is None or q in only) and q not in drop]
    texts = {q.id: q.text for q in tremor.read_queries(DATA / name, ids=set(keep))}
    keep = [q for q in keep if q in texts]
    judged = [{row_of[d]: float(g) for d, g in qrels[q].items() if g > 0 and d in row_of} for q in keep]
    matrix = docs.to_scipy()
    return QueryCollection(matrix, query_token_ids(tokenizer, [texts[q] for q in keep]), judged), keep, ids


def dev_ndcg(table: np.ndarray, data: QueryCollection, query_ids: list[str], doc_ids: list[str],
             qrels: dict) -> float:
    """nDCG@10 (exact, top 1,000, a document with the query's id removed) of the table's queries."""
    import ir_measures
    from ir_measures import nDCG

    rows = np.repeat(np.arange(len(data.queries)), [q.size for q in data.queries])
    cols = np.concatenate(data.queries)
    queries = sp.csr_matrix((table[cols], (rows, cols)), shape=(len(data.queries), data.documents.shape[1]))
    scores = (queries @ data.documents.T).toarray()
    run = {}
    for q, row in zip(query_ids, scores, strict=True):
        top = np.argpartition(-row, 1000)[:1001] if row.size > 1001 else np.arange(row.size)
        run[q] = {doc_ids[i]: float(row[i]) for i in top if doc_ids[i] != q}
    return float(ir_measures.calc_aggregate([nDCG @ 10], qrels, run)[nDCG @ 10])


def fit(args: argparse.Namespace) -> None:
    from transformers import AutoConfig, AutoTokenizer

    torch.set_num_threads(args.threads)
    run_dir = OUT / args.name
    base = Path(args.base)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    idf = read_idf_json(base / IDF_FILE, tokenizer, AutoConfig.from_pretrained(str(base)).vocab_size)
    folder = Path(args.vectors) if args.vectors else run_dir / "vectors"
    vectors = {name: read_vectors(folder / f"{name}-docs", mmap=False)[:2] for name in DATASETS}
    held = set(scifact_holdout(args.holdout_scifact))
    train_sources = args.sources.split(",")
    training = []
    if "nfcorpus" in train_sources:
        training.append(collection("nfcorpus", "train", tokenizer, vectors=vectors["nfcorpus"])[0])
    if "scifact" in train_sources:
        training.append(collection("scifact", "train", tokenizer, drop=held, vectors=vectors["scifact"])[0])
    dev = {"nfcorpus-dev": (*collection("nfcorpus", "dev", tokenizer, vectors=vectors["nfcorpus"]),
                            tremor.read_qrels(DATA / "nfcorpus", "dev")),
           "scifact-holdout": (*collection("scifact", "train", tokenizer, only=held, vectors=vectors["scifact"]),
                               {q: r for q, r in tremor.read_qrels(DATA / "scifact", "train").items() if q in held})}
    for data in training:
        print(f"training: {len(data.queries)} queries, {sum(map(len, data.judged))} judged pairs", flush=True)

    def evaluate(table: np.ndarray) -> dict[str, float]:
        return {name: dev_ndcg(table, *parts) for name, parts in dev.items()}

    run_dir.mkdir(parents=True, exist_ok=True)
    results = json.loads((run_dir / "dev.json").read_text()) if (run_dir / "dev.json").is_file() else {}
    tables = {}
    for l2 in [float(x) for x in args.l2.split(",")]:
        for lr in [float(x) for x in args.lr.split(",")]:
            label = f"l2={l2:g},lr={lr:g},epochs={args.epochs},batch={args.batch},sources={args.sources}"
            if label in results:
                print(f"{label}: done before, skipped (delete its dev.json entry to refit)")
                continue
            scores: dict[int, dict] = {}

            def score(table: np.ndarray, scores=scores) -> float:
                sets = evaluate(table)
                mean = float(np.mean(list(sets.values())))
                scores[len(scores)] = {"sets": sets, "select": mean}
                return mean

            started = time.perf_counter()
            config = QueryWeightConfig(epochs=args.epochs, queries_per_batch=args.batch, learning_rate=lr, l2=l2,
                                       seed=args.seed)
            result = fit_query_weights(idf, training, config, evaluate=score,
                                       progress=lambda r, s=scores, label=label, started=started: print(
                                           label, f"{time.perf_counter() - started:.0f}s", json.dumps(r),
                                           json.dumps(s[r["epoch"]]["sets"]), flush=True))
            history = [{**h, **scores[h["epoch"]]} for h in result.history]
            results[label] = {"history": history, "best_epoch": result.best_epoch,
                              "best": scores[result.best_epoch], "seconds": time.perf_counter() - started}
            tables[label] = result.table
            np.save(run_dir / f"table-{len(results) - 1}.npy", result.table)
            results[label]["table_file"] = f"table-{len(results) - 1}.npy"
            (run_dir / "dev.json").write_text(json.dumps(results, indent=2))
    best = max(results, key=lambda k: results[k]["best"]["select"])
    table = np.load(run_dir / results[best]["table_file"])
    save_with_query_table(base, table, run_dir / "model")
    moved = np.flatnonzero(np.abs(table - idf) > 1e-6)
    (run_dir / "selected.json").write_text(json.dumps(
        {"selected": best, "epoch": results[best]["best_epoch"], **results[best]["best"],
         "base": str(base), "tokens_moved": int(moved.size),
         "idf_dev": results[best]["history"][0]["sets"]}, indent=2))
    (run_dir / "train_config.json").write_text(json.dumps({**vars(args), "kind": "inference_free"}, indent=2,
                                                          default=str))
    print(f"selected {best} epoch {results[best]['best_epoch']}: dev {results[best]['best']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("encode", "fit"):
        p = commands.add_parser(name)
        p.add_argument("--base", required=True, help="the inference-free model directory whose documents are frozen")
        p.add_argument("--name", required=True, help="run folder under results/training/splade-tiny")
        p.add_argument("--threads", type=int, default=1)
    f = commands.choices["fit"]
    f.add_argument("--vectors", default="", help="folder with <dataset>-docs vectors of the base model's documents "
                                                 "(default: <name>/vectors, from encode)")
    f.add_argument("--l2", default="1e-3", help="comma-separated grid of the pull towards IDF")
    f.add_argument("--lr", default="0.02", help="comma-separated grid of learning rates (Adam)")
    f.add_argument("--epochs", type=int, default=20)
    f.add_argument("--batch", type=int, default=32, help="queries per step")
    f.add_argument("--sources", default="nfcorpus,scifact", help="training queries: nfcorpus and/or scifact train")
    f.add_argument("--holdout-scifact", type=int, default=150, help="scifact train queries held out as dev")
    f.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    {"encode": encode, "fit": fit}[args.command](args)


if __name__ == "__main__":
    main()
