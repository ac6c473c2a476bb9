"""Live indexes on scifact: the first half built, the second half added in 10 batches, against one full build.

Measures, in one run:
- a learned encoder with fixed statistics (a tiny SPLADE model built here from a transformers config, random weights,
  WordPiece vocabulary of scifact's most frequent words): top-10 equality of the 11-segment index with a full build;
- BM25 in live mode (idf on the query side over the live documents, a growing vocabulary, avgdl as of each
  document's arrival): nDCG@10 of the live index, of a forced merge keeping its vectors, and of a forced merge
  re-encoding them, against a full build; and, for comparison, BM25 with the statistics and vocabulary of the first
  half fixed (what a live index of an encoder fitted beforehand does);
- one-query latency of the 11-segment index against the same documents merged into one segment, at the same recall:
  exact indexes (recall 1) for both encoders, and Seismic over the BM25 vectors at the fastest setting of a small grid
  reaching recall@10 >= 0.95 against exact search; measured interleaved in the same process, as ratios.

    python scripts/bench_live.py [--data ../shared/data/beir] [--out results/live]
    python scripts/bench_live.py --seismic-only-from results/live/bench.json   # the Seismic section alone
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numba
import numpy as np

from tremor.eval import load_dataset
from tremor.eval.metrics import evaluate_run
from tremor.eval.report import write_text_atomic
from tremor.index.builder import build_index
from tremor.index.segments import IndexWriter
from tremor.index.seismic import SeismicIndex
from tremor.search import Searcher

# heap_factor above 1 skips blocks whose summary could still beat the k-th score (BM25 in live mode holds saturated
# term frequencies, whose block summaries are tighter: recall stays high there)
SEISMIC_GRID = [(query_cut, heap_factor) for query_cut in (3, 4, 5, 10, 20)
               for heap_factor in (0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.1, 1.2, 1.4)]
RECALL_TARGET = 0.95


def tiny_splade(folder: Path, texts: list[str], vocab_words: int = 3000):
    """A random 2-layer BERT MLM (hidden 32) over scifact's most frequent words, as a SPLADE encoder."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    from tremor.encoders.neural import load_encoder, save_model_dir
    from tremor.encoders.splade import splade_config

    counts = Counter(w for t in texts for w in re.findall(r"[a-z]+", t.lower()))
    letters = "abcdefghijklmnopqrstuvwxyz"
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *(f"##{c}" for c in letters),
              *(w for w, _ in counts.most_common(vocab_words))]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(dict.fromkeys(tokens)) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(str(folder / "vocab.txt"))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=256)
    torch.manual_seed(0)
    model = BertForMaskedLM(config).eval()
    model_dir = save_model_dir(folder / "splade", splade_config(document_max_length=128, query_max_length=32),
                               model=model, tokenizer=tokenizer)
    return load_encoder(model_dir)


def grow(path: Path, documents: list, encoder, spec: str, n_batches: int) -> dict:
    """First half in one add, second half in ``n_batches`` adds, each committed; returns timings."""
    half = len(documents) // 2
    started = time.perf_counter()
    with IndexWriter(path, encoder=encoder, index=spec) as writer:
        writer.add(documents[:half])
        writer.commit()
        first = time.perf_counter() - started
        batch_seconds = []
        for chunk in np.array_split(np.arange(half, len(documents)), n_batches):
            t = time.perf_counter()
            writer.add([documents[i] for i in chunk])
            writer.commit()
            batch_seconds.append(time.perf_counter() - t)
    return {"first_half_s": round(first, 2), "batch_add_commit_s": [round(s, 3) for s in batch_seconds]}


def merged_copy(source: Path, target: Path, refresh: bool) -> dict:
    shutil.copytree(source, target)
    started = time.perf_counter()
    with IndexWriter(target) as writer:
        writer.merge(force=True, refresh_statistics=refresh)
    return {"merge_s": round(time.perf_counter() - started, 2)}


def run_of(searcher: Searcher, queries, k: int = 10) -> dict:
    hits = searcher.batch_search([q.text for q in queries], k=k, with_text=False)
    return {q.id: {h.id: h.score for h in row} for q, row in zip(queries, hits, strict=True)}


