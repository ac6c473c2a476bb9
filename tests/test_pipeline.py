import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_dense import tiny_bert

import tremor
from tremor.errors import QueryError, TremorError
from tremor.search.dense import add_dense
from tremor.search.fusion import fuse
from tremor.search.pipeline import (
    DenseRetrieve,
    DenseVectorPRF,
    Fuse,
    HybridSearcher,
    PipelineConfig,
    Run,
    SparseRetrieve,
    SparseRocchio,
    hybrid_pipeline,
)

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["cat on a mat", "earthquake waves", "parks and ducks", "seismic rock"]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    model = tiny_bert(tmp / "bert")
    path = tremor.build_index(ROOT / "tests" / "data" / "tiny_corpus.jsonl", tmp / "idx", progress=False)
    add_dense(path, model=model, device="cpu", progress=False)
    return path


@pytest.fixture(scope="module")
def hybrid(index_dir):
    return HybridSearcher.load(index_dir, device="cpu")


def same(a: Run, b: Run) -> None:
    np.testing.assert_array_equal(a.numbers, b.numbers)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


def test_retrieval_stages_equal_the_searchers(hybrid):
    run = SparseRetrieve(hybrid.sparse, k=4)(QUERIES)
    _, numbers = hybrid.sparse.search_vectors(hybrid.sparse.encode_queries(QUERIES), 4)
    np.testing.assert_array_equal(run.numbers, numbers)
    dense = DenseRetrieve(hybrid.dense, k=4)(QUERIES)
    np.testing.assert_array_equal(dense.numbers, hybrid.dense.search_vectors(dense.dense_queries, 4)[1])
    assert (SparseRetrieve(hybrid.sparse, k=6) % 2)(QUERIES).numbers.shape == (4, 2)


def test_placements_are_the_compositions_they_name(hybrid):
    S, D = SparseRetrieve(hybrid.sparse, 6), DenseRetrieve(hybrid.dense, 6)
    SP = SparseRocchio(hybrid.sparse, fb_docs=2, fb_terms=20, alpha=1.0, beta=0.5, k=6)
    DP = DenseVectorPRF(hybrid.dense, fb_docs=2, method="average", k=6)
    options = {"fusion": "minmax", "alpha": 0.4, "depth": 6, "fb_docs": 2, "fb_terms": 20, "rocchio_alpha": 1.0,
               "rocchio_beta": 0.5, "dense_fb_docs": 2, "vector_prf": "average"}
    start = Run.start(QUERIES)
    s_run, d_run = S.transform(start), D.transform(start)
    hybrid_run = fuse(s_run.ranked, d_run.ranked, "minmax", 0.4, k=6)

    # before: feedback documents for the dense PRF come from the hybrid list
    before = hybrid_pipeline(hybrid.sparse, hybrid.dense, prf="dense", placement="before", **options)(QUERIES)
    by_hand = DP.transform(Run(start.queries, *hybrid_run, s_run.sparse_queries, d_run.dense_queries))
    same(before, by_hand)
    # after: each side's own feedback, then the two PRF runs fused
    after = hybrid_pipeline(hybrid.sparse, hybrid.dense, prf="both", placement="after", **options)(QUERIES)
    sp, dp = SP.transform(s_run), DP.transform(d_run)
    same(after, Run(start.queries, *fuse(sp.ranked, dp.ranked, "minmax", 0.4, k=6)))
    # both: hybrid feedback for both PRF stages, whose runs are fused again
    both = hybrid_pipeline(hybrid.sparse, hybrid.dense, prf="both", placement="both", **options)(QUERIES)
    fused_start = Run(start.queries, *hybrid_run, s_run.sparse_queries, d_run.dense_queries)
    sp2, dp2 = SP.transform(fused_start), DP.transform(fused_start)
    same(both, Run(start.queries, *fuse(sp2.ranked, dp2.ranked, "minmax", 0.4, k=6)))
    # dense PRF only, placement both: the sparse side contributes its plain run to the second fusion
    dense_both = hybrid_pipeline(hybrid.sparse, hybrid.dense, prf="dense", placement="both", **options)(QUERIES)
    same(dense_both, Run(start.queries, *fuse(s_run.ranked, dp2.ranked, "minmax", 0.4, k=6)))
    # no PRF: plain fusion, and the operator form gives the same
    plain = hybrid_pipeline(hybrid.sparse, hybrid.dense, **options)(QUERIES)
    same(plain, Run(start.queries, *hybrid_run))
    same(Fuse(S, D, "minmax", 0.4, k=6)(QUERIES), plain)
    # zero feedback documents: every placement reduces to the plain hybrid run
    for placement in ("after", "both"):
        none = hybrid_pipeline(hybrid.sparse, hybrid.dense, prf="both", placement=placement,
                               **{**options, "fb_docs": 0, "dense_fb_docs": 0})(QUERIES)
        same(none, plain)


