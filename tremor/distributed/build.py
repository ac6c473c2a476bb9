"""Sharded builds on Ray: N ordinary index directories built in parallel, plus the ``shards.json`` naming them.

BM25 needs collection statistics (document frequencies, N, average length). They are gathered first: every shard
analyzes its documents in a Ray task and returns its term counts; the driver merges the vocabularies and counts into
one global encoder; then every shard turns its counts into impacts under those global statistics and builds its
index. A BM25 sharded index therefore scores every document exactly as the single index over the whole corpus does.
Learned encoders need no statistics: ``encode_sharded`` runs model replicas over the corpus, then each shard's index
is built from its vector parts.

Output directories must be on a file system every Ray node sees (a local disk for a one-machine cluster).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tremor.corpus import Document, corpus_path, count_lines, is_local, read_documents
from tremor.distributed.cluster import require_ray
from tremor.distributed.encode import encode_sharded, read_shard_vectors
from tremor.distributed.manifest import shard_name, write_shards_manifest
from tremor.distributed.tasks import remote, run_bounded
from tremor.encoders import BM25Encoder
from tremor.encoders.analyzer import EnglishAnalyzer
from tremor.encoders.vector_files import write_vectors
from tremor.errors import TremorError
from tremor.index import index_class, parse_index_spec
from tremor.index.builder import write_index
from tremor.index.storage import atomic_directory
from tremor.sparse import SparseVectors


def shard_ranges(n_docs: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) document ranges of ``shards`` near-equal shards, in corpus order."""
    if shards < 1:
        raise TremorError(f"--shards must be at least 1 (got {shards})")
    if shards > n_docs:
        raise TremorError(f"{shards} shards for {n_docs} documents: every shard needs at least one document")
    bounds = np.linspace(0, n_docs, shards + 1).round().astype(np.int64)
    return [(int(bounds[i]), int(bounds[i + 1])) for i in range(shards)]


class SavedEncoderFiles:
    """An encoder already saved in a directory, standing in for the encoder object when ``write_index`` copies its
    files into each shard (so a build task never loads the model)."""

    def __init__(self, directory: Path, config: dict) -> None:
        self.directory = Path(directory)
        self._config = config

    def config(self) -> dict:
        return self._config

    def save(self, directory: Path) -> None:
        shutil.copytree(self.directory, directory, dirs_exist_ok=True)


# ------------------------------------------------------------------------------------------------------ BM25 tasks
def bm25_count(documents: list[Document], analyzer_config: dict) -> tuple[dict, tuple]:
    """Phase 1 of a BM25 shard: analyze its documents once; return its statistics (local vocabulary, df, documents
    with terms, total length) and its term counts over the local vocabulary (kept for phase 2)."""
    started = time.perf_counter()
    analyzer = EnglishAnalyzer.from_config(analyzer_config)
    local: dict[str, int] = {}
    docs = [np.asarray([local.setdefault(t, len(local)) for t in analyzer(d.full_text)], dtype=np.int64)
            for d in documents]
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    rows = np.repeat(np.arange(len(docs), dtype=np.int64), lengths)
    cols = np.concatenate(docs) if docs else np.zeros(0, np.int64)
    counts = SparseVectors.from_coo(rows, cols, np.ones(cols.shape[0], np.float32), len(docs), max(len(local), 1),
                                    reduce="sum")
    terms = list(local)
    df = np.bincount(counts.indices, minlength=len(terms)).astype(np.int64)
    stats = {"terms": terms, "df": df, "n_docs": int(np.count_nonzero(lengths)), "length_sum": int(lengths.sum()),
             "seconds": time.perf_counter() - started}
    return stats, (terms, counts, lengths)


def merge_bm25_statistics(stats: list[dict], k1: float, b: float, analyzer: EnglishAnalyzer,
                          lucene_lengths: bool) -> BM25Encoder:
    """One BM25 encoder from the per-shard statistics: the union of vocabularies, summed df, N and total length
    (the same numbers ``BM25Encoder.fit_encode`` computes over the whole corpus)."""
    terms = sorted(set().union(*(s["terms"] for s in stats)))
    if not terms:
        raise TremorError("BM25: the corpus has no indexable terms")
    term_ids = {t: i for i, t in enumerate(terms)}
    df = np.zeros(len(terms), np.int64)
    for shard in stats:
        ids = np.fromiter((term_ids[t] for t in shard["terms"]), dtype=np.int64, count=len(shard["terms"]))
        df[ids] += shard["df"]
    n_docs = sum(s["n_docs"] for s in stats)
    avgdl = float(np.int64(sum(s["length_sum"] for s in stats)) / max(n_docs, 1))
    return BM25Encoder.from_statistics(terms, df, n_docs, avgdl, k1, b, analyzer, lucene_lengths)


