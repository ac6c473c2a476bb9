"""The compact summary layout of Seismic indexes: lossless against the packed layout it replaces, exact when the
summaries are untrimmed, and indexes written in the packed layout still load (converted in memory)."""

import shutil
from pathlib import Path

import numpy as np
import scipy.sparse as sp

import tremor
from tremor.index import seismic_compact as compact
from tremor.index.exact import ExactIndex
from tremor.index.seismic import SeismicIndex, entry_layout
from tremor.search import Searcher
from tremor.sparse import SparseVectors

PACKED_INDEX = Path(__file__).parent / "data" / "seismic_packed_index"  # written by tremor before the compact layout
QUERY = "cat mat park earthquake seismic waves"


def as_stored(docs: SparseVectors) -> SparseVectors:
    """The document values as Seismic's forward index stores them (float16)."""
    return SparseVectors(docs.indptr, docs.indices, docs.values.astype(np.float16).astype(np.float32),
                         docs.vocab_size)


def decode(index: SeismicIndex) -> set:
    """Every summary entry as (list, block within the list, component, code), read from the compact arrays."""
    out = set()
    for term in range(index.vocab_size):
        first = index.list_segment_indptr[term]
        for segment in range(first, index.list_segment_indptr[term + 1]):
            for h in range(index.n_bucket):
                slot = segment * index.n_bucket + h
                for e in range(index.summary_bucket_indptr[slot], index.summary_bucket_indptr[slot + 1]):
                    key = int(index.summary_keys[e])
                    out.add((term, ((segment - first) << 8) + (key & 255), (h << 8) | (key >> 8),
                             int(index.summary_codes[e])))
    return out


def decode_packed(arrays: dict, vocab_size: int) -> set:
    """The same from packed arrays (component << (block_bits + 8) | block << 8 | code per entry)."""
    _, bits = entry_layout(vocab_size)
    out = set()
    for term in range(vocab_size):
        first = arrays["list_segment_indptr"][term]
        for segment in range(first, arrays["list_segment_indptr"][term + 1]):
            for e in range(arrays["segment_entry_indptr"][segment], arrays["segment_entry_indptr"][segment + 1]):
                entry = int(arrays["summary_entries"][e])
                out.add((term, ((segment - first) << bits) + ((entry >> 8) & ((1 << bits) - 1)), entry >> (bits + 8),
                         entry & 255))
    return out


def test_packed_index_loads_and_matches_a_fresh_build(tmp_path, tiny_corpus):
    old = tmp_path / "old"
    shutil.copytree(PACKED_INDEX, old)
    assert (old / "arrays" / "summary_entries.npy").is_file()
    fresh = tremor.build_index(tiny_corpus, tmp_path / "new", index="seismic,lambda=inf,summary_bits=8", progress=False)
    assert not (fresh / "arrays" / "summary_entries.npy").exists()
    assert (fresh / "arrays" / "summary_keys.npy").is_file()
    loaded, built = Searcher.load(old), Searcher.load(fresh)
    # the same build: the converted arrays equal the freshly built ones
    a, b = loaded.index.arrays(), built.index.arrays()
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(np.asarray(a[name]), np.asarray(b[name])), name
    for params in ({}, {"heap_factor": 1.0, "query_cut": 100}, {"query_cut": 1, "heap_factor": 0.5}):
        hits_old = [(h.id, round(h.score, 5)) for h in loaded.search(QUERY, k=6, **params)]
        assert hits_old == [(h.id, round(h.score, 5)) for h in built.search(QUERY, k=6, **params)]
        assert hits_old
    # an allow filter works on the converted index too
    ids = [h.id for h in loaded.search(QUERY, k=6, heap_factor=1.0, query_cut=100)]
    assert [h.id for h in loaded.search(QUERY, k=6, allow=ids[1:], heap_factor=1.0, query_cut=100)] == ids[1:]


