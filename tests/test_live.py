"""Live indexes in one process: add / update / delete / commit semantics, snapshots and refresh, the write lock,
version-1 directories, Seismic segments, the tiered merge policy, a property test against a dict, a learned model
giving the same top 10 as a full build, and the CLI."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
import random

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from tremor.cli import cli
from tremor.corpus import Document
from tremor.encoders.bm25 import BM25Encoder
from tremor.errors import TremorError
from tremor.index.builder import build_index
from tremor.index.segments import IndexWriter, is_live, read_commit
from tremor.index.seismic import SeismicIndex
from tremor.search import Searcher

WORDS = ["cat", "dog", "mat", "park", "tree", "pond", "duck", "rock", "wave", "fault", "ground", "quake", "ball",
         "home", "river", "stone", "cloud", "rain", "wind", "sun", "the", "a", "and", "in"]
QUERIES = ["cat park", "wave rock fault", "duck pond tree", "rain wind cloud sun", "stone river home ball"]


def make_docs(n, seed=0, prefix="d", start=0):
    rng = random.Random(seed)
    return [Document(f"{prefix}{start + i}", " ".join(rng.choices(WORDS, k=rng.randint(3, 15))), "") for i in range(n)]


def ids_of(hits):
    return [h.id for h in hits]


def test_changes_are_invisible_until_commit_and_readers_keep_their_snapshot(tmp_path):
    path = tmp_path / "live"
    docs = make_docs(20)
    with IndexWriter(path) as writer:
        writer.add(docs[:10])
        assert writer.commit() == 1
        reader = Searcher.load(path)
        writer.add(docs[10:])
        writer.delete(["d0", "d1", "nope"])
        assert reader.refresh() is False  # nothing committed yet
        assert reader.manifest["counts"]["documents"] == 10
        assert writer.commit() == 2
        assert writer.commit() == 2  # nothing new: no new commit
    assert reader.manifest["generation"] == 1 and reader.index.n_live == 10  # its snapshot, until it refreshes
    before = reader.batch_search(QUERIES, k=20, with_text=False)
    assert reader.refresh() is True
    assert reader.manifest["generation"] == 2 and reader.index.n_live == 18 and reader.index.n_segments == 2
    after = reader.batch_search(QUERIES, k=20, with_text=False)
    assert any("d0" in ids_of(h) or "d1" in ids_of(h) for h in before)
    assert all("d0" not in ids_of(h) and "d1" not in ids_of(h) for h in after)


def test_update_semantics_and_duplicates_in_a_batch(tmp_path):
    path = tmp_path / "live"
    with IndexWriter(path) as writer:
        writer.add([Document("a", "cat park"), Document("b", "dog pond"), Document("a", "rock wave fault")])
        writer.commit()
        assert len(writer) == 2
        writer.update([Document("b", "dog park wave")])
        writer.commit()
    searcher = Searcher.load(path)
    assert searcher.index.n_live == 2
    texts = {h.id: h.text for h in searcher.search("cat park rock wave dog pond", k=10)}
    assert texts == {"a": "rock wave fault", "b": "dog park wave"}  # the last version of each id, once


def test_one_writer_at_a_time(tmp_path):
    path = tmp_path / "live"
    with IndexWriter(path) as writer:
        writer.add(make_docs(3))
        writer.commit()
        with pytest.raises(TremorError, match="another IndexWriter holds"):
            IndexWriter(path)
    with IndexWriter(path) as again:  # released on close
        assert again.generation == 1


def test_version_one_directory_still_loads_and_becomes_live(tmp_path):
    path = tmp_path / "old"
    docs = make_docs(30, seed=1)
    build_index(docs, path, progress=False)
    old = Searcher.load(path)
    assert not is_live(path) and old.n_docs == 30
    expected = [ids_of(h) for h in old.batch_search(QUERIES, k=5, with_text=False)]
    assert old.refresh() is False  # nothing newer yet
    with IndexWriter(path) as writer:
        assert len(writer) == 30 and writer.generation == 0
        writer.add(make_docs(5, seed=2, start=30))
        writer.delete(["d3"])
        writer.commit()
    live = Searcher.load(path)
    assert is_live(path) and live.index.n_live == 34 and live.index.n_segments == 2
    assert live.index.search(live.encode_queries(["cat"]), 50)[1].max() < 35
    with IndexWriter(path) as writer:
        writer.merge(force=True, refresh_statistics=False)
    assert not (path / "manifest.json").exists() and not (path / "arrays").exists()  # the old files, unreferenced
    merged = Searcher.load(path)
    assert merged.index.n_segments == 1 and merged.index.n_live == 34
    got = [ids_of(h) for h in merged.batch_search(QUERIES, k=5, with_text=False)]
    assert got != [] and all("d3" not in g for g in got)
    assert expected  # the version-1 results were readable before the first commit
    assert old.batch_search(QUERIES, k=5, with_text=False)  # and a reader opened then still searches its snapshot
    assert old.refresh() is True and old.index.n_live == 34  # until it moves to the newest commit


def test_live_seismic_index_keeps_the_summary_layout_its_segments_have(tmp_path, monkeypatch):
    # a later release whose default layout is 4-bit summaries:
    monkeypatch.setitem(SeismicIndex.BUILD_DEFAULTS, "summary_bits", 4)
    # an index created under it pins that layout in its commit, so a default change cannot split it into two layouts
    fresh = tmp_path / "fresh"
    with IndexWriter(fresh, index="seismic,lambda=inf") as writer:
        writer.add(random_vectors_docs(30, 1))
        writer.commit()
        assert writer.commit_point["params"]["summary_bits"] == 4
    assert [part.summary_bits for part in Searcher.load(fresh).index.indexes] == [4]
    # a static index written before summary_bits existed (8-bit summaries, no such parameter) takes new documents
    # as 8-bit segments, not the new default, and searches across both
    old = tmp_path / "old"
    build_index(random_vectors_docs(30, 2), old, index="seismic,lambda=inf,summary_bits=8", progress=False)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["params"]["summary_bits"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    with IndexWriter(old) as writer:
        writer.add(random_vectors_docs(10, 3))
        writer.commit()
    searcher = Searcher.load(old, query_cut=100, heap_factor=1.0)
    assert [part.summary_bits for part in searcher.index.indexes] == [8, 8]
    assert searcher.search(QUERIES[0], k=5)


def random_vectors_docs(n, seed):
    rng = random.Random(seed)
    return [Document(f"s{seed}_{i}", " ".join(rng.choices(WORDS, k=rng.randint(5, 20)))) for i in range(n)]


def test_seismic_segments_skip_deleted_documents(tmp_path):
    path = tmp_path / "live"
    spec = "seismic,lambda=inf,alpha=1.0"
    with IndexWriter(path, index=spec) as writer:
        for seed in range(3):
            writer.add(random_vectors_docs(40, seed))
            writer.commit()
        deleted = [f"s{seed}_{i}" for seed in range(3) for i in range(0, 40, 3)]
        writer.delete(deleted)
        writer.commit()
    searcher = Searcher.load(path, query_cut=100, heap_factor=1.0)
    assert searcher.manifest["index_type"] == "seismic" and searcher.index.n_segments == 3
    full = tmp_path / "full"
    # the same additions and deletions into an exact index: the same vectors and statistics, searched exactly
    with IndexWriter(full, index="exact") as reference:
        for seed in range(3):
            reference.add(random_vectors_docs(40, seed))
        reference.delete(deleted)
        reference.commit()
    exact = Searcher.load(full)
    for query in QUERIES:
        got = searcher.search(query, k=10, with_text=False)
        want = exact.search(query, k=10, with_text=False)
        assert not set(ids_of(got)) & set(deleted)
        assert np.allclose([h.score for h in got], [h.score for h in want], rtol=1e-3)


def test_filter_by_ids_at_the_searcher(tmp_path):
    path = tmp_path / "live"
    with IndexWriter(path) as writer:
        writer.add(make_docs(50, seed=3))
        writer.add(make_docs(50, seed=4, start=50))
        writer.delete(["d10"])
        writer.commit()
    searcher = Searcher.load(path)
    allowed = ["d10", "d11", "d60", "d99", "unknown"]
    for hits in searcher.batch_search(QUERIES, k=10, with_text=False, allow=allowed):
        assert set(ids_of(hits)) <= {"d11", "d60", "d99"}
    mask = np.zeros(searcher.n_docs, bool)
    mask[:50] = True
    for hits in searcher.batch_search(QUERIES, k=10, with_text=False, allow=mask):
        assert all(int(h.id[1:]) < 50 and h.id != "d10" for h in hits)


def test_tiered_policy_merges_a_full_tier_and_keeps_document_order(tmp_path):
    path = tmp_path / "live"
    with IndexWriter(path, merge_factor=3, floor_segment=100) as writer:
        for batch in range(4):
            writer.add(make_docs(10, seed=batch, start=10 * batch))
        writer.commit()
        assert [len(g) for g in writer.merge_candidates()] == [4]
        writer.merge()
        assert len(writer.segments) == 1
        writer.add(make_docs(5, seed=9, start=40))
        writer.delete([f"d{i}" for i in range(40, 44)])  # 4 of 5 deleted: rewritten alone
        assert writer.merge_candidates() == [[1]]
        writer.merge()
        assert [s["documents"] for s in writer.segments] == [40, 1]
    searcher = Searcher.load(path)
    assert searcher.docstore.ids() == [f"d{i}" for i in range(40)] + ["d44"]


def assert_live_statistics(encoder, texts: list[str]) -> None:
    """The live BM25 statistics of a commit are those of a fit on exactly its live texts (document frequency per
    term, document count, total length), whatever sequence of additions, updates, deletions and merges led there."""
    assert encoder.live
    if not texts:
        assert encoder.n_docs == 0 and encoder.total_length == 0 and not encoder.df.any()
        return
    fresh = BM25Encoder(live=True)
    fresh.fit_encode(texts)
    got = {term: int(df) for term, df in zip(encoder.terms, encoder.df, strict=True) if df}
    assert got == {term: int(df) for term, df in zip(fresh.terms, fresh.df, strict=True)}
    assert (encoder.n_docs, encoder.total_length) == (fresh.n_docs, fresh.total_length)
    assert encoder.avgdl == pytest.approx(fresh.avgdl)


def test_live_index_equals_dict_reference_over_random_operations(tmp_path):
    """Random add / update / delete / commit / merge sequences: after every commit the searcher holds exactly the
    reference's documents, deleted ids never come back, the BM25 statistics are exactly those of the live texts, and
    scores equal an exact search over the live documents' vectors."""
    for seed in range(4):
        rng = random.Random(seed)
        path = tmp_path / f"live{seed}"
        reference: dict[str, str] = {}
        writer = IndexWriter(path, merge_factor=3, floor_segment=8)
        pool = [f"p{i}" for i in range(40)]
        ever_deleted: set[str] = set()
        for step in range(14):
            action = rng.random()
            if step == 0 or action < 0.5:
                batch = [Document(i, " ".join(rng.choices(WORDS, k=rng.randint(2, 10))))
                         for i in rng.sample(pool, rng.randint(1, 8))]
                writer.add(batch)
                for doc in batch:
                    reference[doc.id] = doc.text
                    ever_deleted.discard(doc.id)
            else:
                gone = rng.sample(pool, rng.randint(1, 6))
                writer.delete(gone)
                for doc_id in gone:
                    if reference.pop(doc_id, None) is not None:
                        ever_deleted.add(doc_id)
            if rng.random() < 0.25:
                force = rng.random() < 0.5
                writer.merge(force=force, refresh_statistics=force and rng.random() < 0.5)
            else:
                writer.commit()
            searcher = Searcher.load(path)
            live = searcher.index.live_mask()
            held = {d.id: d.text for d in searcher.docstore.get(np.flatnonzero(live).tolist())}
            assert held == reference, (seed, step)
            assert_live_statistics(searcher.encoder, list(reference.values()))
            # exact search over the index's own vectors of the live documents
            vectors = searcher.index.documents().to_scipy()[live] if reference else None
            queries = searcher.encode_queries(QUERIES)
            scores, numbers = searcher.search_vectors(queries, k=8)
            ids = searcher.docstore.ids()
            for qi in range(len(QUERIES)):
                got = [ids[n] for n in numbers[qi] if n >= 0]
                assert not set(got) & ever_deleted
                assert set(got) <= set(reference)
                if vectors is None:
                    assert got == []
                    continue
                exact = np.sort((queries[qi].to_scipy() @ vectors.T).toarray().ravel())[::-1]
                exact = exact[exact > 0][:8]
                assert np.allclose(scores[qi][: len(got)], exact, rtol=1e-4), (seed, step, qi)
        writer.close()


