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
    SP = SparseRocchio(hybrid.sparse, fb_docs=2, fb_terms=20, k=6)
    DP = DenseVectorPRF(hybrid.dense, fb_docs=2, k=6)
    options = {"fusion": "minmax", "alpha": 0.4, "depth": 6, "fb_docs": 2, "fb_terms": 20, "dense_fb_docs": 2}
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
    np.testing.assert_array_equal(after.numbers, fuse(sp.ranked, dp.ranked, "minmax", 0.4, k=6)[1])
    # both: hybrid feedback for both PRF stages, whose runs are fused again
    both = hybrid_pipeline(hybrid.sparse, hybrid.dense, prf="both", placement="both", **options)(QUERIES)
    fused_start = Run(start.queries, *hybrid_run, s_run.sparse_queries, d_run.dense_queries)
    sp2, dp2 = SP.transform(fused_start), DP.transform(fused_start)
    np.testing.assert_array_equal(both.numbers, fuse(sp2.ranked, dp2.ranked, "minmax", 0.4, k=6)[1])
    # dense PRF only, placement both: the sparse side contributes its plain run to the second fusion
    dense_both = hybrid_pipeline(hybrid.sparse, hybrid.dense, prf="dense", placement="both", **options)(QUERIES)
    np.testing.assert_array_equal(dense_both.numbers, fuse(s_run.ranked, dp2.ranked, "minmax", 0.4, k=6)[1])
    # no PRF: plain fusion, and the operator form gives the same
    plain = hybrid_pipeline(hybrid.sparse, hybrid.dense, **options)(QUERIES)
    np.testing.assert_array_equal(plain.numbers, hybrid_run[1])
    np.testing.assert_array_equal(Fuse(S, D, "minmax", 0.4, k=6)(QUERIES).numbers, hybrid_run[1])
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
    assert PipelineConfig().retriever == "hybrid"


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