def test_config_errors(hybrid):
    with pytest.raises(QueryError, match="placement 'before'"):
        hybrid_pipeline(hybrid.sparse, hybrid.dense, prf="both", placement="before")
    with pytest.raises(QueryError, match="PRF on the dense side"):
        hybrid_pipeline(hybrid.sparse, hybrid.dense, retriever="sparse", prf="dense")
    with pytest.raises(QueryError):
        hybrid_pipeline(hybrid.sparse, hybrid.dense, fusion="sum")
    with pytest.raises(TremorError, match="add-dense"):
        hybrid_pipeline(hybrid.sparse, None)
    defaults = PipelineConfig()
    assert defaults.retriever == "hybrid" and defaults.prf == "none"
    rocchio_stage = SparseRocchio(hybrid.sparse)
    assert (rocchio_stage.fb_docs, rocchio_stage.fb_terms, rocchio_stage.beta) == \
        (defaults.fb_docs, defaults.fb_terms, defaults.rocchio_beta)
    vector_stage = DenseVectorPRF(hybrid.dense)
    assert (vector_stage.fb_docs, vector_stage.method, vector_stage.beta) == \
        (defaults.dense_fb_docs, defaults.vector_prf, defaults.vector_beta)


def test_hybrid_searcher_returns_hits(hybrid):
    hits = hybrid.batch_search(["cat on a mat", "ducks"], k=3, prf="dense")
    assert [len(h) for h in hits] == [3, 3]
    assert hits[0][0].id in {"d1", "d6"} and hits[0][0].rank == 1 and hits[0][0].text
    dense_only = hybrid.batch_search(["earthquakes"], k=6, retriever="dense")
    assert sorted(h.id for h in dense_only[0]) == [f"d{i}" for i in range(1, 7)]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tremor", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_cli_add_dense_and_hybrid_search(tmp_path, index_dir):
    fresh = tremor.build_index(ROOT / "tests" / "data" / "tiny_corpus.jsonl", tmp_path / "idx", progress=False)
    no_dense = run_cli("search", str(fresh), "cat", "--hybrid")
    assert no_dense.returncode != 0 and "tremor index add-dense" in no_dense.stderr
    model = json.loads((index_dir / "dense" / "manifest.json").read_text())["encoder"]["model"]
    added = run_cli("index", "add-dense", str(fresh), "--model", model, "--device", "cpu", "--quiet")
    assert added.returncode == 0, added.stderr
    found = run_cli("search", str(fresh), "cat on a mat", "earthquake", "--hybrid", "--prf", "both",
                    "--placement", "after", "--fusion", "rrf", "-k", "2", "--json")
    assert found.returncode == 0, found.stderr
    lines = [json.loads(line) for line in found.stdout.splitlines()]
    assert [len(line["hits"]) for line in lines] == [2, 2]
    sparse_prf = run_cli("search", str(fresh), "cat", "--prf", "sparse", "--json")
    assert sparse_prf.returncode == 0 and json.loads(sparse_prf.stdout)["hits"][0]["id"] == "d1"
    bad = run_cli("search", str(fresh), "cat", "--hybrid", "--prf", "both", "--placement", "before")
    assert bad.returncode != 0 and "placement 'before'" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_eval_runs_pipelines_and_matches_the_python_pipeline(tmp_path, index_dir, hybrid):
    data = ROOT / "tests" / "data"
    out = tmp_path / "eval"
    result = run_cli("eval", "--dataset", str(data / "tiny_corpus.jsonl"), "--queries", str(data / "tiny_queries.tsv"),
                     "--qrels", str(data / "tiny_qrels.tsv"), "--index", str(index_dir), "--hybrid", "--prf", "both",
                     "--device", "cpu", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert f"{index_dir.name}-hybrid+prf-both" in result.stdout
    run_file = next(out.glob("*.run"))
    ranked: dict[str, list[str]] = {}
    for line in run_file.read_text().splitlines():
        qid, _, doc, _, _, _ = line.split()
        ranked.setdefault(qid, []).append(doc)
    expected = hybrid.batch_search(["cat on a mat", "earthquake waves", "parks and ducks"], k=1000,
                                   config=PipelineConfig(prf="both"), with_text=False)
    assert [ranked[q] for q in ("q1", "q2", "q3")] == [[h.id for h in hits] for hits in expected]
    no_dense = run_cli("eval", "--dataset", str(data / "tiny_corpus.jsonl"), "--queries",
                       str(data / "tiny_queries.tsv"), "--qrels", str(data / "tiny_qrels.tsv"), "--index",
                       str(tremor.build_index(data / "tiny_corpus.jsonl", tmp_path / "plain", progress=False)),
                       "--dense", "--out", str(tmp_path / "e2"), "--quiet")
    assert no_dense.returncode != 0 and "add-dense" in no_dense.stderr and "Traceback" not in no_dense.stderr


def test_three_way_fusion_stage(tmp_path, hybrid, index_dir):
    """SPLADE-like + dense + BM25 fused in one step equals fuse_many of the three runs; indexes of another corpus
    are refused."""
    from tremor.search.fusion import fuse_many
    from tremor.search.pipeline import FuseAll, three_way_pipeline

    # a second sparse index of the same corpus, with other document weights (BM25 with other parameters)
    other = tremor.Searcher.load(tremor.build_index(ROOT / "tests" / "data" / "tiny_corpus.jsonl", tmp_path / "b",
                                                    encoder=tremor.BM25Encoder(k1=0.5, b=0.2), progress=False))
    stage = three_way_pipeline(hybrid.sparse, hybrid.dense, other, "minmax", (0.5, 0.3, 0.2), depth=6)
    assert isinstance(stage, FuseAll)
    run = stage(QUERIES)
    parts = [SparseRetrieve(hybrid.sparse, 6)(QUERIES), DenseRetrieve(hybrid.dense, 6)(QUERIES),
             SparseRetrieve(other, 6)(QUERIES)]
    scores, numbers = fuse_many([p.ranked for p in parts], "minmax", (0.5, 0.3, 0.2), 6)
    np.testing.assert_array_equal(run.numbers, numbers)
    np.testing.assert_allclose(run.scores, scores)
    assert run.dense_queries is not None and run.sparse_queries is not None
    # the BM25 side changes the ranking: not the same as the two-way hybrid
    two = Fuse(SparseRetrieve(hybrid.sparse, 6), DenseRetrieve(hybrid.dense, 6), "minmax", 0.5, 6)(QUERIES)
    assert not np.array_equal(two.scores, run.scores)
    smaller = tmp_path / "small.jsonl"
    smaller.write_text("\n".join((ROOT / "tests" / "data" / "tiny_corpus.jsonl").read_text().splitlines()[:3]))
    elsewhere = tremor.Searcher.load(tremor.build_index(smaller, tmp_path / "c", progress=False))
    with pytest.raises(TremorError, match="different documents"):
        three_way_pipeline(hybrid.sparse, hybrid.dense, elsewhere)
