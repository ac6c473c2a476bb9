"""bm25s as a peer: a fast numpy/Numba BM25 library, built from the same documents and searched with the same queries.

bm25s precomputes every document's BM25 term scores into a sparse matrix, as tremor's BM25 encoder does, and scores a
query by summing the rows of its terms. Its own tokenizer (``\\w\\w+`` words, lowercased, English stop words, an
optional stemmer) differs from tremor's Lucene-style analyzer, so the two rankings agree closely but not exactly.
The peer is built with ``method="lucene"`` (Lucene's IDF and length normalization) and the Numba backend, so its
quality and speed can be set side by side with tremor's BM25 on the same data (``scripts/bench_beir.py``).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from tremor.corpus import Document, Query
from tremor.errors import TremorError
from tremor.eval.runs import Run

INSTALL_HINT = "pip install 'tremor[bm25s]'"


def unavailable_reason() -> str | None:
    """Why the bm25s peer cannot run here, or None when it can; imports nothing."""
    if importlib.util.find_spec("bm25s") is None:
        return f"the bm25s peer needs the bm25s package; {INSTALL_HINT}"
    return None


class BM25SPeer:
    """bm25s BM25 over title and text joined (as BEIR's flat baselines index them), as a system for
    ``evaluate_system``. ``stemmer`` is a PyStemmer algorithm name ("porter", "english") or None for none."""

    def __init__(self, retriever, ids: list[str], stemmer, name: str, threads: int) -> None:
        self.retriever = retriever
        self.ids = np.asarray(ids, dtype=object)
        self._stemmer = stemmer  # the PyStemmer object the documents were tokenized with, or None
        self.name = name
        self.threads = threads
        self.index_bytes: int | None = None
        self.build_seconds: float | None = None

    @classmethod
    def build(cls, documents: Iterable[Document], k1: float = 0.9, b: float = 0.4, stemmer: str | None = "porter",
              name: str = "bm25s", threads: int | None = None) -> BM25SPeer:
        """Tokenize and index the documents (in memory); ``index_bytes`` is the size of the saved index."""
        reason = unavailable_reason()
        if reason is not None:
            raise TremorError(reason)
        import bm25s

        started = time.perf_counter()
        docs = list(documents)
        if not docs:
            raise TremorError("bm25s peer: no documents to index")
        stem = _load_stemmer(stemmer)
        tokens = bm25s.tokenize([d.full_text for d in docs], stopwords="en", stemmer=stem, show_progress=False)
        retriever = bm25s.BM25(k1=k1, b=b, method="lucene", backend="numba")
        retriever.index(tokens, show_progress=False)
        peer = cls(retriever, [d.id for d in docs], stem, name, threads or os.cpu_count() or 1)
        peer.build_seconds = time.perf_counter() - started
        with tempfile.TemporaryDirectory(prefix="tremor-bm25s-") as tmp:
            retriever.save(tmp)
            peer.index_bytes = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
        return peer

    def retrieve(self, queries: Sequence[Query], k: int) -> Run:
        """Tokenize the queries with the index's vocabulary and search them in one call (Numba threads for
        several queries, the calling thread for one)."""
        import bm25s

        run: Run = {q.id: {} for q in queries}
        searchable = [q for q in queries if q.text.strip()]
        if not searchable:
            return run
        tokens = bm25s.tokenize([q.text for q in searchable], stopwords="en", stemmer=self._stemmer,
                                return_ids=False, show_progress=False)
        vocabulary = self.retriever.vocab_dict
        known = [[vocabulary[t] for t in words if t in vocabulary] for words in tokens]
        matched = [i for i, ids in enumerate(known) if ids]  # a query with no indexed word finds nothing
        if not matched:
            return run
        depth = min(int(k), len(self.ids))
        numbers, scores = self.retriever.retrieve([known[i] for i in matched], k=depth, show_progress=False,
                                                  n_threads=self.threads if len(matched) > 1 else 1)
        for query, row_numbers, row_scores in zip([searchable[i] for i in matched], numbers, scores, strict=True):
            keep = row_scores > 0  # bm25s pads a query with fewer matching documents with zero-score ones
            run[query.id] = dict(zip(self.ids[row_numbers[keep]].tolist(), row_scores[keep].astype(float).tolist(),
                                     strict=True))
        return run


def _load_stemmer(name: str | None):
    if name is None:
        return None
    import Stemmer

    try:
        return Stemmer.Stemmer(name)
    except KeyError as exc:
        raise TremorError(f"unknown stemmer '{name}' (PyStemmer algorithms: "
                          f"{', '.join(Stemmer.algorithms())})") from exc
