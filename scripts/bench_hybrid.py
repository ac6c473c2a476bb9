"""Hybrid (BM25 + all-MiniLM-L6-v2) retrieval and PRF on BEIR: parameters tuned on the training split, nDCG@10 and
R@100 reported on the test split, in one run.

    python scripts/bench_hybrid.py [--data ../shared/data/beir] [--datasets scifact nfcorpus] [--rebuild]

Every parameter (fusion α, RRF k, Rocchio and Vector-PRF settings, the α of each PRF placement) is chosen by the mean
nDCG@10 over the tuning splits of all datasets (scifact: train, nfcorpus: dev); the test queries are used only for
the final table. Indexes (BM25 + dense vectors) are cached under indexes/bench-hybrid/ and reused unless --rebuild.
Writes results/hybrid_beir.json and results/hybrid_beir.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import ir_measures
import numpy as np
from ir_measures import R, nDCG

import tremor
from tremor.search.dense import DENSE_DIR, add_dense, ids_hash
from tremor.search.pipeline import (
    DenseRetrieve,
    DenseVectorPRF,
    Fuse,
    HybridSearcher,
    PipelineConfig,
    Run,
    SparseRetrieve,
    SparseRocchio,
    Stage,
    hybrid_pipeline,
)

ROOT = Path(__file__).resolve().parents[1]
TUNE_SPLIT = {"scifact": "train", "nfcorpus": "dev", "default": "dev"}
DEPTH = 1000  # candidates per list
EVAL_DEPTH = 100  # the run that is scored (nDCG@10, R@100)
MEASURES = [nDCG @ 10, R @ 100]

ALPHAS = [round(a, 2) for a in np.arange(0.0, 1.0001, 0.05)]
# raw scores: BM25 is tens, cosine is below 1, so the useful sparse weights are small
RAW_ALPHAS = [0.0, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0]
RRF_KS = [1, 2, 5, 10, 20, 60, 100]
ROCCHIO_GRID = {"fb_docs": [1, 3, 5, 10, 20], "fb_terms": [20, 50, 100], "beta": [0.1, 0.25, 0.5, 1.0]}
VECTOR_PRF_GRID = [("average", n, 1.0) for n in (1, 2, 3, 5, 10)] + \
    [("rocchio", n, beta) for n in (1, 2, 3, 5, 10) for beta in (0.1, 0.25, 0.5, 1.0)]


# ------------------------------------------------------------------------------------------------ runs and metrics
def to_run(query_ids: list[str], scores: np.ndarray, numbers: np.ndarray, doc_ids: list[str]) -> dict:
    """{query id: {doc id: score}} from ranked arrays: the one place a run is built (tremor.eval can replace it)."""
    return {qid: {doc_ids[n]: float(s) for s, n in zip(srow, nrow, strict=True) if n >= 0}
            for qid, srow, nrow in zip(query_ids, scores, numbers, strict=True)}


def evaluate(run: dict, qrels: dict) -> dict:
    metrics = ir_measures.calc_aggregate(MEASURES, qrels, run)
    return {"ndcg@10": float(metrics[nDCG @ 10]), "r@100": float(metrics[R @ 100])}


@dataclass
class Topics:
    """One split of one dataset: query ids, the encoded queries as a starting Run, and the judgements."""

    dataset: str
    split: str
    query_ids: list[str]
    start: Run
    qrels: dict
    doc_ids: list[str]

    def score(self, stage: Stage) -> dict:
        run = (stage % EVAL_DEPTH).transform(self.start)
        return evaluate(to_run(self.query_ids, run.scores, run.numbers, self.doc_ids), self.qrels)


def load_topics(name: str, root: Path, split: str, hybrid: HybridSearcher) -> Topics:
    qrels = tremor.read_qrels(root, split)
    queries = tremor.read_queries(root, ids=set(qrels))
    texts = [q.text for q in queries]
    start = Run.start(texts, hybrid.sparse.encode_queries(texts), hybrid.dense.encode_queries(texts))
    return Topics(name, split, [q.id for q in queries], start, qrels, hybrid.sparse.docstore.ids())


# ------------------------------------------------------------------------------------------------------ indexes
def prepare_index(root: Path, out: Path, rebuild: bool) -> HybridSearcher:
    """BM25 index + dense (all-MiniLM-L6-v2, flat) index of a BEIR corpus, reused when already built for it."""
    corpus_ids = ids_hash([d.id for d in tremor.read_documents(root)])
    manifest_path = out / DENSE_DIR / "manifest.json"
    reusable = not rebuild and manifest_path.is_file() and \
        json.loads(manifest_path.read_text()).get("doc_ids_hash") == corpus_ids
    if not reusable:
        started = time.perf_counter()
        tremor.build_index(root, out, encoder="bm25", overwrite=True, progress=False)
        add_dense(out, progress=True)
        print(f"  built {out} in {time.perf_counter() - started:.0f}s", flush=True)
    return HybridSearcher.load(out)


# ------------------------------------------------------------------------------------------------------- tuning
def tune(label: str, candidates: list, make_stage, tuning: list[Topics], log: dict):
    """The candidate whose stage has the best mean nDCG@10 over the tuning topics (ties: the earlier one)."""
    best, best_score, rows = None, -1.0, []
    for candidate in candidates:
        scores = [t.score(make_stage(t.dataset, candidate))["ndcg@10"] for t in tuning]
        mean = float(np.mean(scores))
        rows.append({"params": candidate, "ndcg@10": dict(zip([t.dataset for t in tuning], scores, strict=True)),
                     "mean": mean})
        if mean > best_score + 1e-12:
            best, best_score = candidate, mean
    log[label] = {"chosen": best, "mean_ndcg@10": best_score, "grid": rows}
    print(f"  {label:<34} chosen {best}  (train mean nDCG@10 {best_score:.4f}, {len(candidates)} candidates)",
          flush=True)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/beir")
    parser.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"])
    parser.add_argument("--indexes", type=Path, default=ROOT / "indexes/bench-hybrid")
    parser.add_argument("--out", type=Path, default=ROOT / "results")
    parser.add_argument("--rebuild", action="store_true", help="Re-encode the corpora even if cached.")
    args = parser.parse_args()
    started = time.perf_counter()

    searchers, tuning, testing = {}, [], []
    for name in args.datasets:
        print(f"{name}: preparing indexes and queries", flush=True)
        root = args.data / name
        searchers[name] = prepare_index(root, args.indexes / name, args.rebuild)
        tuning.append(load_topics(name, root, TUNE_SPLIT.get(name, TUNE_SPLIT["default"]), searchers[name]))
        testing.append(load_topics(name, root, "test", searchers[name]))
        print(f"  {len(tuning[-1].query_ids)} {tuning[-1].split} queries for tuning, {len(testing[-1].query_ids)} "
              "test queries", flush=True)

    def bm25(name: str) -> Stage:
        return SparseRetrieve(searchers[name].sparse, DEPTH)

    def dense(name: str) -> Stage:
        return DenseRetrieve(searchers[name].dense, DEPTH)

    def rocchio(name: str, p: dict) -> Stage:
        return SparseRocchio(searchers[name].sparse, p["fb_docs"], p["fb_terms"], 1.0, p["beta"], k=DEPTH)

    def vector(name: str, p: tuple) -> Stage:
        method, fb_docs, beta = p
        return DenseVectorPRF(searchers[name].dense, fb_docs, method, 1.0, beta, k=DEPTH)

    def fused(first: Stage, second: Stage, method: str, alpha: float, rrf_k: float = 60.0) -> Stage:
        return Fuse(first, second, method, alpha, DEPTH, rrf_k)

    print("tuning on the training splits", flush=True)
    log: dict = {}
    alpha = {}
    for m in ("minmax", "zscore", "raw"):
        alpha[m] = tune(f"hybrid {m} alpha", RAW_ALPHAS if m == "raw" else ALPHAS,
                        lambda n, a, m=m: fused(bm25(n), dense(n), m, a), tuning, log)
    rrf_k = tune("hybrid rrf k", RRF_KS, lambda n, k: fused(bm25(n), dense(n), "rrf", 0.5, k), tuning, log)
    rocchio_grid = [dict(zip(ROCCHIO_GRID, values, strict=True))
                    for values in itertools.product(*ROCCHIO_GRID.values())]
    rp = tune("sparse PRF (Rocchio)", rocchio_grid, lambda n, p: bm25(n) >> rocchio(n, p), tuning, log)
    vp = tune("dense PRF (Vector-PRF)", VECTOR_PRF_GRID, lambda n, p: dense(n) >> vector(n, p), tuning, log)
    norm = max(("minmax", "zscore"), key=lambda m: log[f"hybrid {m} alpha"]["mean_ndcg@10"])

    # placements (Li et al., SIGIR 2022) over the better normalization; PRF settings as tuned above, α re-tuned
    placements = {
        "PRF before interpolation, dense PRF": lambda n, a: fused(bm25(n), dense(n), norm, a) >> vector(n, vp),
        "PRF before interpolation, sparse PRF": lambda n, a: fused(bm25(n), dense(n), norm, a) >> rocchio(n, rp),
        "PRF after interpolation, dense PRF": lambda n, a: fused(bm25(n), dense(n) >> vector(n, vp), norm, a),
        "PRF after interpolation, both PRF":
            lambda n, a: fused(bm25(n) >> rocchio(n, rp), dense(n) >> vector(n, vp), norm, a),
        "PRF both, dense PRF":
            lambda n, a: fused(bm25(n), dense(n), norm, a) >> fused(bm25(n), vector(n, vp), norm, a),
        "PRF both, both PRF":
            lambda n, a: fused(bm25(n), dense(n), norm, a) >> fused(rocchio(n, rp), vector(n, vp), norm, a),
    }
    placement_alpha = {label: tune(label, ALPHAS, make, tuning, log) for label, make in placements.items()}

    rocchio_label = "fb_docs={fb_docs}, fb_terms={fb_terms}, β={beta}".format(**rp)
    vector_label = f"{vp[0]}, fb_docs={vp[1]}" + (f", β={vp[2]}" if vp[0] == "rocchio" else "")
    rows = [
        ("BM25", "single", bm25, ""),
        ("Dense (all-MiniLM-L6-v2)", "single", dense, ""),
        ("Sparse PRF (Rocchio on BM25)", "single", lambda n: bm25(n) >> rocchio(n, rp), rocchio_label),
        ("Dense PRF (Vector-PRF)", "single", lambda n: dense(n) >> vector(n, vp), vector_label),
        ("Hybrid, min-max", "hybrid", lambda n: fused(bm25(n), dense(n), "minmax", alpha["minmax"]),
         f"α={alpha['minmax']}"),
        ("Hybrid, z-score", "hybrid", lambda n: fused(bm25(n), dense(n), "zscore", alpha["zscore"]),
         f"α={alpha['zscore']}"),
        ("Hybrid, RRF", "hybrid", lambda n: fused(bm25(n), dense(n), "rrf", 0.5, rrf_k), f"k={rrf_k}"),
        ("Hybrid, raw scores", "hybrid", lambda n: fused(bm25(n), dense(n), "raw", alpha["raw"]),
         f"α={alpha['raw']}"),
    ] + [(label, "hybrid", lambda n, make=make, a=placement_alpha[label]: make(n, a),
          f"{norm}, α={placement_alpha[label]}") for label, make in placements.items()] + [
        ("tremor defaults, PRF on both sides (`--hybrid --prf both`)", "hybrid",
         lambda n: hybrid_pipeline(searchers[n].sparse, searchers[n].dense, prf="both"), "PipelineConfig defaults"),
    ]

    print("evaluating on the test splits", flush=True)
    table = []
    for label, kind, make, params in rows:
        metrics = {t.dataset: t.score(make(t.dataset)) for t in testing}
        train = {t.dataset: t.score(make(t.dataset))["ndcg@10"] for t in tuning}
        table.append({"system": label, "kind": kind, "params": params, "test": metrics, "train_ndcg@10": train,
                      "mean_ndcg@10": float(np.mean([m["ndcg@10"] for m in metrics.values()]))})

    best_single = max((r for r in table if r["kind"] == "single"), key=lambda r: r["mean_ndcg@10"])
    best_hybrid = max((r for r in table if r["kind"] == "hybrid"), key=lambda r: r["mean_ndcg@10"])
    chosen_hybrid = max((r for r in table if r["kind"] == "hybrid"),
                        key=lambda r: float(np.mean(list(r["train_ndcg@10"].values()))))
    summary = {"best_single": best_single["system"], "best_single_mean_ndcg@10": best_single["mean_ndcg@10"],
               "best_hybrid": best_hybrid["system"], "best_hybrid_mean_ndcg@10": best_hybrid["mean_ndcg@10"],
               "gain": best_hybrid["mean_ndcg@10"] - best_single["mean_ndcg@10"],
               "chosen_on_train": chosen_hybrid["system"],
               "chosen_gain": chosen_hybrid["mean_ndcg@10"] - best_single["mean_ndcg@10"],
               "normalization_for_placements": norm, "target": 0.02}
    summary["shipped_defaults_differ"] = defaults_differ(alpha[norm], norm, rrf_k, rp, vp, placement_alpha)
    markdown = render(table, summary, args.datasets, tuning)
    print()
    print(markdown)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"datasets": args.datasets, "tuning_splits": {t.dataset: t.split for t in tuning}, "depth": DEPTH,
               "table": table, "summary": summary, "tuning": log, "seconds": round(time.perf_counter() - started),
               "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()}}
    write_atomic(args.out / "hybrid_beir.json", json.dumps(payload, indent=2, default=str))
    write_atomic(args.out / "hybrid_beir.md", markdown + "\n")
    print(f"\nwrote {args.out / 'hybrid_beir.json'} and {args.out / 'hybrid_beir.md'} "
          f"({time.perf_counter() - started:.0f}s)")


def defaults_differ(alpha: float, norm: str, rrf_k: float, rp: dict, vp: tuple, placement_alpha: dict) -> dict:
    """Where tremor's PipelineConfig defaults differ from the values tuned in this run ({} when they agree)."""
    d = PipelineConfig()
    tuned = {"fusion": norm, "alpha": alpha, "rrf_k": rrf_k, "fb_docs": rp["fb_docs"], "fb_terms": rp["fb_terms"],
             "rocchio_beta": rp["beta"], "vector_prf": vp[0], "dense_fb_docs": vp[1], "vector_beta": vp[2],
             "alpha (PRF both, both PRF)": placement_alpha["PRF both, both PRF"]}
    shipped = {**{name: getattr(d, name) for name in tuned if hasattr(d, name)},
               "alpha (PRF both, both PRF)": d.alpha}
    differ = {}
    for name, value in tuned.items():
        default = shipped[name]
        same = value == default if isinstance(value, str) else bool(np.isclose(float(value), float(default)))
        if not same:
            differ[name] = {"tuned": value, "default": default}
    return differ


