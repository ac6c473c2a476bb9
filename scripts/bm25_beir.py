"""BM25 nDCG@10 and R@100 on the shared BEIR test sets, built and searched through tremor's public API.

    python scripts/bm25_beir.py [--data ../shared/data/beir] [--datasets scifact nfcorpus]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import ir_measures
from ir_measures import R, nDCG

import tremor


def evaluate(root: Path, workdir: Path) -> dict:
    started = time.perf_counter()
    searcher = tremor.Searcher.load(tremor.build_index(root, workdir / root.name, progress=False))
    build_seconds = time.perf_counter() - started
    qrels = tremor.read_qrels(root, "test")
    queries = tremor.read_queries(root, ids=set(qrels))
    started = time.perf_counter()
    scores, numbers = searcher.search_vectors(searcher.encode_queries([q.text for q in queries]), k=1000)
    search_seconds = time.perf_counter() - started
    ids = searcher.docstore.ids()
    run = {q.id: {ids[n]: float(s) for s, n in zip(srow, nrow, strict=True) if n >= 0}
           for q, srow, nrow in zip(queries, scores, numbers, strict=True)}
    metrics = ir_measures.calc_aggregate([nDCG @ 10, R @ 100], qrels, run)
    return {"queries": len(queries), "ndcg@10": metrics[nDCG @ 10], "r@100": metrics[R @ 100],
            "build_s": build_seconds, "search_s": search_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/beir")
    parser.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"])
    args = parser.parse_args()
    print("| dataset | queries | nDCG@10 | R@100 | build s | search s (all queries, k=1000) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets:
            r = evaluate(args.data / name, Path(tmp))
            print(f"| {name} | {r['queries']} | {r['ndcg@10']:.4f} | {r['r@100']:.4f} | {r['build_s']:.1f} | "
                  f"{r['search_s']:.3f} |")


if __name__ == "__main__":
    main()
