"""The HTTP API through the ASGI test client: search, batch, vectors, explain, documents, encode, limits, errors."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from serve_helpers import build_serve_indexes
from starlette.testclient import TestClient

from tremor.search import Searcher
from tremor.serve import ServeLimits, create_app
from tremor.serve.limits import is_loopback
from tremor.serve.service import QuerySpec, SearchSpec, ServedIndex


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return build_serve_indexes(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def client(paths):
    with TestClient(create_app(paths, ServeLimits(max_k=50, max_query_chars=200, max_body_bytes=4096,
                                                  max_batch=8))) as c:
        yield c


def error(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["status"] == status
    return body["error"]["message"]


def test_health_and_indexes(client):
    assert client.get("/health").json()["indexes"] == ["bm25", "seismic", "splade"]
    info = {i["name"]: i for i in client.get("/indexes").json()["indexes"]}
    assert info["bm25"]["index_type"] == "exact" and info["bm25"]["documents"] == 6
    assert info["seismic"]["index_type"] == "seismic" and info["seismic"]["search_defaults"]["query_cut"] == 10
    assert info["splade"]["encoder"]["kind"] == "splade" and info["splade"]["dense"] is True
    assert info["bm25"]["dense"] is False
    schema = client.get("/openapi.json").json()
    assert {"/search", "/health", "/indexes", "/documents/{doc_id}", "/encode"} <= set(schema["paths"])
    assert "SearchRequest" in schema["components"]["schemas"]


@pytest.mark.parametrize("name", ["bm25", "seismic", "splade"])
def test_search_equals_the_searcher(client, paths, name):
    searcher = Searcher.load(paths[name])
    expected = searcher.search("seismic waves from earthquakes", k=4)
    body = client.post("/search", json={"index": name, "q": "seismic waves from earthquakes", "k": 4}).json()
    hits = body["results"][0]["hits"]
    assert [h["id"] for h in hits] == [h.id for h in expected]
    assert [h["score"] for h in hits] == pytest.approx([h.score for h in expected], rel=1e-6)
    assert hits[0]["title"] == expected[0].title and hits[0]["snippet"]
    got = client.get("/search", params={"q": "seismic waves from earthquakes", "k": 4, "index": name}).json()
    assert [h["id"] for h in got["results"][0]["hits"]] == [h.id for h in expected]


def test_explain_adds_up_to_the_score_from_forward_arrays(client):
    for name in ("bm25", "seismic", "splade"):
        body = client.post("/search", json={"index": name, "q": "cats on warm mats", "k": 5, "explain": True}).json()
        result = body["results"][0]
        assert result["hits"]
        for hit in result["hits"]:
            terms = hit["explain"]["terms"]
            products = [t["product"] for t in terms]
            assert products == sorted(products, reverse=True)
            for t in terms:
                assert t["product"] == pytest.approx(t["query_weight"] * t["doc_weight"], rel=1e-6)
            assert hit["explain"]["sparse_score"] == pytest.approx(hit["score"], rel=1e-3, abs=1e-4)
            assert len(terms) == min(64, hit["explain"]["n_matched"])
        weights = [t["weight"] for t in result["query_terms"]]
        assert weights == sorted(weights, reverse=True)
        if name == "splade":  # a random MLM activates many vocabulary entries the text does not contain
            assert any(t["expansion"] for t in result["query_terms"])
            assert any(not t["expansion"] for t in result["query_terms"])
            assert {t["token"] for t in result["query_terms"] if not t["expansion"]} <= {"cats", "on", "warm", "mats"}
        else:  # BM25 queries have no expansions
            assert {t["token"] for t in result["query_terms"]} == {"cat", "warm", "mat"}
            assert not any(t["expansion"] for t in result["query_terms"])


def test_explain_does_not_reencode(paths, monkeypatch):
    served = ServedIndex("splade", paths["splade"])
    monkeypatch.setattr(served.searcher.encoder, "encode_documents",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-encoded documents")))
    out = served.search(SearchSpec([QuerySpec("seismic waves")], 3, explain=True), threading.Lock())
    assert out["results"][0]["hits"][0]["explain"]["terms"]


def test_vector_query_and_batch(client):
    encoded = client.post("/encode", json={"index": "splade", "text": "seismic waves"}).json()["terms"]
    assert encoded and all(t["weight"] > 0 for t in encoded)
    vector = {t["token"]: t["weight"] for t in encoded}
    by_text = client.post("/search", json={"index": "splade", "q": "seismic waves", "k": 3}).json()
    by_vector = client.post("/search", json={"index": "splade", "vector": vector, "k": 3, "explain": True}).json()
    assert [h["id"] for h in by_vector["results"][0]["hits"]] == [h["id"] for h in by_text["results"][0]["hits"]]
    assert by_vector["results"][0]["query"] is None
    assert all(t["expansion"] is None for t in by_vector["results"][0]["query_terms"])  # no text to compare with

    batch = client.post("/search", json={"index": "bm25", "k": 2, "queries": [
        "cats", {"q": "earthquakes"}, {"vector": {"park": 1.0}}]}).json()["results"]
    assert [r["hits"][0]["id"] for r in batch] == ["d1", "d4", "d3"]
    docs = client.post("/encode", json={"index": "bm25", "texts": ["The cats", "Mats!"], "side": "document"}).json()
    assert [[t["token"] for t in row] for row in docs["terms"]] == [["cat"], ["mat"]]


def test_seismic_parameters_and_hybrid(client):
    body = client.post("/search", json={"index": "seismic", "q": "seismic waves", "k": 3, "query_cut": 1,
                                        "heap_factor": 0.9}).json()
    assert body["results"][0]["hits"]
    message = error(client.post("/search", json={"index": "bm25", "q": "cats", "query_cut": 3}), 422)
    assert "exact index takes no search parameters" in message
    hybrid = client.post("/search", json={"index": "splade", "q": "seismic waves", "k": 3, "retriever": "hybrid",
                                          "depth": 6, "explain": True}).json()
    assert len(hybrid["results"][0]["hits"]) == 3
    prf = client.post("/search", json={"index": "bm25", "q": "cats", "k": 3, "prf": "sparse", "fb_docs": 2,
                                       "depth": 6, "explain": True}).json()
    assert prf["results"][0]["hits"]
    message = error(client.post("/search", json={"index": "bm25", "q": "cats", "retriever": "hybrid",
                                                 "depth": 10}), 422)
    assert "no dense side" in message
    assert "pre-encoded vector" in error(client.post("/search", json={
        "index": "splade", "vector": {"seismic": 1.0}, "retriever": "dense", "depth": 10}), 422)


def test_documents(client):
    doc = client.get("/documents/d4", params={"index": "bm25"}).json()
    assert doc["title"] == "Earthquakes" and "faults slip" in doc["text"]
    assert "no document with id" in error(client.get("/documents/nope"), 404)
    assert "no index named 'other'" in error(client.get("/documents/d1", params={"index": "other"}), 404)


def test_errors_are_json_4xx_with_actionable_messages(client):
    assert "at most 50" in error(client.post("/search", json={"q": "cats", "k": 51}), 422)
    assert "greater than or equal to 1" in error(client.post("/search", json={"q": "cats", "k": 0}), 422)
    assert "at most 200" in error(client.post("/search", json={"q": "cat " * 60}), 422)
    assert "not valid JSON" in error(client.post("/search", content=b"{nope",
                                                 headers={"content-type": "application/json"}), 422)
    assert "Extra inputs" in error(client.post("/search", json={"q": "cats", "kk": 3}), 422)
    assert "exactly one of" in error(client.post("/search", json={"k": 3}), 422)
    assert "exactly one of" in error(client.post("/search", json={"q": "a", "vector": {"cat": 1}}), 422)
    assert "empty" in error(client.post("/search", json={"q": "   "}), 422)
    assert "not in the index's vocabulary" in error(client.post("/search", json={"vector": {"zebra": 1}}), 422)
    assert "greater than or equal to 0" in error(client.post("/search", json={"vector": {"cat": -1}}), 422)
    assert "at most 8" in error(client.post("/search", json={"queries": ["cat"] * 9}), 422)
    assert "limit of 4096 bytes" in error(client.post("/search", json={"q": "x" * 5000}), 413)
    assert "retriever" in error(client.post("/search", json={"q": "cat", "retriever": "nope"}), 422)
    assert "no such endpoint" in error(client.get("/nothing"), 404)
    assert "not allowed" in error(client.delete("/search"), 405)
    assert "depth" in error(client.post("/search", json={"q": "cats", "k": 5, "prf": "sparse", "depth": 3}), 422)


def test_body_limit_without_content_length(client):
    def chunks():
        for _ in range(10):
            yield b"x" * 1000

    response = client.post("/search", content=chunks(), headers={"content-type": "application/json"})
    assert "limit of 4096 bytes" in error(response, 413)


def test_api_key_on_every_endpoint(paths):
    app = create_app({"bm25": paths["bm25"]}, api_key="s3cret")
    with TestClient(app) as c:
        for method, path in (("get", "/health"), ("get", "/indexes"), ("get", "/"), ("get", "/openapi.json"),
                             ("get", "/documents/d1"), ("get", "/search?q=cats"), ("get", "/static/app.js")):
            assert "API key" in error(getattr(c, method)(path), 401)
        assert "API key" in error(c.post("/search", json={"q": "cats"}), 401)
        assert "API key" in error(c.post("/search", json={"q": "cats"}, headers={"X-API-Key": "wrong"}), 401)
        assert c.post("/search", json={"q": "cats"}, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert c.get("/health", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        page = c.get("/?api_key=s3cret")  # the page: a cookie then lets its scripts and API calls through
        assert page.status_code == 200 and "HttpOnly" in page.headers["set-cookie"]
        assert c.get("/static/app.js").status_code == 200
        assert c.post("/search", json={"q": "cats"}).status_code == 200
        c.cookies.clear()
        assert "API key" in error(c.get("/static/app.js"), 401)


def test_timeout_and_busy_are_4xx(paths, monkeypatch):
    served = ServedIndex("bm25", paths["bm25"])
    original = served.search
    release = threading.Event()

    def blocked(spec, lock):
        release.wait(30)
        return original(spec, lock)

    monkeypatch.setattr(served, "search", blocked)
    app = create_app({"bm25": served}, ServeLimits(timeout_s=0.2, workers=1, max_waiting=0))
    with TestClient(app) as c:
        assert "longer than the server's limit" in error(c.post("/search", json={"q": "cats"}), 408)
        # the timed-out search still holds the only worker, and nothing may wait: the next request is refused
        response = c.post("/search", json={"q": "cats"})
        assert "busy" in error(response, 429) and response.headers["retry-after"] == "1"
        release.set()
        deadline = time.monotonic() + 30
        while app.state.pool.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert c.post("/search", json={"q": "cats"}).status_code == 200


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="static/app.js"' in page.text and "http" not in page.text.split("<footer>")[0].replace(
        'http-equiv', '')
    for asset in ("static/app.js", "static/style.css"):
        text = client.get(f"/{asset}").text
        assert "https://" not in text and "http://" not in text  # nothing from a CDN


def test_loopback_check():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_results_are_json_serializable_numbers(client):
    body = client.post("/search", json={"q": "cats", "k": 3, "explain": True}).json()
    json.dumps(body)
    assert all(np.isfinite(h["score"]) for h in body["results"][0]["hits"])


def test_searches_run_on_worker_threads_not_the_event_loop(paths, monkeypatch):
    served = ServedIndex("bm25", paths["bm25"])
    original = served.search
    threads = []

    def recording(spec, lock):
        threads.append(threading.current_thread().name)
        return original(spec, lock)

    monkeypatch.setattr(served, "search", recording)
    with TestClient(create_app({"bm25": served})) as c:
        for q in ("cats", "dogs", "earthquakes"):
            assert c.get("/search", params={"q": q}).status_code == 200
    assert len(threads) == 3 and all(name.startswith("tremor-search") for name in threads)


def test_snippets_start_near_the_first_query_word():
    from tremor.serve.service import query_words, snippet

    text = ("Infectious prions propagate from peripheral entry sites into the central nervous system, where they "
            "cause progressive neurodegeneration. ") * 4
    assert query_words("The NERVOUS system, the brain") == ["the", "nervous", "system", "brain"]
    short = snippet(text, ["neurodegeneration"], width=120)
    assert short.startswith("… ") and short.endswith(" …") and "neurodegeneration" in short
    assert short[2:].split()[0] in text.split()  # starts at a word boundary
    assert snippet(text, [], width=120).startswith("Infectious") and snippet("short text", ["x"]) == "short text"


def test_concurrent_neural_hybrid_and_encode_requests(client):
    """Many requests at once on the SPLADE index (its tokenizer and the dense side's take turns), all answered."""
    bodies = [("/search", {"index": "splade", "q": f"seismic waves {i}", "k": 3, "explain": True}) for i in range(24)]
    bodies += [("/search", {"index": "splade", "q": f"cats {i}", "k": 3, "retriever": "hybrid", "depth": 6})
               for i in range(24)]
    bodies += [("/encode", {"index": "splade", "text": f"ducks in a pond {i}", "side": side})
               for i in range(12) for side in ("query", "document")]
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda item: client.post(item[0], json=item[1]).status_code, bodies))
    assert statuses == [200] * len(bodies)
