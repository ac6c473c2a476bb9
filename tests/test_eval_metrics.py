"""tremor's metrics equal pytrec_eval's on hand-made and random runs with graded qrels and tied scores."""

import numpy as np
import pytest
import pytrec_eval

from tremor.errors import TremorError
from tremor.eval.metrics import DEFAULT_MEASURES, evaluate_run, label
from tremor.eval.runs import read_run, write_run

PYTREC = {"nDCG@10": "ndcg_cut_10", "R@100": "recall_100", "R@1000": "recall_1000", "AP": "map"}

QRELS = {
    "q1": {"a": 3, "b": 1, "c": 0, "z": 2},     # graded, one judged non-relevant, one relevant never retrieved
    "q2": {"x": 1},                             # relevant document at rank 11: counts for R@100, not for MRR@10
    "q3": {"r": 2},                             # no hits at all: 0 everywhere, still averaged in
    "q4": {"n": 0},                             # judged, nothing relevant
    "q5": {"m": 1, "k": 2},                     # ties around the relevant documents
}
RUN = {
    "q1": {"c": 3.0, "a": 2.5, "d": 2.5, "b": 1.0, "e": 0.5},
    "q2": {**{f"p{i:02d}": 10.0 - i for i in range(10)}, "x": 0.1},
    "q4": {"n": 1.0, "o": 0.5},
    "q5": {"a1": 1.0, "m": 1.0, "k": 1.0, "zz": 1.0, "b1": 0.5},
    "q9": {"a": 1.0},                           # not judged: ignored
}


def trec_rank(hits: dict[str, float]) -> list[str]:
    """trec_eval's order, written out independently: score descending, then document id descending."""
    return sorted(hits, key=lambda doc: (-hits[doc], [-ord(ch) for ch in doc] + [1]))


def pytrec_reference(run, qrels):
    """Per-query values from pytrec_eval itself; MRR@10 as recip_rank over each query's trec_eval top 10."""
    judged = {qid: hits for qid, hits in run.items() if qid in qrels}
    values = pytrec_eval.RelevanceEvaluator(qrels, set(PYTREC.values())).evaluate(judged)
    top10 = {qid: {doc: hits[doc] for doc in trec_rank(hits)[:10]} for qid, hits in judged.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    out = {}
    for qid in qrels:
        if qid in values:
            out[qid] = {name: values[qid][key] for name, key in PYTREC.items()}
            out[qid]["RR@10"] = rr[qid]["recip_rank"]
    return out


def check_against_pytrec(run, qrels):
    ours = evaluate_run(run, qrels)
    reference = pytrec_reference(run, qrels)
    assert set(ours.per_query) == set(qrels)
    for qid in qrels:
        for name in DEFAULT_MEASURES:
            # pytrec_eval leaves out a query without hits; it scores 0 (trec_eval -c)
            expected = reference[qid][name] if qid in reference else 0.0
            assert ours.per_query[qid][name] == pytest.approx(expected, abs=1e-12), (qid, name)
    for name in DEFAULT_MEASURES:
        expected = sum(reference.get(qid, {}).get(name, 0.0) for qid in qrels) / len(qrels)
        assert ours.aggregate[name] == pytest.approx(expected, abs=1e-12), name
    return ours


def test_hand_made_run_matches_pytrec_eval():
    ours = check_against_pytrec(RUN, QRELS)
    # spot values worked out by hand
    assert ours.per_query["q2"]["RR@10"] == 0.0 and ours.per_query["q2"]["R@100"] == 1.0
    assert ours.per_query["q3"] == {name: 0.0 for name in DEFAULT_MEASURES}
    # q1 ranks c (grade 0), then d before a (tied at 2.5: trec_eval puts the larger id first), so a is third
    assert trec_rank(RUN["q1"]) == ["c", "d", "a", "b", "e"]
    assert ours.per_query["q1"]["RR@10"] == pytest.approx(1 / 3)
    assert ours.per_query["q1"]["R@100"] == pytest.approx(2 / 3)  # a, b of a, b, z
    # q5: ties at 1.0 ranked zz, m, k, a1 by trec_eval, so the first relevant document is at rank 2
    assert ours.per_query["q5"]["RR@10"] == 0.5
    # nDCG uses the grades: q1's ideal ranking is a(3), z(2), b(1)
    gains = [QRELS["q1"].get(doc, 0) for doc in trec_rank(RUN["q1"])]
    dcg = sum(g / np.log2(i + 2) for i, g in enumerate(gains))
    idcg = sum(g / np.log2(i + 2) for i, g in enumerate([3, 2, 1]))
    assert ours.per_query["q1"]["nDCG@10"] == pytest.approx(dcg / idcg, abs=1e-12)


def test_random_runs_with_ties_match_pytrec_eval():
    rng = np.random.default_rng(7)
    qrels, run = {}, {}
    for q in range(25):
        qid = f"q{q}"
        docs = [f"d{i}" for i in rng.choice(3000, size=1300, replace=False)]
        scores = np.round(rng.random(len(docs)) * 40) / 4  # coarse scores: many ties
        run[qid] = {d: float(s) for d, s in zip(docs, scores, strict=True)}
        judged = rng.choice(3000, size=40, replace=False)
        qrels[qid] = {f"d{i}": int(g) for i, g in zip(judged, rng.integers(0, 4, size=40), strict=True)}
    qrels["q-empty"] = {"d1": 2}
    check_against_pytrec(run, qrels)


def test_metrics_survive_a_trec_run_file(tmp_path):
    path = write_run(tmp_path / "run.trec", RUN, tag="hand")
    assert evaluate_run(read_run(path), QRELS).per_query == evaluate_run(RUN, QRELS).per_query


def test_labels_and_bad_measures():
    assert [label(m) for m in DEFAULT_MEASURES] == ["nDCG@10", "R@100", "R@1000", "MRR@10", "MAP"]
    with pytest.raises(TremorError, match="unknown measure"):
        evaluate_run(RUN, QRELS, ["nDCG@ten"])
    with pytest.raises(TremorError, match="no relevance judgements"):
        evaluate_run(RUN, {})
    extra = evaluate_run(RUN, QRELS, ["P@5", "Judged@10"])
    assert extra.per_query["q1"]["P@5"] == pytest.approx(2 / 5)
