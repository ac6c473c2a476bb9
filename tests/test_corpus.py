import gzip
import json

import pytest
from conftest import DATA

from tremor.corpus import read_documents, read_qrels, read_queries
from tremor.errors import InputError, TremorError


def test_jsonl_tsv_and_beir_folder(tmp_path, tiny_corpus):
    docs = list(read_documents(tiny_corpus))
    assert [d.id for d in docs] == ["d1", "d2", "d3", "d4", "d5", "d6"]
    assert docs[0].full_text.startswith("Cats The cat")
    tsv = tmp_path / "c.tsv"
    tsv.write_text("id\ttitle\ttext\nx1\tT\tbody one\nx2\t\tbody two\n")
    assert [(d.id, d.title, d.text) for d in read_documents(tsv)] == [("x1", "T", "body one"), ("x2", "", "body two")]
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    with gzip.open(beir / "corpus.jsonl.gz", "wt") as handle:
        handle.write(json.dumps({"_id": "a", "title": "t", "text": "x", "metadata": {}}) + "\n")
    (beir / "queries.jsonl").write_text('{"_id": "q1", "text": "hello"}\n{"_id": "q2", "text": "bye"}\n')
    (beir / "qrels" / "test.tsv").write_bytes(b"query-id\tcorpus-id\tscore\r\nq1\ta\t2\r\n")
    assert [d.id for d in read_documents(beir)] == ["a"]
    qrels = read_qrels(beir, "test")
    assert qrels == {"q1": {"a": 2}}
    assert [q.id for q in read_queries(beir, ids=set(qrels))] == ["q1"]
    with pytest.raises(InputError, match="no qrels for split 'dev'"):
        read_qrels(beir, "dev")


def test_queries_and_crlf_qrels_from_files():
    assert [q.text for q in read_queries(DATA / "tiny_queries.tsv")] == ["cat on a mat", "earthquake waves",
                                                                        "parks and ducks"]
    assert read_qrels(DATA / "tiny_qrels.tsv") == {"q1": {"d1": 1}, "q2": {"d5": 2, "d4": 1}, "q3": {"d3": 1}}


@pytest.mark.parametrize(
    ("content", "line", "field", "message"),
    [
        ('{"_id": "a", "text": "x"}\n{"_id": "b", "text": \n', 2, None, "invalid JSON"),
        ('{"_id": "a", "text": "x"}\n{"title": "no id", "text": "y"}\n', 2, "_id", "missing id"),
        ('{"_id": "a", "text": 5}\n', 1, "text", "expected a string"),
        ('{"_id": "a", "title": "t"}\n', 1, "text", "missing text"),
        ('{"_id": "a", "text": "x"}\n\n{"_id": "a", "text": "y"}\n', 3, "_id", "duplicate document id"),
        ('[1, 2]\n', 1, None, "expected a JSON object"),
    ],
)
def test_malformed_jsonl_names_file_line_field(tmp_path, content, line, field, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=message) as info:
        list(read_documents(path))
    assert info.value.file == str(path) and info.value.line == line and info.value.field == field
    assert f"line {line}" in str(info.value) and str(path) in str(info.value)


def test_bad_qrels_grade_and_unknown_source(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text("q1\td1\thigh\n")
    with pytest.raises(InputError, match="line 1, field 'score'"):
        read_qrels(path)
    with pytest.raises(InputError, match="no such file"):
        list(read_documents(tmp_path / "missing.jsonl"))
    with pytest.raises(TremorError, match="ir_datasets"):
        list(read_documents("not-a-dataset/at-all"))
