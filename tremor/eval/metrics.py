"""Retrieval metrics through ir_measures, per query and averaged, with trec_eval's ranking rules throughout.

Every measure is computed by ir_measures' pytrec_eval provider, so all of them rank a query's hits the way trec_eval
does (score descending, ties by document id descending) and average over every judged query (a query without hits
counts as 0, as ``trec_eval -c`` does). Two details are handled here because ir_measures does not: pytrec_eval has
no reciprocal rank with a cutoff (its provider silently ignores ``RR@10``'s cutoff, and the default pipeline sends
``RR@10`` to the MS MARCO provider, which breaks ties differently), so ``RR@k`` is pytrec_eval's ``recip_rank`` over
each query's top k in trec_eval order. Measures pytrec_eval cannot compute go through ir_measures' default pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ir_measures

from tremor.corpus import Qrels
from tremor.errors import TremorError
from tremor.eval.runs import Run

# nDCG@10 is BEIR's headline measure; the recalls say how much a reranker could still find.
DEFAULT_MEASURES = ("nDCG@10", "R@100", "R@1000", "RR@10", "AP")
LABELS = {"RR@10": "MRR@10", "AP": "MAP"}


def label(measure: str) -> str:
    """The name tables print for an ir_measures measure string (``RR@10`` → ``MRR@10``, ``AP`` → ``MAP``)."""
    return LABELS.get(measure, measure)


@dataclass(frozen=True)
class Evaluation:
    """Aggregate values {measure: mean over judged queries} and per-query values {query id: {measure: value}}."""

    measures: tuple[str, ...]
    aggregate: dict[str, float]
    per_query: dict[str, dict[str, float]]

    def to_dict(self) -> dict:
        return {"measures": list(self.measures), "aggregate": self.aggregate, "per_query": self.per_query}


def _parse(measure: str):
    try:
        return ir_measures.parse_measure(measure)
    except (ValueError, NameError, AttributeError) as exc:
        raise TremorError(f"unknown measure '{measure}' ({exc}); use ir_measures names such as nDCG@10, R@100, "
                          "RR@10, AP") from None


def parse_measures(measures: Sequence[str]) -> tuple[str, ...]:
    """Check measure names early (before any index is built); TremorError names the first unknown one."""
    for name in measures:
        _parse(name)
    return tuple(measures)


def trec_order(hits: dict[str, float]) -> list[str]:
    """Document ids ranked as trec_eval ranks them: score descending, ties by document id descending."""
    return [doc for doc, _ in sorted(hits.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def truncate(run: Run, depth: int) -> Run:
    """Each query's top ``depth`` hits in trec_eval order."""
    return {qid: {doc: hits[doc] for doc in trec_order(hits)[:depth]} for qid, hits in run.items()}


def evaluate_run(run: Run, qrels: Qrels, measures: Sequence[str] = DEFAULT_MEASURES) -> Evaluation:
    """Score a run {query id: {doc id: score}} against graded qrels; see the module docstring for the rules."""
    if not qrels:
        raise TremorError("no relevance judgements to evaluate against")
    provider = ir_measures.pytrec_eval
    per_query: dict[str, dict[str, float]] = {qid: {} for qid in qrels}
    plain, fallback, cut_rr = [], [], []
    for name in measures:
        measure = _parse(name)
        if measure.NAME == "RR" and "cutoff" in measure.params:
            cut_rr.append((name, measure))
        elif provider.supports(measure):
            plain.append((name, measure))
        else:
            fallback.append((name, measure))
    jobs = [(provider, plain, run), (ir_measures, fallback, run)]
    jobs += [(provider, [(name, ir_measures.RR(rel=measure["rel"]))], truncate(run, measure["cutoff"]))
             for name, measure in cut_rr]
    for engine, named, job_run in jobs:
        if not named:
            continue
        names = {measure: name for name, measure in named}
        for metric in engine.iter_calc(list(names), qrels, job_run):
            if metric.query_id in per_query:
                per_query[metric.query_id][names[metric.measure]] = float(metric.value)
    for values in per_query.values():  # a query the provider skipped scores 0, as with trec_eval -c
        for name in measures:
            values.setdefault(name, 0.0)
    aggregate = {name: sum(v[name] for v in per_query.values()) / len(per_query) for name in measures}
    return Evaluation(tuple(measures), aggregate, per_query)
