"""Seismic search latency of two tremor source trees on the same stored index, alternating runs (before/after).

    git archive main | tar -x -C /tmp/tremor-main
    python scripts/bench_seismic_ab.py --index C/scifact-splade-seismic --queries C/scifact-queries \\
        --other /tmp/tremor-main --rounds 3 --out results/seismic_ab

Each round runs one child process per tree (this checkout, then ``--other``, alternating which goes first): it loads
the index (an older tree reads it as stored; a newer one may convert it at load), warms up, and times single-query
``SeismicIndex.search`` on one thread for every query at each ``--setting`` (query_cut:heap_factor), keeping the
per-query minimum over ``--repeat`` passes, plus one batch pass on all cores. Reports mean µs, batch QPS, recall@10
against the exact top 10 from the forward index, and the index's in-memory bytes; the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
import numba, numpy as np
from tremor.encoders.vector_files import read_vectors
from tremor.index import open_index_dir
from pathlib import Path
args = json.loads(sys.argv[1])
index = open_index_dir(Path(args["index"]))[0]
_, queries, _ = read_vectors(args["queries"], mmap=False)
queries = queries[np.flatnonzero(queries.row_nnz() > 0)][: args["limit"]]
n = len(queries)
exact_scores, _ = index.search(queries, 10, approximate_threshold=10**9)
kth = exact_scores[:, 9]
out = {"bytes": int(index.nbytes()), "settings": {}}
singles = [queries[i:i + 1] for i in range(n)]
for setting in args["settings"]:
    qc, hf = setting.split(":")
    params = {"query_cut": int(qc), "heap_factor": float(hf), "approximate_threshold": 0}
    for q in singles[:50]:
        index.search(q, 10, **params)
    best = np.full(n, np.inf)
    numba.set_num_threads(1)
    for _ in range(args["repeat"]):
        for i, q in enumerate(singles):
            t = time.perf_counter()
            index.search(q, 10, **params)
            best[i] = min(best[i], time.perf_counter() - t)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    index.search(queries, 10, **params)
    t = time.perf_counter()
    scores, docs = index.search(queries, 10, **params)
    batch = time.perf_counter() - t
    recall = float(np.mean([(scores[i] >= kth[i] - 1e-6 * abs(kth[i])).sum() / 10 for i in range(n)]))
    out["settings"][setting] = {"mean_us": float(best.mean() * 1e6), "qps": n / batch, "recall": recall}
print("RESULT" + json.dumps(out))
"""


def run_tree(tree: Path, payload: dict) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(payload)], capture_output=True, text=True,
                          env=env, cwd=tree, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[6:])
    raise SystemExit(f"{tree}: child failed\n{done.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--other", required=True, help="the other tremor source tree (e.g. main's)")
    parser.add_argument("--settings", default="5:0.9,10:0.7,10:0.4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--out", default="results/seismic_ab")
    args = parser.parse_args()
    payload = {"index": str(Path(args.index).resolve()), "queries": str(Path(args.queries).resolve()),
               "settings": args.settings.split(","), "repeat": args.repeat, "limit": args.limit}
    trees = {"this": ROOT, "other": Path(args.other).resolve()}
    runs: dict[str, list] = {"this": [], "other": []}
    loads = [os.getloadavg()]
    for r in range(args.rounds):
        for name in (["this", "other"] if r % 2 == 0 else ["other", "this"]):
            result = run_tree(trees[name], payload)
            runs[name].append(result)
            print(name, json.dumps(result), flush=True)
        loads.append(os.getloadavg())
    lines = [f"# Seismic before/after: {trees['this']} vs {trees['other']}", "",
             "Command: `python " + " ".join(sys.argv) + "`  ", f"Load averages per round: {loads}", "",
             f"Index bytes: this {runs['this'][0]['bytes'] / 1e6:.1f} MB, "
             f"other {runs['other'][0]['bytes'] / 1e6:.1f} MB "
             f"(ratio {runs['this'][0]['bytes'] / runs['other'][0]['bytes']:.3f})", "",
             "| setting | this R@10 | other R@10 | this mean µs (best round) | other mean µs (best round) | latency "
             "ratio | this QPS | other QPS | QPS ratio |", "|---|---|---|---|---|---|---|---|---|"]
    summary = {}
    for setting in payload["settings"]:
        this = [run["settings"][setting] for run in runs["this"]]
        other = [run["settings"][setting] for run in runs["other"]]
        t_us, o_us = min(x["mean_us"] for x in this), min(x["mean_us"] for x in other)
        t_qps, o_qps = max(x["qps"] for x in this), max(x["qps"] for x in other)
        summary[setting] = {"this_us": t_us, "other_us": o_us, "this_qps": t_qps, "other_qps": o_qps,
                            "this_recall": this[0]["recall"], "other_recall": other[0]["recall"],
                            "this_rounds_us": [x["mean_us"] for x in this],
                            "other_rounds_us": [x["mean_us"] for x in other]}
        lines.append(f"| {setting} | {this[0]['recall']:.4f} | {other[0]['recall']:.4f} | {t_us:.1f} | {o_us:.1f} | "
                     f"{t_us / o_us:.2f} | {t_qps:.0f} | {o_qps:.0f} | {t_qps / o_qps:.2f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps({"command": sys.argv, "loads": loads, "runs": runs,
                                                    "summary": summary}, indent=1))
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
