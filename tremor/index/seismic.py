"""Seismic: an approximate inverted index with blocked, summarized posting lists, for learned sparse vectors.

Bruch, Nardini, Rulli, Venturini, "Efficient Inverted Indexes for Approximate Retrieval over Learned Sparse
Representations" (SIGIR 2024); the optional κ-NN refinement is SeismicWave, from "Pairing Clustered Inverted Indexes
with κ-NN Graphs for Fast Approximate Retrieval over Learned Sparse Representations" (CIKM 2024).

Build: every posting list is statically pruned to its largest entries (λ, ``n_postings``: a global budget of
λ × vocabulary entries, at most ``max_fraction`` × λ per list, or λ per list), split into β × length blocks of
similar documents (``centroid_fraction``; sampled centroids, assignment by inner product), and each block gets a
summary: the coordinate-wise maximum of its documents, trimmed to the entries holding α of its L1 mass
(``summary_energy``) and quantized to 8 bits, stored in the compact layout of ``tremor.index.seismic_compact`` (3 bytes
per entry; ``summary_bits=4``: 4-bit codes in the layout of ``tremor.index.seismic_nibble``, 2 bytes per entry;
indexes written in the earlier packed layout, 4 bytes per entry, are converted when they load). A forward
index (uint16/int32 components, float16 values) scores
candidate documents exactly.

Search: the ``query_cut`` largest query terms are visited; a block is skipped when the heap already holds k documents
and its summary score is below ``heap_factor`` × the heap's smallest score, the same convention as pyseismic-lsr
(so heap_factor = 1 skips every block whose summary cannot beat the current k-th score, and smaller values skip
less and search more). The kernels are in ``tremor.index.seismic_kernels``.
"""

from __future__ import annotations

import math
import os
import threading
from typing import ClassVar

import numba
import numpy as np
from tqdm.auto import tqdm

from tremor.errors import IndexFormatError, QueryError, TremorError
from tremor.index import seismic_compact as compact
from tremor.index import seismic_kernels as kernels
from tremor.index import seismic_nibble as nibble
from tremor.index.exact import _transpose, check_search_args
from tremor.index.filtered import DocFilter, check_allow, pad_results
from tremor.sparse import SparseVectors

FLOAT16_MAX = 65504.0
# upper bound, in summary entries, of the temporary buffers one build batch may use
BATCH_ENTRIES = 1 << 25
# an index of fewer documents is scored exactly from its forward index: below this size the approximate search is
# not faster (measured by scripts/bench_seismic_threshold.py, results/seismic_threshold.md)
MEASURED_APPROXIMATE_THRESHOLD = 2000
THRESHOLD_ENV = "TREMOR_SEISMIC_APPROXIMATE_THRESHOLD"


def default_approximate_threshold() -> int:
    """The default ``approximate_threshold``: MEASURED_APPROXIMATE_THRESHOLD, or the environment's
    TREMOR_SEISMIC_APPROXIMATE_THRESHOLD (0: always approximate, as the test suite runs its small indexes)."""
    raw = os.environ.get(THRESHOLD_ENV)
    if raw is None or not raw.strip():
        return MEASURED_APPROXIMATE_THRESHOLD
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise TremorError(f"environment variable {THRESHOLD_ENV}={raw!r}: expected an integer >= 0")
    return value


DEFAULT_APPROXIMATE_THRESHOLD = default_approximate_threshold()
# search parameters that ask for a particular approximate search (the threshold then does not apply unless given)
APPROXIMATE_SETTINGS = ("query_cut", "heap_factor", "n_knn", "preset")
# a posting list of at most this many postings is scored without its summaries: looking the query up in a summary
# costs about as much as scoring a few documents, and scoring them is exact; the rare terms a query is cut to have short
# lists, and the small segments of a live index hold many (measured: scripts/bench_live.py, BENCHMARKS.md)
DIRECT_POSTINGS = 16
# κ-NN graph construction searches every document with these settings (as the CIKM 2024 paper does)
KNN_QUERY_CUT = 10
KNN_HEAP_FACTOR = 0.7


# arrays of the packed summary layout that the compact one replaces
PACKED_ONLY = ("segment_entry_indptr", "summary_entries", "summary_skip")


def _offset_dtype(largest: int) -> type:
    return np.int32 if largest < 2**31 else np.int64


def entry_layout(vocab_size: int) -> tuple[type, int]:
    """(summary entry dtype, block bits): an entry packs component, block within its segment and 8-bit code."""
    component_bits = max(1, int(vocab_size - 1).bit_length())
    if component_bits <= 20:
        return np.uint32, 24 - component_bits
    return np.uint64, 16


def _grow(array: np.ndarray, size: int) -> np.ndarray:
    """``array`` with room for ``size`` elements (amortized doubling; the tail is uninitialized)."""
    if size <= array.shape[0]:
        return array
    grown = np.empty(max(size, 2 * array.shape[0]), dtype=array.dtype)
    grown[:array.shape[0]] = array
    return grown


def _component_dtype(vocab_size: int) -> type:
    return np.uint16 if vocab_size <= 2**16 else np.int32


