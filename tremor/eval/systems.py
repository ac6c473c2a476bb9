"""Systems under evaluation: anything that ranks documents for queries.

A system is any object with a ``name`` and ``retrieve(queries, k) -> {query id: {doc id: score}}`` returning each
query's hits best first (the ``Retriever`` protocol). tremor indexes of every type plug in through
``SearcherRetriever`` (search-time parameters such as ``query_cut`` pass through); a pipeline (hybrid fusion,
pseudo-relevance feedback, a reranker) or a peer engine implements ``retrieve`` itself. ``evaluate_system`` then
applies the BEIR protocol and the metrics, so every system is measured the same way.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numba
import numpy as np

from tremor.corpus import Query
from tremor.errors import TremorError
from tremor.eval.datasets import Dataset
from tremor.eval.metrics import DEFAULT_MEASURES, Evaluation, evaluate_run
from tremor.eval.runs import Run, cut_run
from tremor.index.docstore import DOCSTORE_FILE
from tremor.index.exact import clamp_k
from tremor.search import Searcher


@runtime_checkable
class Retriever(Protocol):
    """A ranking system: ``retrieve`` returns, for every query id, up to k {doc id: score} hits, best first."""

    name: str

    def retrieve(self, queries: Sequence[Query], k: int) -> Run: ...


def directory_bytes(path: str | Path, exclude: tuple[str, ...] = ()) -> int:
    """Bytes of all files under ``path``, leaving out top-level entries named in ``exclude``."""
    root = Path(path)
    return sum(p.stat().st_size for p in root.rglob("*")
               if p.is_file() and p.relative_to(root).parts[0] not in exclude)


class SearcherRetriever:
    """A tremor index (any index type) as a system; ``search_params`` go to every search call. ``allow`` (external
    ids, or a boolean mask over internal numbers) restricts every search to those documents (a filtered eval)."""

    def __init__(self, searcher: Searcher, name: str, index_dir: str | Path | None = None,
                 build_seconds: float | None = None, allow=None, **search_params) -> None:
        self.searcher = searcher
        self.name = name
        self.search_params = search_params
        # resolved once: the same mask serves every query
        self.allow = searcher.allow_mask(allow) if allow is not None else None
        self.build_seconds = build_seconds
        # Index size without the document store (titles and texts), comparable with a Lucene index of ids only.
        self.index_bytes = directory_bytes(index_dir, exclude=(DOCSTORE_FILE,)) if index_dir is not None else None
        self._ids = id_array(searcher.docstore.ids()) if searcher.docstore is not None else None

    @classmethod
    def from_index(cls, path: str | Path, name: str | None = None, **search_params) -> SearcherRetriever:
        """Open an index directory; the system is named after the directory unless ``name`` is given."""
        path = Path(path)
        searcher = Searcher.load(path)
        recorded = searcher.manifest.get("build_seconds")  # written by build_index
        build_seconds = float(recorded) if isinstance(recorded, (int, float)) else None
        return cls(searcher, name or path.name, path, build_seconds, **search_params)

    @property
    def n_docs(self) -> int:
        return self.searcher.n_docs

    @property
    def doc_ids(self) -> np.ndarray | None:
        """External ids of the indexed documents (None without a document store)."""
        return self._ids

    def retrieve(self, queries: Sequence[Query], k: int) -> Run:
        searchable = [q for q in queries if q.text.strip()]  # a blank query simply finds nothing
        if not searchable:
            return {q.id: {} for q in queries}
        vectors = self.searcher.encode_queries([q.text for q in searchable])
        scores, numbers = self.searcher.search_vectors(vectors, k, allow=self.allow, **self.search_params)
        return ranked_to_run(queries, searchable, scores, numbers, self._ids)


def ranked_to_run(queries: Sequence[Query], searched: Sequence[Query], scores: np.ndarray, numbers: np.ndarray,
                  ids: np.ndarray | Sequence[str] | None) -> Run:
    """(scores, internal numbers) rows for the ``searched`` queries as a Run over all ``queries`` (the others get no
    hits); padding (-1) is dropped and numbers become external ids (``ids``: best an object array, see
    ``id_array``)."""
    if ids is not None and not isinstance(ids, np.ndarray):
        ids = id_array(ids)
    run: Run = {q.id: {} for q in queries}
    for query, row_scores, row_numbers in zip(searched, scores, numbers, strict=True):
        valid = row_numbers >= 0
        doc_numbers = row_numbers[valid]
        names = ids[doc_numbers].tolist() if ids is not None else [str(n) for n in doc_numbers.tolist()]
        run[query.id] = dict(zip(names, row_scores[valid].astype(np.float64).tolist(), strict=True))
    return run


def id_array(ids: Sequence[str]) -> np.ndarray:
    """External ids as a numpy object array, so a row of internal numbers maps to ids in one indexing step."""
    return np.asarray(ids, dtype=object)


class PipelineRetriever:
    """A retrieval pipeline over an index directory (dense, hybrid fusion, PRF placements) as a system."""

    def __init__(self, hybrid, config, name: str, index_dir: str | Path | None = None) -> None:
        config.check()
        self.hybrid = hybrid
        self.config = config
        self.name = name
        self.build_seconds = None
        self.index_bytes = directory_bytes(index_dir, exclude=(DOCSTORE_FILE,)) if index_dir is not None else None
        self._ids = id_array(hybrid.sparse.docstore.ids()) if hybrid.sparse.docstore is not None else None

    @classmethod
    def from_index(cls, path: str | Path, config, name: str | None = None, model: str | None = None,
                   device: str = "auto", **search_params) -> PipelineRetriever:
        """Open an index directory (and its ``dense/`` index when the pipeline uses one)."""
        from tremor.search.pipeline import HybridSearcher

        path = Path(path)
        hybrid = HybridSearcher.load(path, dense=config.retriever != "sparse", model=model, device=device)
        hybrid.sparse.search_params.update(search_params)
        return cls(hybrid, config, name or path.name, path)

    @property
    def n_docs(self) -> int:
        return self.hybrid.sparse.n_docs

    @property
    def doc_ids(self) -> np.ndarray | None:
        """External ids of the indexed documents (None without a document store)."""
        return self._ids

    def retrieve(self, queries: Sequence[Query], k: int) -> Run:
        searchable = [q for q in queries if q.text.strip()]
        if not searchable:
            return {q.id: {} for q in queries}
        run = self.hybrid.run([q.text for q in searchable], k, self.config)
        return ranked_to_run(queries, searchable, run.scores, run.numbers, self._ids)


def build_system(dataset: Dataset, out: str | Path, encoder: str = "bm25", index: str = "exact",
                 name: str | None = None, overwrite: bool = False, progress: bool = False,
                 **search_params) -> SearcherRetriever:
    """Build an index of the dataset's corpus at ``out`` and return it as a system."""
    from tremor.index.builder import build_index

    started = time.perf_counter()
    path = build_index(dataset.corpus, out, encoder=encoder, index=index, overwrite=overwrite, progress=progress)
    seconds = time.perf_counter() - started
    return SearcherRetriever(Searcher.load(path), name or default_system_name(encoder, index), path, seconds,
                             **search_params)


