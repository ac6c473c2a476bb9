import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "tremor", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_build_search_info_end_to_end(tmp_path, tiny_corpus):
    out = tmp_path / "idx"
    built = run_cli("index", "build", "--corpus", str(tiny_corpus), "--out", str(out), "--quiet")
    assert built.returncode == 0, built.stderr
    assert "built exact index of 6 documents" in built.stdout
    found = run_cli("search", str(out), "cat on a mat", "ducks", "-k", "2", "--json")
    assert found.returncode == 0, found.stderr
    lines = [json.loads(line) for line in found.stdout.splitlines()]
    assert [line["query"] for line in lines] == ["cat on a mat", "ducks"]
    assert lines[0]["hits"][0]["id"] == "d1" and len(lines[0]["hits"]) == 2
    assert lines[1]["hits"][0]["id"] == "d3"
    table = run_cli("search", str(out), "earthquake")
    assert table.returncode == 0 and "d4" in table.stdout
    info = run_cli("index", "info", str(out), "--verify")
    assert info.returncode == 0 and json.loads(info.stdout)["counts"]["documents"] == 6


def test_bad_input_exits_nonzero_with_location(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "a", "text": "ok"}\n{"_id": "b", "text": ["not", "text"]}\n')
    result = run_cli("index", "build", "--corpus", str(bad), "--out", str(tmp_path / "idx"), "--quiet")
    assert result.returncode != 0
    assert f"{bad}, line 2, field 'text'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "idx").exists()
    missing = run_cli("search", str(tmp_path / "nothing"), "query")
    assert missing.returncode != 0 and "no such index directory" in missing.stderr
    empty = run_cli("search", str(tmp_path / "nothing"), "  ")
    assert empty.returncode != 0


def test_demo_runs_offline():
    result = run_cli("demo")
    assert result.returncode == 0, result.stderr
    assert "indexed 30 documents" in result.stdout
    assert "quake-1" in result.stdout and "ir-4" in result.stdout
