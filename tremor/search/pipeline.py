"""Retrieval pipelines of composable stages: retrieve → PRF → fuse, in the manner of PyTerrier's operators.

Every stage takes a ``Run`` (query texts, a ranked list per query, and the query vectors used so far) and returns a
``Run``, so stages compose: ``a >> b`` feeds a's run to b, ``Fuse(a, b)`` runs a and b on the same input and fuses
their lists, ``a % k`` keeps the top k. The placements of Li et al. ("To Interpolate or not to Interpolate: PRF,
Dense and Sparse Retrievers", SIGIR 2022) are then three short expressions (S, D: sparse and dense retrieval; S', D':
their PRF stages):

    before:  Fuse(S, D) >> D'               feedback documents come from the hybrid list
    after:   Fuse(S >> S', D >> D')         each side takes its own feedback, the PRF runs are fused
    both:    Fuse(S, D) >> Fuse(S', D')     hybrid feedback, then the PRF runs are fused again

``hybrid_pipeline`` builds them (a side without PRF contributes its plain retrieval), and ``HybridSearcher`` opens an
index directory with a dense index and runs a pipeline to ranked hits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from tremor.errors import QueryError, TremorError
from tremor.search.fusion import FUSION_METHODS, fuse, fuse_many
from tremor.search.prf import VECTOR_PRF_METHODS, feedback_documents, rocchio, sparse_document_vectors, vector_prf
from tremor.sparse import SparseVectors

PLACEMENTS = ("before", "after", "both")
PRF_SIDES = ("none", "sparse", "dense", "both")


@dataclass(frozen=True)
class PipelineConfig:
    """Everything that names a hybrid / PRF pipeline. The defaults are the values chosen on the BEIR tuning splits
    (scifact train, nfcorpus dev) by scripts/bench_hybrid.py; see BENCHMARKS.md, "Hybrid retrieval and PRF". PRF is
    opt-in (it searches each side a second time); with it, placement 'both' measured best."""

    retriever: str = "hybrid"          # "sparse", "dense" or "hybrid"
    fusion: str = "minmax"             # minmax, zscore, rrf or raw
    alpha: float = 0.5                 # weight of the sparse side, α·sparse + (1−α)·dense
    rrf_k: float = 5.0                 # for fusion="rrf"
    prf: str = "none"                  # which side(s) get PRF: none, sparse, dense, both
    placement: str = "both"            # before, after or both (hybrid with PRF only)
    depth: int = 1000                  # candidates per list, before fusion and after PRF
    fb_docs: int = 10                  # sparse Rocchio: feedback documents
    fb_terms: int | None = 50          # sparse Rocchio: term budget of the expanded query
    rocchio_alpha: float = 1.0
    rocchio_beta: float = 0.25
    dense_fb_docs: int = 1             # Vector-PRF: feedback documents
    vector_prf: str = "rocchio"        # average or rocchio
    vector_alpha: float = 1.0
    vector_beta: float = 0.25

    def check(self) -> None:
        """Raise QueryError for an unknown choice or a combination that names no single run."""
        for name, value, allowed in (("retriever", self.retriever, ("sparse", "dense", "hybrid")),
                                     ("fusion", self.fusion, FUSION_METHODS), ("prf", self.prf, PRF_SIDES),
                                     ("placement", self.placement, PLACEMENTS),
                                     ("vector_prf", self.vector_prf, VECTOR_PRF_METHODS)):
            if value not in allowed:
                raise QueryError(f"{name} must be one of {', '.join(allowed)} (got '{value}')")
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
            raise QueryError(f"depth (--depth, candidates per list) must be an integer of at least 1 "
                             f"(got {self.depth!r})")
        if self.retriever != "hybrid" and self.prf not in ("none", self.retriever):
            raise QueryError(f"PRF on the {self.prf} side needs that side: use retriever 'hybrid' or prf "
                             f"'{self.retriever}'")
        if self.retriever == "hybrid" and self.placement == "before" and self.prf == "both":
            raise QueryError("placement 'before' with PRF on both sides leaves two runs and nothing to fuse them; "
                             "use placement 'both' (fuse the two PRF runs) or PRF on one side")


_DEFAULTS = PipelineConfig()


@dataclass(frozen=True, eq=False)
class Run:
    """Ranked lists for a batch of queries: scores float32 [n, k] and internal numbers int64 [n, k] (best first,
    padded with (-inf, -1)), plus the sparse and dense query vectors behind them, kept for feedback stages."""

    queries: tuple[str, ...]
    scores: np.ndarray
    numbers: np.ndarray
    sparse_queries: SparseVectors | None = None
    dense_queries: np.ndarray | None = None

    @classmethod
    def start(cls, queries: Sequence[str], sparse_queries: SparseVectors | None = None,
              dense_queries: np.ndarray | None = None) -> Run:
        """A run with no documents yet; already encoded query vectors may be given to skip encoding."""
        if isinstance(queries, str):
            raise QueryError("a pipeline takes a list of queries")
        queries = tuple(queries)
        for name, vectors in (("sparse", sparse_queries), ("dense", dense_queries)):
            if vectors is not None and len(vectors) != len(queries):
                raise QueryError(f"{len(vectors)} {name} query vectors for {len(queries)} queries")
        empty = np.zeros((len(queries), 0))
        return cls(queries, empty.astype(np.float32), empty.astype(np.int64), sparse_queries, dense_queries)

    def __len__(self) -> int:
        return len(self.queries)

    @property
    def ranked(self) -> tuple[np.ndarray, np.ndarray]:
        return self.scores, self.numbers


class Stage:
    """One step of a pipeline: ``transform(run) -> run``. Call a stage on a Run or on a list of query texts."""

    def transform(self, run: Run) -> Run:
        raise NotImplementedError

    def __call__(self, run: Run | Sequence[str]) -> Run:
        return self.transform(run if isinstance(run, Run) else Run.start(run))

    def __rshift__(self, other: Stage) -> Stage:
        return Then([self, other])

    def __mod__(self, k: int) -> Stage:
        return Then([self, Cutoff(k)])


@dataclass
class Then(Stage):
    """Stages applied in order."""

    stages: list[Stage]

    def transform(self, run: Run) -> Run:
        for stage in self.stages:
            run = stage.transform(run)
        return run

    def __rshift__(self, other: Stage) -> Stage:
        return Then([*self.stages, other])


@dataclass
class Cutoff(Stage):
    """Keep the top k of each list."""

    k: int

    def transform(self, run: Run) -> Run:
        if self.k < 1:
            raise QueryError(f"k must be at least 1 (got {self.k})")
        return replace(run, scores=run.scores[:, :self.k], numbers=run.numbers[:, :self.k])


@dataclass
class SparseRetrieve(Stage):
    """Search the sparse index with the run's sparse query vectors (encoding the texts if there are none yet)."""

    searcher: object
    k: int = _DEFAULTS.depth
    search_params: dict = field(default_factory=dict)

    def transform(self, run: Run) -> Run:
        queries = run.sparse_queries
        if queries is None:
            queries = self.searcher.encode_queries(list(run.queries))
        scores, numbers = self.searcher.search_vectors(queries, self.k, **self.search_params)
        return replace(run, scores=scores, numbers=numbers, sparse_queries=queries)


