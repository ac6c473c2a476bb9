"""Where Seismic starts to pay: exact scoring from the forward index vs the approximate search, by collection size.

Random subsets (500 ... 8,000 documents) of the splade-tiny document vectors of scifact + nfcorpus (``tremor encode``
output); for each, one SeismicIndex with the default build, searched one query at a time (one thread, CPU time) with
the default search settings (``approximate_threshold=0``: always approximate) and exactly (the forward-index path a
small index takes, ``approximate_threshold`` above the size), alternating per query in the same run. Writes
results/seismic_threshold.{json,md}.

    python scripts/bench_seismic_threshold.py --vectors /work/cache/splade
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import numba
import numpy as np

from tremor.encoders.vector_files import read_vectors
from tremor.index.seismic import SeismicIndex
from tremor.sparse import SparseVectors


def load(root: Path) -> tuple[SparseVectors, SparseVectors]:
    docs = [read_vectors(root / f"{name}-docs", mmap=False)[1] for name in ("scifact", "nfcorpus")]
    queries = [read_vectors(root / f"{name}-queries", mmap=False)[1] for name in ("scifact", "nfcorpus")]
    return SparseVectors.concat(docs), SparseVectors.concat(queries)


def time_pair(index: SeismicIndex, queries: SparseVectors, k: int, rounds: int) -> tuple[float, float]:
    """Median CPU microseconds per query of (exact, approximate), alternating which goes first."""
    exact_p = {"approximate_threshold": index.n_docs + 1}
    approx_p = {"approximate_threshold": 0}
    single = [queries[i:i + 1] for i in range(len(queries))]
    for q in single[:20]:  # warm up both paths
        index.search(q, k, **exact_p)
        index.search(q, k, **approx_p)
    exact_t, approx_t = [], []
    for r in range(rounds):
        for i, q in enumerate(single):
            order = (exact_p, approx_p) if (i + r) % 2 == 0 else (approx_p, exact_p)
            for params in order:
                started = time.process_time_ns()
                index.search(q, k, **params)
                spent = (time.process_time_ns() - started) / 1000.0
                (exact_t if params is exact_p else approx_t).append(spent)
    return float(np.median(exact_t)), float(np.median(approx_t))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vectors", type=Path, default=Path("/work/cache/splade"))
    parser.add_argument("--sizes", default="500,1000,2000,3000,4000,5000,6000,8000")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("results/seismic_threshold"))
    args = parser.parse_args()
    numba.set_num_threads(1)
    docs, queries = load(args.vectors)
    rng = np.random.default_rng(0)
    queries = queries[np.sort(rng.choice(len(queries), min(args.queries, len(queries)), replace=False))]
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        subset = docs[np.sort(rng.choice(len(docs), min(size, len(docs)), replace=False))]
        index = SeismicIndex.build(subset, progress=False)
        exact_us, approx_us = time_pair(index, queries, args.k, args.rounds)
        rows.append({"docs": len(subset), "exact_us": exact_us, "seismic_us": approx_us,
                     "seismic_over_exact": approx_us / exact_us})
        print(f"{len(subset):6d} docs  exact {exact_us:8.1f} us  seismic {approx_us:8.1f} us  "
              f"ratio {approx_us / exact_us:.2f}", flush=True)
    faster = [r["docs"] for r in rows if r["seismic_over_exact"] < 1.0]
    crossover = None
    for prev, row in itertools.pairwise(rows):
        if prev["seismic_over_exact"] >= 1.0 > row["seismic_over_exact"]:
            crossover = row["docs"]
    if crossover is None and faster:
        crossover = faster[0]
    result = {"vectors": "splade-tiny, scifact + nfcorpus documents", "queries": len(queries), "k": args.k,
              "rounds": args.rounds, "build": SeismicIndex.BUILD_DEFAULTS,
              "search": {"query_cut": SeismicIndex.SEARCH_DEFAULTS["query_cut"],
                         "heap_factor": SeismicIndex.SEARCH_DEFAULTS["heap_factor"]},
              "timing": "median CPU time per single-query search, one thread, exact and seismic alternating",
              "machine": platform.processor() or platform.machine(), "rows": rows,
              "first_size_where_seismic_is_faster": crossover}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Seismic vs exact scoring by collection size", "",
             f"splade-tiny vectors (scifact + nfcorpus documents, random subsets), {len(queries)} real queries, "
             f"k={args.k}; default build (λ 3500, β 0.1, α 0.4) and search (query_cut 10, heap_factor 0.4). Median "
             "CPU µs per single-query search, one thread, both paths alternating in the same run. `exact` is the "
             "forward-index scoring a small SeismicIndex uses below `approximate_threshold`.", "",
             "| documents | exact µs | seismic µs | seismic / exact |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['docs']} | {r['exact_us']:.1f} | {r['seismic_us']:.1f} | {r['seismic_over_exact']:.2f} |"
              for r in rows]
    lines += ["", f"Seismic is faster from about {crossover} documents on." if crossover else
              "Seismic was not faster at any measured size."]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
