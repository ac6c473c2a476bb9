"""Where the time of a segmented Seismic search goes, and what ``direct_postings`` changes.

Reads the two BM25 Seismic indexes that ``scripts/bench_live.py --work DIR`` leaves behind (``DIR/seismic_live``:
scifact in 11 segments; ``DIR/seismic_merged``: the same documents in one segment) and measures, for several
``direct_postings`` thresholds, the whole batch of scifact test queries searched on one thread (the serial kernels,
so per-query Python work is out of the ratio), interleaved, as CPU time per query; recall@10 against exact search;
and, from the index arrays, what each query's cut terms make the kernel read: summary chunks, blocks, postings, and
how many of those lists are short enough to be scored without their summaries.

    python scripts/bench_live.py --work /tmp/live_work --seismic-only-from results/live/bench_full_run.json
    python scripts/profile_live_seismic.py --work /tmp/live_work --out results/live
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numba
import numpy as np
from bench_live import interpolated_ms  # scripts/ is on the path when this script runs

from tremor.eval import load_dataset
from tremor.eval.report import write_text_atomic
from tremor.search import Searcher

GRID = [(query_cut, heap_factor) for query_cut in (4, 5, 6, 8, 10) for heap_factor in (0.6, 0.8, 0.9, 1.0, 1.1, 1.2)]
THRESHOLDS = (0, 8, 16, 32)
RECALL_TARGET = 0.95


def cut_terms(indices: np.ndarray, values: np.ndarray, list_max: np.ndarray, query_cut: int) -> np.ndarray:
    """The query terms the kernels visit: by weight, ties by largest list value, the first ``query_cut`` positive."""
    bound = values * list_max[indices]
    order = np.lexsort((-bound, -values))
    return np.array([indices[i] for i in order if values[i] > 0][:query_cut], dtype=np.int64)


def reads_per_query(index, queries, query_cut: int, threshold: int) -> dict:
    """Mean per query over the cut terms and every segment: summary chunks, blocks, postings, and the lists (and
    their blocks) of at most ``threshold`` postings."""
    parts = index.indexes
    list_max = np.max(np.stack([np.asarray(p.list_max, np.float32) for p in parts]), axis=0)
    totals = np.zeros(5)
    for row in range(len(queries)):
        lo, hi = queries.indptr[row], queries.indptr[row + 1]
        for term in cut_terms(queries.indices[lo:hi], queries.values[lo:hi], list_max, query_cut):
            for part in parts:
                first, last = part.list_block_indptr[term], part.list_block_indptr[term + 1]
                if first == last:
                    continue
                postings = int(part.block_indptr[last] - part.block_indptr[first])
                short = postings <= threshold
                totals += (0 if short else part.list_segment_indptr[term + 1] - part.list_segment_indptr[term],
                           last - first, postings, short, (last - first) * short)
    keys = ("summary_chunks", "blocks", "postings", "short_lists", "blocks_in_short_lists")
    return {key: round(float(v) / len(queries), 2) for key, v in zip(keys, totals, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="The --work folder of a scripts/bench_live.py run.")
    parser.add_argument("--data", default="../shared/data/beir", type=Path)
    parser.add_argument("--out", default="results/live", type=Path)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    numba.set_num_threads(1)

    searchers = {"segments": Searcher.load(args.work / "seismic_live"),
                 "merged": Searcher.load(args.work / "seismic_merged")}
    dataset = load_dataset(args.data / "scifact", "test")
    vectors = searchers["segments"].encode_queries([q.text for q in dataset.queries])
    merged_ids = searchers["merged"].docstore.ids()
    exact = searchers["merged"].search_vectors(vectors, 10, query_cut=100_000, heap_factor=0.0, direct_postings=0)[1]
    wanted = [set(merged_ids[d] for d in row if d >= 0) for row in exact]
    ids = {name: searcher.docstore.ids() for name, searcher in searchers.items()}

    def recall(name: str, found: np.ndarray) -> float:
        hits = sum(len({ids[name][d] for d in row if d >= 0} & want) for row, want in zip(found, wanted, strict=True))
        return hits / sum(len(w) for w in wanted)

    report: dict = {"queries": len(vectors), "segments": searchers["segments"].index.n_segments,
                    "grid": [], "reads": {}, "at_recall": {}}
    for query_cut, heap_factor in GRID:
        row: dict = {"query_cut": query_cut, "heap_factor": heap_factor}
        runs = {(name, t): {"query_cut": query_cut, "heap_factor": heap_factor, "direct_postings": t}
                for t in THRESHOLDS for name in searchers}
        for (name, t), params in runs.items():
            row[f"recall_{name}_{t}"] = round(recall(name, searchers[name].search_vectors(vectors, 10, **params)[1]), 4)
        samples: dict = {key: [] for key in runs}
        for _ in range(args.rounds):
            for (name, t), params in runs.items():
                started = time.process_time()
                searchers[name].search_vectors(vectors, 10, **params)
                samples[(name, t)].append((time.process_time() - started) / len(vectors) * 1e3)
        row.update({f"ms_{name}_{t}": round(float(np.median(v)), 5) for (name, t), v in samples.items()})
        report["grid"].append(row)
        print(json.dumps(row), flush=True)
    for t in THRESHOLDS:
        at = {name: interpolated_ms(report["grid"], f"{name}_{t}", RECALL_TARGET) for name in searchers}
        report["at_recall"][str(t)] = {**{f"ms_{k}": v and round(v, 5) for k, v in at.items()},
                                       "ratio": round(at["segments"] / at["merged"], 3) if all(at.values()) else None}
        report["reads"][str(t)] = {name: reads_per_query(searcher.index, vectors, 5, t)
                                   for name, searcher in searchers.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "profile.json", json.dumps(report, indent=2) + "\n")
    lines = ["# Segmented Seismic search: where the time goes, by `direct_postings`", "",
             f"scifact, {report['segments']} segments vs merged, {report['queries']} test queries searched as one "
             "batch on one thread (serial kernels), CPU ms per query, interleaved; produced by "
             "`python scripts/profile_live_seismic.py`.", "",
             f"| direct_postings | ms segments at recall@10 {RECALL_TARGET} | ms merged | ratio | "
             "summary chunks / blocks / postings read per query at cut 5 (segments) | the same (merged) | "
             "short lists per query (segments / merged) |", "|---|---|---|---|---|---|---|"]
    for t in THRESHOLDS:
        a, r = report["at_recall"][str(t)], report["reads"][str(t)]
        s, m = r["segments"], r["merged"]
        lines.append(f"| {t} | {a['ms_segments']} | {a['ms_merged']} | {a['ratio']} | {s['summary_chunks']} / "
                     f"{s['blocks']} / {s['postings']} | {m['summary_chunks']} / {m['blocks']} / {m['postings']} | "
                     f"{s['short_lists']} / {m['short_lists']} |")
    write_text_atomic(args.out / "profile.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
