"""How a Seismic query's time splits between summary scoring and document scoring, through the public search API.

For each (query_cut, heap_factor) setting, all queries are searched as one batch on one thread twice, interleaved:
as asked, and with heap_factor 10⁹, which skips every block once the heap holds k documents but still scores the
summaries of every cut list (the summary phase, plus the first k documents). The difference is the
document-scoring phase. Both runs read every list through its summaries (``direct_postings=0``), so that the summary
work is the same in both. CPU time per query, median over rounds; recall@10 against exact search.

    python scripts/profile_seismic_phases.py --index C/scifact-splade-seismic --queries C/scifact-queries \\
        --index C/nfcorpus-splade-seismic --queries C/nfcorpus-queries --out results/seismic_phases
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numba
import numpy as np

from tremor.encoders.vector_files import read_vectors
from tremor.eval.report import write_text_atomic
from tremor.index import open_index_dir

SKIP_ALL = 1e9  # a heap factor that fails every block once the heap is full


def batch_ms(index, queries, rounds: int, **params) -> list[float]:
    """CPU ms per query of one batch search on the calling thread, per round."""
    out = []
    for _ in range(rounds):
        started = time.process_time()
        index.search(queries, 10, **params)
        out.append((time.process_time() - started) / len(queries) * 1e3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", action="append", required=True, help="A Seismic index directory (repeatable).")
    parser.add_argument("--queries", action="append", required=True, help="Query vectors, one per --index.")
    parser.add_argument("--settings", default="3:0.8,5:0.9,5:0.7,10:0.7,10:0.4")
    parser.add_argument("--limit", type=int, default=300, help="Queries per collection.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="results/seismic_phases", type=Path)
    args = parser.parse_args()
    if len(args.index) != len(args.queries):
        parser.error("give one --queries per --index")
    numba.set_num_threads(1)
    settings = [(int(c), float(h)) for c, h in (s.split(":") for s in args.settings.split(","))]
    report: dict = {"collections": []}
    for index_dir, query_path in zip(args.index, args.queries, strict=True):
        index = open_index_dir(Path(index_dir))[0]
        _, queries, _ = read_vectors(query_path)
        queries = queries[:args.limit]
        exact = index.search(queries, 10, query_cut=100_000, heap_factor=0.0, direct_postings=0,
                             approximate_threshold=0)[1]
        rows = []
        for query_cut, heap_factor in settings:
            common = {"query_cut": query_cut, "direct_postings": 0, "approximate_threshold": 0}
            found = index.search(queries, 10, heap_factor=heap_factor, **common)[1]
            recall = float(np.mean([len(set(a[a >= 0]) & set(b[b >= 0])) / 10 for a, b in zip(found, exact,
                                                                                             strict=True)]))
            full, summaries = [], []
            batch_ms(index, queries, 1, heap_factor=heap_factor, **common)  # warm up
            for _ in range(args.rounds):
                full += batch_ms(index, queries, 1, heap_factor=heap_factor, **common)
                summaries += batch_ms(index, queries, 1, heap_factor=SKIP_ALL, **common)
            total, summary = float(np.median(full)), float(np.median(summaries))
            row = {"query_cut": query_cut, "heap_factor": heap_factor, "recall": round(recall, 4),
                   "ms_total": round(total, 4), "ms_summary_phase": round(summary, 4),
                   "summary_share": round(summary / total, 3)}
            rows.append(row)
            print(Path(index_dir).name, json.dumps(row), flush=True)
        report["collections"].append({"index": str(index_dir), "queries": len(queries),
                                      "query_nnz": round(float(np.diff(queries.indptr).mean()), 1),
                                      "n_docs": int(index.n_docs), "rows": rows})
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "phases.json", json.dumps(report, indent=2) + "\n")
    lines = ["# Seismic query time: summary scoring vs document scoring", "",
             "One thread, one batch, CPU ms per query (median of rounds); every list through its summaries. "
             "Produced by `python scripts/profile_seismic_phases.py`.", "",
             "| index | query_cut | heap_factor | recall@10 | ms total | ms summary phase | summary share |",
             "|---|---|---|---|---|---|---|"]
    for c in report["collections"]:
        lines += [f"| {Path(c['index']).name} ({c['n_docs']} docs, {c['query_nnz']} query terms) | {r['query_cut']} | "
                  f"{r['heap_factor']} | {r['recall']:.4f} | {r['ms_total']:.3f} | {r['ms_summary_phase']:.3f} | "
                  f"{100 * r['summary_share']:.0f}% |" for r in c["rows"]]
    write_text_atomic(args.out / "phases.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
