"""tremor.distributed on a real local Ray cluster (2 CPUs, started once for the module): sharded exact search equals
the single index exactly (BM25 over scifact, a tiny SPLADE model built here), dead shard actors are restarted or
reported (never fewer results), builds are atomic, and the CLI builds, searches and evaluates sharded indexes."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in these tests may reach the network

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray
import torch
from conftest import beir_dataset
from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

from tremor.corpus import Document, read_documents, read_queries
from tremor.distributed import (
    ShardedSearcher,
    ShardError,
    build_sharded,
    connect,
    merge_top_k,
    read_shards_manifest,
)
from tremor.encoders import load_saved_encoder
from tremor.encoders.neural import load_encoder, save_model_dir
from tremor.encoders.splade import splade_config
from tremor.encoders.vector_files import read_vectors
from tremor.errors import IndexFormatError, TremorError
from tremor.eval.runs import read_run
from tremor.index.builder import build_index
from tremor.index.exact import ExactIndex
from tremor.search import Searcher
from tremor.sparse import SparseVectors

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "tremor", *args], capture_output=True, text=True, env=env,
                          timeout=300)


@pytest.fixture(scope="module")
def ray_cluster():
    """One local Ray cluster for the module: 2 CPUs, a small object store, no dashboard; shut down afterwards."""
    if ray.is_initialized():
        ray.shutdown()
    started = connect("local", num_cpus=2, object_store_memory=200 * 1024**2)
    assert started and ray.is_initialized()
    # a local cluster stays on loopback: its node and control store listen on 127.0.0.1, not the machine's address
    assert [node["NodeManagerAddress"] for node in ray.nodes()] == ["127.0.0.1"]
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def scifact_indexes(ray_cluster, tmp_path_factory):
    """scifact as one BM25 index and as a 3-shard BM25 index built on Ray."""
    # TREMOR_BEIR_DIR: the shared BEIR folder when it is not beside the checkout
    root = Path(os.environ["TREMOR_BEIR_DIR"]) / "scifact" if os.environ.get("TREMOR_BEIR_DIR") else \
        beir_dataset("scifact")
    tmp = tmp_path_factory.mktemp("scifact")
    single = build_index(root, tmp / "single", progress=False)
    sharded = build_sharded(root, tmp / "sharded", shards=3, progress=False)
    return root, single, sharded


@pytest.fixture(scope="module")
def scifact_searchers(scifact_indexes):
    root, single, sharded = scifact_indexes
    searcher = ShardedSearcher.load(sharded, cpus_per_shard=0.25)
    yield root, Searcher.load(single), searcher
    searcher.close()


# ------------------------------------------------------------------------------------------------------ BM25
def test_sharded_bm25_equals_single_index_exactly(scifact_searchers):
    root, single, sharded = scifact_searchers
    texts = [q.text for q in read_queries(root)]
    queries = single.encode_queries(texts)
    assert queries == sharded.encode_queries(texts)  # global statistics: the same query vectors
    for k in (10, 1000):  # heap path and partition path of the exact index
        expected_scores, expected_numbers = single.search_vectors(queries, k)
        scores, numbers = sharded.search_vectors(queries, k)
        assert np.array_equal(numbers, expected_numbers)
        assert np.array_equal(scores, expected_scores)  # bit for bit, not approximately
    one = sharded.search(texts[0], k=5)
    assert [(h.id, h.score, h.title) for h in one] == [(h.id, h.score, h.title) for h in single.search(texts[0], k=5)]
    assert sharded.n_docs == single.n_docs and sharded.n_shards == 3


def test_sharded_bm25_shards_carry_the_global_statistics(scifact_indexes):
    _, single, sharded = scifact_indexes
    manifest = read_shards_manifest(sharded)
    assert [s["offset"] for s in manifest["shards"]] == [0, 1728, 3455]  # 5,183 documents in contiguous runs
    whole = load_saved_encoder(single / "encoder")
    for entry in manifest["shards"]:
        shard = load_saved_encoder(sharded / entry["path"] / "encoder")
        assert shard.vocab_id == whole.vocab_id and shard.n_docs == whole.n_docs and shard.avgdl == whole.avgdl
        assert np.array_equal(shard.df, whole.df)
        assert Searcher.load(sharded / entry["path"]).n_docs == entry["documents"]  # an ordinary index directory


def test_merge_breaks_ties_by_global_document_order():
    # three shards; score 2.0 appears in shards 0, 1 and 2: the lowest global numbers win, best first
    results = [(np.array([[2.0, 1.0]], np.float32), np.array([[1, 0]])),
               (np.array([[3.0, 2.0]], np.float32), np.array([[0, 1]])),
               (np.array([[2.0, -np.inf]], np.float32), np.array([[0, -1]]))]
    scores, numbers = merge_top_k(results, [0, 2, 4], 4)
    assert numbers.tolist() == [[2, 1, 3, 4]] and scores.tolist() == [[3.0, 2.0, 2.0, 2.0]]
    scores, numbers = merge_top_k(results, [0, 2, 4], 8)
    assert numbers.tolist() == [[2, 1, 3, 4, 0, -1, -1, -1]] and np.isinf(scores[0, -3:]).all()


# ------------------------------------------------------------------------------------------------ learned model
WORDS = ["the", "cat", "cats", "sat", "on", "mat", "mats", "dog", "dogs", "chase", "ball", "park", "quiet", "tree",
         "pond", "duck", "ducks", "earth", "quake", "shake", "ground", "fault", "slip", "wave", "waves", "rock",
         "seismic", "warm", "and", "in", "a", "with", "when", "from", "through", "home"]


@pytest.fixture(scope="module")
def tiny_splade(tmp_path_factory):
    """A tiny random BERT MLM saved as a SPLADE model directory (hidden 32, 2 layers)."""
    tmp = tmp_path_factory.mktemp("splade")
    letters = "abcdefghijklmnopqrstuvwxyz"
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *(f"##{c}" for c in letters), *WORDS, "."]
    (tmp / "vocab.txt").write_text("\n".join(dict.fromkeys(tokens)) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(str(tmp / "vocab.txt"))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    model = BertForMaskedLM(config).eval()
    return save_model_dir(tmp / "model", splade_config(document_max_length=32, query_max_length=12), model=model,
                          tokenizer=tokenizer)


def synthetic_documents(n: int) -> list[Document]:
    rng = np.random.default_rng(7)
    return [Document(f"doc{i}", " ".join(rng.choice(WORDS, size=int(rng.integers(3, 20)))), "") for i in range(n)]


def test_sharded_learned_model_equals_single_index_exactly(ray_cluster, tiny_splade, tmp_path):
    documents = synthetic_documents(120)
    path = build_sharded(documents, tmp_path / "sharded", shards=2, encoder=str(tiny_splade), workers=2,
                         part_size=25, cpus_per_worker=0.5, keep_vectors=True, progress=False)
    # the vector shards: tremor vector files, 60 documents per shard in parts of 25
    parts = sorted((path / "vectors" / "shard-0001").iterdir())
    assert [p.name for p in parts] == ["part-0000", "part-0001", "part-0002"]
    ids, _, meta = read_vectors(parts[2])
    assert ids == [d.id for d in documents[110:120]] and meta["shard"] == 1 and meta["offset"] == 110
    vectors = SparseVectors.concat([read_vectors(p)[1] for shard in ("shard-0000", "shard-0001")
                                    for p in sorted((path / "vectors" / shard).iterdir())])
    # the workers' vectors are the model's vectors (to float rounding: batches of other lengths pad differently)
    encoder = load_encoder(tiny_splade)
    np.testing.assert_allclose(vectors.to_dense(), encoder.encode_documents([d.full_text for d in documents])
                               .to_dense(), rtol=1e-5, atol=1e-6)
    # the single index over the same vectors, and the shards: exactly the same top k
    single = Searcher(ExactIndex.build(vectors), encoder)
    queries = ["cat on a warm mat", "seismic waves through rock", "ducks in the pond", "quiet", "the"]
    with ShardedSearcher.load(path, cpus_per_shard=0.25) as sharded:
        query_vectors = single.encode_queries(queries)
        assert query_vectors == sharded.encode_queries(queries)
        for k in (5, 100):
            expected = single.search_vectors(query_vectors, k)
            got = sharded.search_vectors(query_vectors, k)
            assert np.array_equal(got[1], expected[1]) and np.array_equal(got[0], expected[0])
        assert [h.id for h in sharded.search("ducks in the pond", k=3)] == \
            [documents[n].id for n in expected[1][2][:3].tolist()]


# ------------------------------------------------------------------------------------------------ dead shards
def kill_and_wait(actor, timeout_s: float = 60.0) -> None:
    """Kill a shard actor and return once it no longer answers: ``ray.kill`` only sends the order, and a call made
    right after it can still reach the old worker (whose memory-mapped index outlives deleted files)."""
    ray.kill(actor)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            ray.get(actor.ready.remote(), timeout=timeout_s)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
            return
        time.sleep(0.05)
    raise AssertionError(f"the killed actor still answered after {timeout_s:.0f}s")


def test_shard_killed_before_a_query_is_restarted_from_its_directory(scifact_searchers):
    root, single, sharded = scifact_searchers
    texts = [q.text for q in read_queries(root)][:50]
    expected = single.search_vectors(single.encode_queries(texts), 10)
    restarts = sharded.restarts
    kill_and_wait(sharded.actor(1))
    scores, numbers = sharded.search_vectors(sharded.encode_queries(texts), 10)
    assert np.array_equal(numbers, expected[1]) and np.array_equal(scores, expected[0])
    assert sharded.restarts == restarts + 1


def test_shard_killed_mid_query_never_returns_fewer_results(scifact_searchers):
    root, single, sharded = scifact_searchers
    texts = [q.text for q in read_queries(root)] * 20  # a long batch, so the kill lands while shards work
    queries = single.encode_queries(texts)
    expected = single.search_vectors(queries, 100)
    victim = sharded.actor(2)
    killer = threading.Timer(0.05, lambda: ray.kill(victim))
    killer.start()
    try:
        scores, numbers = sharded.search_vectors(queries, 100)
    finally:
        killer.join()
    # whether the kill landed during the search or before it, the answer is complete and exact
    assert np.array_equal(numbers, expected[1]) and np.array_equal(scores, expected[0])
    assert sharded.actor(2) is not victim


def test_dead_shard_without_retries_is_a_clear_error(scifact_searchers):
    _, _, sharded = scifact_searchers
    sharded.retries = 0
    try:
        kill_and_wait(sharded.actor(0))
        with pytest.raises(ShardError, match=r"shard 0 .*shard-0000.* its worker died.*no partial results"):
            sharded.search("protein folding", k=10)
    finally:
        sharded.retries = 1
    assert len(sharded.search("protein folding", k=10)) == 10  # the next search restarts it


def test_shard_that_cannot_restart_is_a_clear_error(ray_cluster, tmp_path, tiny_corpus):
    path = build_sharded(tiny_corpus, tmp_path / "sharded", shards=2, progress=False)
    with ShardedSearcher.load(path, cpus_per_shard=0.25) as sharded:
        assert [h.id for h in sharded.search("cat on a mat", k=2)] == ["d1", "d6"]
        shutil.rmtree(path / "shard-0001" / "arrays")
        kill_and_wait(sharded.actor(1))
        with pytest.raises(TremorError, match=r"shard-0001.*array file .* missing"):
            sharded.search("cat on a mat", k=2)


# ------------------------------------------------------------------------------------------------ format, atomicity
def test_failed_sharded_build_leaves_nothing(ray_cluster, tmp_path, tiny_corpus):
    with pytest.raises(TremorError, match="n_postings"):
        build_sharded(tiny_corpus, tmp_path / "bad", shards=2, index="seismic,lambda=-5", progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TremorError, match="7 shards for 6 documents"):
        build_sharded(tiny_corpus, tmp_path / "bad", shards=7, progress=False)


def test_shards_manifest_is_checked(ray_cluster, tmp_path, tiny_corpus):
    path = build_sharded(tiny_corpus, tmp_path / "sharded", shards=2, progress=False)
    manifest = json.loads((path / "shards.json").read_text())
    assert manifest["format"] == "tremor-shards" and manifest["counts"] == {"documents": 6, "postings": 35}
    other = build_index(list(read_documents(tiny_corpus))[:3], tmp_path / "other", progress=False)
    shutil.rmtree(path / "shard-0001")
    shutil.copytree(other, path / "shard-0001")  # a shard replaced behind the manifest's back
    with pytest.raises(IndexFormatError, match=r"shards\[1\].*differs from the one this sharded index was built"):
        read_shards_manifest(path)
    manifest["shards"][1]["offset"] = 4
    (path / "shards.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="offset 4, expected 3"):
        Searcher.load(path)


def test_unreachable_cluster_is_a_clear_error():
    code = ("from tremor.distributed import connect\n"
            "connect('127.0.0.1:9')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"})
    assert result.returncode != 0
    assert "RayClusterError: could not join the Ray cluster at '127.0.0.1:9': nothing answers there" in result.stderr


# ------------------------------------------------------------------------------------------------------ CLI
def test_cli_builds_searches_and_evaluates_a_sharded_index(ray_cluster, scifact_indexes, tmp_path, tiny_corpus):
    out = tmp_path / "sharded"
    built = run_cli("index", "build", "--corpus", str(tiny_corpus), "--out", str(out), "--shards", "2", "--ray",
                    ray_cluster, "--quiet")
    assert built.returncode == 0, built.stderr
    assert "built sharded exact index of 6 documents in 2 shards" in built.stdout
    info = run_cli("index", "info", str(out), "--verify")
    assert info.returncode == 0 and [s["documents"] for s in json.loads(info.stdout)["shards"]] == [3, 3]
    bad = run_cli("index", "build", "--corpus", str(tiny_corpus), "--out", str(tmp_path / "x"), "--shards", "2",
                  "--ray", "127.0.0.1:9", "--quiet")
    assert bad.returncode == 1 and "could not join the Ray cluster at '127.0.0.1:9'" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "x").exists()

    root, single, sharded = scifact_indexes  # searched and evaluated from the command line: the same as the single
    env = {"RAY_ADDRESS": ray_cluster}
    found = run_cli("search", str(sharded), "protein folding", "stem cells", "-k", "5", "--json", env=env)
    assert found.returncode == 0, found.stderr
    expected = run_cli("search", str(single), "protein folding", "stem cells", "-k", "5", "--json")
    assert found.stdout == expected.stdout
    result = run_cli("eval", "--dataset", str(root), "--index", str(sharded), "--index", str(single), "--out",
                     str(tmp_path / "eval"), "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    assert read_run(tmp_path / "eval" / "sharded.run") == read_run(tmp_path / "eval" / "single.run")


def test_serve_answers_from_a_sharded_index_as_from_the_single_one(scifact_indexes):
    """tremor serve on a sharded directory: the same hits as the single index over HTTP (ASGI client); explain,
    which reads forward arrays the shard actors hold, is a clear 422."""
    from starlette.testclient import TestClient

    from tremor.serve import ServeLimits, create_app

    root, single, sharded = scifact_indexes
    texts = [q.text for q in read_queries(root)][:20]
    app = create_app({"sharded": sharded, "single": single}, ServeLimits())
    with TestClient(app) as client:
        answers = {}
        for name in ("sharded", "single"):
            response = client.post("/search", json={"index": name, "queries": texts, "k": 10, "with_text": False})
            assert response.status_code == 200, response.text
            answers[name] = [[(hit["id"], hit["score"]) for hit in result["hits"]]
                             for result in response.json()["results"]]
        assert answers["sharded"] == answers["single"]
        refused = client.post("/search", json={"index": "sharded", "q": texts[0], "explain": True})
        assert refused.status_code == 422 and "sharded" in refused.json()["error"]["message"]