def tiny_splade_encoder(tmp_path):
    """A tiny random BERT MLM as a SPLADE encoder (statistics fixed: a document's vector depends on it alone)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    from tremor.encoders.neural import load_encoder, save_model_dir
    from tremor.encoders.splade import splade_config

    letters = "abcdefghijklmnopqrstuvwxyz"
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *(f"##{c}" for c in letters), *WORDS]
    (tmp_path / "vocab.txt").write_text("\n".join(dict.fromkeys(tokens)) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(str(tmp_path / "vocab.txt"))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    model = BertForMaskedLM(config).eval()
    model_dir = save_model_dir(tmp_path / "splade", splade_config(document_max_length=32, query_max_length=12),
                               model=model, tokenizer=tokenizer)
    return load_encoder(model_dir)


def test_learned_model_live_index_gives_the_full_build_top_10(tmp_path):
    """First half built, second half added in 10 batches: the same top 10 as one build of everything."""
    encoder = tiny_splade_encoder(tmp_path)
    docs = make_docs(200, seed=11)
    queries = [" ".join(random.Random(q).choices(WORDS, k=3)) for q in range(20)]
    full = Searcher.load(build_index(docs, tmp_path / "full", encoder=encoder, progress=False))
    with IndexWriter(tmp_path / "live", encoder=encoder) as writer:
        writer.add(docs[:100])
        writer.commit()
        for start in range(100, 200, 10):
            writer.add(docs[start:start + 10])
            writer.commit()
    live = Searcher.load(tmp_path / "live")
    assert live.index.n_segments == 11
    want = full.batch_search(queries, k=10, with_text=False)
    got = live.batch_search(queries, k=10, with_text=False)
    assert [ids_of(h) for h in got] == [ids_of(h) for h in want]
    with IndexWriter(tmp_path / "live") as writer:
        writer.merge(force=True)
    live.refresh()
    assert live.index.n_segments == 1
    assert [ids_of(h) for h in live.batch_search(queries, k=10, with_text=False)] == [ids_of(h) for h in want]


def test_cli_add_delete_merge_and_filter(tmp_path):
    runner = CliRunner()
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    docs = make_docs(12, seed=5)
    first.write_text("".join(json.dumps({"_id": d.id, "text": d.text}) + "\n" for d in docs[:6]))
    second.write_text("".join(json.dumps({"_id": d.id, "text": d.text}) + "\n" for d in docs[6:]))
    index = tmp_path / "idx"
    result = runner.invoke(cli, ["index", "add", str(index), "--corpus", str(first), "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["index", "add", str(index), "--corpus", str(second), "--quiet"])
    assert "commit 2, 12 live documents" in result.output
    ids = tmp_path / "ids.txt"
    ids.write_text("d0\nd7\nmissing\n")
    result = runner.invoke(cli, ["index", "delete", str(index), "--ids", str(ids)])
    assert result.exit_code == 0 and "deleted 2 of 3 ids (1 not found)" in result.output
    allow = tmp_path / "allow.txt"
    allow.write_text("d1\nd2\nd7\n")
    result = runner.invoke(cli, ["search", str(index), *QUERIES, "--json", "-k", "5", "--filter-ids", str(allow)])
    assert result.exit_code == 0, result.output
    returned = {hit["id"] for line in result.output.splitlines() for hit in json.loads(line)["hits"]}
    assert returned and returned <= {"d1", "d2"}
    result = runner.invoke(cli, ["index", "merge", str(index), "--quiet"])
    assert result.exit_code == 0 and "merged 2 segments into 1" in result.output
    assert read_commit(index)["counts"] == {"documents": 10, "segments": 1}
    result = runner.invoke(cli, ["index", "delete", str(tmp_path / "nowhere"), "--ids", str(ids)])
    assert result.exit_code == 1 and "no such index directory" in result.output


def test_exact_segment_filters_agree_with_a_scipy_reference():
    """The per-segment merge of filtered results equals one filtered exact search over all documents."""
    from tremor.index.exact import ExactIndex
    from tremor.search.segmented import SegmentedIndex
    from tremor.sparse import SparseVectors

    rng = np.random.default_rng(0)
    docs = SparseVectors.from_scipy(sp.random(300, 80, density=0.08, format="csr", random_state=rng,
                                              dtype=np.float32))
    queries = SparseVectors.from_scipy(sp.random(10, 80, density=0.1, format="csr", random_state=rng,
                                                 dtype=np.float32))
    cuts = [0, 100, 130, 300]
    deleted = [rng.random(cuts[i + 1] - cuts[i]) < 0.3 for i in range(3)]
    segmented = SegmentedIndex([ExactIndex.build(docs[cuts[i]:cuts[i + 1]]) for i in range(3)], deleted, "exact",
                               80, None)
    allow = rng.random(300) < 0.6
    _, numbers = segmented.search(queries, 10, allow=allow)
    keep = allow & ~np.concatenate(deleted)
    dense = (queries.to_scipy() @ docs.to_scipy().T).toarray()
    for qi in range(10):
        row = np.where(keep & (dense[qi] > 0), dense[qi], -np.inf)
        order = np.lexsort((np.arange(300), -row))[:10]
        want = [int(d) for d in order if np.isfinite(row[d])]
        assert [int(n) for n in numbers[qi] if n >= 0] == want


def test_huge_k_on_a_live_index_is_clamped_to_the_live_documents(tmp_path):
    path = tmp_path / "idx"
    with IndexWriter(path, encoder="bm25", index="exact") as writer:
        writer.add([Document("a", "seismic waves"), Document("b", "seismic fault")])
        writer.commit()
        writer.add([Document("c", "seismic rock")])
        writer.delete(["b"])
        writer.commit()
    searcher = Searcher.load(path)
    assert sorted(hit.id for hit in searcher.search("seismic", k=10**12)) == ["a", "c"]
    _, numbers = searcher.search_vectors(searcher.encode_queries(["seismic"]), k=10**20)
    assert numbers.shape == (1, 2)  # two live documents: no allocation for 10^20, and the deleted one absent


@pytest.mark.parametrize(("sort_first", "forward", "direct_postings", "summary_bits"),
                         [(True, "f16", 0, 8), (False, "f16", 0, 8), (True, "u8", 0, 8), (True, "f16", 16, 8),
                          (False, "u8", 16, 8), (True, "f16", 0, 4), (False, "u8", 16, 4)])
def test_seismic_segments_term_major_equal_exact_with_exact_settings(tmp_path, sort_first, forward, direct_postings,
                                                                     summary_bits):
    # one large segment (long summaries: searched per query term) and many small ones (short summaries: one pass);
    # with untrimmed lists and summaries, every query term and heap_factor 1, the term-major visit over all segments
    # must return the exact top k over the same document vectors
    path = tmp_path / "live"
    with IndexWriter(path, index=f"seismic,lambda=inf,alpha=1.0,forward={forward},summary_bits={summary_bits}") \
            as writer:
        writer.add(random_vectors_docs(300, 10))
        writer.commit()
        for seed in range(11, 19):
            writer.add(random_vectors_docs(7 + 3 * (seed - 11), seed))
            writer.commit()
        writer.delete(["s10_0", "s10_5", "s12_1", "s15_3"])
        writer.commit()
    searcher = Searcher.load(path, query_cut=1000, heap_factor=1.0, sort_first=sort_first,
                             direct_postings=direct_postings)
    index = searcher.index
    assert index.n_segments == 9
    assert {str(part.doc_values.dtype) for part in index.indexes} == {"uint8" if forward == "u8" else "float16"}
    assert {part.summary_bits for part in index.indexes} == {summary_bits}
    rng = random.Random(5)
    texts = QUERIES + [" ".join(rng.sample(WORDS, rng.randint(1, 6))) for _ in range(40)]
    queries = searcher.encode_queries(texts)
    scores, numbers = searcher.search_vectors(queries, 10)
    docs = index.documents()
    matrix = sp.csr_matrix((docs.values.astype(np.float64), docs.indices, docs.indptr),
                           shape=(index.n_docs, index.vocab_size))
    q = sp.csr_matrix((queries.values.astype(np.float64), queries.indices, queries.indptr),
                      shape=(len(texts), index.vocab_size))
    truth = (q @ matrix.T).toarray()
    truth[:, ~index.live_mask()] = -np.inf
    for row in range(len(texts)):
        want = np.sort(truth[row][truth[row] > 0])[::-1][:10]
        got = scores[row][numbers[row] >= 0]
        assert got.shape == want.shape
        assert np.allclose(got, want, rtol=1e-3)
        assert np.allclose(truth[row][numbers[row][numbers[row] >= 0]], got, rtol=1e-3)


def letters_word(number: int) -> str:
    """A distinct word per number, of consonants only, so that the analyzer's stemmer keeps every one apart."""
    letters = "bcdfghjklmnpqrtvwxz"
    out = ""
    while True:
        out = letters[number % len(letters)] + out
        number //= len(letters)
        if not number:
            return "zq" + out


