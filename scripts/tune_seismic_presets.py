"""Tune the Seismic search presets: for each recall@10 target, the fastest (query_cut, heap_factor) reaching it.

Default build (λ 3500, β 0.1, α 0.4) over the splade-tiny document vectors of scifact and of nfcorpus (``tremor
encode`` output), searched with their real queries; recall@10 against exact search (ExactIndex). A setting qualifies
when it reaches the target on both collections; the fastest is the one with the smallest mean (over the two
collections) of the median CPU time per single-query search (one thread). ``approximate_threshold=0`` throughout, so
the approximate path is measured even on a collection below the default threshold. Writes
results/seismic_presets.{json,md}.

    python scripts/tune_seismic_presets.py --vectors /work/cache/splade

With ``--synthetic DIR`` (``scripts/make_synthetic.py`` output) the one collection is that synthetic set instead, for
the table of settings on 1M SPLADE-like documents (the shipped presets stay the splade-tiny ones):

    python scripts/tune_seismic_presets.py --synthetic runs/synthetic-1m --out results/seismic_presets_1m
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numba
import numpy as np

from tremor.encoders.vector_files import read_vectors
from tremor.index.exact import ExactIndex
from tremor.index.seismic import SeismicIndex

TARGETS = {"recall90": 0.90, "recall95": 0.95, "recall99": 0.99}


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries with an exact hit of the share of the exact top k found."""
    values = []
    for f, e in zip(found, exact, strict=True):
        truth = set(e[e >= 0].tolist())
        if truth:
            values.append(len(truth & set(f[f >= 0].tolist())) / len(truth))
    return float(np.mean(values))


def median_us(index: SeismicIndex, single: list, k: int, params: dict) -> float:
    times = []
    for q in single:
        started = time.process_time_ns()
        index.search(q, k, **params)
        times.append((time.process_time_ns() - started) / 1000.0)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vectors", type=Path, default=Path("/work/cache/splade"))
    parser.add_argument("--synthetic", type=Path, default=None,
                        help="tune on this scripts/make_synthetic.py set instead of the splade-tiny vectors")
    parser.add_argument("--queries", type=int, default=400, help="queries per collection (random sample)")
    parser.add_argument("--query-cuts", default="3,4,5,6,8,10,12,15,20,30")
    parser.add_argument("--heap-factors", default="0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0")
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("results/seismic_presets"))
    args = parser.parse_args()
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    grid = [(int(c), float(h)) for c in args.query_cuts.split(",") for h in args.heap_factors.split(",")]
    per_dataset: dict[str, dict] = {}
    for name in (("synthetic",) if args.synthetic else ("scifact", "nfcorpus")):
        if args.synthetic:
            from make_synthetic import load_vectors

            docs, queries = load_vectors(args.synthetic / "docs.npz"), load_vectors(args.synthetic / "queries.npz")
        else:
            _, docs, _ = read_vectors(args.vectors / f"{name}-docs", mmap=False)
            _, queries, _ = read_vectors(args.vectors / f"{name}-queries", mmap=False)
        queries = queries[np.sort(rng.choice(len(queries), min(args.queries, len(queries)), replace=False))]
        exact = ExactIndex.build(docs).search(queries, args.k)[1]
        index = SeismicIndex.build(docs, progress=False)
        single = [queries[i:i + 1] for i in range(len(queries))]
        for q in single[:20]:
            index.search(q, args.k, approximate_threshold=0)
        rows = []
        for query_cut, heap_factor in grid:
            params = {"query_cut": query_cut, "heap_factor": heap_factor, "approximate_threshold": 0}
            found = index.search(queries, args.k, **params)[1]
            rows.append({"query_cut": query_cut, "heap_factor": heap_factor,
                         "recall": recall_at_k(found, exact), "median_us": median_us(index, single, args.k, params)})
        exact_us = median_us(index, single, args.k, {"approximate_threshold": len(docs) + 1})
        per_dataset[name] = {"docs": len(docs), "queries": len(queries), "exact_forward_us": exact_us, "grid": rows}
        print(f"{name}: {len(docs)} docs, {len(queries)} queries, exact {exact_us:.1f} us", flush=True)
    combined = []
    for i, (query_cut, heap_factor) in enumerate(grid):
        recalls = {n: per_dataset[n]["grid"][i]["recall"] for n in per_dataset}
        times = {n: per_dataset[n]["grid"][i]["median_us"] for n in per_dataset}
        combined.append({"query_cut": query_cut, "heap_factor": heap_factor, "recall": recalls,
                         "min_recall": min(recalls.values()), "median_us": times,
                         "mean_us": float(np.mean(list(times.values())))})
    presets = {}
    for preset, target in TARGETS.items():
        ok = [row for row in combined if row["min_recall"] >= target]
        presets[preset] = min(ok, key=lambda row: row["mean_us"]) if ok else None
    label = f"synthetic ({args.synthetic})" if args.synthetic else "splade-tiny (tremor encode), scifact and nfcorpus"
    result = {"vectors": label, "k": args.k,
              "build": SeismicIndex.BUILD_DEFAULTS, "targets": TARGETS, "datasets": {
                  n: {key: v for key, v in d.items() if key != "grid"} for n, d in per_dataset.items()},
              "grid": combined, "presets": presets,
              "timing": "median CPU µs per single-query search, one thread"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    names = list(per_dataset)
    lines = ["# Seismic search presets", "",
             f"Default build (λ 3500, β 0.1, α 0.4, {SeismicIndex.BUILD_DEFAULTS['summary_bits']}-bit summaries) over "
             f"{'the synthetic set ' + str(args.synthetic) if args.synthetic else 'splade-tiny vectors'}; queries (" +
             ", ".join(f"{n}: {per_dataset[n]['queries']} of them, {per_dataset[n]['docs']} documents"
                       for n in names) +
             f"); recall@{args.k} against exact search; median CPU µs per single-query search, one thread. "
             "A preset is the fastest setting whose recall reaches its target on both collections.", "",
             "| preset | query_cut | heap_factor | " + " | ".join(f"recall {n}" for n in names) + " | " +
             " | ".join(f"µs {n}" for n in names) + " |", "|---" * (3 + 2 * len(names)) + "|"]
    for preset, row in presets.items():
        if row is None:
            lines.append(f"| {preset} | not reached | | " + " | " * (2 * len(names) - 1) + " |")
            continue
        lines.append(f"| {preset} | {row['query_cut']} | {row['heap_factor']} | " +
                     " | ".join(f"{row['recall'][n]:.4f}" for n in names) + " | " +
                     " | ".join(f"{row['median_us'][n]:.1f}" for n in names) + " |")
    lines += ["", "Exact scoring from the forward index, same runs: " +
              ", ".join(f"{n} {per_dataset[n]['exact_forward_us']:.1f} µs" for n in names) + ".", "",
              "## Grid", "", "| query_cut | heap_factor | " + " | ".join(f"recall {n}" for n in names) + " | " +
              " | ".join(f"µs {n}" for n in names) + " |", "|---" * (2 + 2 * len(names)) + "|"]
    lines += [f"| {r['query_cut']} | {r['heap_factor']} | " + " | ".join(f"{r['recall'][n]:.4f}" for n in names) +
              " | " + " | ".join(f"{r['median_us'][n]:.1f}" for n in names) + " |" for r in combined]
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    for preset, row in presets.items():
        print(preset, None if row is None else (row["query_cut"], row["heap_factor"], row["recall"], row["mean_us"]))


if __name__ == "__main__":
    main()
