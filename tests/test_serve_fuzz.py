"""Fuzzing the API: malformed JSON, wrong types, huge and deeply nested bodies, odd unicode. No answer may be a 5xx,
every error must be the JSON error shape, and the server must still answer afterwards."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_helpers import build_serve_indexes
from starlette.testclient import TestClient

from tremor.serve import ServeLimits, create_app

FIELDS = ["index", "q", "vector", "queries", "k", "query_cut", "heap_factor", "n_knn", "retriever", "fusion", "alpha",
          "prf", "placement", "depth", "fb_docs", "fb_terms", "explain", "with_text", "text", "texts", "side"]
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)

text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)  # surrogates included
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), text)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(text, inner, max_size=4)), max_leaves=10)
bodies = st.dictionaries(st.one_of(st.sampled_from(FIELDS), text), values, max_size=6)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    paths = build_serve_indexes(tmp_path_factory.mktemp("fuzz"))
    with TestClient(create_app(paths, ServeLimits(max_body_bytes=64 * 1024)), raise_server_exceptions=False) as c:
        yield c


def check(response) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["status"] == response.status_code and error["message"]


def dumps(body) -> bytes:
    return json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")


@SETTINGS
@given(body=bodies, path=st.sampled_from(["/search", "/encode"]))
def test_random_json_objects(client, body, path):
    check(client.post(path, content=dumps(body), headers={"content-type": "application/json"}))


@SETTINGS
@given(body=values)
def test_random_json_values(client, body):
    check(client.post("/search", content=dumps(body), headers={"content-type": "application/json"}))


@SETTINGS
@given(raw=st.binary(max_size=300))
def test_random_bytes(client, raw):
    check(client.post("/search", content=raw, headers={"content-type": "application/json"}))
    check(client.post("/search", content=raw))


@SETTINGS
@given(q=text, k=st.one_of(st.integers(-5, 5000), text), index=st.one_of(st.none(), text), doc=text)
def test_query_strings_and_paths(client, q, k, index, doc):
    params = {"q": q, "k": k} if index is None else {"q": q, "k": k, "index": index}
    check(client.get("/search", params={key: str(v).encode("utf-8", "surrogatepass") for key, v in params.items()}))
    check(client.get("/documents/" + doc.encode("utf-8", "surrogatepass").hex()))


@SETTINGS
@given(q=text, vector=st.dictionaries(text, st.floats(allow_nan=True), max_size=5),
       index=st.sampled_from(["bm25", "seismic", "splade"]), side=st.sampled_from(["query", "document"]))
def test_unicode_queries_and_vectors(client, q, vector, index, side):
    check(client.post("/search", content=dumps({"index": index, "q": q, "explain": True}),
                      headers={"content-type": "application/json"}))
    check(client.post("/search", content=dumps({"index": index, "vector": vector}),
                      headers={"content-type": "application/json"}))
    check(client.post("/encode", content=dumps({"index": index, "text": q, "side": side}),
                      headers={"content-type": "application/json"}))


@pytest.mark.parametrize("index", ["bm25", "splade"])
def test_lone_surrogates_and_control_characters(client, index):
    for q in ["\ud800abc", "abc\udfff", "\x00", "\u200b", "😀 waves"]:
        body = dumps({"index": index, "q": q, "explain": True})
        check(client.post("/search", content=body, headers={"content-type": "application/json"}))
        check(client.post("/encode", content=dumps({"index": index, "text": q}),
                          headers={"content-type": "application/json"}))
    response = client.post("/search", content=dumps({"index": index, "q": "\ud800abc"}),
                           headers={"content-type": "application/json"})
    assert response.status_code == 422 and "not valid JSON" in response.json()["error"]["message"]
    # text that reaches the service some other way is refused there too
    from tremor.errors import QueryError
    from tremor.serve import ServeLimits
    from tremor.serve.service import QuerySpec, SearchSpec, check_limits

    with pytest.raises(QueryError, match="not valid Unicode"):
        check_limits(SearchSpec([QuerySpec("\ud800abc")]), ServeLimits())


def test_huge_and_deep_bodies(client):
    check(client.post("/search", content=b"[" * 100_000 + b"]" * 100_000,
                      headers={"content-type": "application/json"}))  # over the body limit: 413
    check(client.post("/search", content=b"[" * 30_000 + b"]" * 30_000,
                      headers={"content-type": "application/json"}))  # under it, nested past the parser's depth
    check(client.post("/search", content=b'{"q": "' + b"a" * 70_000 + b'"}',
                      headers={"content-type": "application/json"}))
    check(client.post("/search", json={"q": "cats " * 150}))  # over the query length
    check(client.post("/search", json={"queries": ["cats"] * 500}))
    check(client.post("/search", json={"vector": {f"t{i}": 1.0 for i in range(5000)}}))
    check(client.post("/search", json={"q": "cats", "k": 10**30}))
    check(client.post("/search", content=b'{"q": "cats", "alpha": NaN, "retriever": "hybrid"}',
                      headers={"content-type": "application/json"}))
    check(client.post("/search", content=b'{"vector": {"cat": Infinity}}',
                      headers={"content-type": "application/json"}))
    assert client.get("/health").status_code == 200
    assert client.post("/search", json={"q": "cats", "k": 2}).json()["results"][0]["hits"][0]["id"] == "d1"