def render(table: list[dict], summary: dict, datasets: list[str], tuning: list[Topics]) -> str:
    splits = ", ".join(f"{t.dataset} {t.split}" for t in tuning)
    head = "| system | parameters (tuned on " + splits + ") | " + \
        " | ".join(f"{d} nDCG@10 | {d} R@100" for d in datasets) + " | mean nDCG@10 |"
    lines = [head, "|" + "---|" * (3 + 2 * len(datasets))]
    for row in table:
        cells = " | ".join(f"{row['test'][d]['ndcg@10']:.4f} | {row['test'][d]['r@100']:.4f}" for d in datasets)
        lines.append(f"| {row['system']} | {row['params']} | {cells} | {row['mean_ndcg@10']:.4f} |")
    lines.append("")
    lines.append(f"Best single system: {summary['best_single']} ({summary['best_single_mean_ndcg@10']:.4f}); best "
                 f"hybrid: {summary['best_hybrid']} ({summary['best_hybrid_mean_ndcg@10']:.4f}); gain "
                 f"{summary['gain']:+.4f} nDCG@10 (target +{summary['target']:.2f}). The hybrid chosen on the "
                 f"training splits, {summary['chosen_on_train']}, gains {summary['chosen_gain']:+.4f}.")
    differ = summary["shipped_defaults_differ"]
    lines.append("")
    lines.append("tremor's PipelineConfig defaults " + ("match the values tuned in this run." if not differ else
                 "differ from this run's tuning: " + ", ".join(f"{k} {v['default']} (tuned {v['tuned']})"
                                                              for k, v in differ.items())))
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


if __name__ == "__main__":
    main()
