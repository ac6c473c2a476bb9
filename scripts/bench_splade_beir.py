"""splade-tiny on BEIR (scifact, nfcorpus; test split): exact and Seismic indexes, hybrid with all-MiniLM-L6-v2,
sparse PRF and three-way fusion (SPLADE + dense + BM25), beside tremor BM25 and Lucene BM25, in one table.

The indexes come from a cache folder (``--indexes``) holding, per dataset: ``<ds>-splade-exact`` and
``<ds>-splade-seismic`` (``tremor index build --vectors <ds>-docs --encoder splade-tiny``, documents encoded at 256
tokens by ``tremor encode``), each with the dense index copied in as ``dense/``, and ``<ds>-bm25`` (``tremor index
build --encoder bm25`` + ``tremor index add-dense``, which encoded the dense vectors). Every system is scored by
``tremor.eval.evaluate_system`` (the code behind ``tremor eval``): BEIR protocol, top 1000; the single-index systems
also time the queries one at a time (k=10, one thread, query encoding included).

    python scripts/bench_splade_beir.py --indexes /path/to/cache --datasets scifact nfcorpus
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tremor.eval import SearcherRetriever, evaluate_system, load_dataset
from tremor.eval.report import markdown_table, write_system_outputs
from tremor.eval.systems import PipelineRetriever, directory_bytes, id_array, ranked_to_run
from tremor.search.pipeline import HybridSearcher, PipelineConfig, three_way_pipeline

ROOT = Path(__file__).resolve().parents[1]


class StageRetriever:
    """A pipeline stage (here the three-way fusion) as an evaluation system."""

    def __init__(self, stage, searcher, name: str, index_bytes: int | None = None) -> None:
        self.stage, self.name, self.index_bytes, self.build_seconds = stage, name, index_bytes, None
        self._ids = id_array(searcher.docstore.ids())

    def retrieve(self, queries: Sequence, k: int):
        searchable = [q for q in queries if q.text.strip()]
        run = (self.stage % k)([q.text for q in searchable])
        return ranked_to_run(queries, searchable, run.scores, run.numbers, self._ids)


def systems_for(name: str, cache: Path, data) -> list:
    exact, seismic, bm25 = cache / f"{name}-splade-exact", cache / f"{name}-splade-seismic", cache / f"{name}-bm25"
    out = [SearcherRetriever.from_index(exact, "splade-tiny exact"),
           SearcherRetriever.from_index(seismic, "splade-tiny seismic"),
           SearcherRetriever.from_index(bm25, "tremor BM25")]
    hybrid = PipelineConfig(retriever="hybrid")
    out.append(PipelineRetriever.from_index(exact, hybrid, "splade-tiny + MiniLM (hybrid)", device="cpu"))
    out.append(PipelineRetriever.from_index(exact, PipelineConfig(retriever="sparse", prf="sparse"),
                                            "splade-tiny + PRF (Rocchio)", device="cpu"))
    out.append(PipelineRetriever.from_index(exact, PipelineConfig(retriever="hybrid", prf="both"),
                                            "splade-tiny + MiniLM + PRF (both sides)", device="cpu"))
    splade_side = HybridSearcher.load(exact, device="cpu")
    bm25_side = HybridSearcher.load(bm25, dense=False)
    stage = three_way_pipeline(splade_side.sparse, splade_side.dense, bm25_side.sparse, "minmax")
    size = directory_bytes(exact, exclude=("docstore.sqlite",)) + directory_bytes(bm25, exclude=("docstore.sqlite",
                                                                                                  "dense"))
    out.append(StageRetriever(stage, splade_side.sparse, "splade-tiny + MiniLM + BM25 (three-way)", size))
    from tremor.eval.peers import LuceneBM25, unavailable_reason

    reason = unavailable_reason()
    if reason is None:
        out.append(LuceneBM25.build(data.documents(), cache / f"{name}-lucene", overwrite=True, name="Lucene BM25"))
    else:
        print(f"Lucene BM25 skipped: {reason}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--indexes", type=Path, required=True, help="folder with the prepared indexes")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "beir")
    parser.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "splade_tiny_beir")
    args = parser.parse_args()
    results, summaries = [], []
    for name in args.datasets:
        data = load_dataset(args.data / name, "test")
        for system in systems_for(name, args.indexes, data):
            # one-at-a-time latency for the single-index systems; the pipelines' dense query encoder (MiniLM, one
            # query per call) would add minutes per row on a shared 2-core machine, so they report batch time only
            timed = isinstance(system, SearcherRetriever)
            result = evaluate_system(system, data, k=1000, latency_k=10 if timed else None)
            write_system_outputs(args.out / name, result)
            results.append(result)
            summaries.append(result.summary())
            print(f"{name} {result.system}: nDCG@10 {result.evaluation.aggregate['nDCG@10']:.4f}, "
                  f"{result.latency_ms} ms/query one at a time", flush=True)
    table = markdown_table(results)
    meta = f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (shared). Test split, top 1000.\n\n"
    (args.out / "table.md").write_text(meta + table, encoding="utf-8")
    (args.out / "summary.json").write_text(json.dumps(summaries, indent=2) + "\n", encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