def random_docs(n_docs: int, vocab: int, per_doc: int, seed: int, common: int = 7) -> SparseVectors:
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n_docs), per_doc + 1)
    cols = np.concatenate([np.concatenate([[common], rng.choice(vocab, per_doc, replace=False)])
                           for _ in range(n_docs)])
    vals = rng.random(rows.shape[0]).astype(np.float32) + 0.05
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(n_docs, vocab))
    matrix.sum_duplicates()
    return SparseVectors.from_scipy(matrix)


def test_conversion_is_lossless_and_three_bytes_per_entry():
    # 1,500 components (6 buckets); a list of 600 one-document blocks (3 compact segments)
    docs = random_docs(600, 1500, 20, seed=1)
    index = SeismicIndex.build(docs, n_postings=None, centroid_fraction=1.0, min_cluster_size=0, summary_energy=0.5,
                               summary_bits=8, progress=False)
    assert index.n_bucket == 6 and np.diff(index.list_segment_indptr)[7] == 3
    n_entries = index.summary_keys.shape[0]
    assert index.summary_keys.nbytes + index.summary_codes.nbytes == 3 * n_entries
    # the packed layout rebuilt from the same blocks (one uint32 per entry) decodes to the same entries
    packed = dict(index.arrays())
    entries, segments, list_segments = [], [0], [0]
    _, bits = entry_layout(index.vocab_size)
    for term, block, comp, code in sorted(decode(index), key=lambda x: (x[0], x[1] >> bits, x[2], x[1])):
        entries.append((term, block >> bits, (comp << (bits + 8)) | ((block & ((1 << bits) - 1)) << 8) | code))
    by_segment: dict = {}
    for term, seg, entry in entries:
        by_segment.setdefault((term, seg), []).append(entry)
    flat = []
    n_blocks = np.diff(index.list_block_indptr)
    for term in range(index.vocab_size):
        n_seg = -(-int(n_blocks[term]) // (1 << bits))
        for seg in range(n_seg):
            flat.extend(by_segment.get((term, seg), []))
            segments.append(len(flat))
        list_segments.append(list_segments[-1] + n_seg)
    packed.update(summary_entries=np.array(flat, np.uint32), segment_entry_indptr=np.array(segments, np.int64),
                  list_segment_indptr=np.array(list_segments, np.int64))
    assert decode_packed(packed, index.vocab_size) == decode(index)
    again = compact.compact_from_packed(packed["list_block_indptr"], packed["list_segment_indptr"],
                                        packed["segment_entry_indptr"], packed["summary_entries"], bits,
                                        index.vocab_size)
    for name, array in again.items():
        assert np.array_equal(array, index.arrays()[name]), name


def test_vocabulary_over_16_bits_stays_exact():
    # 70,000 components: the packed build has 7 block bits (128 blocks per packed segment), so each compact segment
    # gathers two packed ones and its buckets are re-sorted
    docs = random_docs(400, 70_000, 15, seed=2, common=65_600)
    queries = docs[np.arange(0, 400, 17)]
    index = SeismicIndex.build(docs, n_postings=None, centroid_fraction=1.0, min_cluster_size=0, summary_energy=1.0,
                               summary_bits=8, progress=False)
    assert entry_layout(70_000)[1] == 7 and index.n_bucket == 274
    assert np.diff(index.list_segment_indptr)[65_600] == 2
    for segment in range(index.summary_bucket_indptr.shape[0] - 1):
        lo, hi = index.summary_bucket_indptr[segment], index.summary_bucket_indptr[segment + 1]
        assert np.all(np.diff(index.summary_keys[lo:hi].astype(np.int64)) > 0)
    exact_scores, exact = ExactIndex.build(as_stored(docs)).search(queries, 10)
    scores, found = index.search(queries, 10, query_cut=1000, heap_factor=1.0)
    assert np.array_equal(found, exact)
    assert np.allclose(scores, exact_scores, rtol=1e-5)
    # the same with a filter: only allowed documents, still exact among them
    allow = np.zeros(400, bool)
    allow[::3] = True
    exact_scores, exact = ExactIndex.build(as_stored(docs)).search(queries, 10, allow=allow)
    _, found = index.search(queries, 10, query_cut=1000, heap_factor=1.0, allow=allow)
    assert np.array_equal(found, exact)
