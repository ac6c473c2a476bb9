"""Training data from what exists offline: BEIR train splits, title pseudo-queries, and BM25-mined hard negatives.

A training example is a query with one positive document and a few hard negatives (documents BM25 ranks high that
are not judged relevant). Teachers later score each example's candidates (positive first, then negatives).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tremor.corpus import Document, read_documents, read_qrels, read_queries
from tremor.errors import InputError, TremorError


@dataclass
class Example:
    """One query, its positive document id, hard-negative document ids, and (once scored) the combined teacher
    scores for [positive, *negatives]."""

    query: str
    positive: str
    negatives: list[str]
    teacher_scores: list[float] | None = None
    source: str = ""
    teachers: dict[str, list[float]] | None = None  # each teacher's raw scores, kept for other ensembles
    with_titles: bool = True

    def document_text(self, document: Document) -> str:
        """The text the model sees for a candidate: title + text, or text alone for title pseudo-queries."""
        return document.full_text if self.with_titles else document.text

    @property
    def candidates(self) -> list[str]:
        return [self.positive, *self.negatives]


def judged_pairs(root: str | Path, split: str, source: str = "") -> list[tuple[str, str, str]]:
    """(query text, relevant doc id, source) for every positive judgement of a BEIR split."""
    qrels = read_qrels(root, split)
    queries = {q.id: q.text for q in read_queries(root, ids=set(qrels))}
    pairs = []
    for qid, judged in qrels.items():
        for doc_id, grade in judged.items():
            if grade > 0 and qid in queries:
                pairs.append((queries[qid], doc_id, source or f"{Path(root).name}/{split}"))
    return pairs


def title_pairs(documents: Sequence[Document], min_words: int = 4,
                source: str = "titles") -> list[tuple[str, str, str]]:
    """Pseudo-queries: a document's title as a query for its own text (titles with at least ``min_words`` words).
    The model then sees the candidates without their titles, so the pair teaches matching across wording."""
    return [(d.title, d.id, source) for d in documents if len(d.title.split()) >= min_words]


def mine_negatives(pairs: Sequence[tuple[str, str, str]], searcher, n_negatives: int = 7, depth: int = 50,
                   relevant: dict[str, set[str]] | None = None, seed: int = 0) -> list[Example]:
    """Hard negatives from BM25: for each (query, positive) pair, sample ``n_negatives`` of the top-``depth``
    documents that are neither the positive nor otherwise judged relevant for that query. Pairs for which BM25 finds
    too few candidates are dropped."""
    rng = random.Random(seed)
    texts = [query for query, _, _ in pairs]
    _, numbers = searcher.search_vectors(searcher.encode_queries(texts), k=depth)
    ids = searcher.docstore.ids()
    examples = []
    for (query, positive, source), row in zip(pairs, numbers, strict=True):
        excluded = {positive} | (relevant or {}).get(query, set())
        pool = [ids[n] for n in row if n >= 0 and ids[n] not in excluded]
        if len(pool) < n_negatives:
            continue
        examples.append(Example(query, positive, rng.sample(pool, n_negatives), source=source,
                                with_titles=source != "titles"))
    return examples


def relevant_by_query(pairs: Sequence[tuple[str, str, str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for query, doc_id, _ in pairs:
        out.setdefault(query, set()).add(doc_id)
    return out


def save_examples(path: Path, examples: Sequence[Example]) -> None:
    """Write examples as JSONL (atomically)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for example in examples:
            handle.write(json.dumps(asdict(example), ensure_ascii=False) + "\n")
    tmp.replace(path)


def load_examples(path: Path) -> list[Example]:
    examples = []
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            try:
                examples.append(Example(**json.loads(line)))
            except (json.JSONDecodeError, TypeError) as exc:
                raise InputError(f"not a training example ({exc})", file=path, line=line_no) from None
    return examples


def load_corpus(root: str | Path) -> dict[str, Document]:
    return {d.id: d for d in read_documents(root)}


def split_examples(examples: list[Example], held_out: float, seed: int = 0) -> tuple[list[Example], list[Example]]:
    """Shuffle and split into (train, held-out) for validation during training."""
    order = np.random.default_rng(seed).permutation(len(examples))
    cut = int(len(examples) * (1 - held_out))
    return [examples[i] for i in order[:cut]], [examples[i] for i in order[cut:]]


def clean_positives(examples: Sequence[Example], sources: Sequence[str], teacher: str = "dense") -> list[Example]:
    """Drop the examples of ``sources`` (source prefixes, e.g. "nfcorpus") whose judged positive the ``teacher``
    does not score above every one of its hard negatives: a judgement the teacher disagrees with is a noisy positive
    for a contrastive loss. Examples of other sources are kept as they are."""
    kept = []
    for example in examples:
        if example.source.startswith(tuple(sources)):
            scores = (example.teachers or {}).get(teacher)
            if scores is None:
                raise TremorError(f"example for {example.query!r} has no '{teacher}' teacher scores; run prepare")
            if scores[0] <= max(scores[1:], default=float("-inf")):
                continue
        kept.append(example)
    return kept