def bm25_statistics_payload(encoder: BM25Encoder) -> dict:
    """What a shard task needs to rebuild the global encoder (the encoder itself holds an unpicklable stemmer)."""
    return {"terms": encoder.terms, "df": encoder.df, "n_docs": encoder.n_docs, "avgdl": encoder.avgdl,
            "k1": encoder.k1, "b": encoder.b, "analyzer": encoder.analyzer.config(),
            "lucene_lengths": encoder.lucene_lengths}


def bm25_from_payload(payload: dict) -> BM25Encoder:
    return BM25Encoder.from_statistics(payload["terms"], payload["df"], payload["n_docs"], payload["avgdl"],
                                       payload["k1"], payload["b"], EnglishAnalyzer.from_config(payload["analyzer"]),
                                       payload["lucene_lengths"])


def bm25_build_shard(documents: list[Document], counted: tuple, statistics: dict, index_spec: tuple[str, dict],
                     out: str, encoder_files: tuple[str, dict], extra: dict) -> dict:
    """Phase 2 of a BM25 shard: its counts mapped to the global vocabulary, impacts under the global statistics,
    the index built and written as an ordinary index directory."""
    started = time.perf_counter()
    encoder = bm25_from_payload(statistics)
    terms, local_counts, lengths = counted
    term_ids = encoder.term_ids
    remap = np.fromiter((term_ids[t] for t in terms), dtype=np.int64, count=len(terms))
    rows = np.repeat(np.arange(len(local_counts), dtype=np.int64), local_counts.row_nnz())
    counts = SparseVectors.from_coo(rows, remap[local_counts.indices] if terms else local_counts.indices,
                                    local_counts.values, len(local_counts), encoder.vocab_size, reduce="sum")
    vectors = encoder.impacts_from_counts(counts, lengths)
    encode_seconds = time.perf_counter() - started
    return _build_and_write(vectors, documents, index_spec, out, encoder_files, extra, encode_seconds, started)


def vectors_build_shard(documents: list[Document] | None, parts: list[str], index_spec: tuple[str, dict], out: str,
                        encoder_files: tuple[str, dict] | None, extra: dict) -> dict:
    """Build one shard's index from its encoded vector parts and write it as an ordinary index directory."""
    started = time.perf_counter()
    vectors = read_shard_vectors([Path(p) for p in parts])
    if documents is not None and len(vectors) != len(documents):
        raise TremorError(f"{out}: {len(vectors)} vectors for {len(documents)} documents")
    return _build_and_write(vectors, documents, index_spec, out, encoder_files, extra, 0.0, started)


def _build_and_write(vectors: SparseVectors, documents: list[Document] | None, index_spec: tuple[str, dict],
                     out: str, encoder_files: tuple[str, dict] | None, extra: dict, encode_seconds: float,
                     started: float) -> dict:
    index_type, params = index_spec
    built = index_class(index_type).build(vectors, **params)
    encoder = SavedEncoderFiles(Path(encoder_files[0]), encoder_files[1]) if encoder_files is not None else None
    write_index(out, built, documents, encoder, extra_manifest={
        **extra, "build_seconds": round(time.perf_counter() - started, 3),
        "counts": {"documents": len(vectors), "postings": vectors.nnz}})
    return {"documents": len(vectors), "postings": vectors.nnz, "vocab_size": built.vocab_size,
            "vocab_id": built.vocab_id, "params": built.params(), "encode_seconds": encode_seconds,
            "seconds": time.perf_counter() - started}


