"""Searcher: an encoder, an index and a document store behind one ``search(text, k)`` call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tremor.encoders import SparseEncoder, load_saved_encoder
from tremor.errors import IndexFormatError, QueryError, TremorError
from tremor.index import open_index_dir
from tremor.index.docstore import DOCSTORE_FILE, DocStore
from tremor.index.segments import is_live
from tremor.index.snapshot import load_snapshot
from tremor.index.storage import check_files
from tremor.sparse import SparseVectors

ENCODER_DIR = "encoder"


@dataclass(frozen=True)
class Hit:
    """One ranked document: external id, score, 1-based rank, and (when asked for) title and text."""

    id: str
    score: float
    rank: int
    title: str | None = None
    text: str | None = None

    def to_dict(self) -> dict:
        out = {"rank": self.rank, "id": self.id, "score": self.score}
        if self.text is not None:
            out["title"] = self.title
            out["text"] = self.text
        return out


def open_index(path: str | Path, mmap: bool = True, verify: bool = False):
    """Load the index object stored in an index directory, with its manifest (arrays memory-mapped)."""
    return load_snapshot(Path(path), lambda root: _open_index_at(root, mmap, verify))


def _open_index_at(path: Path, mmap: bool, verify: bool):
    index, manifest = open_index_dir(path, mmap, verify)
    if index.n_docs != manifest["counts"]["documents"]:
        raise IndexFormatError(f"{path}: the arrays hold {index.n_docs} documents, the manifest says "
                               f"{manifest['counts']['documents']}; rebuild the index")
    return index, manifest


def _load_parts(path: Path, mmap: bool, verify: bool) -> tuple:
    """(index, encoder, docstore, manifest) of the index directory at ``path`` (a pinned view of it)."""
    index, manifest = _open_index_at(path, mmap, verify)
    files = manifest.get("files")
    if files is not None:  # written since manifests list every file: each must be there, as recorded
        check_files(path, files, verify)
        has_encoder = any(name.startswith(f"{ENCODER_DIR}/") for name in files)
        has_docstore = DOCSTORE_FILE in files
    else:  # older manifests: an index built from a corpus always had its document store
        has_encoder = manifest.get("encoder") is not None or (path / ENCODER_DIR).is_dir()
        has_docstore = "corpus" in manifest or (path / DOCSTORE_FILE).exists()
    if has_encoder and not (path / ENCODER_DIR).is_dir():
        raise IndexFormatError(f"{path}: the encoder folder is missing; rebuild the index")
    if has_docstore and not (path / DOCSTORE_FILE).is_file():
        raise IndexFormatError(f"{path}: the document store ({DOCSTORE_FILE}) is missing, so results could not be "
                               "given as document ids; rebuild the index")
    encoder = load_saved_encoder(path / ENCODER_DIR) if has_encoder else None
    docstore = DocStore(path / DOCSTORE_FILE, manifest["counts"].get("documents")) if has_docstore else None
    return index, encoder, docstore, manifest


class Searcher:
    """Search an index with text queries.

    Build one with ``Searcher.load(index_dir)``, or from parts: an index object, the encoder that produced its
    vectors, and optionally a DocStore for ids and texts.
    """

    def __init__(self, index, encoder: SparseEncoder | None = None, docstore: DocStore | None = None,
                 manifest: dict | None = None, **search_params) -> None:
        self.index = index
        self.encoder = encoder
        self.docstore = docstore
        self.manifest = manifest or {}
        self.search_params = search_params
        if encoder is not None and index.vocab_id is not None and encoder.vocab_id != index.vocab_id:
            raise TremorError(f"encoder vocabulary '{encoder.vocab_id}' does not match the index's "
                              f"'{index.vocab_id}'")

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True, verify: bool = False, **search_params) -> Searcher:
        """Open an index directory; ``search_params`` (e.g. query_cut, heap_factor) become the defaults."""
        path = Path(path)
        if (path / "shards.json").is_file():  # a sharded index, searched shard by shard on Ray (tremor[ray])
            from tremor.distributed.search import ShardedSearcher

            return ShardedSearcher.load(path, verify=verify, **search_params)
        if is_live(path):  # a segmented index (commit points): the newest commit is this searcher's snapshot
            from tremor.search.segmented import open_live

            searcher = cls(*open_live(path, mmap=mmap, verify=verify), **search_params)
            searcher.path, searcher._open_args = path, (mmap, verify)
            return searcher
        index, encoder, docstore, manifest = load_snapshot(path, lambda root: _load_parts(root, mmap, verify))
        if docstore is not None:
            docstore.path = path / DOCSTORE_FILE
        searcher = cls(index, encoder, docstore, manifest, **search_params)
        searcher.path, searcher._open_args = path, (mmap, verify)  # refresh() follows it if it becomes live
        return searcher

    @property
    def n_docs(self) -> int:
        return self.index.n_docs

    def encode_queries(self, queries: Sequence[str]) -> SparseVectors:
        if self.encoder is None:
            raise TremorError("this searcher has no encoder; pass query vectors to search_vectors instead")
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise QueryError(f"queries must be a list of strings (got {type(queries).__name__})")
        for i, text in enumerate(queries):
            if not isinstance(text, str):
                raise QueryError(f"query {i} is a {type(text).__name__}, not text; give a string to search for")
            if not text.strip():
                raise QueryError(f"query {i} is empty; give some text to search for")
        return self.encoder.encode_queries(list(queries))

    def search_vectors(self, queries: SparseVectors, k: int = 10, allow=None,
                       **search_params) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, internal doc numbers) for already encoded queries, padded with (-inf, -1). ``allow``:
        external ids or a boolean mask over internal numbers; only those documents may come back."""
        if allow is not None:
            search_params["allow"] = self.allow_mask(allow)
        return self.index.search(queries, k, **{**self.search_params, **search_params})

    def allow_mask(self, allow) -> np.ndarray:
        """A boolean mask over internal numbers from a mask or a sequence of external ids (ids not in the index are
        ignored: they cannot come back anyway)."""
        if isinstance(allow, np.ndarray) and allow.dtype == np.bool_:
            return allow
        if isinstance(allow, str):
            raise QueryError("allow takes a sequence of ids, not one string")
        if self.docstore is None:
            raise TremorError("this searcher has no document store, so ids cannot be resolved; pass a boolean mask")
        lookup = getattr(self, "_id_lookup", None)
        if lookup is None:
            lookup = self._id_lookup = {d: i for i, d in enumerate(self.docstore.ids())}
        mask = np.zeros(self.index.n_docs, dtype=bool)
        numbers = [lookup[d] for d in map(str, allow) if d in lookup]
        mask[np.asarray(numbers, dtype=np.int64)] = True
        return mask

    def refresh(self) -> bool:
        """Move to the newest commit of a live index, if there is a newer one; True when it moved. Until then this
        searcher keeps searching its own snapshot."""
        path = getattr(self, "path", None)
        if path is None or not is_live(path):
            return False
        from tremor.index.segments import read_commit
        from tremor.search.segmented import open_live

        newest = read_commit(path)
        if newest is None or newest["generation"] == self.manifest.get("generation"):
            return False
        index, encoder, docstore, manifest = open_live(path, *self._open_args)
        old = self.docstore
        self.index, self.encoder, self.docstore, self.manifest = index, encoder, docstore, manifest
        self._id_lookup = None
        if old is not None:
            old.close()
        return True

    def batch_search(self, queries: Sequence[str], k: int = 10, with_text: bool = True, allow=None,
                     **search_params) -> list[list[Hit]]:
        """Top-k hits for each query text (``allow``: see ``search_vectors``)."""
        if isinstance(queries, str):
            raise QueryError("batch_search takes a list of queries; use search() for one")
        scores, numbers = self.search_vectors(self.encode_queries(queries), k, allow=allow, **search_params)
        return self.hits(scores, numbers, with_text)

    def search(self, query: str, k: int = 10, with_text: bool = True, allow=None, **search_params) -> list[Hit]:
        """Top-k hits for one query text."""
        if not isinstance(query, str):
            raise QueryError(f"search takes one query string (got {type(query).__name__}); "
                             "use batch_search for a list")
        return self.batch_search([query], k, with_text, allow=allow, **search_params)[0]

    def hits(self, scores: np.ndarray, numbers: np.ndarray, with_text: bool = True) -> list[list[Hit]]:
        """Turn (scores, internal numbers) arrays into Hit lists, resolving ids and texts through the doc store."""
        results = []
        ids = self.docstore.ids() if self.docstore is not None else None
        for row_scores, row_numbers in zip(scores, numbers, strict=True):
            valid = row_numbers >= 0
            row_numbers = row_numbers[valid].tolist()
            row_scores = row_scores[valid].tolist()
            docs = self.docstore.get(row_numbers) if with_text and self.docstore is not None else None
            hits = []
            for rank, (number, score) in enumerate(zip(row_numbers, row_scores, strict=True), start=1):
                doc_id = ids[number] if ids is not None else str(number)
                if docs is not None:
                    hits.append(Hit(doc_id, score, rank, docs[rank - 1].title, docs[rank - 1].text))
                else:
                    hits.append(Hit(doc_id, score, rank))
            results.append(hits)
        return results
