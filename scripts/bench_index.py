"""tremor's Seismic index against pyseismic-lsr (the Rust Seismic), side by side in one run on the same vectors.

    python scripts/bench_index.py --dataset synthetic:runs/synthetic-1m --dataset beir:scifact --dataset beir:nfcorpus

For every dataset: both engines index the same document vectors with the same build parameters (λ n_postings,
β centroid_fraction, α summary_energy, ...), the exact top-10 comes from tremor's ExactIndex, and for a grid of
query_cut × heap_factor both engines report recall@10, mean and p99 single-thread latency, batch throughput on all
cores, build time and index bytes. Writes ``<out>.json``, ``<out>.md`` and ``<out>.png`` (recall against mean
latency).

Datasets: ``synthetic:<dir>`` (``docs.npz``/``queries.npz`` from scripts/make_synthetic.py), ``beir:<name>`` (BM25
impacts of a shared BEIR corpus from tremor's BM25Encoder, queries as term counts: every query of queries.jsonl with
at least one term in the vocabulary), or ``vectors:DOCS[,DOCS...]@QUERIES[,QUERIES...]``: vector directories written
by ``tremor encode`` (e.g. a learned-sparse model's documents and queries), the documents of several files
concatenated in the order given, likewise the queries (every query with at least one non-zero)::

    python scripts/bench_index.py --dataset "vectors:sf-docs,nf-docs@sf-queries,nf-queries"

Measurement: the machine may be shared, so each timing is repeated ``--rounds`` times, alternating the engines, and
the best round counts (for latency, the per-query minimum over rounds; then mean and p99 over queries). Both engines
are called through their Python APIs with queries prepared beforehand: tremor's ``SeismicIndex.search`` on a
one-query SparseVectors, the peer's ``SeismicIndex.search`` on its string-token arrays (single-thread), and
``search`` / ``batch_search`` on all queries (batch, all cores). Build times exclude Numba compilation (a small
warm-up build runs first); the peer's build time includes loading the vectors into its dataset. Index bytes: tremor's
arrays (what its index directory stores), the peer's ``save()`` file. recall@10 counts a returned document as a hit
when its exact score reaches the exact 10th score (so ties at the cut do not count against either engine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_synthetic import load_vectors
from pyseismic_peer import PySeismicPeer

from tremor.index.exact import ExactIndex
from tremor.index.seismic import SeismicIndex
from tremor.sparse import SparseVectors

DEFAULT_GRID = ("1:1.0,1:0.9,2:0.9,3:0.9,3:0.7,5:0.9,5:0.7,5:0.5,10:0.9,10:0.7,10:0.5,10:0.4,20:0.5,20:0.3,"
                "20:0.2,20:0.1")
SHARED_BEIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "beir"


# ----------------------------------------------------------------------------------------------------------- data
def load_dataset(spec: str, beir_root: Path) -> tuple[str, SparseVectors, SparseVectors]:
    """(name, document vectors, query vectors) for ``synthetic:<dir>`` or ``beir:<name>``."""
    kind, _, where = spec.partition(":")
    if kind == "synthetic":
        root = Path(where)
        return f"synthetic ({root.name})", load_vectors(root / "docs.npz"), load_vectors(root / "queries.npz")
    if kind == "beir":
        from tremor import BM25Encoder, read_documents, read_queries

        root = beir_root / where
        encoder = BM25Encoder()
        docs = encoder.fit_encode(d.full_text for d in read_documents(root))
        queries = encoder.encode_queries([q.text for q in read_queries(root)])
        keep = np.flatnonzero(queries.row_nnz() > 0)
        return f"BEIR {where} (BM25)", docs, queries[keep]
    if kind == "vectors":
        from tremor.encoders.vector_files import read_vectors

        doc_dirs, _, query_dirs = where.partition("@")
        if not query_dirs:
            raise SystemExit(f"'{spec}': use vectors:DOCS[,DOCS...]@QUERIES[,QUERIES...] (tremor encode outputs)")
        parts = {side: [read_vectors(d.strip(), mmap=False) for d in dirs.split(",")]
                 for side, dirs in (("document", doc_dirs), ("query", query_dirs))}
        for side, loaded in parts.items():
            for _, vectors, meta in loaded:
                if meta.get("side") != side:
                    raise SystemExit(f"'{spec}': {meta.get('source')} holds {meta.get('side')} vectors, not {side}s")
                if vectors.vocab_id != loaded[0][1].vocab_id or vectors.vocab_id != parts["document"][0][1].vocab_id:
                    raise SystemExit(f"'{spec}': the vector files come from different vocabularies")
        docs = SparseVectors.concat([v for _, v, _ in parts["document"]])
        queries = SparseVectors.concat([v for _, v, _ in parts["query"]])
        keep = np.flatnonzero(queries.row_nnz() > 0)
        encoder = parts["document"][0][2].get("encoder", {})
        label = encoder.get("named_model") or Path(str(encoder.get("model", "?"))).name
        names = "+".join(Path(m.get("source", "?")).name for _, _, m in parts["document"])
        return f"{names} ({label} vectors)", docs, queries[keep]
    raise SystemExit(f"unknown dataset '{spec}': use synthetic:<dir>, beir:<name> or vectors:<docs>@<queries>")


def exact_top(docs: SparseVectors, queries: SparseVectors, k: int) -> tuple[np.ndarray, np.ndarray]:
    return ExactIndex.build(docs).search(queries, k)


def recall_at_k(found: np.ndarray, docs: SparseVectors, queries: SparseVectors, exact_scores: np.ndarray) -> float:
    """Mean over queries of the share of the exact top-k matched, counting a returned document as a hit when its
    exact score reaches the exact k-th score (ties at the cut are interchangeable)."""
    q = queries.to_scipy()
    d = docs.to_scipy()
    hits = []
    for i in range(found.shape[0]):
        valid = exact_scores[i] > -np.inf
        n_exact = int(valid.sum())
        if n_exact == 0:
            continue
        cut = exact_scores[i][valid].min()
        returned = found[i][found[i] >= 0]
        if returned.size == 0:
            hits.append(0.0)
            continue
        true_scores = (d[returned] @ q[i].T).toarray().ravel()
        good = np.unique(returned[true_scores >= cut * (1 - 1e-6)])
        hits.append(min(good.size, n_exact) / n_exact)
    return float(np.mean(hits))


def plain_recall(found: np.ndarray, exact_docs: np.ndarray) -> float:
    out = []
    for a, b in zip(found, exact_docs, strict=True):
        truth = set(b[b >= 0].tolist())
        if truth:
            out.append(len(truth & set(a[a >= 0].tolist())) / len(truth))
    return float(np.mean(out))


# ------------------------------------------------------------------------------------------------------- timing
def time_single(search_one, n: int) -> np.ndarray:
    """Seconds per query, one call each, in order."""
    out = np.empty(n)
    clock = time.perf_counter
    for i in range(n):
        started = clock()
        search_one(i)
        out[i] = clock() - started
    return out


def time_call(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def time_engines(tremor: SeismicIndex, peer: PySeismicPeer, singles: list, queries: SparseVectors, prepared: tuple,
                 params: dict, rounds: int, variants: tuple = ()) -> tuple:
    """Per-query single-thread latencies and batch seconds of both engines, best of ``rounds`` alternating rounds,
    with the last batch results of each; the tremor ``variants`` (other builds) take their turn in every round too:
    their (latencies, batch seconds, results) come last."""
    n_q = len(singles)
    query_cut, heap_factor, n_knn = params["query_cut"], params["heap_factor"], params["n_knn"]
    t_lat = np.full(n_q, np.inf)
    p_lat = np.full(n_q, np.inf)
    t_batch = p_batch = np.inf
    v_out = [[np.full(n_q, np.inf), np.inf, None] for _ in variants]
    for _ in range(rounds):
        for index, out in zip(variants, v_out, strict=True):
            out[0] = np.minimum(out[0], time_single(lambda i, index=index: index.search(singles[i], 10, **params),
                                                    n_q))
            seconds, (_, out[2]) = time_call(lambda index=index: index.search(queries, 10, **params))
            out[1] = min(out[1], seconds)
        t_lat = np.minimum(t_lat, time_single(lambda i: tremor.search(singles[i], 10, **params), n_q))
        p_lat = np.minimum(p_lat, time_single(
            lambda i: peer.search_one(prepared, i, 10, query_cut, heap_factor, n_knn), n_q))
        seconds, (_, t_found) = time_call(lambda: tremor.search(queries, 10, **params))
        t_batch = min(t_batch, seconds)
        seconds, p_raw = time_call(lambda: peer.search_batch(prepared, 10, query_cut, heap_factor, n_knn))
        p_batch = min(p_batch, seconds)
    return t_lat, p_lat, t_batch, p_batch, t_found, p_raw, v_out


def bench_dataset(spec: str, args: argparse.Namespace) -> dict:
    print(f"\n=== {spec}", flush=True)
    name, docs, queries = load_dataset(spec, args.beir)
    n_q = min(len(queries), args.max_queries) if args.max_queries else len(queries)
    queries = queries[:n_q]
    print(f"{name}: {len(docs)} documents, {docs.nnz / len(docs):.1f} non-zeros/doc, vocabulary {docs.vocab_size}; "
          f"{n_q} queries, {queries.nnz / n_q:.1f} non-zeros/query", flush=True)
    started = time.perf_counter()
    exact_scores, exact_docs = exact_top(docs, queries, 10)
    print(f"exact top-10: {time.perf_counter() - started:.1f}s", flush=True)

    build = {"n_postings": args.n_postings, "centroid_fraction": args.centroid_fraction,
             "summary_energy": args.summary_energy, "max_fraction": args.max_fraction,
             "min_cluster_size": args.min_cluster_size, "doc_cut": args.doc_cut, "knn": args.knn}
    SeismicIndex.build(docs[: min(len(docs), 2000)], progress=False, **build)  # compile (or load) the kernels
    tremor_seconds, tremor = time_call(lambda: SeismicIndex.build(docs, progress=not args.quiet, **build))
    print(f"tremor build: {tremor_seconds:.1f}s, {tremor.nbytes() / 1e6:.1f} MB", flush=True)
    variants = {}
    for text in args.variant:
        extra = dict(item.split("=", 1) for item in text.split(","))
        extra = {key: (int(value) if value.isdigit() else value) for key, value in extra.items()}
        seconds, index = time_call(lambda extra=extra: SeismicIndex.build(docs, progress=not args.quiet,
                                                                          **{**build, **extra}))
        variants[text] = {"index": index, "build_s": seconds, "index_bytes": index.nbytes(), "build_params": extra}
        print(f"tremor [{text}] build: {seconds:.1f}s, {index.nbytes() / 1e6:.1f} MB", flush=True)
    peer = PySeismicPeer.build(docs, **build)
    peer_bytes = peer.nbytes()
    print(f"pyseismic-lsr build: {peer.build_seconds['total']:.1f}s, {peer_bytes / 1e6:.1f} MB", flush=True)

    singles = [queries[i] for i in range(n_q)]
    prepared = peer.prepare(queries)
    grid = [(int(c), float(h), int(n)) for c, h, n in
            ((*item.split(":"), *([] if item.count(":") == 2 else ["0"])) for item in args.grid.split(","))]
    if args.knn:
        grid += [(c, h, args.knn) for c, h, n in grid if n == 0]
    rows = []
    for query_cut, heap_factor, n_knn in grid:
        params = {"query_cut": query_cut, "heap_factor": heap_factor, "n_knn": n_knn}
        tremor.search(singles[0], 10, **params)  # compile the serial path for these types
        for v in variants.values():
            v["index"].search(singles[0], 10, **params)
        t_lat, p_lat, t_batch, p_batch, t_found, p_raw, v_out = time_engines(
            tremor, peer, singles, queries, prepared, params, args.rounds,
            tuple(v["index"] for v in variants.values()))
        p_found = peer.to_arrays(p_raw, 10)[1]
        row = {"query_cut": query_cut, "heap_factor": heap_factor, "n_knn": n_knn}
        for engine, found, lat, batch in (("tremor", t_found, t_lat, t_batch), ("peer", p_found, p_lat, p_batch)):
            row[engine] = {"recall@10": recall_at_k(found, docs, queries, exact_scores),
                           "recall@10_plain": plain_recall(found, exact_docs),
                           "mean_us": float(lat.mean() * 1e6), "p99_us": float(np.percentile(lat, 99) * 1e6),
                           "batch_qps": float(n_q / batch)}
        row["variants"] = {}
        for text, (lat, batch, found) in zip(variants, v_out, strict=True):
            row["variants"][text] = {"recall@10": recall_at_k(found, docs, queries, exact_scores),
                                     "recall@10_plain": plain_recall(found, exact_docs),
                                     "mean_us": float(lat.mean() * 1e6),
                                     "p99_us": float(np.percentile(lat, 99) * 1e6), "batch_qps": float(n_q / batch)}
            v = row["variants"][text]
            print(f"   [{text}] R@10 {v['recall@10']:.4f} mean {v['mean_us']:8.1f}us p99 {v['p99_us']:8.1f}us "
                  f"{v['batch_qps']:9.0f} q/s", flush=True)
        rows.append(row)
        t, p = row["tremor"], row["peer"]
        print(f"qc={query_cut:<3} hf={heap_factor:<4} knn={n_knn:<2} | tremor R@10 {t['recall@10']:.4f} "
              f"mean {t['mean_us']:8.1f}us p99 {t['p99_us']:8.1f}us {t['batch_qps']:9.0f} q/s | pyseismic R@10 "
              f"{p['recall@10']:.4f} mean {p['mean_us']:8.1f}us p99 {p['p99_us']:8.1f}us {p['batch_qps']:9.0f} q/s "
              f"| latency ratio {t['mean_us'] / p['mean_us']:.2f}  qps ratio {t['batch_qps'] / p['batch_qps']:.2f}",
              flush=True)
    result = {"dataset": name, "spec": spec, "documents": len(docs), "queries": n_q,
              "doc_nnz_mean": docs.nnz / len(docs), "query_nnz_mean": queries.nnz / n_q,
              "vocab_size": docs.vocab_size, "build_params": build,
              "tremor": {"build_s": tremor_seconds, "index_bytes": tremor.nbytes()},
              "peer": {"build_s": peer.build_seconds["total"], "build_load_s": peer.build_seconds["load"],
                       "index_bytes": peer_bytes},
              "grid": rows,
              "variants": {text: {key: value for key, value in v.items() if key != "index"}
                           for text, v in variants.items()}}
    result["summary"] = summarize(result, args.target_recall)
    print_summary(result)
    del tremor, peer, variants
    return result


TARGETS = (0.8, 0.85, 0.9, 0.95, 0.99)


def best_at(grid: list[dict], engine: str, target: float) -> tuple[float | None, float | None]:
    """(best mean latency, best batch QPS) of ``engine`` (or "variant:<spec>") over the grid rows reaching recall@10
    >= target."""
    def of(row: dict) -> dict:
        return row["variants"][engine[8:]] if engine.startswith("variant:") else row[engine]

    ok = [r for r in grid if r["n_knn"] == 0 and of(r)["recall@10"] >= target]
    return (min((of(r)["mean_us"] for r in ok), default=None),
            max((of(r)["batch_qps"] for r in ok), default=None))


def summarize(result: dict, target: float) -> dict:
    """Best mean latency and best batch throughput each engine reaches at recall@10 >= target (and at the other
    TARGETS, so that collections where one engine never reaches ``target`` are still compared at equal recall)."""
    out = {"target_recall": target, "by_target": {}}
    for level in sorted({target, *TARGETS}):
        (t_us, t_qps), (p_us, p_qps) = best_at(result["grid"], "tremor", level), best_at(result["grid"], "peer", level)
        out["by_target"][str(level)] = {
            "tremor_mean_us": t_us, "peer_mean_us": p_us, "tremor_qps": t_qps, "peer_qps": p_qps,
            "latency_ratio": t_us / p_us if t_us and p_us else None, "qps_ratio": t_qps / p_qps if t_qps and p_qps
            else None}
    at = out["by_target"][str(target)]
    out["tremor"] = {"best_mean_us": at["tremor_mean_us"], "best_batch_qps": at["tremor_qps"]}
    out["peer"] = {"best_mean_us": at["peer_mean_us"], "best_batch_qps": at["peer_qps"]}
    out["latency_ratio"] = at["latency_ratio"]
    out["qps_ratio"] = at["qps_ratio"]
    out["build_ratio"] = result["tremor"]["build_s"] / result["peer"]["build_s"]
    out["size_ratio"] = result["tremor"]["index_bytes"] / result["peer"]["index_bytes"]
    out["variants"] = {}
    for text, v in result.get("variants", {}).items():
        us, qps = best_at(result["grid"], "variant:" + text, target)
        p_us, p_qps = best_at(result["grid"], "peer", target)
        out["variants"][text] = {"best_mean_us": us, "best_batch_qps": qps,
                                 "latency_ratio": us / p_us if us and p_us else None,
                                 "qps_ratio": qps / p_qps if qps and p_qps else None,
                                 "build_ratio": v["build_s"] / result["peer"]["build_s"],
                                 "size_ratio": v["index_bytes"] / result["peer"]["index_bytes"]}
    return out


def print_summary(result: dict) -> None:
    s = result["summary"]

    def fmt(x: float | None, spec: str) -> str:
        return "n/a" if x is None else format(x, spec)

    print(f"--- {result['dataset']}: at recall@10 >= {s['target_recall']}: mean latency tremor "
          f"{fmt(s['tremor']['best_mean_us'], '.1f')}us vs pyseismic {fmt(s['peer']['best_mean_us'], '.1f')}us "
          f"(ratio {fmt(s['latency_ratio'], '.2f')}, target <= 0.67); batch QPS tremor "
          f"{fmt(s['tremor']['best_batch_qps'], '.0f')} vs {fmt(s['peer']['best_batch_qps'], '.0f')} (ratio "
          f"{fmt(s['qps_ratio'], '.2f')}, target >= 1.5); build {result['tremor']['build_s']:.1f}s vs "
          f"{result['peer']['build_s']:.1f}s (ratio {s['build_ratio']:.2f}, target <= 0.5); index "
          f"{result['tremor']['index_bytes'] / 1e6:.1f} MB vs {result['peer']['index_bytes'] / 1e6:.1f} MB (ratio "
          f"{s['size_ratio']:.2f}, target <= 0.8)", flush=True)
    for text, v in s.get("variants", {}).items():
        print(f"--- tremor [{text}]: latency ratio {fmt(v['latency_ratio'], '.2f')}, QPS ratio "
              f"{fmt(v['qps_ratio'], '.2f')}, build ratio {v['build_ratio']:.2f}, size ratio {v['size_ratio']:.2f}",
              flush=True)


# ------------------------------------------------------------------------------------------------------ reports
def write_markdown(results: list[dict], meta: dict, path: Path) -> None:
    lines = [f"# Seismic index: tremor vs pyseismic-lsr {meta['pyseismic_version']}", "",
             *[f"Command: `{command}`  " for command in meta["commands"]], f"Machine: {meta['machine']}", ""]
    for r in results:
        s = r["summary"]
        b = r["build_params"]
        lines += [f"## {r['dataset']}", "", f"Run: `{r.get('command', '')}`, load average at start "
                  f"{r.get('load_average_start')}, at end {r.get('load_average_end')}", "",
                  f"{r['documents']:,} documents ({r['doc_nnz_mean']:.1f} non-zeros each), {r['queries']:,} queries "
                  f"({r['query_nnz_mean']:.1f} non-zeros each), vocabulary {r['vocab_size']:,}. Build: λ="
                  f"{b['n_postings']}, β={b['centroid_fraction']}, α={b['summary_energy']}, max_fraction="
                  f"{b['max_fraction']}, min_cluster_size={b['min_cluster_size']}, doc_cut={b['doc_cut']}, "
                  f"κ-NN={b['knn']}.", "",
                  "| | tremor | pyseismic-lsr | ratio |", "|---|---|---|---|",
                  f"| build (s) | {r['tremor']['build_s']:.1f} | {r['peer']['build_s']:.1f} | "
                  f"{s['build_ratio']:.2f} |",
                  f"| index (MB) | {r['tremor']['index_bytes'] / 1e6:.1f} | {r['peer']['index_bytes'] / 1e6:.1f} | "
                  f"{s['size_ratio']:.2f} |",
                  f"| best mean latency at R@10 ≥ {s['target_recall']} (µs) | {_f(s['tremor']['best_mean_us'])} | "
                  f"{_f(s['peer']['best_mean_us'])} | {_f(s['latency_ratio'], '.2f')} |",
                  f"| best batch QPS at R@10 ≥ {s['target_recall']} | {_f(s['tremor']['best_batch_qps'], '.0f')} | "
                  f"{_f(s['peer']['best_batch_qps'], '.0f')} | {_f(s['qps_ratio'], '.2f')} |", "",
                  "Best of the grid at equal recall (each engine's fastest setting reaching the recall):", "",
                  "| recall@10 ≥ | tremor mean µs | peer mean µs | latency ratio | tremor QPS | peer QPS | QPS ratio |",
                  "|---|---|---|---|---|---|---|",
                  *[f"| {level} | {_f(v['tremor_mean_us'])} | {_f(v['peer_mean_us'])} | "
                    f"{_f(v['latency_ratio'], '.2f')} | {_f(v['tremor_qps'], '.0f')} | {_f(v['peer_qps'], '.0f')} | "
                    f"{_f(v['qps_ratio'], '.2f')} |"
                    for level, v in s["by_target"].items()], "",
                  "| query_cut | heap_factor | n_knn | tremor R@10 | tremor mean µs | tremor p99 µs | tremor QPS | "
                  "peer R@10 | peer mean µs | peer p99 µs | peer QPS | latency ratio | QPS ratio |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for row in r["grid"]:
            t, p = row["tremor"], row["peer"]
            lines.append(f"| {row['query_cut']} | {row['heap_factor']} | {row['n_knn']} | {t['recall@10']:.4f} | "
                         f"{t['mean_us']:.1f} | {t['p99_us']:.1f} | {t['batch_qps']:.0f} | {p['recall@10']:.4f} | "
                         f"{p['mean_us']:.1f} | {p['p99_us']:.1f} | {p['batch_qps']:.0f} | "
                         f"{t['mean_us'] / p['mean_us']:.2f} | {t['batch_qps'] / p['batch_qps']:.2f} |")
        lines.append("")
        for text, v in r.get("variants", {}).items():
            sv = s["variants"][text]
            lines += [f"### tremor built with {text} (same run, same grid)", "",
                      "| | tremor [" + text + "] | pyseismic-lsr | ratio |", "|---|---|---|---|",
                      f"| build (s) | {v['build_s']:.1f} | {r['peer']['build_s']:.1f} | {sv['build_ratio']:.2f} |",
                      f"| index (MB) | {v['index_bytes'] / 1e6:.1f} | {r['peer']['index_bytes'] / 1e6:.1f} | "
                      f"{sv['size_ratio']:.2f} |",
                      f"| best mean latency at R@10 ≥ {s['target_recall']} (µs) | {_f(sv['best_mean_us'])} | "
                      f"{_f(s['peer']['best_mean_us'])} | {_f(sv['latency_ratio'], '.2f')} |",
                      f"| best batch QPS at R@10 ≥ {s['target_recall']} | {_f(sv['best_batch_qps'], '.0f')} | "
                      f"{_f(s['peer']['best_batch_qps'], '.0f')} | {_f(sv['qps_ratio'], '.2f')} |", "",
                      "| query_cut | heap_factor | R@10 | mean µs | p99 µs | QPS | R@10 (default build) | "
                      "mean µs (default build) |", "|---|---|---|---|---|---|---|---|"]
            for row in r["grid"]:
                x, t = row["variants"][text], row["tremor"]
                lines.append(f"| {row['query_cut']} | {row['heap_factor']} | {x['recall@10']:.4f} | "
                             f"{x['mean_us']:.1f} | {x['p99_us']:.1f} | {x['batch_qps']:.0f} | {t['recall@10']:.4f} | "
                             f"{t['mean_us']:.1f} |")
            lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def _f(x: float | None, spec: str = ".1f") -> str:
    return "n/a" if x is None else format(x, spec)


def write_plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4.2), squeeze=False)
    for ax, r in zip(axes[0], results, strict=True):
        for engine, label, marker in (("tremor", "tremor (Numba)", "o"), ("peer", "pyseismic-lsr (Rust)", "s")):
            points = sorted((row[engine]["mean_us"], row[engine]["recall@10"]) for row in r["grid"]
                            if row["n_knn"] == 0)
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, label=label)
        ax.axhline(r["summary"]["target_recall"], color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("mean single-thread latency (µs, log)")
        ax.set_ylabel("recall@10")
        ax.set_title(r["dataset"], fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from-json", type=Path, nargs="+", default=None,
                        help="no runs: merge these result files into one report at --out")
    parser.add_argument("--dataset", action="append", default=[],
                        help="synthetic:<dir> or beir:<name> (repeatable)")
    parser.add_argument("--beir", type=Path, default=SHARED_BEIR, help="folder holding the BEIR datasets")
    parser.add_argument("--lambda", dest="n_postings", type=int, default=SeismicIndex.BUILD_DEFAULTS["n_postings"])
    parser.add_argument("--beta", dest="centroid_fraction", type=float,
                        default=SeismicIndex.BUILD_DEFAULTS["centroid_fraction"])
    parser.add_argument("--alpha", dest="summary_energy", type=float,
                        default=SeismicIndex.BUILD_DEFAULTS["summary_energy"])
    parser.add_argument("--max-fraction", type=float, default=SeismicIndex.BUILD_DEFAULTS["max_fraction"])
    parser.add_argument("--min-cluster-size", type=int, default=SeismicIndex.BUILD_DEFAULTS["min_cluster_size"])
    parser.add_argument("--doc-cut", type=int, default=SeismicIndex.BUILD_DEFAULTS["doc_cut"])
    parser.add_argument("--knn", type=int, default=0, help="κ-NN graph width (both engines); adds n_knn grid rows")
    parser.add_argument("--grid", default=DEFAULT_GRID, help="query_cut:heap_factor[:n_knn],...")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (best counts)")
    parser.add_argument("--max-queries", type=int, default=0, help="use at most this many queries (0: all)")
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--out", type=Path, default=Path("results/bench_index"))
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--variant", action="append", default=[],
                        help="also build tremor with these build parameters changed (e.g. forward=u8), timed in "
                             "the same rounds (repeatable)")
    args = parser.parse_args()

    import importlib.metadata

    meta = {"commands": ["python " + " ".join(sys.argv)], "machine": f"{platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPUs, Numba threads {numba.get_num_threads()}, Python {platform.python_version()}",
            "pyseismic_version": importlib.metadata.version("pyseismic-lsr"),
            "numba_version": numba.__version__}
    if args.from_json:
        loaded = [json.loads(path.read_text()) for path in args.from_json]
        for data in loaded:  # files written before per-dataset provenance was recorded
            data["meta"].setdefault("commands", [data["meta"].get("command", "")])
            for r in data["results"]:
                r.setdefault("command", data["meta"]["commands"][0])
                r.setdefault("load_average_start", data["meta"].get("load_average_start"))
                r.setdefault("load_average_end", data["meta"].get("load_average_end"))
        results = [r for data in loaded for r in data["results"]]
        for r in results:
            r["summary"] = summarize(r, args.target_recall)
        meta = {**loaded[0]["meta"], "commands": [c for data in loaded for c in data["meta"]["commands"]]}
    elif not args.dataset:
        parser.error("give --dataset (repeatable) or --from-json")
    else:
        results = []
        for spec in args.dataset:
            load_start = [round(x, 2) for x in os.getloadavg()]
            results.append(bench_dataset(spec, args))
            results[-1].update(command=meta["commands"][0], load_average_start=load_start,
                               load_average_end=[round(x, 2) for x in os.getloadavg()])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2), encoding="utf-8")
    write_markdown(results, meta, Path(f"{args.out}.md"))
    write_plot(results, Path(f"{args.out}.png"))
    print(f"\nwrote {args.out}.json, {args.out}.md, {args.out}.png")


if __name__ == "__main__":
    main()
