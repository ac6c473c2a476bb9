"""Dense retrieval with faiss, stored inside an index directory beside the sparse index.

```
INDEX/dense/
  manifest.json    format and version, encoder config (model, dim, pooling), faiss factory string, document count,
                   a hash of the document ids it was built for, and each file's byte size and sha256
  vectors.npy      float32 [n_docs, dim] document embeddings (row i = internal document number i), memory-mapped;
                   kept for every index type because Vector-PRF reads feedback documents' vectors from it
  faiss.index      the trained approximate index (only for a factory string other than "flat")
```

``"flat"`` is exact inner-product search (faiss IndexFlatIP, rebuilt from vectors.npy at load); any other string is
passed to ``faiss.index_factory`` with the inner-product metric (e.g. ``"HNSW32"``, ``"IVF256,Flat"``), and
search-time knobs (``nprobe``, ``efSearch``) go to ``search``. Row numbers are the sparse index's internal document
numbers, so runs from both sides refer to the same documents. The folder is written to a temporary directory and
renamed into place.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import faiss
import numpy as np

from tremor.errors import IndexFormatError, QueryError, TremorError
from tremor.index.docstore import DOCSTORE_FILE, DocStore
from tremor.index.exact import clamp_k
from tremor.index.snapshot import load_snapshot
from tremor.index.storage import (
    atomic_directory,
    check_files,
    check_manifest,
    file_sha256,
    read_manifest,
    replaceable_if,
    sequence_hash,
)

DENSE_DIR = "dense"
DENSE_FORMAT = "tremor-dense"
DENSE_FORMAT_VERSION = 1
VECTORS_FILE = "vectors.npy"
FAISS_FILE = "faiss.index"


def ids_hash(ids: Sequence[str]) -> str:
    """A short hash of the ordered document ids, tying dense rows to the sparse index's document numbers."""
    return sequence_hash(ids)


