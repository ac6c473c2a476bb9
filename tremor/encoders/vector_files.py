"""Encoded vectors on disk, as ``tremor encode`` writes them.

``npy`` (read back with ``read_vectors``)::

    OUT/
      vectors.json     format, version, side, source, count, vocab_size, vocab_id, encoder settings, array entries
      ids.json         the texts' ids, in row order
      arrays/{indptr,indices,values}.npy    the CSR arrays of SparseVectors

``jsonl``: one line per text, ``{"id": ..., "contents": ..., "vector": {token: weight}}``, the JSON vector collection
layout Anserini/Pyserini index as impact postings. Both are written to a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tremor.errors import IndexFormatError, TremorError
from tremor.index.storage import atomic_directory, load_arrays, replaceable_if, save_arrays
from tremor.sparse import SparseVectors

VECTORS_FORMAT = "tremor-vectors"
VECTORS_VERSION = 1
VECTORS_FILE = "vectors.json"


def write_vectors(out: str | Path, vectors: SparseVectors, ids: Sequence[str], meta: dict[str, Any] | None = None,
                  overwrite: bool = False) -> Path:
    """Write ``vectors`` with their ids as an ``npy`` vectors directory (atomically)."""
    if len(ids) != len(vectors):
        raise TremorError(f"write_vectors: {len(ids)} ids for {len(vectors)} vectors")
    out = Path(out)
    with atomic_directory(out, overwrite=overwrite, replaceable=replaceable_if(VECTORS_FILE, VECTORS_FORMAT)) as tmp:
        entries = save_arrays(tmp, {"indptr": vectors.indptr, "indices": vectors.indices, "values": vectors.values})
        (tmp / "ids.json").write_text(json.dumps(list(ids), ensure_ascii=False), encoding="utf-8")
        body = {"format": VECTORS_FORMAT, "version": VECTORS_VERSION, "count": len(vectors),
                "vocab_size": vectors.vocab_size, "vocab_id": vectors.vocab_id, "arrays": entries, **(meta or {})}
        (tmp / VECTORS_FILE).write_text(json.dumps(body, indent=2, sort_keys=True), encoding="utf-8")
    return out


def read_vectors(path: str | Path, mmap: bool = True) -> tuple[list[str], SparseVectors, dict[str, Any]]:
    """(ids, vectors, metadata) of an ``npy`` vectors directory."""
    path = Path(path)
    meta_path = path / VECTORS_FILE
    if not meta_path.is_file():
        raise IndexFormatError(f"{path}: not a tremor vectors directory (no {VECTORS_FILE})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != VECTORS_FORMAT or meta.get("version") != VECTORS_VERSION:
            raise IndexFormatError(f"{meta_path}: not {VECTORS_FORMAT} version {VECTORS_VERSION}")
        arrays = load_arrays(path, meta["arrays"], mmap=mmap)
        ids = json.loads((path / "ids.json").read_text(encoding="utf-8"))
        vectors = SparseVectors(arrays["indptr"], arrays["indices"], arrays["values"], meta["vocab_size"],
                                meta.get("vocab_id"))
    except (OSError, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{path}: vectors directory incomplete or corrupt ({exc})") from None
    if len(ids) != len(vectors):
        raise IndexFormatError(f"{path}: {len(ids)} ids for {len(vectors)} vectors")
    return ids, vectors, meta


def write_vectors_jsonl(out: str | Path, vectors: SparseVectors, ids: Sequence[str], texts: Sequence[str],
                        tokens: Callable[[Sequence[int]], list[str]], overwrite: bool = False) -> Path:
    """Write one ``{"id", "contents", "vector": {token: weight}}`` line per vector (atomically)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise TremorError(f"{out} already exists; choose another path or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            for i, (doc_id, text) in enumerate(zip(ids, texts, strict=True)):
                indices, values = vectors.row(i)
                vector = dict(zip(tokens(indices), values.tolist(), strict=True))
                handle.write(json.dumps({"id": doc_id, "contents": text, "vector": vector}, ensure_ascii=False))
                handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, out)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return out
