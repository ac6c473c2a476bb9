"""TREC run files and the BEIR protocol (top k, a hit equal to the query id dropped)."""

import pytest

from tremor.errors import InputError, TremorError
from tremor.eval.runs import cut_run, read_run, write_run


def test_cut_run_drops_the_query_itself_then_keeps_k():
    run = {"q1": {"a": 3.0, "q1": 2.5, "b": 2.0, "c": 1.0}, "q2": {"x": 1.0}}
    assert cut_run(run, 2) == {"q1": {"a": 3.0, "b": 2.0}, "q2": {"x": 1.0}}
    assert list(cut_run(run, 2, remove_query_ids=False)["q1"]) == ["a", "q1"]


def test_cut_run_ranks_by_score_and_keeps_engine_order_among_ties():
    run = {"q": {"low": 0.1, "t2": 1.0, "t1": 1.0, "top": 5.0}}
    assert list(cut_run(run, 3)["q"]) == ["top", "t2", "t1"]


def test_run_file_round_trip_keeps_exact_scores(tmp_path):
    run = {"q1": {"d1": 0.1 + 0.2, "d2": 1 / 3, "d3": 1e-9}, "q2": {"d9": 12.5}}
    path = write_run(tmp_path / "out" / "run.trec", run, tag="sys")
    lines = path.read_text().splitlines()
    assert lines[0].split() == ["q1", "Q0", "d2", "1", repr(1 / 3), "sys"]
    assert read_run(path) == {"q1": {"d2": 1 / 3, "d1": 0.1 + 0.2, "d3": 1e-9}, "q2": {"d9": 12.5}}
    assert [p.name for p in path.parent.iterdir()] == ["run.trec"]  # no temporary left behind


def test_write_run_refuses_bad_ids_and_leaves_nothing(tmp_path):
    with pytest.raises(TremorError, match="spaces"):
        write_run(tmp_path / "run.trec", {"q 1": {"d": 1.0}})
    with pytest.raises(TremorError, match="tag"):
        write_run(tmp_path / "run.trec", {"q": {"d": 1.0}}, tag="two words")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("text", "message"), [
    ("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 t\n", "line 2: expected 6 columns"),
    ("q1 Q0 d1 1 high t\n", "line 1, field 'score': score 'high' is not a number"),
    ("q1 Q0 d1 1 0.5 t\nq1 Q0 d1 2 0.4 t\n", "line 2: document 'd1' appears twice"),
])
def test_read_run_names_the_bad_line(tmp_path, text, message):
    path = tmp_path / "bad.run"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_run(path)
    with pytest.raises(InputError, match="cannot read"):
        read_run(tmp_path / "missing.run")
