"""BM25 over the real scifact data lands where Anserini's BM25 flat baseline does (nDCG@10 0.6789)."""

import ir_measures
from conftest import beir_dataset
from ir_measures import nDCG

import tremor
from tremor.search import Searcher


def test_scifact_bm25_matches_pyserini_flat(tmp_path):
    root = beir_dataset("scifact")
    searcher = Searcher.load(tremor.build_index(root, tmp_path / "scifact", progress=False))
    qrels = tremor.read_qrels(root, "test")
    queries = tremor.read_queries(root, ids=set(qrels))
    assert len(queries) == 300
    scores, numbers = searcher.search_vectors(searcher.encode_queries([q.text for q in queries]), k=1000)
    ids = searcher.docstore.ids()
    run = {q.id: {ids[n]: float(s) for s, n in zip(srow, nrow, strict=True) if n >= 0}
           for q, srow, nrow in zip(queries, scores, numbers, strict=True)}
    ndcg = ir_measures.calc_aggregate([nDCG @ 10], qrels, run)[nDCG @ 10]
    assert abs(ndcg - 0.6789) <= 0.02