class DenseIndex:
    """Inner-product search over document embeddings with faiss: exact ("flat") or any faiss factory string."""

    def __init__(self, vectors: np.ndarray, factory: str = "flat", faiss_index: faiss.Index | None = None) -> None:
        if vectors.ndim != 2 or vectors.dtype != np.float32:
            raise TremorError(f"dense vectors must be a float32 matrix (got {vectors.dtype}{list(vectors.shape)})")
        self.vectors = vectors
        self.factory = factory
        if faiss_index is None:
            faiss_index = _make_faiss_index(vectors, factory)
        if faiss_index.ntotal != vectors.shape[0] or faiss_index.d != vectors.shape[1]:
            raise IndexFormatError(f"faiss index holds {faiss_index.ntotal}x{faiss_index.d} vectors, "
                                   f"vectors.npy {vectors.shape[0]}x{vectors.shape[1]}")
        self.faiss_index = faiss_index

    @classmethod
    def build(cls, vectors: np.ndarray, factory: str = "flat") -> DenseIndex:
        """Index ``vectors`` (row i = document i); approximate factory strings are trained on the vectors."""
        return cls(np.ascontiguousarray(vectors, dtype=np.float32), factory)

    @property
    def n_docs(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def document_vectors(self, numbers: np.ndarray) -> np.ndarray:
        """Embeddings of documents by internal number (float32 [..., dim]); -1 gives a zero row."""
        numbers = np.asarray(numbers, dtype=np.int64)
        out = np.asarray(self.vectors)[np.maximum(numbers, 0)]
        out[numbers < 0] = 0.0
        return out

    def search(self, queries: np.ndarray, k: int = 10, **search_params) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores float32 [n, k], doc numbers int64 [n, k]) by inner product, padded with (-inf, -1)."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise QueryError(f"dense queries must be a [n, {self.dim}] matrix (got {list(queries.shape)})")
        k = clamp_k(k, self.n_docs)
        if search_params:
            space = faiss.ParameterSpace()
            for name, value in search_params.items():
                try:
                    space.set_index_parameter(self.faiss_index, name, float(value))
                except RuntimeError as exc:
                    raise QueryError(f"search parameter '{name}' does not apply to a '{self.factory}' dense index "
                                     f"({str(exc).strip().splitlines()[-1]})") from None
        if len(queries) == 0:
            return np.zeros((0, int(k)), np.float32), np.zeros((0, int(k)), np.int64)
        scores, numbers = self.faiss_index.search(queries, int(k))
        scores = scores.astype(np.float32, copy=False)
        scores[numbers < 0] = -np.inf
        return scores, numbers.astype(np.int64, copy=False)

    # --------------------------------------------------------------------------------------------- persistence
    def save(self, directory: Path, encoder_config: dict, doc_ids_hash: str | None = None,
             overwrite: bool = False) -> Path:
        """Write this index as ``directory`` (normally ``INDEX/dense``), atomically."""
        with atomic_directory(directory, overwrite=overwrite,
                              replaceable=replaceable_if("manifest.json", DENSE_FORMAT)) as tmp:
            np.save(tmp / VECTORS_FILE, np.ascontiguousarray(self.vectors), allow_pickle=False)
            files = [VECTORS_FILE]
            if self.factory != "flat":
                faiss.write_index(self.faiss_index, str(tmp / FAISS_FILE))
                files.append(FAISS_FILE)
            manifest = {"format": DENSE_FORMAT, "format_version": DENSE_FORMAT_VERSION,
                        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "factory": self.factory,
                        "metric": "inner_product", "encoder": encoder_config, "dim": self.dim,
                        "n_docs": self.n_docs, "doc_ids_hash": doc_ids_hash,
                        "files": {name: {"bytes": (tmp / name).stat().st_size, "sha256": file_sha256(tmp / name)}
                                  for name in files}}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path, mmap: bool = True, verify: bool = False) -> tuple[DenseIndex, dict]:
        """Open a dense index folder; returns the index and its manifest. Reads one snapshot of the folder even
        while ``add-dense --overwrite`` replaces it (see ``tremor.index.snapshot``)."""
        directory = Path(directory)
        if not (directory / "manifest.json").is_file():
            read_dense_manifest(directory)  # the error saying how to add one
        return load_snapshot(directory, lambda root: cls._load_at(root, mmap, verify))

    @classmethod
    def _load_at(cls, directory: Path, mmap: bool, verify: bool) -> tuple[DenseIndex, dict]:
        manifest = read_dense_manifest(directory)
        hint = "run 'tremor index add-dense --overwrite' again"
        check_files(directory, manifest["files"], verify, hint)
        try:
            vectors = np.load(directory / VECTORS_FILE, mmap_mode="r" if mmap else None, allow_pickle=False)
        except Exception as exc:  # a damaged header fails inside numpy's parser with any of several error types
            raise IndexFormatError(f"{directory}: {VECTORS_FILE} is unreadable ({type(exc).__name__}); {hint}") \
                from None
        if vectors.dtype != np.float32 or list(vectors.shape) != [manifest["n_docs"], manifest["dim"]]:
            raise IndexFormatError(f"{directory}: vectors.npy is {vectors.dtype}{list(vectors.shape)}, manifest "
                                   f"says float32{[manifest['n_docs'], manifest['dim']]}")
        for start in range(0, vectors.shape[0], 1 << 16):
            if not np.isfinite(vectors[start:start + (1 << 16)]).all():
                raise IndexFormatError(f"{directory}: vectors.npy holds values that are not finite; {hint}")
        faiss_index = None
        if FAISS_FILE in manifest["files"]:
            try:
                faiss_index = faiss.read_index(str(directory / FAISS_FILE))
            except RuntimeError as exc:
                raise IndexFormatError(f"{directory}: {FAISS_FILE} is unreadable "
                                       f"({str(exc).strip().splitlines()[-1]}); {hint}") from None
        return cls(vectors, manifest["factory"], faiss_index), manifest


def _make_faiss_index(vectors: np.ndarray, factory: str) -> faiss.Index:
    n, dim = vectors.shape
    if factory == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        try:
            index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise TremorError(f"faiss cannot build '{factory}': {str(exc).strip().splitlines()[-1]}") from None
        if not index.is_trained:
            if n == 0:
                raise TremorError(f"a '{factory}' dense index needs vectors to train on")
            try:
                index.train(np.ascontiguousarray(vectors))
            except RuntimeError as exc:
                raise TremorError(f"faiss cannot train '{factory}' on {n} vectors: "
                                  f"{str(exc).strip().splitlines()[-1]}") from None
    if n:
        index.add(np.ascontiguousarray(vectors))
    return index