def default_system_name(encoder: str, index: str = "exact") -> str:
    """``tremor-<encoder>[-<index type>]``: ``tremor-bm25``, ``tremor-splade-v3-seismic``."""
    index_type = index.split(",")[0].strip()
    return f"tremor-{Path(encoder).name}" + (f"-{index_type}" if index_type != "exact" else "")


@dataclass
class SystemResult:
    """One system on one dataset: its run, metrics, timings and index size."""

    system: str
    dataset: str
    split: str
    run: Run = field(repr=False)
    evaluation: Evaluation = field(repr=False)
    k: int
    n_queries: int
    search_seconds: float
    latency_ms: float | None = None
    index_bytes: int | None = None
    build_seconds: float | None = None

    @property
    def batch_ms_per_query(self) -> float:
        """Wall time of retrieving all queries in one call, per query."""
        return 1000.0 * self.search_seconds / max(self.n_queries, 1)

    def summary(self) -> dict:
        """Everything but the run, for JSON."""
        return {"system": self.system, "dataset": self.dataset, "split": self.split, "k": self.k,
                "queries": self.n_queries, "metrics": self.evaluation.aggregate,
                "search_seconds": self.search_seconds, "batch_ms_per_query": self.batch_ms_per_query,
                "latency_ms": self.latency_ms, "index_bytes": self.index_bytes, "build_seconds": self.build_seconds}


