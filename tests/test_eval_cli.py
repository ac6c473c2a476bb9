"""`tremor eval`: run files, metrics JSON and a Markdown table; clear errors and non-zero exits on bad input."""

import json

from click.testing import CliRunner
from test_cli import run_cli
from test_eval_datasets import make_beir

from tremor.cli import cli
from tremor.eval.metrics import evaluate_run
from tremor.eval.runs import read_run


def test_eval_builds_on_the_fly_and_evaluates_an_index(tmp_path, tiny_corpus):
    root = make_beir(tmp_path / "tiny")
    index_dir = tmp_path / "my-index"
    assert run_cli("index", "build", "--corpus", str(root), "--out", str(index_dir), "--quiet").returncode == 0
    out = tmp_path / "out"
    result = run_cli("eval", "--dataset", str(root), "--index", str(index_dir), "--encoder", "bm25", "--out",
                     str(out), "-k", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "tiny (test, 2 queries, top 3)"
    assert lines[2].startswith("| system | nDCG@10 | R@100 | R@1000 | MRR@10 | MAP | ms/query, batch |")
    assert lines[4].startswith("| my-index |") and lines[5].startswith("| tremor-bm25 |")
    assert sorted(p.name for p in out.iterdir()) == ["my-index.metrics.json", "my-index.run", "summary.json",
                                                     "table.md", "tremor-bm25.metrics.json", "tremor-bm25.run"]
    run = read_run(out / "tremor-bm25.run")
    assert set(run) == {"q0", "q2"} and all(len(hits) == 3 for hits in run.values())
    assert run == read_run(out / "my-index.run")
    metrics = json.loads((out / "tremor-bm25.metrics.json").read_text())
    assert metrics["metrics"] == evaluate_run(run, {"q0": {"d0": 2, "d1": 1}, "q2": {"d3": 1}}).aggregate
    assert metrics["k"] == 3 and metrics["queries"] == 2
    assert (out / "table.md").read_text() == result.stdout


def test_eval_errors_are_clear(tmp_path):
    missing = run_cli("eval", "--dataset", str(tmp_path / "nothing"), "--encoder", "bm25")
    assert missing.returncode != 0 and "no such file or folder" in missing.stderr
    assert "Traceback" not in missing.stderr
    root = make_beir(tmp_path / "tiny")
    runner = CliRunner()
    for args, message in [
        (["--dataset", "beir/not-a-dataset/test", "--encoder", "bm25"], "nor a known ir_datasets id"),
        (["--dataset", str(root)], "nothing to evaluate"),
        (["--dataset", str(root), "--split", "train", "--encoder", "bm25"],
         "no qrels for split 'train' (available: dev, test)"),
        (["--dataset", str(root), "--encoder", "bm25", "--measure", "nDCG@x"], "unknown measure 'nDCG@x'"),
    ]:
        result = runner.invoke(cli, ["eval", *args, "--out", str(tmp_path / "out")])
        assert result.exit_code == 1 and message in result.output, (args, result.output)
    assert not (tmp_path / "out").exists()


def test_eval_with_the_bm25s_peer(tmp_path):
    root = make_beir(tmp_path / "tiny")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["eval", "--dataset", str(root), "--encoder", "bm25", "--peer", "bm25s",
                                      "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if line.startswith("| tremor-bm25 |")
            or line.startswith("| bm25s |")]
    assert len(rows) == 2
    assert set(read_run(out / "bm25s.run")) == set(read_run(out / "tremor-bm25.run"))