@dataclass
class DenseRetrieve(Stage):
    """Search the dense index with the run's query embeddings (encoding the texts if there are none yet)."""

    searcher: object
    k: int = _DEFAULTS.depth
    search_params: dict = field(default_factory=dict)

    def transform(self, run: Run) -> Run:
        queries = run.dense_queries
        if queries is None:
            queries = self.searcher.encode_queries(list(run.queries))
        scores, numbers = self.searcher.search_vectors(queries, self.k, **self.search_params)
        return replace(run, scores=scores, numbers=numbers, dense_queries=queries)


@dataclass
class SparseRocchio(Stage):
    """Rocchio PRF on the sparse side: expand each query from the top ``fb_docs`` of the incoming run, search
    again (see ``tremor.search.prf.rocchio``)."""

    searcher: object
    fb_docs: int = _DEFAULTS.fb_docs
    fb_terms: int | None = _DEFAULTS.fb_terms
    alpha: float = _DEFAULTS.rocchio_alpha
    beta: float = _DEFAULTS.rocchio_beta
    normalize: bool = True
    k: int = _DEFAULTS.depth

    def transform(self, run: Run) -> Run:
        queries = run.sparse_queries
        if queries is None:
            queries = self.searcher.encode_queries(list(run.queries))
        feedback = feedback_documents(run.numbers, self.fb_docs)
        encoder = getattr(self.searcher, "encoder", None)
        moved = encoder.query_side_weights() if hasattr(encoder, "query_side_weights") else None
        expanded = rocchio(queries, feedback, lambda numbers: sparse_document_vectors(self.searcher, numbers),
                           self.alpha, self.beta, self.fb_terms, self.normalize, moved)
        return SparseRetrieve(self.searcher, self.k).transform(replace(run, sparse_queries=expanded))