# ---------------------------------------------------------------------------------------------------- the build
def _read_corpus(corpus: str | Path | Iterable[Document], progress: bool) -> tuple[list[Document], str]:
    if isinstance(corpus, (str, Path)):
        total = count_lines(corpus_path(corpus)) if is_local(corpus) else None
        documents = list(tqdm(read_documents(corpus), total=total, desc="reading", unit="doc", disable=not progress))
        return documents, str(corpus)
    return list(corpus), "<python>"


def build_sharded(corpus: str | Path | Iterable[Document], out: str | Path, shards: int,
                  encoder: str | Any = "bm25", index: str = "exact", overwrite: bool = False,
                  workers: int | None = None, part_size: int = 2048, encoder_options: dict | None = None,
                  keep_vectors: bool = False, cpus_per_worker: float = 1.0, progress: bool = True,
                  **index_params) -> Path:
    """Build a sharded index directory of ``shards`` ordinary indexes over ``corpus`` on the connected Ray cluster.

    ``encoder``: "bm25" (or an unfitted ``BM25Encoder`` for other k1/b), a model directory or hub name, or an
    encoder object; ``index``: an index spec as for ``build_index``; ``workers``: tasks (or model replicas) at once,
    all the cluster holds by default; ``cpus_per_worker``: CPUs each model replica
    reserves (on a cluster without GPUs). ``keep_vectors`` keeps a learned encoder's vector parts under ``vectors/``.
    Nothing appears under ``out`` unless every shard succeeds.
    """
    ray = require_ray()
    if not ray.is_initialized():
        raise TremorError("build_sharded needs a Ray cluster: call tremor.distributed.connect() first")
    started = time.perf_counter()
    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise TremorError(f"{out} already exists; choose another path or pass overwrite=True (--overwrite)")
    index_type, params = parse_index_spec(index)
    params.update(index_params)
    documents, source = _read_corpus(corpus, progress)
    if not documents:
        raise TremorError(f"{source}: the corpus has no documents")
    ranges = shard_ranges(len(documents), shards)
    bm25 = isinstance(encoder, BM25Encoder) or (isinstance(encoder, str) and encoder.lower() == "bm25")
    timings: dict[str, float] = {}
    with atomic_directory(out, overwrite=overwrite) as tmp:
        doc_refs = [ray.put(documents[start:end]) for start, end in ranges]
        names = [f"shard {i} ({shard_name(i)})" for i in range(shards)]
        targets = [str(tmp / shard_name(i)) for i in range(shards)]
        sizes = [end - start for start, end in ranges]
        extra = [{"shard": {"number": i, "of": shards, "offset": ranges[i][0]}, "corpus": source}
                 for i in range(shards)]
        encoder_dir = tmp / ".encoder"
        spec = (index_type, params)
        if bm25:
            proto = encoder if isinstance(encoder, BM25Encoder) else BM25Encoder(**(encoder_options or {}))
            if proto.fitted:
                raise TremorError("build_sharded fits BM25 on the corpus; pass an unfitted BM25Encoder")
            count = remote(bm25_count, num_returns=2)
            counted: list[Any] = [None] * shards  # each shard's term counts, left in the object store

            def submit_count(i: int):
                stats_ref, counted[i] = count.remote(doc_refs[i], proto.analyzer.config())
                return stats_ref

            t0 = time.perf_counter()
            stats = run_bounded([lambda i=i: submit_count(i) for i in range(shards)], names, workers, sizes,
                                "statistics", progress)
            global_encoder = merge_bm25_statistics(stats, proto.k1, proto.b, proto.analyzer, proto.lucene_lengths)
            global_encoder.save(encoder_dir)
            timings["statistics_seconds"] = time.perf_counter() - t0
            encoder_files = (str(encoder_dir), global_encoder.config())
            encoder_ref = ray.put(bm25_statistics_payload(global_encoder))
            task = remote(bm25_build_shard)
            t0 = time.perf_counter()
            results = run_bounded([lambda i=i: task.remote(doc_refs[i], counted[i], encoder_ref, spec, targets[i],
                                                           encoder_files, extra[i]) for i in range(shards)],
                                  names, workers, sizes, "building", progress)
            timings["build_seconds"] = time.perf_counter() - t0
        else:
            t0 = time.perf_counter()
            vector_root = tmp / "vectors"
            encoded = encode_sharded(documents, ranges, encoder, vector_root, workers, part_size, encoder_options,
                                     encoder_dir, cpus_per_worker, progress=progress)
            timings["encode_seconds"] = time.perf_counter() - t0
            encoder_files = (str(encoder_dir), encoded.encoder_config)
            task = remote(vectors_build_shard)
            t0 = time.perf_counter()
            results = run_bounded([lambda i=i: task.remote(doc_refs[i], [str(p) for p in encoded.parts[i]], spec,
                                                           targets[i], encoder_files, extra[i])
                                   for i in range(shards)], names, workers, sizes, "building", progress)
            timings["build_seconds"] = time.perf_counter() - t0
            if not keep_vectors:
                shutil.rmtree(vector_root)
        vocab_ids = {r["vocab_id"] for r in results}
        if len(vocab_ids) != 1:
            raise TremorError(f"shards were built with different vocabularies: {sorted(map(str, vocab_ids))}")
        encoder_config = encoder_files[1]
        shutil.rmtree(encoder_dir)
        entries = [{"path": shard_name(i), "offset": ranges[i][0], "documents": r["documents"],
                    "postings": r["postings"], "build_seconds": round(r["seconds"], 3)}
                   for i, r in enumerate(results)]
        write_shards_manifest(tmp, entries, {
            "index_type": index_type, "params": results[0]["params"], "vocab_size": results[0]["vocab_size"],
            "vocab_id": results[0]["vocab_id"], "encoder": encoder_config, "corpus": source,
            "counts": {"documents": len(documents), "postings": sum(r["postings"] for r in results)},
            "workers": workers, "timings": {k: round(v, 3) for k, v in timings.items()},
            "build_seconds": round(time.perf_counter() - started, 3),
            "vectors": "vectors" if (not bm25 and keep_vectors) else None})
    return out



