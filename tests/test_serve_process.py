"""A real ``tremor serve`` subprocess on a free loopback port, queried over HTTP (a short, bounded load too)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from serve_helpers import ServerProcess, build_serve_indexes

from tremor.search import Searcher


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    return build_serve_indexes(tmp_path_factory.mktemp("serve_process"), splade=False)


def call(server: ServerProcess, path: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.url + path, data=data, headers={
        "Content-Type": "application/json", **server.headers(), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve_subprocess_answers_over_http(paths, tmp_path):
    expected = Searcher.load(paths["bm25"]).search("earthquakes shake", k=3)
    with ServerProcess([f"bm25={paths['bm25']}", f"seis={paths['seismic']}"], tmp_path / "server.log") as server:
        status, health = call(server, "/health")
        assert status == 200 and health["indexes"] == ["bm25", "seis"]
        status, body = call(server, "/search?q=earthquakes+shake&k=3")
        assert status == 200
        assert [h["id"] for h in body["results"][0]["hits"]] == [h.id for h in expected]
        status, body = call(server, "/search", {"index": "seis", "q": "seismic waves", "k": 2, "explain": True})
        assert status == 200 and body["results"][0]["hits"][0]["id"] == "d5"
        assert body["results"][0]["hits"][0]["explain"]["terms"][0]["token"] in ("seismic", "wave")
        status, body = call(server, "/search", {"q": "cats", "k": 100000})
        assert status == 422 and "at most 1000" in body["error"]["message"]

        def one(i: int) -> int:  # a short burst: 8 clients, 80 requests in all
            return call(server, "/search", {"q": ["cats", "seismic waves", "park ducks", "mats"][i % 4], "k": 5})[0]

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(one, range(80)))
        assert statuses == [200] * 80
        assert call(server, "/health")[0] == 200


def test_serve_subprocess_with_api_key(paths, tmp_path):
    with ServerProcess([str(paths["bm25"])], tmp_path / "server.log", env={"TREMOR_API_KEY": "k3y"}) as server:
        status, body = call(server, "/indexes", headers={"X-API-Key": "nope"})
        assert status == 401 and "API key" in body["error"]["message"]
        assert call(server, "/indexes")[0] == 200


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tremor", *args], capture_output=True, text=True, timeout=120)


def test_serve_warns_when_not_loopback_and_refuses_bad_indexes(tmp_path, paths):
    # the bad index stops the server before it binds anything
    result = run_cli("serve", str(paths["bm25"]), f"bad={tmp_path / 'missing'}", "--host", "0.0.0.0")
    assert result.returncode != 0
    assert "warning: binding 0.0.0.0" in result.stderr and "no --api-key" in result.stderr
    assert "index 'bad'" in result.stderr and "no such index directory" in result.stderr
    result = run_cli("serve", str(paths["bm25"]), "oops")
    assert result.returncode != 0 and "expected NAME=DIR" in result.stderr


def test_serve_with_several_processes(paths, tmp_path):
    import socket

    with ServerProcess([str(paths["bm25"]), "--processes", "2"], tmp_path / "server.log") as server:
        def one(i: int) -> str:
            status, body = call(server, "/search", {"q": ["cats", "earthquakes"][i % 2], "k": 1})
            assert status == 200
            return body["results"][0]["hits"][0]["id"]

        with ThreadPoolExecutor(4) as pool:
            assert list(pool.map(one, range(40))) == ["d1", "d4"] * 20
        port = server.port
    with socket.socket() as sock:  # every process stopped with the parent: nothing listens any more
        assert sock.connect_ex(("127.0.0.1", port)) != 0