@dataclass
class DenseVectorPRF(Stage):
    """Vector-PRF on the dense side (average or Rocchio) from the top ``fb_docs`` of the incoming run, then search
    the dense index again."""

    searcher: object
    fb_docs: int = _DEFAULTS.dense_fb_docs
    method: str = _DEFAULTS.vector_prf
    alpha: float = _DEFAULTS.vector_alpha
    beta: float = _DEFAULTS.vector_beta
    k: int = _DEFAULTS.depth

    def transform(self, run: Run) -> Run:
        queries = run.dense_queries
        if queries is None:
            queries = self.searcher.encode_queries(list(run.queries))
        feedback = feedback_documents(run.numbers, self.fb_docs)
        expanded = vector_prf(queries, self.searcher.index.document_vectors(feedback), feedback >= 0, self.method,
                              self.alpha, self.beta)
        return DenseRetrieve(self.searcher, self.k).transform(replace(run, dense_queries=expanded))


@dataclass
class Fuse(Stage):
    """Run two stages on the same input and fuse their lists: α·first + (1−α)·second after per-query min-max or
    z-score normalization, raw scores, or reciprocal rank fusion (``tremor.search.fusion``). By convention the first
    stage is the sparse side."""

    first: Stage
    second: Stage
    method: str = _DEFAULTS.fusion
    alpha: float = _DEFAULTS.alpha
    k: int | None = None
    rrf_k: float = _DEFAULTS.rrf_k

    def transform(self, run: Run) -> Run:
        a = self.first.transform(run)
        b = self.second.transform(run)
        scores, numbers = fuse(a.ranked, b.ranked, self.method, self.alpha, self.k, self.rrf_k)
        return Run(run.queries, scores, numbers,
                   a.sparse_queries if a.sparse_queries is not None else b.sparse_queries,
                   b.dense_queries if b.dense_queries is not None else a.dense_queries)


@dataclass
class FuseAll(Stage):
    """Run several stages on the same input and fuse all their lists at once (``tremor.search.fusion.fuse_many``):
    Σ wᵢ·norm(sᵢ), or RRF. Three-way hybrid search is ``FuseAll([splade, dense, bm25])``. The stages must rank the
    same documents under the same internal numbers (indexes of one corpus, in one order). The output keeps the
    first stage's sparse query vectors and the first dense ones."""

    stages: list[Stage]
    method: str = _DEFAULTS.fusion
    weights: tuple[float, ...] | None = None
    k: int | None = None
    rrf_k: float = _DEFAULTS.rrf_k

    def transform(self, run: Run) -> Run:
        runs = [stage.transform(run) for stage in self.stages]
        scores, numbers = fuse_many([r.ranked for r in runs], self.method, self.weights, self.k, self.rrf_k)
        sparse = next((r.sparse_queries for r in runs if r.sparse_queries is not None), None)
        dense = next((r.dense_queries for r in runs if r.dense_queries is not None), None)
        return Run(run.queries, scores, numbers, sparse, dense)


def same_documents(*searchers) -> None:
    """Raise TremorError unless the searchers' document stores hold the same ids in the same order (so their
    internal numbers name the same documents and their lists can be fused)."""
    from tremor.search.dense import ids_hash

    hashes = set()
    for searcher in searchers:
        if getattr(searcher, "docstore", None) is not None:
            hashes.add(ids_hash(searcher.docstore.ids()))
        elif (getattr(searcher, "manifest", None) or {}).get("doc_ids_hash"):
            hashes.add(searcher.manifest["doc_ids_hash"])
    sizes = {s.n_docs for s in searchers}
    if len(hashes) > 1 or len(sizes) > 1:
        raise TremorError(f"cannot fuse these indexes: they hold different documents or orders ({sorted(sizes)} "
                          "documents); build every index from the same corpus")


def three_way_pipeline(splade, dense, bm25, method: str = "minmax", weights: tuple[float, float, float] | None = None,
                       depth: int = _DEFAULTS.depth, rrf_k: float = _DEFAULTS.rrf_k) -> Stage:
    """Learned sparse + dense + BM25 retrieval fused in one step (``FuseAll``), over a SPLADE Searcher, a
    DenseSearcher and a BM25 Searcher of the same corpus; weights in that order (default equal)."""
    same_documents(splade, dense, bm25)
    return FuseAll([SparseRetrieve(splade, depth), DenseRetrieve(dense, depth), SparseRetrieve(bm25, depth)],
                   method, weights, depth, rrf_k)


