"""Evaluation datasets: a corpus, the queries of one split and their graded relevance judgements.

A dataset comes from a local BEIR folder (``corpus.jsonl[.gz]``, ``queries.jsonl[.gz]``, ``qrels/<split>.tsv``) or an
ir_datasets id such as ``beir/scifact/test`` (the split is part of the id). Both are read through ``tremor.corpus``
and turned into one ``Dataset`` at once; only the queries that have judgements in the split are kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tremor.corpus import Document, Qrels, Query, is_local, read_documents, read_qrels, read_queries
from tremor.errors import InputError, TremorError


@dataclass(frozen=True)
class Dataset:
    """One evaluation set: ``corpus`` (a path or an ir_datasets id) plus the queries and qrels of one split."""

    name: str
    corpus: str
    split: str
    queries: list[Query]
    qrels: Qrels = field(repr=False)

    def documents(self) -> Iterator[Document]:
        """Iterate over the corpus (read lazily, every call reads it again)."""
        return read_documents(self.corpus)


def available_splits(folder: str | Path) -> list[str]:
    """The splits a BEIR folder has judgements for (the stems of ``qrels/*.tsv``)."""
    qrels_dir = Path(folder) / "qrels"
    return sorted(p.name.split(".")[0] for p in qrels_dir.glob("*.tsv*")) if qrels_dir.is_dir() else []


def _looks_like_ir_datasets_id(source: str) -> bool:
    return "/" in source and not source.startswith((".", "/", "~")) and not is_local(source)


def _check_ir_dataset(dataset_id: str, need_queries: bool, need_qrels: bool) -> None:
    """Fail early, without downloading anything, when an ir_datasets id is unknown or lacks queries or qrels."""
    import ir_datasets

    try:
        dataset = ir_datasets.load(dataset_id)
    except KeyError:
        raise TremorError(f"'{dataset_id}' is neither an existing path nor a known ir_datasets id") from None
    for needed, has, what in ((need_queries, "has_queries", "queries"), (need_qrels, "has_qrels", "qrels")):
        if needed and not getattr(dataset, has)():
            raise TremorError(f"ir_datasets '{dataset_id}' has no {what}; name a split, e.g. 'beir/scifact/test'")


def load_dataset(source: str | Path, split: str = "test", queries: str | Path | None = None,
                 qrels: str | Path | None = None) -> Dataset:
    """Read a BEIR folder (queries of ``split``) or an ir_datasets id; ``queries``/``qrels`` files override the
    folder's own (so a bare JSONL or TSV corpus can be evaluated too)."""
    text = str(source)
    if is_local(text):
        path = Path(text)
        name = path.name if path.is_dir() else path.name.split(".")[0]
        if (qrels is None or queries is None) and not path.is_dir():
            raise InputError("a corpus file needs a queries file and a qrels file (--queries, --qrels); or pass a "
                             "BEIR folder", file=path)
        judged = read_qrels(qrels if qrels is not None else path, split)  # a missing split names the available ones
        query_list = read_queries(queries if queries is not None else path, ids=set(judged))
        corpus = text
    elif _looks_like_ir_datasets_id(text):
        _check_ir_dataset(text, need_queries=queries is None, need_qrels=qrels is None)
        name = text.replace("/", "-")
        split = text.rsplit("/", 1)[-1]
        judged = read_qrels(qrels) if qrels is not None else read_qrels(text)
        query_list = read_queries(queries if queries is not None else text, ids=set(judged))
        corpus = text
    else:
        raise InputError("no such file or folder, and not an ir_datasets id (like 'beir/scifact/test')", file=text)
    if not judged:
        raise TremorError(f"{text}: no relevance judgements for split '{split}'")
    if not query_list:
        raise TremorError(f"{text}: none of the {len(judged)} judged query ids of split '{split}' is among the "
                          "queries")
    return Dataset(name=name, corpus=corpus, split=split, queries=query_list, qrels=judged)
