"""Lucene through Pyserini on tiny corpora: BM25 agrees with tremor's, and the impact index returns the same top 10
as tremor's exact index for the same integer vectors. Skipped where pyserini or a Java runtime is missing
(`pip install -e ".[dev,pyserini]"` brings both)."""

import numpy as np
import pytest
import scipy.sparse

pytest.importorskip("pyserini")  # an empty package: importing it starts nothing

from test_cli import run_cli
from test_eval_datasets import make_beir

from tremor.errors import TremorError
from tremor.eval import (
    build_system,
    evaluate_system,
    load_dataset,
    peers,
)
from tremor.eval.crosscheck import compare_top_k, exact_scores
from tremor.index.exact import ExactIndex
from tremor.sparse import SparseVectors

if peers.unavailable_reason() is not None:  # checks pyjnius and Java without importing jnius (that starts a JVM)
    pytest.skip(peers.unavailable_reason(), allow_module_level=True)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    corpus = root / "corpus.jsonl"
    texts = ["The cat sat on the mat. Cats like warm mats.", "Dogs chase cats and balls in the park.",
             "A quiet park with trees, a pond and ducks.", "Earthquakes shake the ground when faults slip.",
             "Seismic waves from earthquakes travel through rock; P waves arrive first.",
             "Woven mats and rugs for the home.", "Running dogs and running cats: the runner's guide."]
    corpus.write_text("".join(f'{{"_id": "d{i}", "title": "", "text": "{t}"}}\n' for i, t in enumerate(texts)))
    queries = root / "queries.tsv"
    queries.write_text("q1\tcat on a mat\nq2\tearthquake waves\nq3\tparks and ducks\nq4\trunning dogs\n")
    qrels = root / "qrels.tsv"
    qrels.write_text("q1\td0\t1\nq2\td4\t2\nq3\td2\t1\nq4\td6\t1\n")
    return load_dataset(corpus, queries=queries, qrels=qrels)


def test_lucene_bm25_matches_tremor_bm25(tmp_path, tiny_dataset):
    lucene = peers.LuceneBM25.build(tiny_dataset.documents(), tmp_path / "lucene")
    tremor_bm25 = build_system(tiny_dataset, tmp_path / "tremor")
    theirs = lucene.retrieve(tiny_dataset.queries, 10)
    ours = tremor_bm25.retrieve(tiny_dataset.queries, 10)
    for qid in theirs:
        assert list(theirs[qid]) == list(ours[qid]), qid
        # Anserini reports scores rounded to 4 decimals
        assert np.allclose(list(theirs[qid].values()), list(ours[qid].values()), atol=6e-5), qid
    single = lucene.retrieve(tiny_dataset.queries[:1], 3)
    assert single == {"q1": dict(list(theirs["q1"].items())[:3])}
    result = evaluate_system(lucene, tiny_dataset)
    assert result.evaluation.aggregate["nDCG@10"] == evaluate_system(tremor_bm25, tiny_dataset).evaluation.aggregate[
        "nDCG@10"]
    with pytest.raises(TremorError, match="no such Lucene index"):
        peers.LuceneBM25(tmp_path / "missing")


def test_lucene_impact_index_agrees_with_tremor_exact(tmp_path):
    rng = np.random.default_rng(11)
    n_docs, vocab = 400, 60
    dense = rng.integers(1, 6, size=(n_docs, vocab)) * (rng.random((n_docs, vocab)) < 0.12)
    dense[7] = 0  # an empty document: left out of Lucene, never matched by tremor
    docs = SparseVectors.from_scipy(scipy.sparse.csr_matrix(dense.astype(np.float32)))
    q_dense = rng.integers(1, 4, size=(50, vocab)) * (rng.random((50, vocab)) < 0.08)
    queries = SparseVectors.from_scipy(scipy.sparse.csr_matrix(q_dense.astype(np.float32)), vocab_id=None)
    ids = [f"doc-{n_docs - i:03d}" for i in range(n_docs)]  # Lucene orders ties by id: here unlike tremor's order
    qids = [f"q{i}" for i in range(len(queries))]
    lucene = peers.LuceneImpact.build(ids, docs, tmp_path / "impact")
    theirs = lucene.search_vectors(queries, 10, qids)
    scores, numbers = ExactIndex.build(docs).search(queries, 10)
    ours = [{ids[n]: float(s) for s, n in zip(rs, rn, strict=True) if n >= 0}
            for rs, rn in zip(scores, numbers, strict=True)]
    truth = lambda qi, doc_ids: exact_scores(docs, queries, [(qi, ids.index(d)) for d in doc_ids])  # noqa: E731
    agreement = compare_top_k(qids, ours, theirs, truth)
    assert agreement.differing == [] and agreement.max_score_difference == 0.0
    assert agreement.tie_equivalent > 0  # small integer weights: ties at the 10th place do occur
    for qi in range(len(queries)):  # every score Lucene reports is the exact inner product
        assert np.array_equal(truth(qi, list(theirs[qi])), list(theirs[qi].values()))
    with pytest.raises(TremorError, match="quantize the query vectors"):
        lucene.search_vectors(queries.scale(0.5), 10)


def test_eval_compare_prints_tremor_and_lucene_in_one_table(tmp_path):
    root = make_beir(tmp_path / "tiny")
    result = run_cli("eval", "--dataset", str(root), "--compare", "--out", str(tmp_path / "out"), "--quiet")
    assert result.returncode == 0, result.stderr
    rows = [line.split(" | ")[0] for line in result.stdout.splitlines()[4:]]
    assert rows == ["| tremor-bm25", "| lucene-bm25"]
    assert (tmp_path / "out" / "lucene-bm25.run").is_file()


def test_lucene_impact_as_a_system_over_quantized_bm25(tmp_path, tiny_dataset):
    from tremor.eval.crosscheck import quantize

    tremor_bm25 = build_system(tiny_dataset, tmp_path / "tremor")
    docs = quantize(tremor_bm25.searcher.index.documents(), 100)
    lucene = peers.LuceneImpact(
        peers.LuceneImpact.build(tremor_bm25.searcher.docstore.ids(), docs, tmp_path / "impact").index_dir,
        name="lucene-impact", encoder=tremor_bm25.searcher.encoder)
    run = lucene.retrieve(tiny_dataset.queries, 3)
    scores, numbers = ExactIndex.build(docs).search(tremor_bm25.searcher.encode_queries(
        [q.text for q in tiny_dataset.queries]), 3)
    ids = tremor_bm25.searcher.docstore.ids()
    for query, row_scores, row_numbers in zip(tiny_dataset.queries, scores, numbers, strict=True):
        expected = {ids[n]: float(s) for s, n in zip(row_scores, row_numbers, strict=True) if n >= 0}
        assert sorted(run[query.id].values(), reverse=True) == sorted(expected.values(), reverse=True)
    assert evaluate_system(lucene, tiny_dataset).evaluation.aggregate["nDCG@10"] > 0
    with pytest.raises(TremorError, match="needs the query encoder"):
        peers.LuceneImpact(lucene.index_dir).retrieve(tiny_dataset.queries, 3)