def hybrid_pipeline(sparse=None, dense=None, config: PipelineConfig | None = None, **overrides) -> Stage:
    """The pipeline a config names, over a sparse Searcher and/or a DenseSearcher (see the module docstring for the
    placements). Keyword arguments override config fields."""
    config = replace(config or PipelineConfig(), **overrides)
    config.check()
    if config.retriever in ("sparse", "hybrid") and sparse is None:
        raise TremorError(f"a '{config.retriever}' pipeline needs a sparse searcher")
    if config.retriever in ("dense", "hybrid") and dense is None:
        raise TremorError(f"a '{config.retriever}' pipeline needs a dense searcher (add one with "
                          "'tremor index add-dense')")
    S = SparseRetrieve(sparse, config.depth) if sparse is not None else None
    D = DenseRetrieve(dense, config.depth) if dense is not None else None
    sparse_prf = SparseRocchio(sparse, config.fb_docs, config.fb_terms, config.rocchio_alpha, config.rocchio_beta,
                               k=config.depth) if sparse is not None else None
    dense_prf = DenseVectorPRF(dense, config.dense_fb_docs, config.vector_prf, config.vector_alpha,
                               config.vector_beta, config.depth) if dense is not None else None
    if config.retriever == "sparse":
        return S >> sparse_prf if config.prf == "sparse" else S
    if config.retriever == "dense":
        return D >> dense_prf if config.prf == "dense" else D

    def fused(first: Stage, second: Stage) -> Fuse:
        return Fuse(first, second, config.fusion, config.alpha, config.depth, config.rrf_k)

    if config.prf == "none":
        return fused(S, D)
    on_sparse = config.prf in ("sparse", "both")
    on_dense = config.prf in ("dense", "both")
    if config.placement == "before":
        return fused(S, D) >> (sparse_prf if on_sparse else dense_prf)
    if config.placement == "after":
        return fused(S >> sparse_prf if on_sparse else S, D >> dense_prf if on_dense else D)
    return fused(S, D) >> fused(sparse_prf if on_sparse else S, dense_prf if on_dense else D)


class HybridSearcher:
    """An index directory's sparse searcher and (when present) its dense searcher, searched through a pipeline."""

    def __init__(self, sparse, dense=None) -> None:
        self.sparse = sparse
        self.dense = dense
        if dense is not None and sparse is not None and dense.n_docs != sparse.n_docs:
            raise TremorError(f"the dense index holds {dense.n_docs} documents, the sparse index {sparse.n_docs}; "
                              "rebuild it with 'tremor index add-dense --overwrite'")

    @classmethod
    def load(cls, path: str | Path, dense: bool = True, model: str | None = None, device: str = "auto",
             verify: bool = False) -> HybridSearcher:
        """Open an index directory; its ``dense/`` folder too when ``dense`` (an error if it has none)."""
        from tremor.search.dense import DenseSearcher
        from tremor.search.searcher import Searcher

        sparse = Searcher.load(path, verify=verify)
        dense_searcher = DenseSearcher.load(path, model=model, device=device, verify=verify) if dense else None
        if dense_searcher is not None and sparse.docstore is not None:
            expected = dense_searcher.manifest.get("doc_ids_hash")
            if verify and expected is not None:
                from tremor.search.dense import ids_hash

                if ids_hash(sparse.docstore.ids()) != expected:
                    raise TremorError(f"{path}: the dense index was built for other documents; rebuild it with "
                                      "'tremor index add-dense --overwrite'")
        return cls(sparse, dense_searcher)

    def pipeline(self, config: PipelineConfig | None = None, **overrides) -> Stage:
        return hybrid_pipeline(self.sparse, self.dense, config, **overrides)

    def run(self, queries: Sequence[str], k: int = 10, config: PipelineConfig | None = None, **overrides) -> Run:
        """The pipeline's run for ``queries``, cut to k."""
        return (self.pipeline(config, **overrides) % k)(list(queries))

    def batch_search(self, queries: Sequence[str], k: int = 10, config: PipelineConfig | None = None,
                     with_text: bool = True, **overrides) -> list:
        """Top-k hits (``tremor.Hit``) per query."""
        run = self.run(queries, k, config, **overrides)
        return self.sparse.hits(run.scores, run.numbers, with_text)