@pytest.mark.parametrize("spec", ["exact", "seismic,lambda=inf,alpha=1.0"])
def test_live_bm25_vocabulary_grows_past_its_capacity(tmp_path, spec):
    """Terms first seen in a later batch are indexed and searchable (nothing is dropped), also when the vocabulary
    outgrows its capacity so that older segments have a smaller one; a forced merge then equals a full build."""
    from tremor.encoders.bm25 import LIVE_MIN_CAPACITY

    first = [Document(f"a{i}", f"solar wind {letters_word(i)} plasma") for i in range(30)]
    many = [letters_word(i) for i in range(LIVE_MIN_CAPACITY + 100)]
    second = [Document(f"b{i}", " ".join(many[i::40])) for i in range(40)]
    path = tmp_path / "live"
    with IndexWriter(path, index=spec) as writer:
        writer.add(first)
        writer.commit()
        small = writer.encoder.vocab_size
        writer.add(second)
        writer.commit()
        assert writer.encoder.vocab_size > small == LIVE_MIN_CAPACITY
    params = {"query_cut": 100, "heap_factor": 1.0} if spec.startswith("seismic") else {}
    tolerance = 1e-3 if params else 1e-5  # Seismic's forward index holds values at reduced precision
    searcher = Searcher.load(path, **params)
    assert [i.vocab_size for i in searcher.index.indexes] == [small, 2 * small]
    texts = [d.text for d in first + second]
    reference = BM25Encoder(live=True)
    doc_vectors = reference.fit_encode(texts)
    queries = ["solar plasma", f"{many[-1]} {many[5]}", f"wind {many[LIVE_MIN_CAPACITY + 7]}", many[3]]
    documents = searcher.index.documents().to_scipy()
    for query in queries:
        # the query side carries the idf of all live documents, exactly as a full build's
        live_query, full_query = searcher.encode_queries([query]), reference.encode_queries([query])
        weights = dict(zip(searcher.encoder.tokens(live_query.indices), live_query.values.tolist(), strict=True))
        assert weights == pytest.approx(dict(zip(reference.tokens(full_query.indices), full_query.values.tolist(),
                                                 strict=True)), rel=1e-6)
        got = searcher.search(query, k=5, with_text=False)
        assert got, query
        want = np.sort((live_query.to_scipy() @ documents.T).toarray().ravel())[::-1][:5]
        assert [h.score for h in got] == pytest.approx(list(want[want > 0]), rel=tolerance), query
    new_term = many[LIVE_MIN_CAPACITY + 7]
    assert set(ids_of(searcher.search(new_term, k=5, with_text=False))) == \
        {d.id for d in second if new_term in d.text.split()}
    with IndexWriter(path) as writer:
        writer.merge(force=True)
    merged = Searcher.load(path, **params)
    assert merged.index.n_segments == 1
    for query in queries:
        got = merged.search(query, k=5, with_text=False)
        want = np.sort((reference.encode_queries([query]).to_scipy() @ doc_vectors.to_scipy().T).toarray().ravel())
        want = want[::-1][:5]
        assert [h.score for h in got] == pytest.approx(list(want[want > 0]), rel=tolerance), query


