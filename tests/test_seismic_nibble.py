"""The 4-bit summary layout of Seismic indexes (``summary_bits=4``): every summary entry decodes to its block's
maximum rounded up by less than one 4-bit step, untrimmed summaries search exactly at heap_factor 1 for lists of
every block width (one segment of 16 to 256 blocks, and several), the index is smaller than the 8-bit one, and it
survives a save and load."""

import numpy as np
import pytest
import scipy.sparse as sp

import tremor
from tremor.errors import IndexFormatError, TremorError
from tremor.index import seismic_nibble as nibble
from tremor.index.exact import ExactIndex
from tremor.index.seismic import SeismicIndex
from tremor.search import Searcher
from tremor.sparse import SparseVectors

QUERY = "cat mat park earthquake seismic waves"


def collection(n_docs: int = 1500, vocab: int = 3000, seed: int = 3) -> SparseVectors:
    """Random documents whose first terms are in most of them (long lists: many blocks, several segments), the
    rest in few (short lists), with float16-exact values."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n_docs):
        common = rng.choice(8, size=rng.integers(1, 5), replace=False)
        rare = 8 + rng.choice(vocab - 8, size=rng.integers(3, 30), replace=False)
        rows.append(np.unique(np.concatenate([common, rare])))
    indptr = np.zeros(n_docs + 1, dtype=np.int64)
    np.cumsum([r.size for r in rows], out=indptr[1:])
    values = (rng.random(int(indptr[-1])) * 3 + 0.05).astype(np.float16).astype(np.float32)
    return SparseVectors(indptr, np.concatenate(rows).astype(np.int32), values, vocab)


def queries(vocab: int, n: int = 60, seed: int = 4) -> SparseVectors:
    rng = np.random.default_rng(seed)
    rare = sp.random(n, vocab - 8, density=0.02, random_state=seed, format="csr", dtype=np.float32)
    rare.data = rng.random(rare.data.shape[0]).astype(np.float32) + 0.1
    common = sp.csr_matrix(rng.random((n, 8)).astype(np.float32) + 0.1)  # every query has the common terms
    m = sp.csr_matrix(sp.hstack([common, rare]))
    m.sort_indices()
    return SparseVectors(m.indptr.astype(np.int64), m.indices.astype(np.int32), m.data, vocab)


def decode(index: SeismicIndex) -> dict:
    """(list, block within the list, component) -> code, read from the 4-bit arrays."""
    rows = nibble.table_rows(index.summary_bucket_anchor, index.summary_bucket_offsets)
    out = {}
    n_blocks = np.diff(index.list_block_indptr)
    for term in range(index.vocab_size):
        bits = nibble.list_block_bits(int(n_blocks[term]))
        c_bits = nibble.KEY_BITS - bits
        first = index.list_segment_indptr[term]
        for segment in range(first, index.list_segment_indptr[term + 1]):
            row = index.summary_table_start[segment]
            n_bucket = index.summary_table_start[segment + 1] - row - 1
            for h in range(n_bucket):
                for e in range(rows[row + h], rows[row + h + 1]):
                    key = int(index.summary_keys[e])
                    block = ((segment - first) << bits) + ((key >> 4) & ((1 << bits) - 1))
                    out[(term, block, (h << c_bits) | (key >> (bits + 4)))] = key & 15
    return out


def test_entries_decode_to_block_maxima_rounded_up_within_a_step():
    docs = collection()
    index = SeismicIndex.build(docs, progress=False, summary_bits=4, n_postings=None, summary_energy=1.0,
                               centroid_fraction=1.0, min_cluster_size=0)
    n_blocks = np.diff(index.list_block_indptr)
    assert n_blocks.max() > 256 and {nibble.list_block_bits(int(n)) for n in n_blocks if n} >= {4, 8}
    dense = docs.to_scipy().toarray()
    got = decode(index)
    want = set()
    for term in range(index.vocab_size):
        for j in range(int(n_blocks[term])):
            b = index.list_block_indptr[term] + j
            members = index.posting_docs[index.block_indptr[b]:index.block_indptr[b + 1]]
            maxima = dense[members].max(axis=0)
            low, scale = float(index.block_min[b]), float(index.block_scale[b])
            for comp in np.flatnonzero(maxima > 0):
                want.add((term, j, int(comp)))
                code = got.get((term, j, int(comp)))
                assert code is not None, (term, j, comp)
                decoded = low + scale * code
                assert decoded >= maxima[comp] * (1 - 1e-6)
                assert decoded - maxima[comp] <= scale * (1 + 1e-4) + 1e-6
    assert set(got) == want


@pytest.mark.parametrize("sort_first", [True, False])
def test_untrimmed_4bit_summaries_search_exactly(sort_first):
    docs = collection()
    qs = queries(docs.vocab_size)
    index = SeismicIndex.build(docs, progress=False, summary_bits=4, n_postings=None, summary_energy=1.0,
                               centroid_fraction=1.0, min_cluster_size=0)
    want_scores, _ = ExactIndex.build(docs).search(qs, 10)
    for direct_postings in (0, 16):
        params = {"query_cut": 1000, "heap_factor": 1.0, "sort_first": sort_first,
                  "direct_postings": direct_postings, "approximate_threshold": 0}
        scores, found = index.search(qs, 10, **params)
        assert np.allclose(scores, want_scores, rtol=1e-4)
        truth = (qs.to_scipy() @ docs.to_scipy().T).toarray()
        assert np.allclose(np.take_along_axis(truth, found, axis=1), scores, rtol=1e-4)
        single = np.vstack([index.search(qs[i], 10, **params)[0] for i in range(len(qs))])
        assert np.array_equal(single, scores)


def test_4bit_index_is_smaller_and_no_worse_at_pruned_settings():
    docs = collection(2500)
    qs = queries(docs.vocab_size, 100)
    eight = SeismicIndex.build(docs, progress=False, summary_bits=8)
    four = SeismicIndex.build(docs, progress=False, summary_bits=4)
    assert four.summary_keys.nbytes == 2 * four.summary_keys.shape[0]
    assert four.summary_keys.shape[0] == eight.summary_keys.shape[0]  # same entries, 2 bytes instead of 3
    summary = {"summary_keys", "summary_codes", "summary_bucket_indptr", "summary_table_start",
               "summary_bucket_anchor", "summary_bucket_offsets"}
    summary_bytes = [sum(a.nbytes for name, a in index.arrays().items() if name in summary) for index in (eight, four)]
    assert summary_bytes[1] < 0.8 * summary_bytes[0]
    assert four.nbytes() < eight.nbytes()
    _, exact = ExactIndex.build(docs).search(qs, 10)

    def recall(found: np.ndarray) -> float:
        return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)]))

    params = {"query_cut": 3, "heap_factor": 0.9, "approximate_threshold": 0}
    # 4-bit bounds are looser upper bounds: they skip no block that 8-bit ones keep
    assert recall(four.search(qs, 10, **params)[1]) >= recall(eight.search(qs, 10, **params)[1]) - 0.01


def test_saved_4bit_index_loads_searches_the_same_and_rejects_damage(tmp_path, tiny_corpus):
    path = tremor.build_index(tiny_corpus, tmp_path / "idx", index="seismic,lambda=inf,summary_bits=4",
                              progress=False)
    searcher = Searcher.load(path, query_cut=100, heap_factor=1.0, approximate_threshold=0)
    assert searcher.index.summary_bits == 4 and "summary_codes" not in searcher.index.arrays()
    eight = Searcher.load(tremor.build_index(tiny_corpus, tmp_path / "idx8", index="seismic,lambda=inf,summary_bits=8",
                                             progress=False), query_cut=100, heap_factor=1.0,
                          approximate_threshold=0)
    hits = [(h.id, round(h.score, 3)) for h in searcher.search(QUERY, k=5)]
    assert hits and hits == [(h.id, round(h.score, 3)) for h in eight.search(QUERY, k=5)]
    arrays = dict(searcher.index.arrays())
    arrays["summary_bucket_offsets"] = arrays["summary_bucket_offsets"].astype(np.uint32)
    with pytest.raises(IndexFormatError, match="summary_bucket_offsets"):
        SeismicIndex.from_arrays(arrays, searcher.index.params(), searcher.index.vocab_size, None)


def test_vocabulary_over_16_bits_stays_exact_with_4bit_summaries():
    # 70,000 components: packed build segments of 128 blocks, so a 4-bit segment of a 300-block list (256 blocks)
    # gathers two of them and its buckets are re-sorted
    rng = np.random.default_rng(2)
    n_docs, vocab = 300, 70_000
    dense = np.zeros((n_docs, vocab), np.float32)
    dense[:, 65_600] = rng.random(n_docs) + 0.1
    for d in range(n_docs):
        dense[d, rng.choice(vocab, 15, replace=False)] = rng.random(15) + 0.1
    docs = SparseVectors.from_scipy(sp.csr_matrix(dense))
    docs = SparseVectors(docs.indptr, docs.indices, docs.values.astype(np.float16).astype(np.float32), vocab)
    queries = docs[np.arange(0, n_docs, 13)]
    index = SeismicIndex.build(docs, n_postings=None, centroid_fraction=1.0, min_cluster_size=0, summary_energy=1.0,
                               summary_bits=4, progress=False)
    assert np.diff(index.list_segment_indptr)[65_600] == 2
    rows = nibble.table_rows(index.summary_bucket_anchor, index.summary_bucket_offsets)
    for r in range(rows.shape[0] - 1):
        assert np.all(np.diff(index.summary_keys[rows[r]:rows[r + 1]].astype(np.int64)) > 0)
    exact_scores, exact = ExactIndex.build(docs).search(queries, 10)
    scores, found = index.search(queries, 10, query_cut=1000, heap_factor=1.0, approximate_threshold=0)
    assert np.array_equal(found, exact)
    assert np.allclose(scores, exact_scores, rtol=1e-5)


def test_summary_bits_must_be_8_or_4():
    with pytest.raises(TremorError, match="summary_bits"):
        SeismicIndex.build(collection(50), progress=False, summary_bits=2)
