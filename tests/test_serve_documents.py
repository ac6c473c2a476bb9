"""Writes over HTTP (POST /documents, DELETE /documents/{id}) on live indexes, through the ASGI test client."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tremor.index.builder import build_index
from tremor.index.segments import IndexWriter
from tremor.serve import ServeLimits, create_app

CORPUS = Path(__file__).parent / "data" / "tiny_corpus.jsonl"
KEY = {"X-API-Key": "s3cret"}
LIMITS = ServeLimits(max_batch=4, max_document_chars=200, max_body_bytes=4096)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return build_index(CORPUS, tmp_path_factory.mktemp("docs") / "bm25", progress=False)


@pytest.fixture
def index(built, tmp_path) -> Path:
    target = tmp_path / "bm25"
    shutil.copytree(built, target)
    return target


def error(response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.json()["error"]["status"] == status
    return response.json()["error"]["message"]


def ids(client: TestClient, q: str, k: int = 10) -> list[str]:
    response = client.post("/search", json={"q": q, "k": k}, headers=KEY)
    assert response.status_code == 200, response.text
    return [h["id"] for h in response.json()["results"][0]["hits"]]


def test_add_update_delete(index):
    with TestClient(create_app({"bm25": index}, LIMITS, api_key="s3cret")) as c:
        before = c.get("/indexes", headers=KEY).json()["indexes"][0]["documents"]
        assert "new1" not in ids(c, "pond ducks")
        r = c.post("/documents", json={"documents": [{"id": "new1", "title": "Volcano",
                                                      "text": "Ducks on the pond, ducks by the pond."}]},
                   headers=KEY)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["index"] == "bm25" and body["added"] == 1 and body["generation"] >= 1
        assert body["documents"] == before + 1
        assert "new1" in ids(c, "pond ducks")
        assert c.get("/documents/new1", headers=KEY).json()["title"] == "Volcano"
        # update: the same id replaced, not duplicated
        r = c.post("/documents", json={"documents": [{"id": "new1", "text": "Faults slip under the ground."}]},
                   headers=KEY)
        assert r.json()["documents"] == before + 1 and r.json()["generation"] == body["generation"] + 1
        assert "new1" not in ids(c, "pond ducks")
        assert "new1" in ids(c, "faults slip")
        assert c.get("/documents/new1", headers=KEY).json()["text"] == "Faults slip under the ground."
        # delete: gone from search and from GET, also after further writes
        r = c.delete("/documents/new1", headers=KEY)
        assert r.status_code == 200, r.text
        assert r.json()["deleted"] == 1 and r.json()["documents"] == before
        assert "new1" not in ids(c, "faults slip")
        error(c.get("/documents/new1", headers=KEY), 404)
        c.post("/documents", json={"documents": [{"id": "other", "text": "Faults shake rock."}]}, headers=KEY)
        found = ids(c, "faults slip")
        assert "other" in found and "new1" not in found
        assert "no live document" in error(c.delete("/documents/new1", headers=KEY), 404)
        assert c.get("/indexes", headers=KEY).json()["indexes"][0]["documents"] == before + 1
        # an original document can be deleted too
        r = c.delete("/documents/d1", headers=KEY)
        assert r.status_code == 200 and "d1" not in ids(c, "cat mat")


def test_writes_need_an_api_key(index):
    with TestClient(create_app({"bm25": index}, LIMITS)) as c:
        message = error(c.post("/documents", json={"documents": [{"id": "x", "text": "a b c"}]}), 403)
        assert "--api-key" in message
        error(c.delete("/documents/d1"), 403)
    with TestClient(create_app({"bm25": index}, LIMITS, api_key="s3cret")) as c:
        error(c.post("/documents", json={"documents": [{"id": "x", "text": "a b c"}]}), 401)
        error(c.post("/documents", json={"documents": [{"id": "x", "text": "a b c"}]},
                     headers={"X-API-Key": "wrong"}), 401)
        error(c.delete("/documents/d1"), 401)
    with TestClient(create_app({"bm25": index}, LIMITS, api_key="s3cret", read_only=True)) as c:
        assert "--read-only" in error(c.delete("/documents/d1", headers=KEY), 403)
        assert "d1" in ids(c, "cat mat")


def test_write_lock_held_elsewhere_is_409(index):
    with TestClient(create_app({"bm25": index}, LIMITS, api_key="s3cret")) as c:
        with IndexWriter(index):
            message = error(c.post("/documents", json={"documents": [{"id": "x", "text": "a b c"}]},
                                   headers=KEY), 409)
            assert "another IndexWriter" in message
            error(c.delete("/documents/d1", headers=KEY), 409)
        assert c.delete("/documents/d1", headers=KEY).status_code == 200


@pytest.mark.parametrize("body", [
    b"not json", b"{}", b'{"documents": []}', b'{"documents": [{"text": "no id"}]}',
    b'{"documents": [{"id": "", "text": "x"}]}', b'{"documents": [{"id": "a"}]}',
    b'{"documents": [{"id": "a", "text": 5}]}', b'{"documents": "x"}', b'[1, 2]',
    b'{"documents": [{"id": "a", "text": "\\ud800"}]}',
    b'{"index": "nope", "documents": [{"id": "a", "text": "x"}]}',
])
def test_bad_bodies_are_4xx_json(index, body):
    with TestClient(create_app({"bm25": index}, LIMITS, api_key="s3cret")) as c:
        r = c.post("/documents", content=body, headers={**KEY, "content-type": "application/json"})
        assert 400 <= r.status_code < 500, r.text
        assert r.json()["error"]["message"]


def test_limits(index):
    with TestClient(create_app({"bm25": index}, LIMITS, api_key="s3cret")) as c:
        many = {"documents": [{"id": f"x{i}", "text": "a"} for i in range(5)]}
        assert "at most 4" in error(c.post("/documents", json=many, headers=KEY), 422)
        long = {"documents": [{"id": "x", "text": "word " * 60}]}
        assert "at most 200" in error(c.post("/documents", json=long, headers=KEY), 422)
        huge = {"documents": [{"id": "x", "text": "w" * 5000}]}
        error(c.post("/documents", json=huge, headers=KEY), 413)
        assert c.get("/indexes", headers=KEY).json()["indexes"][0]["documents"] == 6


def test_a_write_in_one_process_shows_in_another(index):
    """Two apps on one directory stand for two server processes: each checks the commit generation."""
    a = create_app({"bm25": index}, LIMITS, api_key="s3cret", refresh_interval_s=0.0, hold_writer=False)
    b = create_app({"bm25": index}, LIMITS, api_key="s3cret", refresh_interval_s=0.0, hold_writer=False)
    with TestClient(a) as ca, TestClient(b) as cb:
        assert "d1" in ids(cb, "cat mat")
        assert ca.post("/documents", json={"documents": [{"id": "v", "text": "pond ducks"}]},
                       headers=KEY).status_code == 200
        assert "v" in ids(cb, "pond ducks")
        assert cb.delete("/documents/v", headers=KEY).status_code == 200  # b can write too: a holds no lock
        assert "v" not in ids(ca, "pond ducks")


def test_searches_during_writes_never_fail(index):
    """Searches on other threads keep working while writes swap in new searchers."""
    app = create_app({"bm25": index}, LIMITS, api_key="s3cret", refresh_interval_s=0.0)
    failures: list[str] = []
    stop = threading.Event()
    with TestClient(app) as c:
        def search() -> None:
            while not stop.is_set():
                r = c.post("/search", json={"q": "cat park dogs", "k": 5}, headers=KEY)
                if r.status_code != 200:
                    failures.append(r.text)

        threads = [threading.Thread(target=search) for _ in range(3)]
        for t in threads:
            t.start()
        try:
            for i in range(8):
                assert c.post("/documents", json={"documents": [{"id": f"n{i}", "text": f"cat number {i}"}]},
                              headers=KEY).status_code == 200
                if i % 2:
                    assert c.delete(f"/documents/n{i - 1}", headers=KEY).status_code == 200
        finally:
            stop.set()
            for t in threads:
                t.join()
    assert not failures


def test_openapi_documents_the_write_endpoints(index):
    with TestClient(create_app({"bm25": index}, LIMITS)) as c:
        schema = c.get("/openapi.json").json()
    assert "post" in schema["paths"]["/documents"] and "delete" in schema["paths"]["/documents/{doc_id}"]
    assert "get" in schema["paths"]["/documents/{doc_id}"]
    assert {"DocumentsRequest", "WriteResponse"} <= set(schema["components"]["schemas"])
    assert "409" in schema["paths"]["/documents"]["post"]["responses"]


def _call(url: str, method: str, body: dict | None = None) -> tuple[int, dict]:
    import json
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **KEY})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_real_server_with_two_processes_sees_every_write(index, tmp_path):
    """``tremor serve --processes 2``: after a write, searches answered by either process see it (each checks
    the commit generation at most every 0.5 s)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from serve_helpers import ServerProcess

    with ServerProcess([str(index), "--processes", "2"], tmp_path / "server.log",
                       env={"TREMOR_API_KEY": "s3cret"}) as server:
        def found(_: int) -> bool:
            status, body = _call(server.url + "/search", "POST", {"q": "pond ducks", "k": 10})
            assert status == 200, body
            return "w1" in [h["id"] for h in body["results"][0]["hits"]]

        with ThreadPoolExecutor(4) as pool:
            assert not any(pool.map(found, range(20)))
            for i in range(3):  # writes land on either process
                status, body = _call(server.url + "/documents", "POST",
                                     {"documents": [{"id": f"w{i}", "text": "Ducks on the pond."}]})
                assert status == 200, body
            time.sleep(0.7)
            assert all(pool.map(found, range(40)))
            status, body = _call(server.url + "/documents/w1", "DELETE")
            assert status == 200 and body["documents"] == 8, body
            time.sleep(0.7)
            assert not any(pool.map(found, range(40)))