def read_dense_manifest(directory: Path) -> dict:
    path = directory / "manifest.json"
    if not path.is_file():
        raise IndexFormatError(f"{directory.parent}: no dense index; add one with 'tremor index add-dense "
                               f"{directory.parent}'")
    return check_manifest(path, DENSE_FORMAT, DENSE_FORMAT_VERSION, ("factory", "encoder", "dim", "n_docs", "files"),
                          "run 'tremor index add-dense --overwrite' again")


class DenseSearcher:
    """A dense index and the encoder for its queries: text → embeddings → faiss top-k."""

    def __init__(self, index: DenseIndex, encoder=None, manifest: dict | None = None, **search_params) -> None:
        self.index = index
        self.encoder = encoder
        self.manifest = manifest or {}
        self.search_params = search_params
        if encoder is not None and encoder.dim != index.dim:
            raise TremorError(f"dense encoder gives {encoder.dim}-d vectors, the index holds {index.dim}-d ones")

    @classmethod
    def load(cls, index_dir: str | Path, model: str | Path | None = None, device: str = "auto",
             verify: bool = False, **search_params) -> DenseSearcher:
        """Open ``INDEX/dense``; queries are encoded with the model recorded at build time unless ``model`` is
        given (a moved model directory)."""
        from tremor.encoders.dense import DenseEncoder

        index_dir = Path(index_dir)
        index, manifest = DenseIndex.load(index_dir / DENSE_DIR, verify=verify)
        config = manifest["encoder"]
        encoder = DenseEncoder(model if model is not None else config.get("model"), device=device,
                               max_length=config.get("max_length"), pooling=config.get("pooling"),
                               normalize=config.get("normalize", True))
        return cls(index, encoder, manifest, **search_params)

    @property
    def n_docs(self) -> int:
        return self.index.n_docs

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        if self.encoder is None:
            raise TremorError("this dense searcher has no encoder; pass query vectors to search_vectors instead")
        for i, text in enumerate(queries):
            if not isinstance(text, str) or not text.strip():
                raise QueryError(f"query {i} is empty; give some text to search for")
        return self.encoder.encode_queries(list(queries))

    def search_vectors(self, queries: np.ndarray, k: int = 10, **search_params) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, internal doc numbers) for query embeddings, padded with (-inf, -1)."""
        return self.index.search(queries, k, **{**self.search_params, **search_params})


def add_dense(index_dir: str | Path, model: str | Path | None = None, factory: str = "flat",
              vectors: np.ndarray | None = None, device: str = "auto", batch_size: int = 64,
              chunk_size: int = 4096, overwrite: bool = False, progress: bool = True) -> Path:
    """Encode the documents of an existing index directory (in internal-number order, from its document store) and
    write ``INDEX/dense``. Precomputed ``vectors`` (row i = document i) skip the encoding."""
    from tqdm.auto import tqdm

    from tremor.encoders.dense import DenseEncoder

    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    target = index_dir / DENSE_DIR
    if target.exists() and not overwrite:
        raise TremorError(f"{target} already exists; pass overwrite (--overwrite) to rebuild it")
    if not (index_dir / DOCSTORE_FILE).is_file():
        raise IndexFormatError(f"{index_dir}: no document store, so there are no texts to encode")
    n_docs = int(manifest["counts"]["documents"])
    store = DocStore(index_dir / DOCSTORE_FILE, n_docs)
    try:
        encoder = DenseEncoder(model, device=device, batch_size=batch_size)
        if vectors is None:
            vectors = np.zeros((n_docs, encoder.dim), dtype=np.float32)
            # the bar moves per batch, so its time estimate appears within seconds (all-MiniLM-L6-v2 on 2 CPU cores:
            # scifact's 5,183 documents take about 18 minutes, some 5 documents a second)
            with tqdm(total=n_docs, desc="dense encoding (estimate after the first batches)", unit="doc",
                      disable=not progress, smoothing=0.1) as bar:
                for start in range(0, n_docs, chunk_size):
                    numbers = range(start, min(start + chunk_size, n_docs))
                    vectors[start:start + len(numbers)] = encoder.encode_documents(
                        [doc.full_text for doc in store.get(numbers)], on_batch=bar.update)
        elif vectors.shape != (n_docs, encoder.dim):
            raise TremorError(f"given vectors are {list(vectors.shape)}, the index needs [{n_docs}, {encoder.dim}]")
        doc_hash = ids_hash(store.ids())
    finally:
        store.close()
    return DenseIndex.build(vectors, factory).save(target, encoder.config(), doc_hash, overwrite=overwrite)