def test_reader_listing_commits_during_a_commit_finds_the_new_one(tmp_path, monkeypatch):
    """A reader that listed the commit points just before a writer committed and removed them (all listed files
    gone when read) lists again and opens the new commit instead of calling the index damaged; a directory whose
    only commit point is damaged still reads as none."""
    from tremor.index import segments

    docs = [Document(f"d{i}", f"cat number {i} sat on mat {i % 3}") for i in range(6)]
    index = tmp_path / "idx"
    with IndexWriter(index, index="exact") as writer:
        writer.add(docs[:3])
        writer.commit()
        writer.add(docs[3:])
        writer.commit()
    newest = segments.commit_generations(index)[-1]
    real = segments.commit_generations
    calls = []

    def stale_then_real(directory):
        calls.append(directory)
        return [newest - 5, newest - 4] if len(calls) == 1 else real(directory)  # listed, then removed

    monkeypatch.setattr(segments, "commit_generations", stale_then_real)
    commit = segments.read_commit(index)
    assert commit is not None and commit["generation"] == newest and len(calls) == 2
    assert segments.current_commit(index)["generation"] == newest
    monkeypatch.setattr(segments, "commit_generations", real)
    segments.commit_path(index, newest).write_text("{not json")
    for generation in real(index)[:-1]:
        segments.commit_path(index, generation).unlink()
    assert segments.read_commit(index) is None
    with pytest.raises(segments.IndexFormatError, match="no readable commit point"):
        segments.current_commit(index)
