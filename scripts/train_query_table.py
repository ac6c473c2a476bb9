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
    encoder = load_encoder(args.base, device="cpu", document_max_length=args.max_length or None)
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


SELECT_SETS = ("nfcorpus-dev", "scifact-holdout")  # selection: their mean; scifact-uncited is reported beside


def uncited_holdout(held: set[str]) -> set[str]:
    """The held-out scifact train queries none of whose judged documents is judged for a remaining training query:
    a dev set closer to the test queries, which mostly ask about documents the training queries do not cite."""
    qrels = tremor.read_qrels(DATA / "scifact", "train")
    cited = {d for q, judged in qrels.items() if q not in held for d, g in judged.items() if g > 0}
    return {q for q in held if not any(g > 0 and d in cited for d, g in qrels[q].items())}


def dev_sets(tokenizer, vectors: dict, held: set[str]) -> dict[str, tuple]:
    """(collection, query ids, document ids, qrels) of each dev set over the frozen vectors: nfcorpus dev, the
    held-out scifact train queries, and their subset whose judged documents no training query cites."""
    train_qrels = tremor.read_qrels(DATA / "scifact", "train")
    uncited = uncited_holdout(held)
    return {"nfcorpus-dev": (*collection("nfcorpus", "dev", tokenizer, vectors=vectors["nfcorpus"]),
                             tremor.read_qrels(DATA / "nfcorpus", "dev")),
            "scifact-holdout": (*collection("scifact", "train", tokenizer, only=held, vectors=vectors["scifact"]),
                                {q: r for q, r in train_qrels.items() if q in held}),
            "scifact-uncited": (*collection("scifact", "train", tokenizer, only=uncited, vectors=vectors["scifact"]),
                                {q: r for q, r in train_qrels.items() if q in uncited})}


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
    dev = dev_sets(tokenizer, vectors, held)
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
                mean = float(np.mean([sets[k] for k in SELECT_SETS]))
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
    if args.document_max_length:  # the document length the vectors were encoded at (encode --max-length)
        settings_file = run_dir / "model" / "tremor_encoder.json"
        settings = json.loads(settings_file.read_text())
        settings["document"]["max_length"] = args.document_max_length
        tmp = settings_file.with_name(settings_file.name + ".tmp")
        tmp.write_text(json.dumps(settings, indent=2))
        tmp.replace(settings_file)
    moved = np.flatnonzero(np.abs(table - idf) > 1e-6)
    (run_dir / "selected.json").write_text(json.dumps(
        {"selected": best, "epoch": results[best]["best_epoch"], **results[best]["best"],
         "base": str(base), "tokens_moved": int(moved.size),
         "idf_dev": results[best]["history"][0]["sets"]}, indent=2))
    (run_dir / "train_config.json").write_text(json.dumps({**vars(args), "kind": "inference_free"}, indent=2,
                                                          default=str))
    print(f"selected {best} epoch {results[best]['best_epoch']}: dev {results[best]['best']}")


