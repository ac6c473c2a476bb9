"""Evaluation datasets from BEIR folders, loose files and ir_datasets ids, with clear errors offline."""

import gzip
import json

import pytest
from conftest import beir_dataset

from tremor.errors import InputError, TremorError
from tremor.eval.datasets import available_splits, load_dataset


def make_beir(root, with_dev=True):
    """A tiny BEIR folder: gzipped corpus and queries, CRLF qrels with a header and graded judgements."""
    root.mkdir()
    texts = ["cats and dogs", "cats sleep all day", "dogs bark loudly", "birds sing", "cats, dogs and birds"]
    docs = [{"_id": f"d{i}", "title": f"title {i}", "text": text} for i, text in enumerate(texts)]
    with gzip.open(root / "corpus.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(d) + "\n" for d in docs)
    queries = [{"_id": f"q{i}", "text": text} for i, text in enumerate(["cats", "dogs", "birds and cats", "fish"])]
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_bytes(b"query-id\tcorpus-id\tscore\r\nq0\td0\t2\r\nq0\td1\t1\r\nq2\td3\t1\r\n")
    if with_dev:
        (root / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\n")
    return root


def test_beir_folder_keeps_the_split_queries_and_grades(tmp_path):
    root = make_beir(tmp_path / "tiny")
    assert available_splits(root) == ["dev", "test"]
    data = load_dataset(root)
    assert (data.name, data.split) == ("tiny", "test")
    assert [q.id for q in data.queries] == ["q0", "q2"]
    assert data.qrels == {"q0": {"d0": 2, "d1": 1}, "q2": {"d3": 1}}
    assert [d.id for d in data.documents()] == ["d0", "d1", "d2", "d3", "d4"]
    assert [q.id for q in load_dataset(root, "dev").queries] == ["q1"]


def test_missing_split_names_the_available_ones(tmp_path):
    root = make_beir(tmp_path / "tiny")
    with pytest.raises(InputError, match=r"no qrels for split 'train' \(available: dev, test\)"):
        load_dataset(root, "train")


def test_loose_files_need_queries_and_qrels(tmp_path, tiny_corpus):
    with pytest.raises(InputError, match="needs a queries file and a qrels file"):
        load_dataset(tiny_corpus)
    data = load_dataset(tiny_corpus, queries=tiny_corpus.parent / "tiny_queries.tsv",
                        qrels=tiny_corpus.parent / "tiny_qrels.tsv")
    assert data.name == "tiny_corpus" and [q.id for q in data.queries] == ["q1", "q2", "q3"]
    assert data.qrels["q2"] == {"d5": 2, "d4": 1}


def test_qrels_without_matching_queries_is_an_error(tmp_path):
    root = make_beir(tmp_path / "tiny")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq77\td0\t1\n")
    with pytest.raises(TremorError, match="none of the 1 judged query ids"):
        load_dataset(root)


def test_unknown_path_or_id(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        load_dataset(tmp_path / "nothing")
    with pytest.raises(TremorError, match="nor a known ir_datasets id"):
        load_dataset("beir/no-such-dataset/test")
    with pytest.raises(TremorError, match="has no qrels; name a split"):
        load_dataset("beir/scifact")


def test_ir_datasets_without_network_says_so(monkeypatch):
    """The download fails the way it does offline (requests cannot connect); tremor turns it into one clear
    message. requests is patched, so this test touches no network even where one exists."""
    import requests

    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve host (no network in this test)")

    monkeypatch.setattr(requests, "get", offline)
    monkeypatch.setenv("IR_DATASETS_DL_TRIES", "1")
    try:
        data = load_dataset("beir/scifact/test")
    except TremorError as exc:
        message = str(exc)
    else:
        pytest.skip(f"ir_datasets already holds a copy of beir/scifact ({len(data.queries)} queries)")
    assert "ir_datasets 'beir/scifact/test'" in message
    assert "ConnectionError" in message
    assert "without a network, point at a local BEIR folder" in message


def test_shared_scifact_folder():
    data = load_dataset(beir_dataset("scifact"))
    assert len(data.queries) == 300 and sum(len(v) for v in data.qrels.values()) == 339