def build_sharded_from_vectors(vectors: SparseVectors, out: str | Path, shards: int, index: str = "exact",
                               ids: list[str] | None = None, overwrite: bool = False, workers: int | None = None,
                               progress: bool = False, **index_params) -> Path:
    """A sharded index over precomputed document vectors (no encoder and, without ``ids``, no document store):
    search it with query vectors through ``ShardedSearcher.search_vectors``. ``ids`` name the documents."""
    ray = require_ray()
    if not ray.is_initialized():
        raise TremorError("build_sharded_from_vectors needs a Ray cluster: call tremor.distributed.connect() first")
    started = time.perf_counter()
    out = Path(out).absolute()
    index_type, params = parse_index_spec(index)
    params.update(index_params)
    ranges = shard_ranges(len(vectors), shards)
    if ids is not None and len(ids) != len(vectors):
        raise TremorError(f"{len(ids)} ids for {len(vectors)} vectors")
    with atomic_directory(out, overwrite=overwrite) as tmp:
        parts = []
        for i, (start, end) in enumerate(ranges):
            target = tmp / "vectors" / shard_name(i)
            write_vectors(target, vectors[start:end], ids[start:end] if ids else [str(n) for n in range(start, end)])
            parts.append([str(target)])
        documents = [ray.put([Document(d, "") for d in ids[start:end]]) if ids else None for start, end in ranges]
        task = remote(vectors_build_shard)
        results = run_bounded([lambda i=i: task.remote(documents[i], parts[i], (index_type, params),
                                                       str(tmp / shard_name(i)), None,
                                                       {"shard": {"number": i, "of": shards, "offset": ranges[i][0]}})
                               for i in range(shards)], [f"shard {i}" for i in range(shards)], workers,
                              [end - start for start, end in ranges], "building", progress)
        shutil.rmtree(tmp / "vectors")
        entries = [{"path": shard_name(i), "offset": ranges[i][0], "documents": r["documents"],
                    "postings": r["postings"], "build_seconds": round(r["seconds"], 3)}
                   for i, r in enumerate(results)]
        write_shards_manifest(tmp, entries, {
            "index_type": index_type, "params": results[0]["params"], "vocab_size": results[0]["vocab_size"],
            "vocab_id": results[0]["vocab_id"], "encoder": None, "corpus": "<vectors>",
            "counts": {"documents": len(vectors), "postings": vectors.nnz}, "workers": workers,
            "build_seconds": round(time.perf_counter() - started, 3)})
    return out