def train_docs(args: argparse.Namespace) -> None:
    """Train the document model of ``--base`` (an inference-free model directory whose idf.json is the fixed query
    table) with the listwise collection loss (``tremor.encoders.training.listwise``) on nfcorpus train and scifact
    train less the held-out queries; the cache is ``--vectors`` (the base's documents, from ``encode``)."""
    from transformers import AutoConfig

    from tremor.encoders.training.listwise import ListwiseCollection, ListwiseConfig, ListwiseTrainer
    from tremor.encoders.training.student import SparseStudent, load_mlm_backbone
    from tremor.encoders.training.trainer import TrainConfig

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    base = Path(args.base)
    model, tokenizer, _ = load_mlm_backbone(base)
    table = read_idf_json(base / IDF_FILE, tokenizer, AutoConfig.from_pretrained(str(base)).vocab_size)
    student = SparseStudent(model, tokenizer, "inference_free", table, query_max_length=64,
                            document_max_length=args.max_length)
    student.saved_document_max_length = args.model_max_length
    student.freeze_output_bias()
    folder = Path(args.vectors) if args.vectors else OUT / args.name / "vectors"
    vectors = {name: read_vectors(folder / f"{name}-docs", mmap=False)[:2] for name in DATASETS}
    held = set(scifact_holdout(args.holdout_scifact))
    weights = {k: float(v) for k, v in (item.split("=") for item in args.weights.split(","))}
    collections = []
    for name in args.sources.split(","):
        data, _, ids = collection(name, "train", tokenizer, drop=held if name == "scifact" else frozenset(),
                                  vectors=vectors[name])
        corpus = {d.id: d.full_text for d in tremor.read_documents(DATA / name)}
        collections.append(ListwiseCollection(name, [corpus[d] for d in ids], data.documents, data.queries,
                                              data.judged, weight=weights.get(name, 1.0)))
        print(f"{name}: {len(data.queries)} training queries, {sum(map(len, data.judged))} judged pairs", flush=True)
    config = TrainConfig(steps=args.steps, queries_per_batch=args.batch, learning_rate=args.lr,
                         lr_warmup_steps=max(1, args.steps // 10), regularizer="idf_flops", doc_reg_weight=args.doc_reg,
                         reg_warmup_steps=max(1, args.steps // 3), checkpoint_every=args.checkpoint_every,
                         snapshot_every=args.snapshot_every, seed=args.seed)
    listwise = ListwiseConfig(positives=args.positives, negatives=args.negatives, depth=args.depth, scale=args.scale,
                              random=args.random, estimator=args.estimator, dropout=args.dropout)
    out = OUT / args.name
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_config.json").write_text(json.dumps({**vars(args), "kind": "inference_free"}, indent=2))
    started = time.perf_counter()
    ListwiseTrainer(student, collections, config, listwise, out).train(resume=True)
    (out / "train_config.json").write_text(json.dumps({**vars(args), "kind": "inference_free",
                                                       "train_seconds": time.perf_counter() - started}, indent=2))
    print(f"trained {args.steps} steps in {time.perf_counter() - started:.0f}s; snapshots in {out / 'snapshots'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("encode", "fit"):
        p = commands.add_parser(name)
        p.add_argument("--base", required=True, help="the inference-free model directory whose documents are frozen")
        p.add_argument("--name", required=True, help="run folder under results/training/splade-tiny")
        p.add_argument("--threads", type=int, default=1)
    commands.choices["encode"].add_argument("--max-length", type=int, default=0,
                                            help="document tokens (default: the model's own setting)")
    f = commands.choices["fit"]
    f.add_argument("--document-max-length", type=int, default=0,
                   help="record this document length in <name>/model (the length the vectors were encoded at)")
    f.add_argument("--vectors", default="", help="folder with <dataset>-docs vectors of the base model's documents "
                                                 "(default: <name>/vectors, from encode)")
    f.add_argument("--l2", default="1e-3", help="comma-separated grid of the pull towards IDF")
    f.add_argument("--lr", default="0.02", help="comma-separated grid of learning rates (Adam)")
    f.add_argument("--epochs", type=int, default=20)
    f.add_argument("--batch", type=int, default=32, help="queries per step")
    f.add_argument("--sources", default="nfcorpus,scifact", help="training queries: nfcorpus and/or scifact train")
    f.add_argument("--holdout-scifact", type=int, default=150, help="scifact train queries held out as dev")
    f.add_argument("--seed", type=int, default=0)
    d = commands.add_parser("train-docs")
    d.add_argument("--base", required=True, help="inference-free model directory: start weights + fixed query table")
    d.add_argument("--name", required=True, help="run folder under results/training/splade-tiny")
    d.add_argument("--vectors", required=True, help="folder with <dataset>-docs vectors of --base (from encode)")
    d.add_argument("--threads", type=int, default=1)
    d.add_argument("--steps", type=int, default=300)
    d.add_argument("--batch", type=int, default=4, help="queries per step (one collection per step)")
    d.add_argument("--lr", type=float, default=1e-5)
    d.add_argument("--positives", type=int, default=2, help="judged documents per query encoded live")
    d.add_argument("--negatives", type=int, default=6, help="hard negatives per query encoded live")
    d.add_argument("--depth", type=int, default=50, help="hard negatives come from the cached top-N unjudged")
    d.add_argument("--scale", type=float, default=0.235, help="softmax scale (the table fit's learned scale)")
    d.add_argument("--random", type=int, default=4, help="other documents per query encoded live (sampled)")
    d.add_argument("--estimator", choices=("sampled", "mixed"), default="sampled",
                   help="sampled: importance-weighted gradient over the whole collection; mixed: the cross-entropy "
                        "over live and cached scores (gradient from the live pool only)")
    d.add_argument("--dropout", action="store_true", help="keep the backbone's dropout in training")
    d.add_argument("--doc-reg", type=float, default=1e-4, help="IDF-aware FLOPS weight")
    d.add_argument("--max-length", type=int, default=256, help="document tokens in training (the cache's length)")
    d.add_argument("--model-max-length", type=int, default=256)
    d.add_argument("--sources", default="nfcorpus,scifact")
    d.add_argument("--weights", default="nfcorpus=1,scifact=1", help="relative sampling weight of each collection")
    d.add_argument("--holdout-scifact", type=int, default=150)
    d.add_argument("--checkpoint-every", type=int, default=50)
    d.add_argument("--snapshot-every", type=int, default=100)
    d.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    {"encode": encode, "fit": fit, "train-docs": train_docs}[args.command](args)


if __name__ == "__main__":
    main()
