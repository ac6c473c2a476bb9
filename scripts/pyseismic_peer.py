"""pyseismic-lsr (``import seismic``, the Rust Seismic) behind the same arrays-in, arrays-out shape as tremor's index,
so that scripts/bench_index.py can run both on the same vectors. Used only to compare; not part of tremor.

Parameter names are the peer's own and tremor's are the same: n_postings (λ), centroid_fraction (β), summary_energy
(α), min_cluster_size, doc_cut, max_fraction, and at search time query_cut and heap_factor with the same convention
(skip a block when summary score < heap_factor × the heap's minimum). tremor's ``knn`` is the peer's ``nknn`` and
tremor's ``n_knn`` the peer's ``n_knn``. The peer's standard index (``SeismicIndex``) keeps components as u16 and
values as f16, like tremor's forward index. Documents and queries cross as integer component ids: the peer names a
component by its id written as a string (``"42"``).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from tremor.sparse import SparseVectors


def _seismic():
    try:
        import seismic
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        raise SystemExit("pyseismic-lsr is not installed: pip install -e '.[seismic]'") from exc
    return seismic


class PySeismicPeer:
    """A built pyseismic-lsr index plus the per-query arrays its API takes (prepared once, outside any timing)."""

    def __init__(self, index, n_docs: int, build_seconds: dict[str, float]) -> None:
        self.index = index
        self.n_docs = n_docs
        self.build_seconds = build_seconds
        self._string_type = _seismic().get_seismic_string()

    @classmethod
    def build(cls, docs: SparseVectors, n_postings: int, centroid_fraction: float, summary_energy: float,
              max_fraction: float = 1.5, min_cluster_size: int = 2, doc_cut: int = 15, knn: int = 0) -> PySeismicPeer:
        """Build from the same CSR vectors tremor indexes (document i gets the string id ``str(i)``)."""
        seismic = _seismic()
        started = time.perf_counter()
        dataset = seismic.SeismicDataset(dim=docs.vocab_size)
        dataset.add_documents_by_id([str(i) for i in range(len(docs))], docs.indices.astype(np.int64),
                                    docs.values, docs.indptr.astype(np.int64))
        loaded = time.perf_counter()
        index = seismic.SeismicIndex.build_from_dataset(
            dataset, n_postings=int(n_postings), centroid_fraction=float(centroid_fraction),
            min_cluster_size=int(min_cluster_size), summary_energy=float(summary_energy),
            max_fraction=float(max_fraction), doc_cut=int(doc_cut), nknn=int(knn))
        built = time.perf_counter()
        return cls(index, len(docs), {"load": loaded - started, "index": built - loaded, "total": built - started})

    def nbytes(self) -> int:
        """Size of the index as the peer serializes it (its save() file)."""
        with tempfile.TemporaryDirectory() as tmp:
            stem = Path(tmp) / "peer"
            # the peer prints a line when saving; keep it out of the benchmark's output
            devnull = os.open(os.devnull, os.O_WRONLY)
            saved = os.dup(1)
            try:
                os.dup2(devnull, 1)
                self.index.save(str(stem))
            finally:
                os.dup2(saved, 1)
                os.close(devnull)
                os.close(saved)
            return Path(f"{stem}.index.seismic").stat().st_size

    def prepare(self, queries: SparseVectors) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
        """The peer's query form: ids, component-name arrays and value arrays (one per query)."""
        ids = np.array([str(i) for i in range(len(queries))], dtype=self._string_type)
        components, values = [], []
        for i in range(len(queries)):
            idx, val = queries.row(i)
            components.append(np.array([str(c) for c in idx.tolist()], dtype=self._string_type))
            values.append(np.ascontiguousarray(val, dtype=np.float32))
        return ids, components, values

    def search_one(self, prepared: tuple, i: int, k: int, query_cut: int, heap_factor: float,
                   n_knn: int = 0) -> list:
        """One query through the peer's single-query call (its raw result list)."""
        ids, components, values = prepared
        return self.index.search(ids[i], components[i], values[i], k, query_cut, heap_factor, n_knn)

    def search_batch(self, prepared: tuple, k: int, query_cut: int, heap_factor: float, n_knn: int = 0) -> list:
        """All prepared queries through the peer's parallel batch call (its raw result lists)."""
        ids, components, values = prepared
        return self.index.batch_search(ids, components, values, k, query_cut, heap_factor, n_knn)

    @staticmethod
    def to_arrays(results: list, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw peer results (query ids '0'..'n-1', as ``prepare`` names them) to tremor's shape: (scores float32
        [n, k], doc ids int64 [n, k]) padded with (-inf, -1)."""
        scores = np.full((len(results), k), -np.inf, dtype=np.float32)
        docs = np.full((len(results), k), -1, dtype=np.int64)
        # batch_search returns the rows in completion order; each hit carries its query id (rows without hits
        # stay padded, wherever they came)
        for row in results:
            for r, (query_id, score, doc) in enumerate(row[:k]):
                scores[int(query_id), r] = score
                docs[int(query_id), r] = int(doc)
        return scores, docs
