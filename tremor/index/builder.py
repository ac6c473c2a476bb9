"""Corpus to index directory: read documents, encode them, build the index, write everything atomically."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path

from tqdm.auto import tqdm

from tremor.corpus import Document, corpus_path, count_lines, is_local, read_documents
from tremor.encoders import SparseEncoder, get_encoder
from tremor.errors import TremorError
from tremor.index import index_class, parse_index_spec
from tremor.index.docstore import DOCSTORE_FILE, DocStore, write_docstore
from tremor.index.storage import (
    atomic_directory,
    check_replaceable,
    file_entries,
    save_arrays,
    sequence_hash,
    tree_files,
    write_manifest,
)
from tremor.sparse import SparseVectors

ENCODER_DIR = "encoder"


def encode_corpus(encoder: SparseEncoder, texts: list[str], batch_size: int = 256,
                  progress: bool = True) -> SparseVectors:
    """Document vectors for ``texts``; a corpus-statistics encoder (BM25) is fitted on them first."""
    if hasattr(encoder, "fit_encode") and not getattr(encoder, "fitted", True):
        return encoder.fit_encode(tqdm(texts, desc="encoding", unit="doc", disable=not progress))
    if "progress" in inspect.signature(encoder.encode_documents).parameters:
        # the encoder batches by length over the whole corpus and reports its own progress
        return encoder.encode_documents(texts, progress=progress)
    parts = []
    with tqdm(total=len(texts), desc="encoding", unit="doc", disable=not progress) as bar:
        for start in range(0, len(texts), batch_size):
            parts.append(encoder.encode_documents(texts[start:start + batch_size]))
            bar.update(min(batch_size, len(texts) - start))
    return SparseVectors.concat(parts)


def write_index(out: str | Path, index, documents: list[Document] | None, encoder: SparseEncoder | None,
                extra_manifest: dict | None = None, overwrite: bool = False, drop_dense: bool = False) -> Path:
    """Persist a built index (plus its encoder and document store) as an index directory, atomically.

    Replacing an index that has a dense side (``dense/``) keeps it when the documents (ids, titles, texts) are
    unchanged; otherwise it is refused unless ``drop_dense`` (re-encoding it can take many minutes)."""
    out = Path(out)
    check_replaceable(out, overwrite)
    keep = dense_to_keep(out, documents, drop_dense) if overwrite else None
    with atomic_directory(out, overwrite=overwrite) as tmp:
        entries = save_arrays(tmp, index.arrays())
        if encoder is not None:
            encoder.save(tmp / ENCODER_DIR)
        if documents is not None:
            write_docstore(tmp / DOCSTORE_FILE, documents)
        files = file_entries(tmp, [*tree_files(tmp, ENCODER_DIR), *([DOCSTORE_FILE] if documents is not None else [])])
        if keep is not None:
            _copy_tree(keep, tmp / DENSE_DIR)
        write_manifest(tmp, {
            "index_type": index.index_type,
            "params": index.params(),
            "arrays": entries,
            "files": files,
            "vocab_size": index.vocab_size,
            "vocab_id": index.vocab_id,
            "encoder": encoder.config() if encoder is not None and hasattr(encoder, "config") else None,
            "counts": {"documents": index.n_docs},
            **(extra_manifest or {}),
        })
    return out


DENSE_DIR = "dense"  # tremor.search.dense keeps its dense index here


def documents_hash(documents: Iterable[Document]) -> str:
    """A hash of documents in order (ids, titles and texts): equal hashes mean embeddings of them still hold."""
    return sequence_hash([json.dumps([d.id, d.title, d.text], ensure_ascii=False) for d in documents])


def dense_to_keep(out: Path, documents: list[Document] | None, drop_dense: bool) -> Path | None:
    """The dense folder of the index at ``out`` to carry into its replacement: its documents are unchanged. None
    when there is none, or ``drop_dense``; a TremorError when it would be lost without ``drop_dense``."""
    dense = out / DENSE_DIR
    if drop_dense or not dense.is_dir():
        return None
    same = False
    if documents is not None and (out / DOCSTORE_FILE).is_file():
        try:
            store = DocStore(out / DOCSTORE_FILE)
            try:
                same = store.count == len(documents) and \
                    documents_hash(store.get(range(store.count))) == documents_hash(documents)
            finally:
                store.close()
        except TremorError:
            same = False
    if same:
        return dense
    raise TremorError(f"{dense} holds a dense index (embeddings of the current documents, slow to recompute) and "
                      "the new documents differ, so replacing the index would delete it; pass --drop-dense "
                      "(drop_dense=True) to accept that, or build to another path")


def _copy_tree(source: Path, target: Path) -> None:
    """Copy a folder, hard-linking files where the file system allows (the files are never modified in place)."""

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link_or_copy)


def build_index(corpus: str | Path | Iterable[Document], out: str | Path, encoder: str | SparseEncoder = "bm25",
                index: str = "exact", overwrite: bool = False, batch_size: int = 256, progress: bool = True,
                drop_dense: bool = False, **index_params) -> Path:
    """Build an index directory from a corpus (BEIR folder, JSONL/TSV file, ir_datasets id or Document iterable).

    ``index`` is a spec such as ``"exact"`` or ``"seismic,lambda=3000"``; keyword arguments add build parameters.
    Returns the index path. Nothing appears under ``out`` unless the whole build succeeds. ``overwrite`` replaces
    only an existing tremor index; its dense side is kept when the documents are unchanged, else refused unless
    ``drop_dense``.
    """
    started = time.perf_counter()
    out = Path(out)
    check_replaceable(out, overwrite)
    index_type, params = parse_index_spec(index)
    params.update(index_params)
    if isinstance(corpus, (str, Path)):
        total = count_lines(corpus_path(corpus)) if is_local(corpus) else None
        source = str(corpus)
        documents = list(tqdm(read_documents(corpus), total=total, desc="reading", unit="doc",
                              disable=not progress))
    else:
        source = "<python>"
        documents = list(corpus)
    if not documents:
        raise TremorError(f"{source}: the corpus has no documents")
    if overwrite:
        dense_to_keep(out, documents, drop_dense)  # refuse now rather than after encoding
    encoder = get_encoder(encoder)
    vectors = encode_corpus(encoder, [d.full_text for d in documents], batch_size, progress)
    index_cls = index_class(index_type)
    if "progress" in inspect.signature(index_cls.build).parameters:
        params.setdefault("progress", progress)
    built = index_cls.build(vectors, **params)
    return write_index(out, built, documents, encoder, overwrite=overwrite, drop_dense=drop_dense, extra_manifest={
        "corpus": source, "build_seconds": round(time.perf_counter() - started, 3),
        "counts": {"documents": len(documents), "postings": vectors.nnz}})


def build_index_from_vectors(vectors_dir: str | Path, corpus: str | Path, out: str | Path,
                             encoder: str | SparseEncoder | None = None, index: str = "exact",
                             overwrite: bool = False, progress: bool = True, drop_dense: bool = False,
                             **index_params) -> Path:
    """Build an index directory from document vectors ``tremor encode`` wrote (nothing is encoded again) and the
    corpus they came from (ids and texts for the document store, in the same order).

    ``encoder`` is the model queries will be encoded with (default: the one the vectors record); its vocabulary must
    be the vectors'. A BM25 index needs the corpus statistics of its encoder: build it from the corpus instead."""
    from tremor.encoders.vector_files import read_vectors
    from tremor.errors import VocabularyMismatchError

    started = time.perf_counter()
    out = Path(out)
    check_replaceable(out, overwrite)
    ids, vectors, meta = read_vectors(vectors_dir, mmap=False)
    if meta.get("side") != "document":
        raise TremorError(f"{vectors_dir}: holds {meta.get('side')} vectors; an index needs document vectors")
    recorded = meta.get("encoder") or {}
    if encoder is None:
        encoder = recorded.get("named_model") or recorded.get("model")
        if not encoder:
            raise TremorError(f"{vectors_dir}: records no encoder; name the one queries will use (--encoder)")
    if isinstance(encoder, str) and encoder.lower() == "bm25":
        raise TremorError("a BM25 index needs its encoder's corpus statistics; build it from the corpus "
                          "('tremor index build --corpus ... --encoder bm25')")
    encoder = get_encoder(encoder)
    if vectors.vocab_id != encoder.vocab_id:
        raise VocabularyMismatchError(f"{vectors_dir}: vectors of vocabulary {vectors.vocab_id}, but the encoder "
                                      f"has {encoder.vocab_id}; encode the corpus with this encoder")
    documents = list(tqdm(read_documents(corpus), desc="reading", unit="doc", disable=not progress))
    if len(documents) != len(ids):
        raise TremorError(f"{vectors_dir}: {len(ids)} vectors but {corpus} has {len(documents)} documents")
    for number, (doc, vector_id) in enumerate(zip(documents, ids, strict=True)):
        if doc.id != vector_id:
            raise TremorError(f"{vectors_dir}: vector {number} has id '{vector_id}' but document {number} of "
                              f"{corpus} has id '{doc.id}'; the vectors were encoded from another corpus")
    if overwrite:
        dense_to_keep(out, documents, drop_dense)  # refuse now rather than after building
    index_type, params = parse_index_spec(index)
    params.update(index_params)
    index_cls = index_class(index_type)
    if "progress" in inspect.signature(index_cls.build).parameters:
        params.setdefault("progress", progress)
    built = index_cls.build(vectors, **params)
    return write_index(out, built, documents, encoder, overwrite=overwrite, drop_dense=drop_dense, extra_manifest={
        "corpus": str(corpus), "vectors": str(vectors_dir), "build_seconds": round(time.perf_counter() - started, 3),
        "counts": {"documents": len(documents), "postings": vectors.nnz}})
