"""The indexes a server holds, and the work behind each endpoint (no HTTP here: the app calls these on worker
threads). Each index directory is opened once, its arrays memory-mapped; its dense side too when it has one."""

from __future__ import annotations

import contextlib
import copy
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

from tremor.errors import QueryError, TremorError
from tremor.search import Searcher
from tremor.serve.explain import Vocabulary, explain_hits, query_surface_ids, query_terms, vector_from_tokens
from tremor.serve.limits import ApiError, ServeLimits
from tremor.sparse import SparseVectors

SNIPPET_CHARS = 240
_WORD = re.compile(r"\w{3,}")


@dataclass
class QuerySpec:
    """One query of a request: text, or a pre-encoded ``{token: weight}`` vector."""

    text: str | None = None
    vector: dict[str, float] | None = None


@dataclass
class SearchSpec:
    """A checked search request: queries, k, index search parameters, an optional pipeline, output options."""

    queries: list[QuerySpec]
    k: int = 10
    search_params: dict = field(default_factory=dict)
    pipeline: object | None = None  # tremor.search.pipeline.PipelineConfig
    explain: bool = False
    with_text: bool = True


def query_words(query: str | None) -> list[str]:
    """The query's words (three letters or more, lowercased, unique), for placing snippets."""
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(query))) if query else []


