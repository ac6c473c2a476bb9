"""Scale-out on Ray, measured on this machine: sharded build and encoding throughput with 1 and 2 workers, fan-out
search against the single index, Seismic shards on SPLADE-like vectors, and a capacity plan computed from those
numbers for MS MARCO (8.8 M passages) and MS MARCO v2 (138 M).

    python scripts/bench_distributed.py --out results/distributed

Every configuration runs side by side in the same process on a local Ray cluster of ``--cpus`` CPUs (started once;
its start time is reported, not counted). Writes ``bench.json``, ``bench.md`` and ``capacity.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from tremor.corpus import Document, read_documents, read_queries  # noqa: E402
from tremor.distributed import ShardedSearcher, build_sharded, build_sharded_from_vectors, connect  # noqa: E402
from tremor.distributed.build import shard_ranges  # noqa: E402
from tremor.distributed.encode import encode_sharded  # noqa: E402
from tremor.index import index_class, parse_index_spec  # noqa: E402
from tremor.index.builder import build_index, write_index  # noqa: E402
from tremor.search import Searcher  # noqa: E402
from tremor.search.searcher import open_index  # noqa: E402

MSMARCO = {"MS MARCO v1 passages": 8_841_823, "MS MARCO v2 passages": 138_364_198}


def array_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in (path / "arrays").glob("*.npy"))


def latencies(search, queries, k: int = 10) -> dict:
    """One query at a time: mean, p50 and p99 in microseconds (after one warm-up pass over 20 queries)."""
    for i in range(min(20, len(queries))):
        search(queries[i:i + 1], k)
    times = []
    for i in range(len(queries)):
        started = time.perf_counter()
        search(queries[i:i + 1], k)
        times.append((time.perf_counter() - started) * 1e6)
    times = np.asarray(times)
    return {"mean_us": float(times.mean()), "p50_us": float(np.percentile(times, 50)),
            "p99_us": float(np.percentile(times, 99))}


def batch_qps(search, queries, k: int = 10, rounds: int = 3) -> float:
    best = math.inf
    for _ in range(rounds):
        started = time.perf_counter()
        search(queries, k)
        best = min(best, time.perf_counter() - started)
    return len(queries) / best


def recall_at(numbers: np.ndarray, truth: np.ndarray) -> float:
    hits = [len(set(a[a >= 0].tolist()) & set(b[b >= 0].tolist())) / max(1, int((b >= 0).sum()))
            for a, b in zip(numbers, truth, strict=True)]
    return float(np.mean(hits))


# ------------------------------------------------------------------------------------------------------- parts
def bench_bm25_build(corpus: list[Document], tmp: Path) -> dict:
    """BM25 exact index over the corpus: one process (no Ray) against 2 shards with 1 and 2 workers."""
    out = {"documents": len(corpus)}
    started = time.perf_counter()
    build_index(corpus, tmp / "bm25-single", progress=False)
    out["single_s"] = time.perf_counter() - started
    for workers in (1, 2):
        started = time.perf_counter()
        path = build_sharded(corpus, tmp / f"bm25-w{workers}", shards=2, workers=workers, progress=False)
        seconds = time.perf_counter() - started
        manifest = json.loads((path / "shards.json").read_text())
        out[f"workers{workers}"] = {"s": seconds, "timings": manifest["timings"],
                                    "shard_build_s": [s["build_seconds"] for s in manifest["shards"]]}
    return out


def bench_encoding(texts: list[Document], tmp: Path, max_length: int, target_nnz: int) -> dict:
    """SPLADE-shaped encoder (all-MiniLM-L6-v2 backbone with a tied MLM head, as scripts/bench_encoders.py builds):
    the encoder in this process (2 torch threads) against encode_sharded with 1 and 2 one-CPU workers."""
    import torch
    from bench_encoders import build_model

    from tremor.encoders.neural import load_encoder

    model_dir = build_model(max_length, target_nnz, [d.full_text for d in texts[:16]], tmp / "minilm-splade")
    encoder = load_encoder(model_dir, device="cpu")
    encoder.encode_documents([d.full_text for d in texts[:4]])  # warm-up
    started = time.perf_counter()
    vectors = encoder.encode_documents([d.full_text for d in texts])
    out = {"documents": len(texts), "max_length": max_length, "torch_threads": torch.get_num_threads(),
           "single_s": time.perf_counter() - started, "nnz_per_doc": vectors.nnz / len(vectors)}
    ranges = shard_ranges(len(texts), 2)
    for workers in (1, 2):
        started = time.perf_counter()
        encoded = encode_sharded(texts, ranges, str(model_dir), tmp / f"vectors-w{workers}", workers=workers,
                                 part_size=16, cpus_per_worker=1.0)
        out[f"workers{workers}"] = {"s": time.perf_counter() - started,
                                    "encode_s_sum": sum(s["encode_seconds"] for s in encoded.stats)}
    return out


def bench_fanout(data: Path, tmp: Path, rounds: int) -> dict:
    """BM25 over scifact: the single index against 1 and 2 shards searched through Ray actors."""
    single = build_index(data, tmp / "scifact-single", progress=False)
    out = {}
    searcher = Searcher.load(single)
    texts = [q.text for q in read_queries(data)]
    queries = searcher.encode_queries(texts)
    expected = searcher.search_vectors(queries, 10)
    rows = [("single index (in process)", searcher, 1)]
    sharded = []
    for shards in (1, 2):
        path = build_sharded(data, tmp / f"scifact-{shards}", shards=shards, progress=False)
        sharded.append(ShardedSearcher.load(path, cpus_per_shard=0.5))
        rows.append((f"{shards} shard{'s' if shards > 1 else ''} (Ray actors)", sharded[-1], shards))
    for name, s, shards in rows:
        got = s.search_vectors(queries, 10)
        out[name] = {"shards": shards, "exact_equal": bool(np.array_equal(got[0], expected[0])
                                                           and np.array_equal(got[1], expected[1])),
                     "batch_qps": batch_qps(s.search_vectors, queries, rounds=rounds),
                     **latencies(s.search_vectors, queries)}
    for s in sharded:
        s.close()
    out["queries"] = len(texts)
    return out


def bench_seismic(n_docs: int, n_queries: int, tmp: Path, spec: str, settings: list[dict]) -> dict:
    """SPLADE-like synthetic vectors (scripts/make_synthetic.py): one Seismic index against 2 Seismic shards; recall
    against exact search, latency of one shard searched in process and of the fan-out through Ray."""
    from make_synthetic import generate

    docs, queries = generate(n_docs, n_queries, progress=False)
    exact = index_class("exact").build(docs)
    truth = exact.search(queries, 10)[1]
    del exact
    out = {"documents": n_docs, "queries": n_queries, "nnz_per_doc": docs.nnz / n_docs, "spec": spec}
    started = time.perf_counter()
    index_type, params = parse_index_spec(spec)
    single = index_class(index_type).build(docs, **params)
    out["single_build_s"] = time.perf_counter() - started
    write_index(tmp / "seismic-single", single, None, None)
    out["single_bytes_per_doc"] = array_bytes(tmp / "seismic-single") / n_docs
    started = time.perf_counter()
    path = build_sharded_from_vectors(docs, tmp / "seismic-sharded", 2, index=spec, workers=2)
    out["sharded_build_s"] = time.perf_counter() - started
    manifest = json.loads((path / "shards.json").read_text())
    out["shard_build_s"] = [s["build_seconds"] for s in manifest["shards"]]
    out["shard_docs"] = [s["documents"] for s in manifest["shards"]]
    out["sharded_bytes_per_doc"] = sum(array_bytes(path / s["path"]) for s in manifest["shards"]) / n_docs
    shard0, _ = open_index(path / "shard-0000")
    sharded = ShardedSearcher.load(path, cpus_per_shard=0.5)
    out["settings"] = []
    for setting in settings:
        row = dict(setting)
        row["single_recall"] = recall_at(single.search(queries, 10, **setting)[1], truth)
        row["sharded_recall"] = recall_at(sharded.search_vectors(queries, 10, **setting)[1], truth)
        row["single"] = latencies(lambda q, k, s=setting: single.search(q, k, **s), queries)
        row["one_shard"] = latencies(lambda q, k, s=setting: shard0.search(q, k, **s), queries)
        row["fanout"] = latencies(lambda q, k, s=setting: sharded.search_vectors(q, k, **s), queries)
        out["settings"].append(row)
    sharded.close()
    return out


# -------------------------------------------------------------------------------------------------- reporting
def capacity_plan(results: dict, node_ram_gib: float, node_cpus: int, index_share: float,
                  shard_docs: int) -> tuple[str, dict]:
    """Shards, memory and nodes for the MS MARCO collections, from the measured per-shard numbers."""
    seismic = results["seismic"]
    enc = results["encoding"]
    fan = results["fanout"]
    # the setting that reached recall@10 >= 0.95 on the shards with the lowest one-shard latency
    ok = [s for s in seismic["settings"] if s["sharded_recall"] >= 0.95]
    chosen = min(ok, key=lambda s: s["one_shard"]["mean_us"]) if ok else max(seismic["settings"],
                                                                            key=lambda s: s["sharded_recall"])
    bytes_per_doc = seismic["sharded_bytes_per_doc"]
    measured_shard = seismic["shard_docs"][0]
    shard_us, shard_p99 = chosen["one_shard"]["mean_us"], chosen["one_shard"]["p99_us"]
    whole_us = chosen["single"]["mean_us"]
    # growth of latency with collection size, from the two sizes measured here (one shard, the whole collection):
    # latency ∝ size^exponent; bounded to [0.5, 1] (a Seismic query reads a bounded prefix of each list, so it grows
    # sublinearly; 1 = linear, the pessimistic end)
    ratio = seismic["documents"] / measured_shard
    exponent = min(1.0, max(0.5, math.log(whole_us / shard_us) / math.log(ratio))) if whole_us > 0 else 1.0
    scale = (shard_docs / measured_shard) ** exponent
    plan_shard_us, plan_shard_p99 = shard_us * scale, shard_p99 * scale
    overhead_us = fan["1 shard (Ray actors)"]["mean_us"] - fan["single index (in process)"]["mean_us"]
    worker_docs_s = enc["documents"] / enc["workers1"]["encode_s_sum"]
    build_s_per_doc = float(np.mean(seismic["shard_build_s"])) / measured_shard
    numbers = {"chosen": chosen, "bytes_per_doc": bytes_per_doc, "exponent": exponent, "plan_shard_us": plan_shard_us,
               "plan_shard_p99_us": plan_shard_p99, "overhead_us": overhead_us, "worker_docs_s": worker_docs_s,
               "build_s_per_doc": build_s_per_doc, "collections": {}}
    usable = node_ram_gib * index_share * 2**30
    lines = [
        "Inputs (measured in this run unless marked):",
        "",
        f"- bytes per document of a Seismic shard: **{bytes_per_doc:,.0f} B** (index arrays of 2 shards over "
        f"{seismic['documents']:,} SPLADE-like synthetic vectors from scripts/make_synthetic.py, "
        f"{seismic['nnz_per_doc']:.1f} non-zeros each; spec `{seismic['spec']}`). *Extrapolated*: that MS MARCO "
        "SPLADE documents have about as many non-zeros (SPLADE++ documents have on the order of 100–200; the "
        "splade-tiny model is not on this branch, so no real SPLADE postings per document were measured here).",
        f"- search setting: `query_cut={chosen['query_cut']}, heap_factor={chosen['heap_factor']}`, recall@10 "
        f"{chosen['sharded_recall']:.3f} over the 2 shards (single index {chosen['single_recall']:.3f}) against "
        "exact search of the whole collection.",
        f"- one shard of {measured_shard:,} documents, one query, one thread, in process: mean **{shard_us:.0f} µs**, "
        f"p99 {shard_p99:.0f} µs; the whole {seismic['documents']:,}-document index: mean {whole_us:.0f} µs.",
        f"- latency growth with size: ({whole_us:.0f} / {shard_us:.0f}) = {ratio:g}^e gives e = "
        f"{math.log(whole_us / shard_us) / math.log(ratio):.2f}, used bounded to [0.5, 1]: **e = {exponent:.2f}**.",
        f"- fan-out overhead (Ray round trip and merge): BM25 over scifact, 1 shard through a Ray actor minus the same "
        f"index in process: **{overhead_us:.0f} µs** per query.",
        f"- encoding: **{worker_docs_s:.2f} docs/s per one-CPU worker** (SPLADE-shaped MiniLM-L6 model, "
        f"{enc['max_length']} tokens, {enc['nnz_per_doc']:.0f} non-zeros/doc, on a shared CPU); no GPU was measured.",
        f"- Seismic build: **{build_s_per_doc * 1e6:,.0f} µs per document** in a shard task "
        f"(mean over shards of {measured_shard:,} documents, on a shared CPU).",
        f"- *Assumed*: shards of {shard_docs:,} documents; nodes with {node_cpus} CPUs and {node_ram_gib:.0f} GiB of "
        f"RAM, {index_share:.0%} of it for memory-mapped shards; one CPU per shard actor.",
        f"- *Extrapolated*: per-shard latency at {shard_docs:,} documents = {shard_us:.0f} µs × "
        f"({shard_docs:,} / {measured_shard:,})^{exponent:.2f} = **{plan_shard_us:.0f} µs** mean, "
        f"{plan_shard_p99:.0f} µs p99; passage counts (MS MARCO v1 8,841,823; v2 138,364,198) are the published ones.",
        "",
        "| collection | passages | shards | index memory | nodes | encoding, CPU-hours | build, CPU-hours | "
        "expected latency per query |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, passages in MSMARCO.items():
        shards = math.ceil(passages / shard_docs)
        memory = passages * bytes_per_doc
        nodes = max(math.ceil(memory / usable), math.ceil(shards / node_cpus))
        cpu_hours = passages / worker_docs_s / 3600
        build_hours = passages * build_s_per_doc / 3600
        latency_ms = (plan_shard_p99 + overhead_us) / 1000  # the slowest shard decides the fan-out
        numbers["collections"][name] = {"shards": shards, "memory_gb": memory / 1e9, "nodes": nodes,
                                        "encode_cpu_hours": cpu_hours, "build_cpu_hours": build_hours,
                                        "latency_ms": latency_ms,
                                        "mean_latency_ms": (plan_shard_us + overhead_us) / 1000}
        lines.append(f"| {name} | {passages:,} | {shards} | {memory / 1e9:.1f} GB | {nodes} | {cpu_hours:,.0f} | "
                     f"{build_hours:,.1f} | {(plan_shard_us + overhead_us) / 1000:.1f} ms mean, "
                     f"{latency_ms:.1f} ms p99 |")
    lines += [
        "",
        "Arithmetic: shards = ⌈passages / shard size⌉; index memory = passages × bytes per document; nodes = "
        f"max(⌈memory / ({node_ram_gib:.0f} GiB × {index_share:.0%})⌉, ⌈shards / {node_cpus} CPUs⌉); encoding "
        "CPU-hours = passages / (docs/s per worker) / 3600 (divide by the workers for wall time); build CPU-hours = "
        "passages × build µs per document / 3600 (spread over the shard tasks); latency = one shard's latency scaled "
        "to the shard size + the fan-out overhead, with the p99 column as the straggler bound (every shard runs in "
        "parallel, so the slowest decides).",
        "",
        "This is a plan, not a measurement: nothing here ran on MS MARCO, on more than one machine, or on a GPU.",
    ]
    return "\n".join(lines) + "\n", numbers


def markdown(results: dict, command: str) -> str:
    b, e, f, s = results["bm25_build"], results["encoding"], results["fanout"], results["seismic"]
    m = results["machine"]
    lines = [f"# Scale-out on Ray: measured on {m['cpus']} CPUs", "",
             f"Command: `{command}`  ", f"Machine: {m['platform']}, {m['cpus']} CPUs (shared), Ray {m['ray']} "
             f"local cluster of {m['ray_cpus']} CPUs (start {m['ray_start_s']:.1f} s, not counted), load average "
             f"at start {m['load_start']}, at end {m['load_end']}", "",
             f"## Build and encoding throughput ({b['documents']:,} BM25 documents; {e['documents']} SPLADE documents)",
             "",
             "| what | single process | 2 shards, 1 worker | 2 shards, 2 workers | 2 workers / 1 worker |",
             "|---|---|---|---|---|"]
    w1, w2 = b["workers1"]["s"], b["workers2"]["s"]
    lines.append(f"| BM25 build (statistics + impacts + exact index + doc store), s | {b['single_s']:.2f} | "
                 f"{w1:.2f} | {w2:.2f} | {w1 / w2:.2f}× faster |")
    lines.append(f"| BM25 build, docs/s | {b['documents'] / b['single_s']:,.0f} | {b['documents'] / w1:,.0f} | "
                 f"{b['documents'] / w2:,.0f} | |")
    e1, e2 = e["workers1"]["s"], e["workers2"]["s"]
    lines.append(f"| SPLADE encoding ({e['max_length']} tokens), s | {e['single_s']:.1f} ({e['torch_threads']} "
                 f"threads) | {e1:.1f} | {e2:.1f} | {e1 / e2:.2f}× faster |")
    lines.append(f"| SPLADE encoding, docs/s | {e['documents'] / e['single_s']:.2f} | {e['documents'] / e1:.2f} | "
                 f"{e['documents'] / e2:.2f} | |")
    lines += ["", "Sharded times include Ray task and actor start-up (model loading in each encoder worker) and "
              "writing the shards; BM25 timings per phase: "
              f"1 worker {b['workers1']['timings']}, 2 workers {b['workers2']['timings']}.", "",
              f"## Fan-out search, BM25 over scifact ({f['queries']} queries, k = 10)", "",
              "| searcher | exact top-10 equal to the single index | batch QPS | one query mean µs | p50 µs | "
              "p99 µs |", "|---|---|---|---|---|---|"]
    base = f["single index (in process)"]
    for name, row in f.items():
        if name == "queries":
            continue
        lines.append(f"| {name} | {'yes' if row['exact_equal'] else 'NO'} | {row['batch_qps']:,.0f} | "
                     f"{row['mean_us']:,.0f} | {row['p50_us']:,.0f} | {row['p99_us']:,.0f} |")
    two = f["2 shards (Ray actors)"]
    lines += ["", f"Ratios against the single index: 2 shards batch QPS {two['batch_qps'] / base['batch_qps']:.2f}×, "
              f"one-query latency {two['mean_us'] / base['mean_us']:.1f}×.", "",
              f"## Seismic shards on SPLADE-like vectors ({s['documents']:,} documents, {s['nnz_per_doc']:.1f} "
              f"non-zeros each, {s['queries']} queries)", "",
              f"Spec `{s['spec']}`. Build: single {s['single_build_s']:.1f} s; 2 shards with 2 workers "
              f"{s['sharded_build_s']:.1f} s (per shard task {', '.join(f'{x:.1f}' for x in s['shard_build_s'])} s). "
              f"Index arrays: {s['single_bytes_per_doc']:,.0f} B/doc single, {s['sharded_bytes_per_doc']:,.0f} "
              "B/doc over the shards.", "",
              "| query_cut | heap_factor | R@10 single | R@10 2 shards | single mean µs | one shard mean µs | "
              "one shard p99 µs | fan-out mean µs | fan-out p99 µs |", "|---|---|---|---|---|---|---|---|---|"]
    for row in s["settings"]:
        lines.append(f"| {row['query_cut']} | {row['heap_factor']} | {row['single_recall']:.4f} | "
                     f"{row['sharded_recall']:.4f} | {row['single']['mean_us']:.0f} | "
                     f"{row['one_shard']['mean_us']:.0f} | {row['one_shard']['p99_us']:.0f} | "
                     f"{row['fanout']['mean_us']:.0f} | {row['fanout']['p99_us']:.0f} |")
    for rerun in results.get("reruns", []):
        lines += ["", f"Sections {', '.join(rerun['parts'])} re-measured with `{rerun['command']}` (load average at "
                  f"start {rerun['machine']['load_start']}, at end {rerun['machine']['load_end']})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "beir",
                        help="folder holding the BEIR scifact folder")
    parser.add_argument("--replicate", type=int, default=4, help="copies of scifact in the BM25 build corpus")
    parser.add_argument("--encode-docs", type=int, default=96)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--synthetic-docs", type=int, default=200_000)
    parser.add_argument("--synthetic-queries", type=int, default=500)
    parser.add_argument("--seismic", default="seismic,lambda=3500,beta=0.1,alpha=0.4")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--node-ram-gib", type=float, default=64.0, help="capacity plan: RAM per node")
    parser.add_argument("--node-cpus", type=int, default=16, help="capacity plan: CPUs per node")
    parser.add_argument("--index-share", type=float, default=0.75, help="capacity plan: RAM share for shards")
    parser.add_argument("--parts", default="bm25,fanout,encoding,seismic",
                        help="sections to measure; a subset replaces just those sections of an existing bench.json")
    parser.add_argument("--plan-only", action="store_true",
                        help="recompute bench.md and capacity.md from --out/bench.json without measuring")
    parser.add_argument("--shard-docs", type=int, default=1_000_000, help="capacity plan: documents per shard")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "distributed")
    args = parser.parse_args()
    command = "python scripts/bench_distributed.py " + " ".join(sys.argv[1:])
    if args.plan_only:
        results = json.loads((args.out / "bench.json").read_text())
        report(results, args, results.get("command", command))
        return
    scifact = args.data / "scifact"
    import ray

    started = time.perf_counter()
    connect("local", num_cpus=args.cpus, object_store_memory=512 * 1024**2)
    results = {"machine": {"platform": platform.machine(), "cpus": os.cpu_count(), "ray": ray.__version__,
                           "ray_cpus": args.cpus, "ray_start_s": time.perf_counter() - started,
                           "load_start": [round(x, 2) for x in os.getloadavg()]}}
    documents = list(read_documents(scifact))
    corpus = [Document(f"{d.id}#{copy}", d.text, d.title) for copy in range(args.replicate) for d in documents]
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-distributed-") as tmp:
        tmp = Path(tmp)
        if "bm25" in parts:
            print("BM25 build ...", flush=True)
            results["bm25_build"] = bench_bm25_build(corpus, tmp)
        if "fanout" in parts:
            print("fan-out search ...", flush=True)
            results["fanout"] = bench_fanout(scifact, tmp, args.rounds)
        if "encoding" in parts:
            print("encoding ...", flush=True)
            results["encoding"] = bench_encoding(documents[:args.encode_docs], tmp, args.max_length, 200)
        if "seismic" in parts:
            print("Seismic shards ...", flush=True)
            settings = [{"query_cut": c, "heap_factor": 0.9} for c in (2, 3, 5)]
            results["seismic"] = bench_seismic(args.synthetic_docs, args.synthetic_queries, tmp, args.seismic,
                                               settings)
    results["machine"]["load_end"] = [round(x, 2) for x in os.getloadavg()]
    results["command"] = command
    if parts != {"bm25", "fanout", "encoding", "seismic"}:  # a re-run of some sections: keep the others
        previous = json.loads((args.out / "bench.json").read_text())
        rerun = {"parts": sorted(parts), "command": command, "machine": results.pop("machine")}
        results = {**previous, **{key: value for key, value in results.items() if key != "command"}}
        results["reruns"] = [*previous.get("reruns", []), rerun]
    ray.shutdown()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(results, indent=2) + "\n")  # first, so a report bug loses nothing
    report(results, args, results["command"])


def report(results: dict, args: argparse.Namespace, command: str) -> None:
    """Write bench.md and capacity.md (and the plan's numbers into bench.json) and print them."""
    plan, numbers = capacity_plan(results, args.node_ram_gib, args.node_cpus, args.index_share, args.shard_docs)
    results["capacity"] = numbers
    (args.out / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results, command)
    (args.out / "bench.md").write_text(table)
    (args.out / "capacity.md").write_text("# Capacity plan (computed from bench.json)\n\n" + plan)
    print(table)
    print(plan)


if __name__ == "__main__":
    main()
