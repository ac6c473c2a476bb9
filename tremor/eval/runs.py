"""TREC run files and the BEIR retrieval protocol applied to a run.

A run is ``{query id: {doc id: score}}`` with each query's hits in rank order (dicts keep insertion order). On disk it
is the TREC format, one hit per line: ``qid Q0 docid rank score tag``.
"""

from __future__ import annotations

import os
from pathlib import Path

from tremor.errors import InputError, TremorError

Run = dict[str, dict[str, float]]


def cut_run(run: Run, depth: int, remove_query_ids: bool = True) -> Run:
    """Each query's best ``depth`` hits; with ``remove_query_ids``, first drop a hit whose document id equals its
    query id (BEIR's protocol: ArguAna and Quora hold the query itself in the corpus)."""
    out: Run = {}
    for qid, hits in run.items():
        kept = ranked({doc: s for doc, s in hits.items() if doc != qid} if remove_query_ids else hits)
        out[qid] = dict(kept[:depth])
    return out


def ranked(hits: dict[str, float]) -> list[tuple[str, float]]:
    """(doc id, score) by score descending; hits with equal scores keep the engine's order."""
    return sorted(hits.items(), key=lambda item: -item[1])


def write_run(path: str | Path, run: Run, tag: str = "tremor") -> Path:
    """Write a run as a TREC run file, atomically (a temporary file renamed into place)."""
    path = Path(path)
    if not tag or any(c.isspace() for c in tag):
        raise TremorError(f"run tag must be one word without spaces (got '{tag}')")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            for qid, hits in run.items():
                for rank, (doc, score) in enumerate(ranked(hits), start=1):
                    if any(c.isspace() for c in qid + doc):
                        raise TremorError(f"ids with spaces cannot go into a TREC run file: '{qid}' / '{doc}'")
                    handle.write(f"{qid} Q0 {doc} {rank} {float(score)!r} {tag}\n")
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path


def read_run(path: str | Path) -> Run:
    """Read a TREC run file (6 whitespace-separated columns); hits are ordered by score as trec_eval reads them."""
    path = Path(path)
    run: Run = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 6:
                    raise InputError(f"expected 6 columns (qid Q0 docid rank score tag), got {len(parts)}",
                                     file=path, line=line_no)
                qid, _, doc, _, score, _ = parts
                try:
                    value = float(score)
                except ValueError:
                    raise InputError(f"score '{score}' is not a number", file=path, line=line_no,
                                     field="score") from None
                hits = run.setdefault(qid, {})
                if doc in hits:
                    raise InputError(f"document '{doc}' appears twice for query '{qid}'", file=path, line=line_no)
                hits[doc] = value
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read run file: {exc}", file=path) from None
    return {qid: dict(ranked(hits)) for qid, hits in run.items()}