def top_ids(searcher: Searcher, queries, k: int = 10) -> list[list[str]]:
    return [[h.id for h in row] for row in searcher.batch_search([q.text for q in queries], k=k, with_text=False)]


def ndcg(run: dict, qrels: dict) -> float:
    return evaluate_run(run, qrels, ["nDCG@10"]).aggregate["nDCG@10"]


def one_query_seconds(searcher: Searcher, vectors, repeats: int, **params) -> list[float]:
    """CPU seconds per query, one query at a time on the calling thread, for each repeat. Process CPU time, not wall
    time: the cores are shared with other work, and waiting for a core is not the search's cost."""
    out = []
    rows = [vectors[i:i + 1] for i in range(len(vectors))]
    for _ in range(repeats):
        started = time.process_time()
        for row in rows:
            searcher.search_vectors(row, 10, **params)
        out.append((time.process_time() - started) / len(rows))
    return out


def interleaved(pairs: dict, vectors, repeats: int, rounds: int = 5, **params) -> dict:
    """Median seconds per query of each searcher, measured in alternation (noise hits both alike)."""
    samples: dict[str, list[float]] = {name: [] for name in pairs}
    for searcher in pairs.values():  # warm up
        one_query_seconds(searcher, vectors, 1, **params)
    for _ in range(rounds):
        for name, searcher in pairs.items():
            samples[name].extend(one_query_seconds(searcher, vectors, repeats, **params))
    return {name: float(np.median(s)) for name, s in samples.items()}


