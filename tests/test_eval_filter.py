"""`tremor eval --filter-ids`: a filtered evaluation retrieves only listed documents, exactly as an exact search over
all documents with the others removed."""

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import beir_dataset
from test_eval_datasets import make_beir

import tremor
from tremor.cli import cli
from tremor.eval import SearcherRetriever, load_dataset
from tremor.eval.runs import read_run
from tremor.search import Searcher


@pytest.fixture(scope="module")
def scifact_index(tmp_path_factory):
    root = beir_dataset("scifact")
    return root, tremor.build_index(root, tmp_path_factory.mktemp("scifact") / "bm25", progress=False)


def test_filtered_eval_returns_only_listed_documents_and_equals_filtered_exact(scifact_index, tmp_path):
    root, index_dir = scifact_index
    searcher = Searcher.load(index_dir)
    ids = searcher.docstore.ids()
    allowed = set(np.random.default_rng(3).choice(np.asarray(ids, dtype=object), 400, replace=False).tolist())
    filter_file = tmp_path / "allowed.txt"
    filter_file.write_text("\n".join(sorted(allowed)) + "\n\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["eval", "--dataset", str(root), "--index", str(index_dir), "--filter-ids",
                                      str(filter_file), "-k", "1000", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    run = read_run(out / "bm25.run")
    assert sum(len(hits) for hits in run.values()) > 0
    assert all(set(hits) <= allowed for hits in run.values())
    # reference: every document scored exactly, the unlisted ones dropped afterwards (k=1000 > 400 listed, so every
    # listed document with a positive score is in both)
    data = load_dataset(root)
    full = SearcherRetriever(searcher, "full").retrieve(data.queries, len(ids))
    for query in data.queries:
        expected = {d: s for d, s in full[query.id].items() if d in allowed and d != query.id}
        assert set(run[query.id]) == set(expected), query.id
        for doc, score in run[query.id].items():
            assert score == pytest.approx(expected[doc], rel=1e-5)


def test_filtered_retriever_in_python(scifact_index):
    root, index_dir = scifact_index
    data = load_dataset(root)
    searcher = Searcher.load(index_dir)
    allowed = searcher.docstore.ids()[:50]
    run = SearcherRetriever.from_index(index_dir, allow=allowed).retrieve(data.queries[:20], 10)
    assert any(run.values()) and all(set(hits) <= set(allowed) for hits in run.values())


def test_filter_ids_errors(tmp_path):
    root = make_beir(tmp_path / "tiny")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    listed = tmp_path / "ids.txt"
    listed.write_text("d0\n")
    runner = CliRunner()
    for args, message in [
        (["--encoder", "bm25", "--filter-ids", str(empty)], "lists no ids"),
        (["--encoder", "bm25", "--filter-ids", str(tmp_path / "missing.txt")], "cannot read the id file"),
        (["--encoder", "bm25", "--peer", "bm25s", "--filter-ids", str(listed)], "cannot filter"),
    ]:
        result = runner.invoke(cli, ["eval", "--dataset", str(root), *args, "--out", str(tmp_path / "out")])
        assert result.exit_code == 1 and message in result.output, (args, result.output)


def test_filtered_eval_on_the_fly_index(tmp_path):
    root = make_beir(tmp_path / "tiny")
    listed = tmp_path / "ids.txt"
    listed.write_text("d1\nd3\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["eval", "--dataset", str(root), "--encoder", "bm25", "--filter-ids",
                                      str(listed), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    run = read_run(out / "tremor-bm25.run")
    assert run["q0"] and all(set(hits) <= {"d1", "d3"} for hits in run.values())