class SeismicIndex:
    """Seismic approximate inner-product index over SparseVectors (see the module docstring for the method).

    Build with ``SeismicIndex.build(docs, n_postings=..., centroid_fraction=..., summary_energy=...)``; search with
    ``index.search(queries, k, query_cut=..., heap_factor=...)``. In an index spec the paper's letters work too:
    ``"seismic,lambda=3500,beta=0.1,alpha=0.4"``.
    """

    index_type = "seismic"
    SPEC_ALIASES: ClassVar[dict[str, str]] = {"lambda": "n_postings", "beta": "centroid_fraction",
                                              "alpha": "summary_energy", "kappa": "knn", "nknn": "knn"}
    BUILD_DEFAULTS: ClassVar[dict] = {"n_postings": 3500, "centroid_fraction": 0.1, "summary_energy": 0.4,
                                      "pruning": "global", "max_fraction": 1.5, "min_cluster_size": 2, "doc_cut": 15,
                                      "knn": 0, "seed": 42, "forward": "f16",
                                      "summary_rounding": "up", "summary_bits": 8}
    # build parameters that fix a stored layout, with the value indexes got before the parameter existed: a live
    # index pins them when it is created (its segments must share one layout, whatever a later default says), and
    # one created before keeps building its segments with the old value
    LEGACY_BUILD_DEFAULTS: ClassVar[dict] = {"summary_bits": 8}
    # build defaults are the paper's (and pyseismic-lsr's); the search defaults reach recall@10 >= 0.95 on the
    # synthetic SPLADE-like set and on BM25 vectors of scifact and nfcorpus (scripts/bench_index.py)
    SEARCH_DEFAULTS: ClassVar[dict] = {"query_cut": 10, "heap_factor": 0.4, "n_knn": 0, "sort_first": True,
                                       "direct_postings": DIRECT_POSTINGS,
                                       "approximate_threshold": DEFAULT_APPROXIMATE_THRESHOLD, "preset": None}

    def __init__(self, arrays: dict[str, np.ndarray], params: dict, vocab_size: int,
                 vocab_id: str | None = None) -> None:
        self._arrays = arrays
        for name, array in arrays.items():
            setattr(self, name, array)
        self._params = dict(params)
        self.vocab_size = int(vocab_size)
        self.vocab_id = vocab_id
        self.max_blocks = int(np.diff(self.list_block_indptr).max()) if self.vocab_size else 0
        # 4-bit summaries (seismic_nibble): block and code inside the 16-bit key
        self.summary_bits = 4 if "summary_table_start" in arrays else 8
        self.n_bucket = compact.n_buckets(self.vocab_size)
        self._scratch = threading.local()
        self._kernel_args: tuple | None = None
        self._checked_params: dict[tuple, tuple] = {}

    # --------------------------------------------------------------------------------------------------- build
    @classmethod
    def build(cls, docs: SparseVectors, progress: bool = True, **params) -> SeismicIndex:
        """Index ``docs`` (row i is document i). Parameters (paper names): ``n_postings`` λ (None or inf: no
        pruning), ``centroid_fraction`` β, ``summary_energy`` α, ``pruning`` ("global" budget of λ × vocabulary
        entries with at most ``max_fraction`` × λ per list, or "fixed": λ per list), ``min_cluster_size`` (blocks of
        this many documents or fewer are merged into others), ``doc_cut`` (document components used to pick a
        block), ``knn`` (κ, neighbours stored per document for SeismicWave; 0: none), ``seed``, ``forward`` (the
        forward index's values: "f16", float16; or "u8", 8-bit codes with a float32 scale per document, one byte
        instead of two per entry, scores within half a code step of the float16 ones), ``summary_bits`` (4: 4-bit
        summary codes, 2 bytes per summary entry; 8: 8-bit codes, 3 bytes), ``summary_rounding`` ("up": a summary's
        codes never fall below the block's maxima, so heap_factor 1 with untrimmed summaries is exact; "nearest":
        rounded to the nearest code, tighter on average and so pruning more)."""
        if not isinstance(docs, SparseVectors):
            raise TremorError("SeismicIndex.build expects SparseVectors")
        p = cls._check_build_params(params)
        if p["forward"] == "f16" and docs.nnz and float(docs.values.max()) > FLOAT16_MAX:
            raise TremorError(f"document weights above {FLOAT16_MAX} cannot be stored as float16; scale the vectors")
        vocab_size = docs.vocab_size
        n_threads = numba.get_num_threads()
        steps = tqdm(total=4 + (1 if p["knn"] else 0), desc="seismic: forward index", unit="step",
                     disable=not progress, leave=False)
        if p["forward"] == "u8":
            doc_values, doc_scale = kernels.quantize_forward(docs.indptr, docs.values.astype(np.float32))
            values = kernels.dequantize_forward(docs.indptr, doc_values, doc_scale)  # the values search will see
        else:
            doc_values = docs.values.astype(np.float16)
            doc_scale = np.zeros(0, dtype=np.float32)
            values = doc_values.astype(np.float32)  # build from the values search will see
        doc_components = docs.indices.astype(_component_dtype(vocab_size))
        post_indptr, post_docs, post_values = _transpose(docs.indptr, docs.indices, values, vocab_size)
        steps.update()

        steps.set_description("seismic: pruning")
        threshold, cap = cls._pruning_cut(post_values, vocab_size, p)
        kept = kernels.kept_lengths(post_indptr, post_values, threshold, cap)
        kept_offset = np.zeros(vocab_size + 1, dtype=np.int64)
        np.cumsum(kept, out=kept_offset[1:])
        posting_docs = np.empty(int(kept_offset[-1]), dtype=np.int32)
        bounds = np.zeros(vocab_size, dtype=np.int64)
        kernels.prune_lists(post_indptr, post_docs, post_values, threshold, kept, kept_offset, docs.indptr,
                            posting_docs, bounds)
        # each list's largest value (its upper bound per unit of query weight), for ordering query terms
        list_max = np.zeros(vocab_size, dtype=np.float32)
        nonempty = np.flatnonzero(np.diff(post_indptr) > 0)
        if nonempty.size:
            list_max[nonempty] = np.maximum.reduceat(post_values, post_indptr[nonempty])
        list_max[kept == 0] = 0.0
        del post_docs, post_values
        top_comp, top_val, top_count = kernels.top_components(docs.indptr, docs.indices, values, p["doc_cut"])
        steps.update()

        steps.set_description("seismic: blocks and summaries")
        n_centroids = np.minimum(np.minimum(np.maximum(1, (p["centroid_fraction"] * kept).astype(np.int64)), 65535),
                                 np.maximum(kept, 1))
        entry_dtype, block_bits = entry_layout(vocab_size)
        parts = []
        summary_entries = np.empty(0, dtype=entry_dtype)
        sum_buffer = np.empty(0, dtype=np.uint64)
        used = 0
        n_entries_all = np.zeros(vocab_size, dtype=np.int64)
        with tqdm(total=int(kept.sum()), desc="seismic: blocking postings", unit="posting", unit_scale=True,
                  disable=not progress, leave=False) as bar:
            for first, last in cls._batches(bounds):
                block_slot = np.zeros(last - first + 1, dtype=np.int64)
                np.cumsum(n_centroids[first:last], out=block_slot[1:])
                segment_slot = np.zeros(last - first + 1, dtype=np.int64)
                np.cumsum((n_centroids[first:last] + (1 << block_bits) - 1) >> block_bits, out=segment_slot[1:])
                summary_slot = np.zeros(last - first + 1, dtype=np.int64)
                np.cumsum(bounds[first:last], out=summary_slot[1:])
                n_lists = last - first
                schedule = np.argsort(-bounds[first:last], kind="stable")
                block_sizes = np.zeros(int(block_slot[-1]), dtype=np.int64)
                block_min = np.zeros(int(block_slot[-1]), dtype=np.float32)
                block_scale = np.zeros(int(block_slot[-1]), dtype=np.float32)
                n_blocks = np.zeros(n_lists, dtype=np.int64)
                # one buffer for every batch: each list writes only the head of its slot (its summary entries, a
                # few percent of the bound), and a fresh buffer would have the kernel zero a whole (huge) page per
                # list on first touch (a quarter of the build's time, measured with perf)
                if sum_buffer.shape[0] < int(summary_slot[-1]):
                    sum_buffer = np.empty(int(summary_slot[-1]), dtype=np.uint64)
                sum_entries = sum_buffer[:int(summary_slot[-1])]
                segment_sizes = np.zeros(int(segment_slot[-1]), dtype=np.int64)
                n_entries = n_entries_all[first:last]
                kernels.build_lists(first, schedule, max(1, min(n_threads, n_lists)), kept, kept_offset,
                                    float(p["centroid_fraction"]), int(p["min_cluster_size"]),
                                    float(p["summary_energy"]), int(p["seed"]), docs.indptr, docs.indices, values,
                                    top_comp, top_val, top_count, vocab_size, block_slot, segment_slot, summary_slot,
                                    posting_docs, block_sizes, block_min, block_scale, n_blocks, block_bits,
                                    sum_entries, segment_sizes, n_entries, p["summary_rounding"] == "up",
                                    nibble.LEVELS if p["summary_bits"] == 4 else 255)
                summary_entries = _grow(summary_entries, used + int(n_entries.sum()))
                parts.append((n_blocks, *kernels.gather_batch(
                    n_lists, block_slot, segment_slot, summary_slot, n_blocks, n_entries, block_bits, block_sizes,
                    block_min, block_scale, segment_sizes, sum_entries, summary_entries, used)))
                used += int(n_entries.sum())
                bar.update(int(kept[first:last].sum()))
        steps.update()

        steps.set_description("seismic: assembling")
        arrays = cls._compacted(cls._assemble(parts, vocab_size, docs.indptr, doc_components, doc_values,
                                              posting_docs, list_max, summary_entries[:used], block_bits),
                                block_bits, vocab_size, four_bit=p["summary_bits"] == 4)
        arrays["doc_scale"] = doc_scale
        steps.update()
        params_out = dict(p)
        index = cls(arrays, params_out, vocab_size, docs.vocab_id)
        if p["knn"]:
            steps.set_description("seismic: κ-NN graph")
            index._arrays["knn_neighbors"] = index.knn_neighbors = index._knn_graph(docs, p["knn"], progress)
            steps.update()
        steps.close()
        return index

    @classmethod
    def _check_build_params(cls, params: dict) -> dict:
        unknown = sorted(set(params) - set(cls.BUILD_DEFAULTS))
        if unknown:
            raise TremorError(f"unknown seismic build parameter(s) {', '.join(unknown)}; known: "
                              f"{', '.join(sorted(cls.BUILD_DEFAULTS))} (spec aliases lambda, beta, alpha, kappa)")
        p = {**cls.BUILD_DEFAULTS, **params}
        n_postings = p["n_postings"]
        if n_postings is not None and not (isinstance(n_postings, (int, float)) and n_postings >= 1):
            raise TremorError(f"n_postings (lambda) must be a number >= 1, or inf/None for no pruning "
                              f"(got {n_postings!r})")
        if n_postings is not None and math.isinf(n_postings):
            n_postings = None
        p["n_postings"] = None if n_postings is None else int(n_postings)
        if not (isinstance(p["centroid_fraction"], (int, float)) and 0 < p["centroid_fraction"] <= 1):
            raise TremorError(f"centroid_fraction (beta) must lie in (0, 1] (got {p['centroid_fraction']!r})")
        if not (isinstance(p["summary_energy"], (int, float)) and 0 < p["summary_energy"] <= 1):
            raise TremorError(f"summary_energy (alpha) must lie in (0, 1] (got {p['summary_energy']!r})")
        if p["forward"] not in ("f16", "u8"):
            raise TremorError(f"forward must be 'f16' (float16 values) or 'u8' (8-bit codes with a scale per "
                              f"document) (got {p['forward']!r})")
        if p["summary_rounding"] not in ("up", "nearest"):
            raise TremorError(f"summary_rounding must be 'up' or 'nearest' (got {p['summary_rounding']!r})")
        if isinstance(p["summary_bits"], bool) or p["summary_bits"] not in (8, 4):
            raise TremorError(f"summary_bits must be 8 (8-bit summary codes, 3 bytes an entry) or 4 (4-bit codes, "
                              f"2 bytes an entry) (got {p['summary_bits']!r})")
        p["summary_bits"] = int(p["summary_bits"])
        if p["pruning"] not in ("global", "fixed"):
            raise TremorError(f"pruning must be 'global' or 'fixed' (got {p['pruning']!r})")
        if p["max_fraction"] is None or (isinstance(p["max_fraction"], float) and math.isinf(p["max_fraction"])):
            p["max_fraction"] = None
        elif not (isinstance(p["max_fraction"], (int, float)) and p["max_fraction"] >= 1):
            raise TremorError(f"max_fraction must be >= 1, or inf/None for no per-list cap "
                              f"(got {p['max_fraction']!r})")
        for name, low in (("min_cluster_size", 0), ("doc_cut", 1), ("knn", 0), ("seed", 0)):
            if not isinstance(p[name], (int, np.integer)) or isinstance(p[name], bool) or p[name] < low:
                raise TremorError(f"{name} must be an integer >= {low} (got {p[name]!r})")
            p[name] = int(p[name])
        p["centroid_fraction"] = float(p["centroid_fraction"])
        p["summary_energy"] = float(p["summary_energy"])
        if p["max_fraction"] is not None:
            p["max_fraction"] = float(p["max_fraction"])
        return p

    @staticmethod
    def _pruning_cut(post_values: np.ndarray, vocab_size: int, p: dict) -> tuple[float, int]:
        """(value threshold, per-list cap) of the static pruning: global keeps the λ × vocabulary largest entries
        (ties at the threshold all kept), at most max_fraction × λ per list; fixed keeps λ per list."""
        no_cap = np.iinfo(np.int64).max
        if p["n_postings"] is None:
            return 0.0, no_cap
        if p["pruning"] == "fixed":
            return 0.0, p["n_postings"]
        budget = p["n_postings"] * vocab_size
        cap = no_cap if p["max_fraction"] is None else int(p["n_postings"] * p["max_fraction"])
        if budget >= post_values.shape[0]:
            return 0.0, cap
        position = post_values.shape[0] - budget
        return float(np.partition(post_values, position)[position]), cap

    @staticmethod
    def _batches(bounds: np.ndarray) -> list[tuple[int, int]]:
        """Consecutive term ranges whose summary buffers stay under BATCH_ENTRIES (at least one list each)."""
        ends = np.cumsum(bounds)
        out = []
        first = 0
        n = bounds.shape[0]
        while first < n:
            base = ends[first - 1] if first else 0
            last = int(np.searchsorted(ends, base + BATCH_ENTRIES, side="right"))
            last = min(max(last, first + 1), n)
            out.append((first, last))
            first = last
        return out

    @staticmethod
    def _assemble(parts: list, vocab_size: int, doc_indptr: np.ndarray, doc_components: np.ndarray,
                  doc_values: np.ndarray, posting_docs: np.ndarray, list_max: np.ndarray,
                  summary_entries: np.ndarray, block_bits: int) -> dict[str, np.ndarray]:
        def joined(i: int, dtype: type) -> np.ndarray:
            return np.concatenate([part[i] for part in parts]).astype(dtype, copy=False) if parts \
                else np.zeros(0, dtype)

        def indptr(counts: np.ndarray, dtype: type) -> np.ndarray:
            out = np.zeros(counts.shape[0] + 1, dtype=dtype)
            np.cumsum(counts, out=out[1:])
            return out

        return {
            "doc_indptr": doc_indptr, "doc_components": doc_components, "doc_values": doc_values,
            "list_block_indptr": indptr(joined(0, np.int64), np.int64),
            "block_indptr": indptr(joined(1, np.int64), _offset_dtype(posting_docs.shape[0])),
            "block_min": joined(2, np.float32), "block_scale": joined(3, np.float32), "posting_docs": posting_docs,
            "list_segment_indptr": indptr(joined(4, np.int64), np.int64),
            "segment_entry_indptr": indptr(joined(5, np.int64), _offset_dtype(summary_entries.shape[0])),
            "summary_entries": summary_entries,
            # every SKIP-th entry's component: a short list that locates a component's entries quickly
            "summary_skip": (summary_entries[::kernels.SKIP] >> np.asarray(block_bits + 8, summary_entries.dtype))
            .astype(_component_dtype(vocab_size)),
            "knn_neighbors": np.zeros((doc_indptr.shape[0] - 1, 0), dtype=np.int32),
            "list_max": list_max,
        }

    @staticmethod
    def _compacted(arrays: dict[str, np.ndarray], block_bits: int, vocab_size: int,
                   four_bit: bool = False) -> dict[str, np.ndarray]:
        """``arrays`` with packed summaries (``summary_entries``, ``segment_entry_indptr``, ``summary_skip``, the
        previous format) replaced by the compact layout's, or with ``four_bit`` (4-bit codes) the 4-bit layout's."""
        out = {name: array for name, array in arrays.items() if name not in PACKED_ONLY}
        convert = compact.nibble_from_packed if four_bit else compact.compact_from_packed
        out.update(convert(arrays["list_block_indptr"], arrays["list_segment_indptr"],
                           arrays["segment_entry_indptr"], arrays["summary_entries"], block_bits, vocab_size))
        return out

    def _knn_graph(self, docs: SparseVectors, width: int, progress: bool) -> np.ndarray:
        """Each document's ``width`` approximate nearest neighbours by inner product, found with this index."""
        rows = []
        step = 4096
        for start in tqdm(range(0, len(docs), step), desc="seismic: κ-NN graph", unit="batch",
                          disable=not progress, leave=False):
            part = docs[start:start + step]
            scores, found = self._search_arrays(part, width + 1, KNN_QUERY_CUT, KNN_HEAP_FACTOR, 0, True)
            rows.append(kernels.drop_self(scores, found, start, width))
        return np.concatenate(rows) if rows else np.zeros((0, width), np.int32)

    # -------------------------------------------------------------------------------------------------- search
    @property
    def n_docs(self) -> int:
        return self.doc_indptr.shape[0] - 1

    @property
    def knn_width(self) -> int:
        """Neighbours stored per document (0 without a κ-NN graph)."""
        return int(self.knn_neighbors.shape[1])

    def search(self, queries: SparseVectors, k: int = 10, allow: np.ndarray | None = None,
               **search_params) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k documents per query: (scores float32 [n, k], doc ids int64 [n, k]), best first, padded
        with (-inf, -1). Search parameters: ``query_cut`` (query terms whose lists are visited), ``heap_factor``
        (skip a block when its summary score < heap_factor × the k-th best score so far), ``n_knn`` (neighbours of
        each result to score, SeismicWave; needs an index built with knn > 0), ``sort_first`` (visit the first
        list's blocks by decreasing summary score), ``direct_postings`` (a list of at most this many postings is
        scored without its summaries: exact, and as cheap as reading them; 0: never), ``approximate_threshold`` (an
        index of fewer documents is scored exactly), ``preset`` (a named (query_cut, heap_factor) setting, see
        ``tremor.index.seismic_presets``; parameters given explicitly override it); k is clamped to the document
        count. ``allow``: an optional boolean mask over the documents; only those may come back (see
        ``tremor.index.filtered``)."""
        k = check_search_args(queries, k, self.vocab_size, self.vocab_id, self.n_docs)
        try:
            key = tuple(search_params.items())
            cached = self._checked_params.get(key)
        except TypeError:  # an unhashable value: checked (and refused) below
            key, cached = None, None
        if cached is None:
            cached = (self._check_search_params(search_params), self._approximate_threshold(search_params))
            if key is not None and len(self._checked_params) < 256:
                self._checked_params[key] = cached
        checked, threshold = cached
        doc_filter = check_allow(allow, self.n_docs)
        if self.n_docs < threshold:
            return self._search_exhaustive(queries, int(k), doc_filter)
        if doc_filter is not None:
            return self._search_filtered(queries, int(k), checked, doc_filter)
        return self._search_arrays(queries, int(k), *checked)

    def _search_filtered(self, queries: SparseVectors, k: int, checked: tuple,
                         doc_filter: DocFilter) -> tuple[np.ndarray, np.ndarray]:
        """Search with excluded documents marked as already visited, so the heap fills with allowed ones. A very
        selective filter scores the allowed documents exactly instead; so does a query that came back with fewer
        than k hits while the filter excludes most documents (static pruning may have left its allowed documents
        off the posting lists)."""
        n_queries = len(queries)
        if doc_filter.n_allowed == 0:
            return pad_results(n_queries, k)
        query_cut, heap_factor, n_knn, sort_first, direct_postings = checked
        if doc_filter.use_subset(k):
            scores, docs = pad_results(n_queries, k)
            short = np.arange(n_queries, dtype=np.int64)
        else:
            words = doc_filter.blocked_words
            if n_queries == 1 or numba.get_num_threads() == 1:
                q_dense, _, visited_docs, block_codes, block_weight, block_order = self._thread_scratch()
                scores, docs = kernels.search_serial(
                    queries.indptr, queries.indices, queries.values, k, query_cut, heap_factor, n_knn, sort_first,
                    direct_postings,
                    *self._index_arrays(), q_dense, words.copy(), visited_docs, block_codes, block_weight,
                    block_order, words)
            else:
                scores, docs = kernels.search_parallel(
                    queries.indptr, queries.indices, queries.values, k, query_cut, heap_factor, n_knn, sort_first,
                    direct_postings,
                    *self._index_arrays(), max(self.max_blocks, 1), min(n_queries, numba.get_num_threads()), words)
            if 2 * doc_filter.n_allowed > self.n_docs:
                return scores, docs
            short = np.flatnonzero((docs >= 0).sum(axis=1) < min(k, doc_filter.n_allowed)).astype(np.int64)
        if short.size:
            kernels.score_subset(queries.indptr, queries.indices, queries.values, short, doc_filter.allowed,
                                 self.doc_indptr, self.doc_components, self.forward_values, self.vocab_size, k,
                                 scores, docs)
        return scores, docs

    def _search_exhaustive(self, queries: SparseVectors, k: int,
                           doc_filter: DocFilter | None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top k over every (allowed) document from the forward index: a small index's cheaper plan."""
        scores, docs = pad_results(len(queries), k)
        subset = doc_filter.allowed if doc_filter is not None else self._all_docs()
        if subset.shape[0] and len(queries):
            kernels.score_subset(queries.indptr, queries.indices, queries.values,
                                 np.arange(len(queries), dtype=np.int64), subset, self.doc_indptr,
                                 self.doc_components, self.forward_values, self.vocab_size, k, scores, docs)
        return scores, docs

    def _all_docs(self) -> np.ndarray:
        docs = getattr(self, "_every_doc", None)
        if docs is None or docs.shape[0] != self.n_docs:
            docs = self._every_doc = np.arange(self.n_docs, dtype=np.int32)
        return docs

    def _approximate_threshold(self, search_params: dict) -> int:
        """The document count below which search is exact (``approximate_threshold``), or QueryError. A search that
        names its own approximate settings (query_cut, heap_factor, n_knn or a preset) and no threshold gets them:
        the crossover was measured at the default settings, and faster settings win on smaller indexes."""
        if "approximate_threshold" not in search_params and \
                any(search_params.get(name) is not None for name in APPROXIMATE_SETTINGS):
            return 0
        value = search_params.get("approximate_threshold", self.SEARCH_DEFAULTS["approximate_threshold"])
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise QueryError(f"approximate_threshold must be an integer >= 0 (got {value!r}; 0: always approximate)")
        return int(value)

    def _check_search_params(self, search_params: dict) -> tuple[int, float, int, bool, int]:
        """(query_cut, heap_factor, n_knn, sort_first, direct_postings) from the caller's parameters over the preset
        named by ``preset`` (if any) over the defaults, or QueryError."""
        from tremor.index.seismic_presets import preset_params

        unknown = sorted(set(search_params) - set(self.SEARCH_DEFAULTS))
        if unknown:
            raise QueryError(f"unknown seismic search parameter(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(self.SEARCH_DEFAULTS))}")
        p = {**self.SEARCH_DEFAULTS, **preset_params(search_params.get("preset")), **search_params}
        query_cut, heap_factor, n_knn = p["query_cut"], p["heap_factor"], p["n_knn"]
        if not isinstance(query_cut, (int, np.integer)) or isinstance(query_cut, bool) or query_cut < 1:
            raise QueryError(f"query_cut must be an integer >= 1 (got {query_cut!r})")
        if not isinstance(heap_factor, (int, float)) or not heap_factor >= 0 or math.isinf(heap_factor):
            raise QueryError(f"heap_factor must be a finite number >= 0 (got {heap_factor!r})")
        if not isinstance(n_knn, (int, np.integer)) or isinstance(n_knn, bool) or n_knn < 0:
            raise QueryError(f"n_knn must be an integer >= 0 (got {n_knn!r})")
        if n_knn > 0 and self.knn_width == 0:
            raise QueryError("n_knn > 0 needs an index built with a κ-NN graph (build parameter knn, e.g. knn=10)")
        direct = p["direct_postings"]
        if not isinstance(direct, (int, np.integer)) or isinstance(direct, bool) or direct < 0:
            raise QueryError(f"direct_postings must be an integer >= 0 (got {direct!r}; 0: every list through its "
                             "summaries)")
        return int(query_cut), float(heap_factor), int(n_knn), bool(p["sort_first"]), int(direct)

    def _search_arrays(self, queries: SparseVectors, k: int, query_cut: int, heap_factor: float, n_knn: int,
                       sort_first: bool, direct_postings: int = DIRECT_POSTINGS) -> tuple[np.ndarray, np.ndarray]:
        if len(queries) == 1 or numba.get_num_threads() == 1:
            return kernels.search_serial(queries.indptr, queries.indices, queries.values, k, query_cut, heap_factor,
                                         n_knn, sort_first, direct_postings, *self._index_arrays(),
                                         *self._thread_scratch())
        return kernels.search_parallel(queries.indptr, queries.indices, queries.values, k, query_cut, heap_factor,
                                       n_knn, sort_first, direct_postings, *self._index_arrays(),
                                       max(self.max_blocks, 1),
                                       min(len(queries), numba.get_num_threads()))

    def _index_arrays(self) -> tuple:
        """The index arrays in the kernels' argument order (gathered once: a single query's search is short enough
        for per-call Python work to show)."""
        if self._kernel_args is None or self._kernel_args[-1] is not self.knn_neighbors:
            plain = np.asarray  # memory-mapped arrays as plain ndarrays: Numba types a subclass on its slow path
            values, scales = self.forward_values
            self._kernel_args = (
                plain(self.doc_indptr), plain(self.doc_components), (plain(values), plain(scales)),
                plain(self.list_block_indptr), plain(self.block_indptr), plain(self.block_min),
                plain(self.block_scale), plain(self.posting_docs), plain(self.list_segment_indptr),
                self.summary_arrays(), self.n_bucket, plain(self.knn_neighbors), plain(self.list_max),
                self.knn_neighbors)
        return self._kernel_args[:-1]

    def summary_arrays(self) -> tuple:
        """The kernels' (table starts, bucket anchors, bucket table, keys, codes) for either summary layout: 8-bit
        (no table starts or anchors, absolute bucket offsets, a code array) or 4-bit (``seismic_nibble``)."""
        plain = np.asarray
        if self.summary_bits == 4:
            return (plain(self.summary_table_start), plain(self.summary_bucket_anchor),
                    plain(self.summary_bucket_offsets), plain(self.summary_keys), np.zeros(0, np.uint8))
        return (np.zeros(0, np.int64), np.zeros(0, np.int64), plain(self.summary_bucket_indptr),
                plain(self.summary_keys), plain(self.summary_codes))

    @property
    def n_summary_segments(self) -> int:
        """Summary segments in the index (runs of one list's blocks that share a bucket table)."""
        return int(self.list_segment_indptr[-1])

    @property
    def doc_values_bits(self) -> np.ndarray:
        """The stored document values as the kernels decode them: float16 as raw uint16 bits, or 8-bit codes."""
        return self.doc_values.view(np.uint16) if self.doc_values.dtype == np.float16 else self.doc_values

    @property
    def forward_values(self) -> tuple:
        """The kernels' (values, per-document scales) pair for the forward index (no scales for float16)."""
        return self.doc_values_bits, self.doc_scale

    def documents(self) -> SparseVectors:
        """The document vectors as the forward index holds them (float32; quantized values decoded)."""
        values = np.asarray(self.doc_values).astype(np.float32)
        if self.doc_values.dtype == np.uint8:
            values = kernels.dequantize_forward(np.asarray(self.doc_indptr, np.int64), self.doc_values,
                                                self.doc_scale)
        return SparseVectors(np.asarray(self.doc_indptr, np.int64), np.asarray(self.doc_components).astype(np.int32),
                             values, self.vocab_size, self.vocab_id)

    def _thread_scratch(self) -> tuple:
        """This thread's zeroed scratch arrays for single-query search (kept zeroed by the kernel)."""
        scratch = getattr(self._scratch, "arrays", None)
        if scratch is None:
            scratch = (np.zeros(self.vocab_size, np.float32), np.zeros((self.n_docs >> 6) + 1, np.uint64),
                       np.empty(max(self.n_docs, 1), np.int32), np.zeros(max(self.max_blocks, 1), np.float32),
                       np.zeros(max(self.max_blocks, 1), np.float32), np.empty(max(self.max_blocks, 1), np.int32))
            self._scratch.arrays = scratch
        return scratch

    # --------------------------------------------------------------------------------------------- persistence
    def params(self) -> dict:
        return dict(self._params)

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self._arrays)

    def nbytes(self) -> int:
        """Bytes of all index arrays (forward index, blocks, summaries, κ-NN graph)."""
        return int(sum(a.nbytes for a in self._arrays.values()))

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], params: dict, vocab_size: int,
                    vocab_id: str | None) -> SeismicIndex:
        """The index over stored arrays, after ``check_arrays`` (a damaged array is an error, not a crash). Arrays in
        the earlier packed summary layout are checked as such and converted to the compact layout in memory."""
        if "doc_scale" not in arrays:  # written before the quantized forward index existed: float16 values
            arrays = {**arrays, "doc_scale": np.zeros(0, dtype=np.float32)}
        if "summary_keys" not in arrays and "summary_entries" in arrays:
            cls.check_packed_arrays(arrays, vocab_size)
            arrays = cls._compacted({name: arrays[name] for name in cls.PACKED_ARRAY_NAMES},
                                    entry_layout(int(vocab_size))[1], int(vocab_size))
        cls.check_arrays(arrays, vocab_size)
        names = cls.NIBBLE_ARRAY_NAMES if "summary_table_start" in arrays else cls.ARRAY_NAMES
        return cls({name: arrays[name] for name in names}, params, vocab_size, vocab_id)

    COMMON_ARRAY_NAMES = ("doc_indptr", "doc_components", "doc_values", "doc_scale", "list_block_indptr",
                          "block_indptr", "block_min", "block_scale", "posting_docs", "list_segment_indptr",
                          "knn_neighbors", "list_max")
    ARRAY_NAMES = (*COMMON_ARRAY_NAMES, "summary_bucket_indptr", "summary_keys", "summary_codes")
    PACKED_ARRAY_NAMES = (*COMMON_ARRAY_NAMES, "segment_entry_indptr", "summary_entries", "summary_skip")
    NIBBLE_ARRAY_NAMES = (*COMMON_ARRAY_NAMES, "summary_table_start", "summary_bucket_anchor",
                          "summary_bucket_offsets", "summary_keys")

    @staticmethod
    def check_arrays(arrays: dict[str, np.ndarray], vocab_size: int) -> None:
        """Check what the kernels index with (see ``check_common_arrays``) and the compact summaries: bucket offsets
        (from 0, non-decreasing, n_buckets per segment, ending at the entry count), keys and codes one per entry,
        each entry's block inside its list. IndexFormatError naming the array otherwise."""
        from tremor.index import validation as v

        if "summary_table_start" in arrays:
            SeismicIndex.check_nibble_arrays(arrays, vocab_size)
            return
        missing = sorted(set(SeismicIndex.ARRAY_NAMES) - set(arrays))
        if missing:
            raise IndexFormatError(f"index arrays incomplete (missing {', '.join(missing)})")
        SeismicIndex.check_common_arrays(arrays, vocab_size)
        a = arrays
        n_bucket = compact.n_buckets(int(vocab_size))
        keys, codes = a["summary_keys"], a["summary_codes"]
        if not isinstance(keys, np.ndarray) or keys.dtype != np.uint16 or keys.ndim != 1:
            raise v.corrupt("summary_keys", "expected a uint16 vector")
        if not isinstance(codes, np.ndarray) or codes.dtype != np.uint8 or codes.ndim != 1:
            raise v.corrupt("summary_codes", "expected a uint8 vector")
        v.check_length("summary_codes", codes, keys.shape[0], "one per summary key")
        v.check_kind("summary_bucket_indptr", a["summary_bucket_indptr"], "iu")
        n_slots = a["summary_bucket_indptr"].shape[0] - 1
        if n_slots < 0 or n_slots % n_bucket:
            raise v.corrupt("summary_bucket_indptr", f"length {n_slots + 1} is not 1 + {n_bucket} per segment")
        v.check_offsets("list_segment_indptr", a["list_segment_indptr"], vocab_size, n_slots // n_bucket,
                        "segments")
        v.check_offsets("summary_bucket_indptr", a["summary_bucket_indptr"], n_slots, keys.shape[0],
                        "summary entries")
        bad, block = compact.first_key_outside_its_list(a["list_segment_indptr"], a["list_block_indptr"],
                                                        a["summary_bucket_indptr"], keys, n_bucket)
        if bad >= 0:
            raise v.corrupt("summary_keys", f"an entry of segment {bad} names block {block} of its list, which has "
                                            "fewer blocks")

    @staticmethod
    def check_nibble_arrays(arrays: dict[str, np.ndarray], vocab_size: int) -> None:
        """Check the 4-bit summary layout (``seismic_nibble``): segments and table starts as the lists' block counts
        lay them out, table rows rising from entry 0 to the entry count (a segment's end row its next one's start),
        uint16 keys, each entry's block inside its list. IndexFormatError naming the array otherwise."""
        from tremor.index import validation as v

        missing = sorted(set(SeismicIndex.NIBBLE_ARRAY_NAMES) - set(arrays))
        if missing:
            raise IndexFormatError(f"index arrays incomplete (missing {', '.join(missing)})")
        SeismicIndex.check_common_arrays(arrays, vocab_size)
        a = arrays
        keys, anchor, offsets = a["summary_keys"], a["summary_bucket_anchor"], a["summary_bucket_offsets"]
        if not isinstance(keys, np.ndarray) or keys.dtype != np.uint16 or keys.ndim != 1:
            raise v.corrupt("summary_keys", "expected a uint16 vector")
        _, list_segments, table_start = nibble.layout(a["list_block_indptr"], int(vocab_size))
        for name, expected in (("list_segment_indptr", list_segments), ("summary_table_start", table_start)):
            v.check_kind(name, a[name], "iu")
            if a[name].shape != expected.shape or not np.array_equal(a[name], expected):
                raise v.corrupt(name, "does not match the segments the lists' block counts make")
        if not isinstance(offsets, np.ndarray) or offsets.dtype != np.uint16 or offsets.ndim != 1:
            raise v.corrupt("summary_bucket_offsets", "expected a uint16 vector")
        v.check_length("summary_bucket_offsets", offsets, int(table_start[-1]), "one row per bucket and segment end")
        v.check_kind("summary_bucket_anchor", anchor, "iu")
        v.check_length("summary_bucket_anchor", anchor, -(-offsets.shape[0] >> nibble.ANCHOR_BITS),
                       f"one per {1 << nibble.ANCHOR_BITS} table rows")
        anchors = np.asarray(anchor, np.int64)
        if anchors.size and (anchors[0] != 0 or anchors.max() > keys.shape[0] or np.any(np.diff(anchors) < 0)):
            raise v.corrupt("summary_bucket_anchor", "anchors must rise from 0 to at most the summary entry count")
        bad = nibble.first_bad_row(table_start, anchor, offsets, keys.shape[0])
        if bad >= 0:
            raise v.corrupt("summary_bucket_offsets", f"table row {bad} lies past the summary entries or before the "
                                                      "row it follows")
        bad, block = nibble.first_key_outside_its_list(list_segments, np.asarray(a["list_block_indptr"], np.int64),
                                                       table_start, anchor, offsets, keys)
        if bad >= 0:
            raise v.corrupt("summary_keys", f"an entry of segment {bad} names block {block} of its list, which has "
                                            "fewer blocks")

    @staticmethod
    def check_packed_arrays(arrays: dict[str, np.ndarray], vocab_size: int) -> None:
        """Check an index in the packed summary layout (the format before the compact one) before its conversion:
        the common checks, each summary entry's block inside its list, the skip list's length. IndexFormatError
        naming the array otherwise."""
        from tremor.index import validation as v

        missing = sorted(set(SeismicIndex.PACKED_ARRAY_NAMES) - set(arrays))
        if missing:
            raise IndexFormatError(f"index arrays incomplete (missing {', '.join(missing)})")
        SeismicIndex.check_common_arrays(arrays, vocab_size)
        a = arrays
        entries = a["summary_entries"]
        entry_dtype, block_bits = entry_layout(int(vocab_size))
        if not isinstance(entries, np.ndarray) or entries.dtype != entry_dtype or entries.ndim != 1:
            raise v.corrupt("summary_entries", f"expected a {np.dtype(entry_dtype).name} vector")
        v.check_kind("segment_entry_indptr", a["segment_entry_indptr"], "iu")
        n_segments = a["segment_entry_indptr"].shape[0] - 1
        if n_segments < 0:
            raise v.corrupt("segment_entry_indptr", "is empty")
        v.check_offsets("list_segment_indptr", a["list_segment_indptr"], vocab_size, n_segments, "segments")
        v.check_offsets("segment_entry_indptr", a["segment_entry_indptr"], n_segments, entries.shape[0],
                        "summary entries")
        v.check_kind("summary_skip", a["summary_skip"], "iu")
        v.check_length("summary_skip", a["summary_skip"], -(-entries.shape[0] // kernels.SKIP),
                       f"one per {kernels.SKIP} summary entries")
        # an entry's block (its segment's rank within the list << block_bits, plus its block field) must be one of
        # its list's blocks: the conversion places entries by block
        bad, block = v.first_entry_outside_its_list(a["list_segment_indptr"], a["list_block_indptr"],
                                                    a["segment_entry_indptr"], entries, block_bits)
        if bad >= 0:
            raise v.corrupt("summary_entries", f"an entry of segment {bad} names block {block} of its list, which "
                                               "has fewer blocks")

    @staticmethod
    def check_common_arrays(arrays: dict[str, np.ndarray], vocab_size: int) -> None:
        """The checks both summary layouts share: every offset array (from 0, non-decreasing, ending at its entry
        count), document numbers (postings, κ-NN rows) below the document count, components below the vocabulary
        size, and finite non-negative values."""
        from tremor.index import validation as v

        if not isinstance(vocab_size, (int, np.integer)) or isinstance(vocab_size, bool) or vocab_size < 1:
            raise IndexFormatError(f"manifest vocab_size {vocab_size!r} is not a positive count")
        vocab_size = int(vocab_size)
        a = arrays
        v.check_kind("doc_indptr", a["doc_indptr"], "iu")
        n_docs = a["doc_indptr"].shape[0] - 1
        if n_docs < 0:
            raise v.corrupt("doc_indptr", "is empty")
        v.check_kind("doc_components", a["doc_components"], "iu")
        v.check_kind("doc_values", a["doc_values"], "fu")
        if a["doc_values"].dtype not in (np.float16, np.uint8):
            raise v.corrupt("doc_values", f"dtype {a['doc_values'].dtype}, expected a float16 or uint8 vector")
        v.check_kind("doc_scale", a["doc_scale"], "f")
        v.check_length("doc_scale", a["doc_scale"], n_docs if a["doc_values"].dtype == np.uint8 else 0,
                       "one per document with uint8 values, none with float16 ones")
        v.check_values("doc_scale", a["doc_scale"])
        v.check_length("doc_values", a["doc_values"], a["doc_components"].shape[0], "one per document entry")
        v.check_offsets("doc_indptr", a["doc_indptr"], n_docs, a["doc_components"].shape[0], "document entries")
        v.check_ids("doc_components", a["doc_components"], vocab_size, "component")
        v.check_sorted_rows("doc_components", a["doc_indptr"], a["doc_components"], "components")
        if a["doc_values"].dtype == np.float16:
            v.check_values("doc_values", a["doc_values"])
        v.check_values("list_max", a["list_max"])
        v.check_length("list_max", a["list_max"], vocab_size, "one per vocabulary entry")
        v.check_kind("block_indptr", a["block_indptr"], "iu")
        n_blocks = a["block_indptr"].shape[0] - 1
        if n_blocks < 0:
            raise v.corrupt("block_indptr", "is empty")
        v.check_offsets("list_block_indptr", a["list_block_indptr"], vocab_size, n_blocks, "blocks")
        v.check_kind("posting_docs", a["posting_docs"], "iu")
        v.check_offsets("block_indptr", a["block_indptr"], n_blocks, a["posting_docs"].shape[0], "postings")
        v.check_ids("posting_docs", a["posting_docs"], n_docs, "document number")
        for name in ("block_min", "block_scale"):
            v.check_values(name, a[name])
            v.check_length(name, a[name], n_blocks, "one per block")
        knn = a["knn_neighbors"]
        v.check_kind("knn_neighbors", knn, "iu", ndim=2)
        v.check_length("knn_neighbors", knn, n_docs, "one row per document")
        v.check_ids("knn_neighbors", knn, n_docs, "document number", low=-1)