def snippet(text: str, words: list[str], width: int = SNIPPET_CHARS) -> str:
    """About ``width`` characters of ``text``, starting shortly before the first of ``words`` it contains."""
    if len(text) <= width:
        return text
    start = 0
    if words:
        lowered = text.lower()
        first = len(text)
        for word in words:  # each search stops at the earliest match so far
            found = lowered.find(word, 0, first + len(word) - 1)
            if found >= 0:
                first = found
        if first < len(text):
            start = max(0, first - width // 4)
            start = text.rfind(" ", 0, start + 1) + 1  # at a word's start (0 when no space comes before)
    end = min(len(text), start + width)
    space = text.rfind(" ", start, end) if end < len(text) else -1
    end = space if space > start + width // 2 else end
    return ("… " if start else "") + text[start:end] + (" …" if end < len(text) else "")


class ServedIndex:
    """One index directory, opened once: its Searcher, its dense searcher (if ``dense/`` exists), the vocabulary
    for explanations and pre-encoded queries, and a lock around the document store's one SQLite connection."""

    def __init__(self, name: str, path: str | Path, device: str = "cpu") -> None:
        self.name = name
        self.path = Path(path)
        self.searcher = Searcher.load(self.path)
        self.dense = None
        if (self.path / "dense").is_dir():
            from tremor.search.dense import DenseSearcher

            self.dense = DenseSearcher.load(self.path, device=device)
        encoder = self.searcher.encoder
        self.vocabulary = Vocabulary(encoder) if encoder is not None else None
        self._doc_lock = threading.Lock()
        # A Hugging Face fast tokenizer is not safe to call from several threads at once (a call sets its truncation
        # while another may be encoding: "Already borrowed"), so neural encoding takes turns per encoder; the model
        # runs its own threads. BM25 encoding is plain Python and needs no lock.
        self._encoder_lock = threading.Lock() if hasattr(encoder, "tokenizer") else contextlib.nullcontext()
        self._dense_lock = threading.Lock()
        self._id_lookup: dict[str, int] | None = None
        if self.searcher.docstore is not None:
            self.searcher.docstore.ids()  # loaded once, here, instead of racing on the first request
        self.serialize_batches = False

    # ------------------------------------------------------------------------------------------------ describe
    def summary(self) -> dict:
        """What GET /indexes says about this index (from its manifest)."""
        m = self.searcher.manifest
        index = self.searcher.index
        encoder = m.get("encoder") or {}
        return {
            "name": self.name, "index_type": m.get("index_type"), "documents": int(self.searcher.n_docs),
            "postings": (m.get("counts") or {}).get("postings"), "params": m.get("params", {}),
            "search_defaults": dict(getattr(index, "SEARCH_DEFAULTS", {})),
            "encoder": {"kind": encoder.get("kind"), "model": encoder.get("model")},
            "vocab_size": m.get("vocab_size"), "vocab_id": m.get("vocab_id"), "dense": self.dense is not None,
            "corpus": m.get("corpus"), "created": m.get("created"),
        }

    def warm_up(self) -> None:
        """Run the search kernels once (single and batch) on a document's own terms, so the first request does not
        pay for loading compiled code; note whether batches must take turns (Numba's workqueue layer is not
        thread-safe)."""
        index = self.searcher.index
        if index is None or index.n_docs == 0:  # a sharded index: its shard actors hold the kernels
            return
        indptr = np.asarray(getattr(index, "doc_indptr", np.zeros(2, np.int64)))
        terms = getattr(index, "doc_indices", getattr(index, "doc_components", None))
        if terms is None or indptr[1] == indptr[0]:
            return
        term = int(terms[indptr[0]])
        one = SparseVectors(np.array([0, 1], np.int64), np.array([term], np.int32), np.ones(1, np.float32),
                            index.vocab_size, index.vocab_id)
        index.search(one, 1)
        index.search(SparseVectors.concat([one, one]), 1)
        if self.vocabulary is not None:
            explain_hits(index, one, 0, np.zeros(1, np.int64), self.vocabulary, None)
        try:
            self.serialize_batches = numba.threading_layer() == "workqueue"
        except ValueError:  # no parallel region has run
            self.serialize_batches = False

    # ------------------------------------------------------------------------------------------------- search
    def _encode(self, queries: list[QuerySpec]) -> SparseVectors:
        with self._encoder_lock:
            return self._encode_unlocked(queries)

    def _surface(self, text: str | None) -> set[int] | None:
        if text is None:
            return None
        with self._encoder_lock:
            return query_surface_ids(self.searcher.encoder, text)

    def _encode_unlocked(self, queries: list[QuerySpec]) -> SparseVectors:
        searcher = self.searcher
        texts = [q.text for q in queries if q.text is not None]
        if len(texts) == len(queries):
            return searcher.encode_queries(texts)
        if self.vocabulary is None:
            raise QueryError(f"index '{self.name}' has no encoder to read tokens with")
        index = searcher.index
        vocab_size, vocab_id = (index.vocab_size, index.vocab_id) if index is not None else \
            (searcher.manifest["vocab_size"], searcher.manifest.get("vocab_id"))  # a sharded index
        parts = []
        for q in queries:
            if q.text is not None:
                parts.append(searcher.encode_queries([q.text]))
            else:
                parts.append(vector_from_tokens(q.vector, self.vocabulary, vocab_size, vocab_id))
        return SparseVectors.concat(parts) if len(parts) > 1 else parts[0]

    def search(self, spec: SearchSpec, batch_lock: threading.Lock) -> dict:
        """Top-k hits for each query of ``spec``, with snippets, and explanations when asked."""
        started = time.perf_counter()
        if self.searcher.encoder is None and any(q.text is not None for q in spec.queries):
            raise QueryError(f"index '{self.name}' has no encoder: send pre-encoded vectors")
        if spec.explain and self.searcher.index is None:
            raise QueryError(f"index '{self.name}' is sharded: its forward arrays live in the shard actors, so "
                             "explain is not available; search without explain")
        vectors = self._encode(spec.queries)
        searcher = self.searcher
        if spec.search_params:
            searcher = copy.copy(searcher)  # per-request parameters, without touching the shared defaults
            searcher.search_params = {**self.searcher.search_params, **spec.search_params}
        lock = batch_lock if self.serialize_batches and len(spec.queries) > 1 else None
        if lock is not None:
            lock.acquire()
        try:
            if spec.pipeline is None:
                scores, numbers = searcher.search_vectors(vectors, spec.k)
                used = vectors
            else:
                scores, numbers, used = self._pipeline(searcher, spec, vectors)
        finally:
            if lock is not None:
                lock.release()
        search_ms = (time.perf_counter() - started) * 1000
        with self._doc_lock:
            hits = searcher.hits(scores, numbers, with_text=spec.with_text)
        results = []
        for row, (query, row_hits) in enumerate(zip(spec.queries, hits, strict=True)):
            out_hits = []
            words = query_words(query.text) if spec.with_text else []
            for hit in row_hits:
                item = {"rank": hit.rank, "id": hit.id, "score": hit.score}
                if spec.with_text:
                    item["title"] = hit.title
                    item["snippet"] = snippet(hit.text or "", words)
                out_hits.append(item)
            result = {"query": query.text, "hits": out_hits}
            if spec.explain and self.vocabulary is not None:
                surface = self._surface(query.text)
                result["query_terms"] = query_terms(used, row, self.vocabulary, surface)
                valid = numbers[row][numbers[row] >= 0]
                for item, why in zip(out_hits, explain_hits(searcher.index, used, row, valid, self.vocabulary,
                                                            surface), strict=True):
                    item["explain"] = why
            results.append(result)
        return {"index": self.name, "k": spec.k, "search_ms": round(search_ms, 3), "results": results}

    def _pipeline(self, searcher: Searcher, spec: SearchSpec, vectors: SparseVectors):
        from tremor.search.pipeline import Run, hybrid_pipeline

        config = spec.pipeline
        if config.retriever != "sparse" and self.dense is None:
            raise QueryError(f"index '{self.name}' has no dense side; use retriever 'sparse' (add one with "
                             "'tremor index add-dense')")
        if config.retriever != "sparse" and any(q.text is None for q in spec.queries):
            raise QueryError("a pre-encoded vector query has no text for the dense side; send text, or use "
                             "retriever 'sparse'")
        if config.depth < spec.k:
            raise QueryError(f"depth ({config.depth}) must be at least k ({spec.k})")
        stage = hybrid_pipeline(searcher if config.retriever != "dense" else None,
                                self.dense if config.retriever != "sparse" else None, config) % spec.k
        texts = [q.text if q.text is not None else "" for q in spec.queries]
        dense_queries = None
        if config.retriever != "sparse":
            with self._dense_lock:  # its tokenizer too must not be called from two threads at once
                dense_queries = self.dense.encode_queries(texts)
        run = stage(Run.start(texts, sparse_queries=vectors if config.retriever != "dense" else None,
                              dense_queries=dense_queries))
        used = run.sparse_queries if run.sparse_queries is not None else vectors
        return run.scores, run.numbers, used

    # -------------------------------------------------------------------------------------------- documents
    def document(self, doc_id: str) -> dict:
        """A document by its external id (404 when unknown)."""
        docstore = self.searcher.docstore
        if docstore is None:
            raise ApiError(404, f"index '{self.name}' keeps no document store")
        with self._doc_lock:
            if self._id_lookup is None:
                self._id_lookup = {d: i for i, d in enumerate(docstore.ids())}
            number = self._id_lookup.get(doc_id)
            if number is None:
                raise ApiError(404, f"no document with id '{doc_id}' in index '{self.name}'")
            doc = docstore.get([number])[0]
        return {"index": self.name, "id": doc.id, "title": doc.title, "text": doc.text}

    # ---------------------------------------------------------------------------------------------- encoding
    def encode(self, texts: list[str], side: str) -> list[list[dict]]:
        """Term weights of each text on the query or document side, largest first."""
        encoder = self.searcher.encoder
        if encoder is None or self.vocabulary is None:
            raise QueryError(f"index '{self.name}' has no encoder")
        for i, text in enumerate(texts):
            if not text.strip():
                raise QueryError(f"text {i} is empty; give some text to encode")
        with self._encoder_lock:
            vectors = encoder.encode_queries(texts) if side == "query" else encoder.encode_documents(texts)
            surfaces = [query_surface_ids(encoder, text) for text in texts]
        return [query_terms(vectors, row, self.vocabulary, surface) for row, surface in enumerate(surfaces)]


def open_indexes(named: dict[str, str | Path], device: str = "cpu") -> dict[str, ServedIndex]:
    """Open every index directory once (TremorError naming the one that fails) and warm its kernels."""
    served = {}
    for name, path in named.items():
        try:
            served[name] = ServedIndex(name, path, device)
        except TremorError as exc:
            raise TremorError(f"index '{name}' ({path}): {exc}") from None
        served[name].warm_up()
    return served


def check_text(text: str, what: str) -> None:
    """Refuse text that is not valid Unicode (a lone surrogate from a JSON escape such as \\ud800)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise QueryError(f"{what} is not valid Unicode (a lone surrogate at character {exc.start}); send UTF-8 "
                         "text") from None


def check_limits(spec: SearchSpec, limits: ServeLimits) -> None:
    """Refuse a request over the server's limits with a message naming the limit."""
    if not spec.queries:
        raise QueryError("no query: send 'q' (text), 'vector' ({token: weight}) or 'queries' (a batch)")
    if len(spec.queries) > limits.max_batch:
        raise QueryError(f"{len(spec.queries)} queries in one request; the server takes at most {limits.max_batch}")
    if spec.k > limits.max_k:
        raise QueryError(f"k must be at most {limits.max_k} (the server's --max-k); got {spec.k}")
    if spec.pipeline is not None and spec.pipeline.depth > limits.max_k:
        raise QueryError(f"depth must be at most {limits.max_k} (the server's --max-k); got {spec.pipeline.depth}")
    for i, q in enumerate(spec.queries):
        if q.text is not None:
            check_text(q.text, f"query {i}")
        if q.vector is not None:
            for token in q.vector:
                check_text(token, f"query {i}'s vector token")
        if q.text is not None and len(q.text) > limits.max_query_chars:
            raise QueryError(f"query {i} has {len(q.text)} characters; the server takes at most "
                             f"{limits.max_query_chars}")
        if q.vector is not None and len(q.vector) > limits.max_vector_terms:
            raise QueryError(f"query {i}'s vector has {len(q.vector)} terms; the server takes at most "
                             f"{limits.max_vector_terms}")
