"""Corpus to index directory: read documents, encode them, build the index, write everything atomically."""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterable
from pathlib import Path

from tqdm.auto import tqdm

from tremor.corpus import Document, corpus_path, count_lines, is_local, read_documents
from tremor.encoders import SparseEncoder, get_encoder
from tremor.errors import TremorError
from tremor.index import index_class, parse_index_spec
from tremor.index.docstore import DOCSTORE_FILE, write_docstore
from tremor.index.storage import atomic_directory, save_arrays, write_manifest
from tremor.sparse import SparseVectors


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
                extra_manifest: dict | None = None, overwrite: bool = False) -> Path:
    """Persist a built index (plus its encoder and document store) as an index directory, atomically."""
    out = Path(out)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        entries = save_arrays(tmp, index.arrays())
        if encoder is not None:
            encoder.save(tmp / "encoder")
        if documents is not None:
            write_docstore(tmp / DOCSTORE_FILE, documents)
        write_manifest(tmp, {
            "index_type": index.index_type,
            "params": index.params(),
            "arrays": entries,
            "vocab_size": index.vocab_size,
            "vocab_id": index.vocab_id,
            "encoder": encoder.config() if encoder is not None and hasattr(encoder, "config") else None,
            "counts": {"documents": index.n_docs},
            **(extra_manifest or {}),
        })
    return out


def build_index(corpus: str | Path | Iterable[Document], out: str | Path, encoder: str | SparseEncoder = "bm25",
                index: str = "exact", overwrite: bool = False, batch_size: int = 256, progress: bool = True,
                **index_params) -> Path:
    """Build an index directory from a corpus (BEIR folder, JSONL/TSV file, ir_datasets id or Document iterable).

    ``index`` is a spec such as ``"exact"`` or ``"seismic,lambda=3000"``; keyword arguments add build parameters.
    Returns the index path. Nothing appears under ``out`` unless the whole build succeeds.
    """
    started = time.perf_counter()
    out = Path(out)
    if out.exists() and not overwrite:
        raise TremorError(f"{out} already exists; choose another path or pass overwrite=True (--overwrite)")
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
    encoder = get_encoder(encoder)
    vectors = encode_corpus(encoder, [d.full_text for d in documents], batch_size, progress)
    built = index_class(index_type).build(vectors, **params)
    return write_index(out, built, documents, encoder, overwrite=overwrite, extra_manifest={
        "corpus": source, "build_seconds": round(time.perf_counter() - started, 3),
        "counts": {"documents": len(documents), "postings": vectors.nnz}})


def build_index_from_vectors(vectors_dir: str | Path, corpus: str | Path, out: str | Path,
                             encoder: str | SparseEncoder | None = None, index: str = "exact",
                             overwrite: bool = False, progress: bool = True, **index_params) -> Path:
    """Build an index directory from document vectors ``tremor encode`` wrote (nothing is encoded again) and the
    corpus they came from (ids and texts for the document store, in the same order).

    ``encoder`` is the model queries will be encoded with (default: the one the vectors record); its vocabulary must
    be the vectors'. A BM25 index needs the corpus statistics of its encoder: build it from the corpus instead."""
    from tremor.encoders.vector_files import read_vectors
    from tremor.errors import VocabularyMismatchError

    started = time.perf_counter()
    out = Path(out)
    if out.exists() and not overwrite:
        raise TremorError(f"{out} already exists; choose another path or pass overwrite=True (--overwrite)")
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
    index_type, params = parse_index_spec(index)
    params.update(index_params)
    built = index_class(index_type).build(vectors, **params)
    return write_index(out, built, documents, encoder, overwrite=overwrite, extra_manifest={
        "corpus": str(corpus), "vectors": str(vectors_dir), "build_seconds": round(time.perf_counter() - started, 3),
        "counts": {"documents": len(documents), "postings": vectors.nnz}})