def interleaved_variants(variants: dict, vectors, repeats: int, rounds: int = 5, **params) -> dict:
    """``interleaved`` over (searcher, extra search parameters) pairs: median seconds per query of each."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for searcher, extra in variants.values():  # warm up
        one_query_seconds(searcher, vectors, 1, **params, **extra)
    for _ in range(rounds):
        for name, (searcher, extra) in variants.items():
            samples[name].extend(one_query_seconds(searcher, vectors, repeats, **params, **extra))
    return {name: float(np.median(s)) for name, s in samples.items()}


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    hits = 0
    total = 0
    for got, want in zip(found, truth, strict=True):
        want = set(want[want >= 0].tolist())
        hits += len(want & set(got[got >= 0].tolist()))
        total += len(want)
    return hits / max(total, 1)


def measure_learned(documents: list, queries: list, work: Path, args) -> dict:
    """Top-10 equality and latency for a tiny SPLADE model (fixed statistics)."""
    encoder = tiny_splade(work / "model", [d.full_text for d in documents])
    started = time.perf_counter()
    build_index(documents, work / "splade_full", encoder=encoder, progress=False)
    learned = {"full_build_s": round(time.perf_counter() - started, 1)}
    learned["grow"] = grow(work / "splade_live", documents, encoder, "exact", args.batches)
    learned["merge"] = merged_copy(work / "splade_live", work / "splade_merged", refresh=False)
    l_full = Searcher.load(work / "splade_full")
    l_live = Searcher.load(work / "splade_live")
    l_merged = Searcher.load(work / "splade_merged")
    want = top_ids(l_full, queries)
    learned["segments"] = l_live.index.n_segments
    learned["top10_equal_live_vs_full"] = sum(a == b for a, b in zip(top_ids(l_live, queries), want, strict=True))
    learned["top10_equal_merged_vs_full"] = sum(a == b for a, b in zip(top_ids(l_merged, queries), want,
                                                                       strict=True))
    learned["queries"] = len(queries)
    l_vectors = l_live.encode_queries([q.text for q in queries])
    times = interleaved({"segments": l_live, "merged": l_merged}, l_vectors, args.repeats)
    learned["exact_one_query_ms"] = {k: round(v * 1e3, 4) for k, v in times.items()}
    learned["exact_latency_ratio_segments_over_merged"] = round(times["segments"] / times["merged"], 3)
    print("learned", json.dumps(learned), flush=True)
    return learned


def measure_bm25_exact(documents: list, dataset, work: Path, bm25: dict, live: Searcher, keep: Searcher, vectors,
                       args) -> dict:
    """nDCG@10 of BM25 live / merged / refreshed (and of fixed first-half statistics) against a full build, and exact
    one-query latency."""
    from tremor.encoders.bm25 import BM25Encoder

    build_index(documents, work / "bm25_full", encoder="bm25", progress=False)
    bm25["merge_refresh"] = merged_copy(work / "bm25_live", work / "bm25_merged_refresh", refresh=True)
    half_encoder = BM25Encoder()  # fitted beforehand: a live index keeps its statistics and vocabulary fixed
    half_encoder.fit_encode([d.full_text for d in documents[:len(documents) // 2]])
    bm25["grow_fixed"] = grow(work / "bm25_fixed", documents, half_encoder, "exact", args.batches)
    full = Searcher.load(work / "bm25_full")
    refreshed = Searcher.load(work / "bm25_merged_refresh")
    fixed = Searcher.load(work / "bm25_fixed")
    bm25["segments"] = live.index.n_segments
    bm25["ndcg10"] = {name: round(ndcg(run_of(s, dataset.queries), dataset.qrels), 4)
                      for name, s in (("full_build", full), ("live", live), ("merged_keeping_vectors", keep),
                                      ("merged_refreshed", refreshed), ("live_fixed_first_half_statistics", fixed))}
    bm25["ndcg10_difference_live_vs_full"] = round(bm25["ndcg10"]["live"] - bm25["ndcg10"]["full_build"], 4)
    bm25["ndcg10_difference_fixed_vs_full"] = round(bm25["ndcg10"]["live_fixed_first_half_statistics"]
                                                    - bm25["ndcg10"]["full_build"], 4)
    full_top = top_ids(full, dataset.queries)
    bm25["top10_equal_live_vs_full"] = sum(a == b for a, b in zip(top_ids(live, dataset.queries), full_top,
                                                                  strict=True))
    bm25["top10_equal_refreshed_vs_full"] = sum(a == b for a, b in zip(top_ids(refreshed, dataset.queries),
                                                                       full_top, strict=True))
    bm25["avgdl"] = {"full_build": round(full.encoder.avgdl, 3), "first_half": round(half_encoder.avgdl, 3)}
    # the fixed variant's drift: terms of the second half that the first half's vocabulary lacks are dropped
    second = [t for d in documents[len(documents) // 2:] for t in half_encoder.analyzer(d.full_text)]
    bm25["second_half_tokens_outside_first_half_vocabulary"] = round(
        sum(t not in half_encoder.term_ids for t in second) / max(len(second), 1), 4)
    times = interleaved({"segments": live, "merged": keep}, vectors, args.repeats)
    bm25["exact_one_query_ms"] = {k: round(v * 1e3, 4) for k, v in times.items()}
    bm25["exact_latency_ratio_segments_over_merged"] = round(times["segments"] / times["merged"], 3)
    print("bm25", json.dumps(bm25), flush=True)
    return bm25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/beir", type=Path)
    parser.add_argument("--out", default="results/live", type=Path)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="Keep the indexes here (default: a temp dir).")
    parser.add_argument("--learned-from", type=Path, default=None,
                        help="Take the tiny-SPLADE section from an earlier bench.json instead of measuring it again "
                             "(its encoding is most of the run time); the report says so.")
    parser.add_argument("--seismic-only-from", type=Path, default=None,
                        help="Measure only the Seismic section (recall and latency grid) and take the BM25 exact and "
                             "tiny-SPLADE sections from an earlier bench.json; the report says so.")
    args = parser.parse_args()
    if args.seismic_only_from is not None:
        args.learned_from = args.learned_from or args.seismic_only_from

    dataset = load_dataset(args.data / "scifact", "test")
    documents = list(dataset.documents())
    queries = dataset.queries
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_live-"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"dataset": "scifact", "documents": len(documents), "queries": len(queries),
                    "batches": args.batches, "machine": {"cpu": platform.processor() or platform.machine(),
                                                         "threads": numba.get_num_threads()}}
    print(f"scifact: {len(documents)} documents, {len(queries)} queries; work dir {work}", flush=True)

    # ---------------------------------------------------------------------------------------------- BM25
    bm25 = {"grow": grow(work / "bm25_live", documents, "bm25", "exact", args.batches)}
    bm25["merge_keep"] = merged_copy(work / "bm25_live", work / "bm25_merged_keep", refresh=False)
    live = Searcher.load(work / "bm25_live")
    keep = Searcher.load(work / "bm25_merged_keep")
    vectors = live.encode_queries([q.text for q in queries])
    if args.seismic_only_from is not None:
        report["bm25"] = {"from_earlier_run": str(args.seismic_only_from),
                          **json.loads(args.seismic_only_from.read_text())["bm25"]}
    else:
        report["bm25"] = measure_bm25_exact(documents, dataset, work, bm25, live, keep, vectors, args)

    # -------------------------------------------------------------------------------------- BM25 Seismic
    seismic = {"grow": grow(work / "seismic_live", documents, "bm25", "seismic", args.batches)}
    seismic["merge_keep"] = merged_copy(work / "seismic_live", work / "seismic_merged", refresh=False)
    s_live = Searcher.load(work / "seismic_live")
    s_merged = Searcher.load(work / "seismic_merged")
    truth = keep.search_vectors(vectors, 10)[1]
    # a live vocabulary has an identity of its own per index: encode with the Seismic index's encoder (same weights)
    s_vectors = s_live.encode_queries([q.text for q in queries])
    truth_ids = np.array(keep.docstore.ids(), dtype=object)
    wanted = np.array([[hash(truth_ids[d]) if d >= 0 else -1 for d in r] for r in truth])
    # every grid point twice, in the same run: with the default direct scoring of short lists, and with every list
    # read through its summaries (direct_postings 0, the search before short lists were scored directly)
    variants = {"": {}, "_summaries_only": {"direct_postings": 0}}
    grid = []
    for query_cut, heap_factor in SEISMIC_GRID:
        row = {"query_cut": query_cut, "heap_factor": heap_factor}
        for suffix, extra in variants.items():
            params = {"query_cut": query_cut, "heap_factor": heap_factor, **extra}
            for name, searcher in (("segments", s_live), ("merged", s_merged)):
                found = searcher.search_vectors(s_vectors, 10, **params)[1]
                # compare by external id: the two indexes number documents differently
                ids = np.array(searcher.docstore.ids(), dtype=object)
                mapped = np.array([[hash(ids[d]) if d >= 0 else -1 for d in r] for r in found])
                row[f"recall_{name}{suffix}"] = round(recall_at_10(mapped, wanted), 4)
        timed = {f"{name}{suffix}": (searcher, {**extra}) for suffix, extra in variants.items()
                 for name, searcher in (("segments", s_live), ("merged", s_merged))}
        row.update({f"ms_{k}": round(v * 1e3, 4) for k, v in interleaved_variants(
            timed, s_vectors, 1, rounds=2, query_cut=query_cut, heap_factor=heap_factor).items()})
        grid.append(row)
        print("seismic", json.dumps(row), flush=True)
    seismic["grid"] = grid
    seismic["direct_postings"] = SeismicIndex.SEARCH_DEFAULTS["direct_postings"]
    for suffix in variants:
        best = {}
        for name in ("segments", "merged"):
            reaching = [r for r in grid if r[f"recall_{name}{suffix}"] >= RECALL_TARGET]
            best[name] = min(reaching, key=lambda r, n=name + suffix: r[f"ms_{n}"]) if reaching else None
        seismic[f"fastest_at_recall_target{suffix}"] = best
        if best["segments"] and best["merged"]:
            seismic[f"latency_ratio_segments_over_merged_at_recall{suffix}"] = round(
                best["segments"][f"ms_segments{suffix}"] / best["merged"][f"ms_merged{suffix}"], 3)
        at_target = {name: interpolated_ms(grid, name + suffix, RECALL_TARGET) for name in ("segments", "merged")}
        if all(at_target.values()):
            seismic[f"interpolated_ratio_at_recall{suffix}"] = round(at_target["segments"] / at_target["merged"], 3)
        print("seismic", suffix or "default", json.dumps({k: v for k, v in seismic.items() if k != "grid"}),
              flush=True)
    seismic["recall_target"] = RECALL_TARGET
    report["seismic_bm25"] = seismic

    if args.learned_from is not None:
        report["learned_tiny_splade"] = {"from_earlier_run": str(args.learned_from),
                                         **json.loads(args.learned_from.read_text())["learned_tiny_splade"]}
    else:
        report["learned_tiny_splade"] = measure_learned(documents, queries, work, args)

    args.out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out / "bench.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(args.out / "bench.md", markdown(report))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(markdown(report))


def interpolated_ms(grid: list[dict], name: str, target: float) -> float | None:
    """Latency at exactly ``target`` recall on the lower envelope of (recall, ms): the fastest grid point reaching it,
    or a straight line between a point above and a point below it, whichever is faster (a finer grid's estimate)."""
    points = [(g[f"recall_{name}"], g[f"ms_{name}"]) for g in grid]
    best = min((ms for recall, ms in points if recall >= target), default=None)
    for high_recall, high_ms in points:
        for low_recall, low_ms in points:
            if high_recall > target > low_recall:
                ms = low_ms + (high_ms - low_ms) * (target - low_recall) / (high_recall - low_recall)
                best = ms if best is None else min(best, ms)
    return best


def markdown(r: dict) -> str:
    b, s, learned = r["bm25"], r["seismic_bm25"], r["learned_tiny_splade"]
    lines = [
        f"# Live indexes: scifact, first half + second half in {r['batches']} batches vs one full build",
        "",
        f"{r['documents']} documents, {r['queries']} test queries; {r['machine']['threads']} threads. "
        "Produced by `python scripts/bench_live.py`.",
        "",
        "## Same results as a full build",
        "",
        *([f"(The tiny-SPLADE rows come from an earlier run: {learned['from_earlier_run']}.)", ""]
          if learned.get("from_earlier_run") else []),
        *([f"(The BM25 exact rows and timings come from an earlier run: {b['from_earlier_run']}; the Seismic "
           "section was measured again.)", ""] if b.get("from_earlier_run") else []),
        "| encoder | index | measure | value |",
        "|---|---|---|---|",
        f"| tiny SPLADE (fixed statistics) | exact, {learned['segments']} segments | queries with the full build's "
        f"top 10 | {learned['top10_equal_live_vs_full']} / {learned['queries']} |",
        f"| tiny SPLADE | exact, merged | queries with the full build's top 10 | "
        f"{learned['top10_equal_merged_vs_full']} / {learned['queries']} |",
        f"| BM25 | exact, full build | nDCG@10 | {b['ndcg10']['full_build']:.4f} |",
        f"| BM25 live (idf on the query side, growing vocabulary) | exact, {b['segments']} segments | nDCG@10 | "
        f"{b['ndcg10']['live']:.4f} ({b['ndcg10_difference_live_vs_full']:+.4f}; top 10 equal to the full build's: "
        f"{b['top10_equal_live_vs_full']} / {r['queries']}) |",
        f"| BM25 live | exact, merged keeping the vectors | nDCG@10 | {b['ndcg10']['merged_keeping_vectors']:.4f} |",
        f"| BM25 live, re-encoded by the forced merge | exact, merged | nDCG@10 | "
        f"{b['ndcg10']['merged_refreshed']:.4f} (top 10 equal to the full build's: "
        f"{b['top10_equal_refreshed_vs_full']} / {r['queries']}) |",
        f"| BM25, first half's statistics fixed (for comparison) | exact, {b['segments']} segments | nDCG@10 | "
        f"{b['ndcg10']['live_fixed_first_half_statistics']:.4f} ({b['ndcg10_difference_fixed_vs_full']:+.4f}) |",
        "",
        "In live mode a query carries the idf of exactly the live documents (as a full build's); what remains is "
        f"avgdl, which each document sees as of its arrival (first half {b['avgdl']['first_half']}, all "
        f"{b['avgdl']['full_build']} terms). With the first half's statistics fixed instead, "
        f"{100 * b['second_half_tokens_outside_first_half_vocabulary']:.1f}% of the second half's tokens are outside "
        "the vocabulary and dropped, and idf / average length are the first half's.",
        "",
        "## One-query latency, segments vs one merged segment (same process, interleaved, CPU time per query)",
        "",
        "| encoder | index | recall@10 | ms/query, segments | ms/query, merged | ratio |",
        "|---|---|---|---|---|---|",
        f"| BM25 | exact | 1.0 | {b['exact_one_query_ms']['segments']:.3f} | {b['exact_one_query_ms']['merged']:.3f} "
        f"| {b['exact_latency_ratio_segments_over_merged']:.2f} |",
        f"| tiny SPLADE | exact | 1.0 | {learned['exact_one_query_ms']['segments']:.3f} | "
        f"{learned['exact_one_query_ms']['merged']:.3f} | {learned['exact_latency_ratio_segments_over_merged']:.2f} |",
    ]
    labels = {"": f"short lists (<= {s.get('direct_postings', 0)} postings) scored directly",
              "_summaries_only": "every list through its summaries"}
    for suffix, label in labels.items():
        best = s.get(f"fastest_at_recall_target{suffix}")
        if best and best["segments"] and best["merged"]:
            lines.append(
                f"| BM25 | Seismic ({label}), fastest grid setting at recall@10 >= {s['recall_target']} | "
                f"{best['segments'][f'recall_segments{suffix}']:.3f} / "
                f"{best['merged'][f'recall_merged{suffix}']:.3f} | "
                f"{best['segments'][f'ms_segments{suffix}']:.3f} (cut {best['segments']['query_cut']}, hf "
                f"{best['segments']['heap_factor']}) | {best['merged'][f'ms_merged{suffix}']:.3f} (cut "
                f"{best['merged']['query_cut']}, hf {best['merged']['heap_factor']}) | "
                f"{s[f'latency_ratio_segments_over_merged_at_recall{suffix}']:.2f} |")
        at_target = {name: interpolated_ms(s["grid"], name + suffix, s["recall_target"])
                     for name in ("segments", "merged")}
        if all(at_target.values()):
            lines.append(
                f"| BM25 | Seismic ({label}), interpolated at recall@10 = {s['recall_target']} (between grid "
                f"points) | {s['recall_target']} | {at_target['segments']:.3f} | {at_target['merged']:.3f} | "
                f"{at_target['segments'] / at_target['merged']:.2f} |")
    lines.append("")
    for suffix, label in labels.items():
        same = [g[f"ms_segments{suffix}"] / g[f"ms_merged{suffix}"] for g in s["grid"]]
        lines.append(f"At equal settings ({label}) the {b['segments']} segments take {min(same):.2f}–"
                     f"{max(same):.2f}× the merged segment's time (median {np.median(same):.2f}×) over the "
                     f"{len(same)} grid points.")
    lines += ["", "Seismic grid (BM25 vectors; recall@10 against exact search over the same vectors; `direct`: "
              "short lists scored directly, the default; `summaries`: every list through its summaries):", "",
              "| query_cut | heap_factor | recall segments direct / summaries | recall merged direct / summaries | "
              "ms segments direct / summaries | ms merged direct / summaries |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {g['query_cut']} | {g['heap_factor']} | {g['recall_segments']:.4f} / "
              f"{g['recall_segments_summaries_only']:.4f} | {g['recall_merged']:.4f} / "
              f"{g['recall_merged_summaries_only']:.4f} | {g['ms_segments']:.3f} / "
              f"{g['ms_segments_summaries_only']:.3f} | {g['ms_merged']:.3f} / {g['ms_merged_summaries_only']:.3f} |"
              for g in s["grid"]]
    lines += ["", f"Adding one batch of ~{(r['documents'] - r['documents'] // 2) // r['batches']} documents and "
              f"committing (BM25, exact): {np.median(b['grow']['batch_add_commit_s']):.3f} s median; forced merge "
              f"of {b['segments']} segments: {b['merge_keep']['merge_s']:.2f} s (keeping statistics), "
              f"{b['merge_refresh']['merge_s']:.2f} s (refitting them).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