def query_latency(retriever: Retriever, queries: Sequence[Query], k: int = 10, repeats: int = 1) -> float:
    """Mean milliseconds of one ``retrieve`` call holding one query, after one untimed pass over the queries: a
    caller asking one query at a time, on one thread (the best of ``repeats`` timed passes). Numba's pool is held to
    one thread meanwhile: a parallel region for a single query only adds waiting for idle workers (a scheduler slice
    when other processes share the cores)."""
    if not queries:
        raise TremorError("no queries to time")
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        for query in queries:  # warm up: compilation, JIT, caches
            retriever.retrieve([query], k)
        best = float("inf")
        for _ in range(max(1, repeats)):
            started = time.perf_counter()
            for query in queries:
                retriever.retrieve([query], k)
            best = min(best, time.perf_counter() - started)
        return 1000.0 * best / len(queries)
    finally:
        numba.set_num_threads(threads)


def evaluate_system(retriever: Retriever, dataset: Dataset, k: int = 1000,
                    measures: Sequence[str] = DEFAULT_MEASURES, remove_query_ids: bool = True,
                    latency_k: int | None = None, repeats: int = 1) -> SystemResult:
    """Run all queries of the dataset through the system under the BEIR protocol (top k, and with
    ``remove_query_ids`` a hit whose id equals the query id is dropped) and score the run. ``latency_k`` also times
    the queries one at a time at that depth; timings are the best of ``repeats`` runs."""
    if not isinstance(retriever, Retriever):
        raise TremorError(f"{retriever!r} is not a system: it needs a name and retrieve(queries, k)")
    k = clamp_k(k, getattr(retriever, "n_docs", None))  # no more hits than documents, whatever is asked
    check_judged_documents(retriever, dataset)
    retriever.retrieve(dataset.queries[:32], k)  # warm up, so the batch time holds no one-off compilation
    depth = k + 1 if remove_query_ids else k
    seconds = float("inf")
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        raw = retriever.retrieve(dataset.queries, depth)
        seconds = min(seconds, time.perf_counter() - started)
    missing = [q.id for q in dataset.queries if q.id not in raw]
    if missing:
        raise TremorError(f"system '{retriever.name}' returned no entry for {len(missing)} queries "
                          f"(first: '{missing[0]}')")
    run = cut_run(raw, k, remove_query_ids)
    latency = query_latency(retriever, dataset.queries, latency_k, repeats) if latency_k else None
    return SystemResult(system=retriever.name, dataset=dataset.name, split=dataset.split, run=run,
                        evaluation=evaluate_run(run, dataset.qrels, measures), k=k,
                        n_queries=len(dataset.queries), search_seconds=seconds, latency_ms=latency,
                        index_bytes=getattr(retriever, "index_bytes", None),
                        build_seconds=getattr(retriever, "build_seconds", None))


def check_judged_documents(retriever: Retriever, dataset: Dataset) -> None:
    """Refuse a system whose documents include none of the dataset's judged documents (an index of another corpus
    scores zero everywhere), and warn when it holds fewer than half of them."""
    ids = getattr(retriever, "doc_ids", None)
    if ids is None:
        return
    judged = {doc for hits in dataset.qrels.values() for doc in hits}
    if not judged:
        return
    present = len(judged & set(ids))
    if present == 0:
        raise TremorError(f"system '{retriever.name}' holds none of the {len(judged)} documents judged in "
                          f"{dataset.name}: it was built from another corpus, so every score would be 0")
    if present < len(judged) / 2:
        warnings.warn(f"system '{retriever.name}' holds only {present} of the {len(judged)} documents judged in "
                      f"{dataset.name}; was it built from this corpus?", stacklevel=2)
