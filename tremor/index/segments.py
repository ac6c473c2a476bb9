"""Live indexes: immutable segments, deletion bitmaps and commit points, changed by one IndexWriter at a time.

Lucene's model. An index directory holds immutable segments and commit points:

```
INDEX/
  commit_<N>.json            commit point of generation N: the live segments in order, each segment's deletion bitmap
                             file, the encoder, the index type and parameters (format version 2)
  segments/<name>/           one segment: an ordinary index directory (manifest, arrays, docstore), minus the encoder
  deletes/<name>.<N>.npy     a segment's deletion bitmap as of generation N (np.packbits of its deleted flags)
  encoder/ or encoders/<N>/  the encoder every segment of the commit was encoded with
  write.lock                 held (flock) by the one writer; the kernel releases it when the writer dies
```

A commit point is written to a temporary file, fsynced and renamed; the newest commit file that parses wins at load,
so a crash at any moment leaves the last complete commit. Segments, bitmaps and encoders are written (atomically)
before the commit that names them; files no commit names are removed after a commit, and when a writer opens the
index (left-overs of a crash). A reader that memory-mapped a removed segment keeps its snapshot (POSIX keeps unlinked
files readable); a reader that opens a commit while its files are being removed retries on the newer commit.

Compatibility: a directory of format version 1 (a single ``manifest.json`` at the top) is still an index: it loads
as one segment, and ``IndexWriter`` adds commits beside it (its files become the segment ``"."``, removed once a
merge leaves no commit naming them).

Semantics: ``add`` with an id that is already live replaces that document (update); within one batch the last
occurrence of an id wins. ``delete`` of an unknown id is not an error (it is counted as not found). Nothing is
visible to readers until ``commit``. Each ``add`` writes one segment.

BM25 statistics: BM25 impacts depend on the vocabulary, document frequencies, document count and average length, all
of which change as documents come and go. A live index created by ``IndexWriter`` uses the BM25 encoder's live mode
(``tremor.encoders.bm25``): the idf is on the query side, so documents hold only the saturated term frequency; the
vocabulary grows with the documents (new terms get new ids: nothing is dropped); the statistics count every document
added and uncount every document deleted or replaced (each segment keeps its documents' lengths in
``doc_lengths.npy`` for that). A query is weighted with the idf of exactly the live documents of its commit, as a
full build would; what is left of drift is avgdl, which a document sees as it was when it arrived. A forced merge
re-encodes every document under the current statistics (``merge(force=True)``; ``refresh_statistics=False`` keeps
the vectors as they are), after which the index ranks exactly as a full build. An index whose BM25 encoder was fitted
elsewhere (a version-1 directory built by ``tremor index build``, or a fitted encoder passed in) keeps its statistics
and vocabulary fixed until a forced merge, which refits them in live mode. Encoders with fixed statistics (neural
SPLADE, inference-free) encode a document the same way whenever it arrives, so a live index then ranks exactly as a
full build does. scripts/bench_live.py measures both.
"""

from __future__ import annotations

import copy
import fcntl
import inspect
import json
import math
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from tremor.corpus import Document
from tremor.encoders import SparseEncoder, get_encoder, load_saved_encoder
from tremor.errors import IndexFormatError, TremorError
from tremor.index import index_class, open_index_dir, parse_index_spec
from tremor.index.builder import encode_corpus, write_index
from tremor.index.docstore import DOCSTORE_FILE, DocStore
from tremor.index.storage import FORMAT_NAME, MANIFEST_FILE, read_manifest
from tremor.sparse import SparseVectors

LIVE_FORMAT_VERSION = 2
COMMIT_PATTERN = re.compile(r"^commit_(\d+)\.json$")
LOCK_FILE = "write.lock"
SEGMENTS_DIR = "segments"
DELETES_DIR = "deletes"
ENCODERS_DIR = "encoders"
ROOT_SEGMENT = "."  # a version-1 index directory's own files, as a segment
LENGTHS_FILE = "doc_lengths.npy"  # a live BM25 segment's document lengths in terms (to uncount deleted documents)
LEGACY_FILES = (MANIFEST_FILE, "arrays", DOCSTORE_FILE)
MERGE_FACTOR = 10  # tiered policy: this many segments of one size tier are merged into one
FLOOR_SEGMENT = 1000  # segments below this many live documents share the smallest tier
EXPUNGE_FRACTION = 0.5  # a segment with more than this fraction deleted is rewritten by merge()


# ------------------------------------------------------------------------------------------------- commit points
def commit_generations(directory: str | Path) -> list[int]:
    """Generations of the commit files present in ``directory``, ascending."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(int(m.group(1)) for m in map(COMMIT_PATTERN.match, names) if m)


def commit_path(directory: Path, generation: int) -> Path:
    return Path(directory) / f"commit_{generation}.json"


def is_live(directory: str | Path) -> bool:
    """True when ``directory`` holds commit points (a segmented index, format version 2)."""
    return bool(commit_generations(directory))


def read_commit(directory: str | Path) -> dict | None:
    """The newest commit point that reads completely, or None when the directory has none. When every listed point
    failed and the listing has changed since (a writer committed and removed the older points meanwhile), the
    directory is listed again: a reader never mistakes a commit in progress for damage."""
    directory = Path(directory)
    listed = None
    while True:
        generations = commit_generations(directory)
        if generations == listed:
            return None
        listed = generations
        for generation in reversed(generations):
            try:
                commit = json.loads(commit_path(directory, generation).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError, UnicodeDecodeError):
                continue  # removed since listed, or not ours: an older commit is still whole
            if (isinstance(commit, dict) and commit.get("format") == FORMAT_NAME
                    and commit.get("format_version") == LIVE_FORMAT_VERSION
                    and commit.get("generation") == generation):
                return commit


def legacy_commit(directory: Path) -> dict:
    """A version-1 index directory described as a commit of one segment (generation 0, never written)."""
    manifest = read_manifest(directory)
    return {"format": FORMAT_NAME, "format_version": LIVE_FORMAT_VERSION, "generation": 0,
            "index_type": manifest["index_type"], "params": manifest["params"],
            "vocab_size": manifest["vocab_size"], "vocab_id": manifest.get("vocab_id"),
            "encoder": "encoder" if (directory / "encoder").is_dir() else None,
            "segments": [{"name": ROOT_SEGMENT, "path": ROOT_SEGMENT,
                          "documents": int(manifest["counts"]["documents"]), "deleted": 0, "deletes": None}],
            "next_segment": 1}


def current_commit(directory: str | Path) -> dict:
    """The commit a reader should open: the newest commit point, or a version-1 directory as one segment."""
    directory = Path(directory)
    commit = read_commit(directory)
    if commit is not None:
        return commit
    if (directory / MANIFEST_FILE).is_file():
        return legacy_commit(directory)
    if commit_generations(directory):
        raise IndexFormatError(f"{directory}: no readable commit point (every commit_N.json is damaged)")
    read_manifest(directory)  # raises the usual "no such index" / "not a tremor index" error
    raise IndexFormatError(f"{directory}: not a tremor index")


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, rename it over ``path`` and fsync the folder."""
    temporary = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def read_deletes(directory: Path, segment: dict) -> np.ndarray | None:
    """A segment's deleted flags (bool, one per document), or None when it has no deletions."""
    if not segment.get("deletes"):
        return None
    path = directory / segment["deletes"]
    try:
        packed = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise IndexFormatError(f"{path}: deletion bitmap unreadable ({exc})") from None
    n = int(segment["documents"])
    if packed.dtype != np.uint8 or packed.shape != ((n + 7) // 8,):
        raise IndexFormatError(f"{path}: deletion bitmap of shape {packed.shape}, expected ({(n + 7) // 8},)")
    deleted = np.unpackbits(packed, count=n).astype(bool)
    if int(deleted.sum()) != int(segment.get("deleted", 0)):
        raise IndexFormatError(f"{path}: deletion bitmap holds {int(deleted.sum())} deletions, the commit says "
                               f"{segment.get('deleted')}")
    return deleted


def open_segment(directory: Path, segment: dict, mmap: bool = True, verify: bool = False) -> tuple:
    """(index object, its manifest, DocStore or None, deleted flags or None) of one segment of a commit."""
    path = directory / segment["path"]
    index, manifest = open_index_dir(path, mmap, verify)
    if index.n_docs != int(segment["documents"]):
        raise IndexFormatError(f"{path}: segment holds {index.n_docs} documents, the commit says "
                               f"{segment['documents']}")
    docstore = DocStore(path / DOCSTORE_FILE, index.n_docs) if (path / DOCSTORE_FILE).exists() else None
    return index, manifest, docstore, read_deletes(directory, segment)


def segment_vectors(index) -> SparseVectors:
    """The document vectors a segment's index holds (its forward index), whatever the index type."""
    if hasattr(index, "documents"):
        return index.documents()
    return SparseVectors(np.asarray(index.doc_indptr, np.int64), np.asarray(index.doc_components).astype(np.int32),
                         np.asarray(index.doc_values).astype(np.float32), index.vocab_size, index.vocab_id)


# ---------------------------------------------------------------------------------------------------- the writer
class IndexWriter:
    """Adds, updates and deletes documents of an index directory; ``commit()`` makes the changes visible.

    ``IndexWriter(path, encoder="bm25", index="exact")`` creates a live index when ``path`` does not exist (or is an
    empty directory); otherwise it opens the index there (a version-1 directory included) and ``encoder`` / ``index``
    are ignored: the index keeps its own. One writer at a time: a second one gets a TremorError. Use it as a context
    manager, or call ``close()``; uncommitted changes are dropped on close.
    """

    def __init__(self, path: str | Path, encoder: str | SparseEncoder = "bm25", index: str = "exact",
                 progress: bool = False, merge_factor: int = MERGE_FACTOR, floor_segment: int = FLOOR_SEGMENT) -> None:
        self.path = Path(path).absolute()
        self.progress = progress
        self.merge_factor = int(merge_factor)
        self.floor_segment = int(floor_segment)
        if self.merge_factor < 2:
            raise TremorError(f"merge_factor must be at least 2 (got {merge_factor})")
        fresh = not self.path.exists() or (self.path.is_dir() and not any(self.path.iterdir()))
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._acquire_lock()
        try:
            fresh = fresh or (not is_live(self.path) and not (self.path / MANIFEST_FILE).exists()
                              and _only_writer_files(self.path))
            if fresh:
                index_type, params = parse_index_spec(index)
                cls = index_class(index_type)
                for name in getattr(cls, "LEGACY_BUILD_DEFAULTS", {}):  # pinned: a later default must not apply
                    params.setdefault(name, cls.BUILD_DEFAULTS[name])
                self.encoder = get_encoder(encoder)
                if getattr(self.encoder, "kind", None) == "bm25" and not self.encoder.fitted:
                    self.encoder.live = True  # statistics that follow the documents (see the module docstring)
                self._encoder_dirty = True
                self.commit_point = {"format": FORMAT_NAME, "format_version": LIVE_FORMAT_VERSION, "generation": 0,
                                     "index_type": index_type, "params": params, "vocab_size": None,
                                     "vocab_id": None, "encoder": None, "segments": [], "next_segment": 1}
            else:
                self.commit_point = current_commit(self.path)
                if not self.commit_point.get("encoder"):
                    raise TremorError(f"{self.path}: the index has no saved encoder, so new documents cannot be "
                                      "encoded like the old ones")
                self.encoder = load_saved_encoder(self.path / self.commit_point["encoder"])
                self._encoder_dirty = False
            self._remove_unreferenced()
            self._load_state()
        except BaseException:
            self._release_lock()
            raise

    # ---------------------------------------------------------------------------------------------- lock
    def _acquire_lock(self) -> int:
        lock = self.path / LOCK_FILE
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = lock.read_text(encoding="utf-8", errors="replace").strip() or "unknown"
            os.close(fd)
            raise TremorError(f"{self.path}: another IndexWriter holds {lock} (pid {holder}); one writer at a time "
                              "(readers are fine): wait for it to finish or close") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def close(self) -> None:
        """Release the write lock (uncommitted changes are dropped)."""
        self._release_lock()

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._lock_fd is None:
            raise TremorError(f"{self.path}: this IndexWriter is closed")

    # --------------------------------------------------------------------------------------------- state
    def _load_state(self) -> None:
        """Per segment: external ids and deleted flags; the map from live id to (segment, number)."""
        self.segments: list[dict] = [dict(s) for s in self.commit_point["segments"]]
        self._ids: dict[str, list[str]] = {}
        self._deleted: dict[str, np.ndarray] = {}
        self._dirty: set[str] = set()
        self._new: set[str] = set()
        self._live: dict[str, tuple[str, int]] = {}
        self._segment_vectors: dict[str, SparseVectors] = {}
        self._segment_lengths: dict[str, np.ndarray] = {}
        for segment in self.segments:
            path = self.path / segment["path"]
            store = DocStore(path / DOCSTORE_FILE, int(segment["documents"]))
            try:
                ids = store.ids()
            finally:
                store.close()
            deleted = read_deletes(self.path, segment)
            if deleted is None:
                deleted = np.zeros(len(ids), bool)
            self._ids[segment["name"]] = ids
            self._deleted[segment["name"]] = deleted
            for number in np.flatnonzero(~deleted).tolist():
                self._live[ids[number]] = (segment["name"], number)

    @property
    def generation(self) -> int:
        """Generation of the last commit (0: none yet)."""
        return int(self.commit_point["generation"])

    def __len__(self) -> int:
        """Live documents, committed or not."""
        return len(self._live)

    def live_ids(self) -> set[str]:
        return set(self._live)

    def _mark_deleted(self, doc_id: str) -> bool:
        where = self._live.pop(doc_id, None)
        if where is None:
            return False
        name, number = where
        if self._live_statistics():
            self.encoder.remove_documents(self._vectors_of(name)[[number]], self._lengths_of(name)[number:number + 1])
            self._encoder_dirty = True
        self._deleted[name][number] = True
        self._dirty.add(name)
        return True

    def _live_statistics(self) -> bool:
        """True when the encoder's statistics follow additions and deletions (BM25 in live mode)."""
        return bool(getattr(self.encoder, "live", False))

    def _segment_path(self, name: str) -> Path:
        return self.path / next(s["path"] for s in self.segments if s["name"] == name)

    def _vectors_of(self, name: str) -> SparseVectors:
        """A segment's document vectors (the terms a deleted document takes out of live statistics)."""
        if name not in self._segment_vectors:
            self._segment_vectors[name] = segment_vectors(open_index_dir(self._segment_path(name), True, False)[0])
        return self._segment_vectors[name]

    def _lengths_of(self, name: str) -> np.ndarray:
        """A live BM25 segment's document lengths in terms (``doc_lengths.npy``), one per document of the segment."""
        if name not in self._segment_lengths:
            path = self._segment_path(name) / LENGTHS_FILE
            try:
                lengths = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise IndexFormatError(f"{path}: document lengths of a live BM25 segment unreadable ({exc})") from None
            documents = len(self._ids[name])
            if lengths.shape != (documents,):
                raise IndexFormatError(f"{path}: {lengths.shape[0]} lengths for {documents} documents")
            self._segment_lengths[name] = lengths
        return self._segment_lengths[name]

    # ------------------------------------------------------------------------------------------ changes
    def add(self, documents: Iterable[Document]) -> int:
        """Add documents as one new segment; an id already live is replaced (update). Returns the number added."""
        self._check_open()
        batch: dict[str, Document] = {}
        for i, doc in enumerate(documents):
            if not isinstance(doc, Document):
                raise TremorError(f"add expects tremor.corpus.Document objects (item {i} is {type(doc).__name__})")
            if not doc.id:
                raise TremorError(f"document {i} has an empty id")
            batch.pop(doc.id, None)  # the last occurrence wins, at its own position
            batch[doc.id] = doc
        docs = list(batch.values())
        if not docs:
            return 0
        lengths = None
        if self._live_statistics():
            vectors, lengths = self.encoder.add_documents([d.full_text for d in docs])
            self._encoder_dirty = True
        else:
            vectors = encode_corpus(self.encoder, [d.full_text for d in docs], progress=self.progress)
        if self.commit_point["vocab_id"] is None:
            self._encoder_dirty = True
        elif vectors.vocab_id != self.commit_point["vocab_id"]:
            raise TremorError(f"{self.path}: the encoder's vocabulary '{vectors.vocab_id}' differs from the index's "
                              f"'{self.commit_point['vocab_id']}'")
        for doc in docs:
            self._mark_deleted(doc.id)
        name = self._write_segment(vectors, docs, lengths)
        for number, doc in enumerate(docs):
            self._live[doc.id] = (name, number)
        return len(docs)

    def update(self, documents: Iterable[Document]) -> int:
        """Replace documents by id (an id not yet present is added): the same as ``add``."""
        return self.add(documents)

    def delete(self, ids: Iterable[str]) -> int:
        """Delete live documents by external id; returns how many were found (unknown ids are skipped)."""
        self._check_open()
        return sum(self._mark_deleted(str(doc_id)) for doc_id in ids)

    def _build(self, vectors: SparseVectors):
        cls = index_class(self.commit_point["index_type"])
        params = dict(self.commit_point["params"])
        # an index created before a parameter was pinned keeps the value its segments were built with
        for name, legacy in getattr(cls, "LEGACY_BUILD_DEFAULTS", {}).items():
            params.setdefault(name, legacy)
        if "progress" in inspect.signature(cls.build).parameters:
            params["progress"] = self.progress
        return cls.build(vectors, **params)

    def _write_segment(self, vectors: SparseVectors, docs: list[Document], lengths: np.ndarray | None = None) -> str:
        name = f"seg_{int(self.commit_point['next_segment']):06d}"
        self.commit_point["next_segment"] = int(self.commit_point["next_segment"]) + 1
        built = self._build(vectors)
        write_index(self.path / SEGMENTS_DIR / name, built, docs, None,
                    extra_manifest={"segment": name, "counts": {"documents": len(docs), "postings": vectors.nnz}})
        if lengths is not None:
            _write_atomic(self.path / SEGMENTS_DIR / name / LENGTHS_FILE,
                          _npy_bytes(np.asarray(lengths, dtype=np.int64)))
        self.segments.append({"name": name, "path": f"{SEGMENTS_DIR}/{name}", "documents": len(docs),
                              "deleted": 0, "deletes": None})
        self._ids[name] = [d.id for d in docs]
        self._deleted[name] = np.zeros(len(docs), bool)
        self._new.add(name)
        self.commit_point["vocab_size"] = built.vocab_size
        self.commit_point["vocab_id"] = built.vocab_id
        return name

    # ------------------------------------------------------------------------------------------- commit
    def has_changes(self) -> bool:
        return bool(self._dirty or self._new or self._encoder_dirty)

    def commit(self) -> int:
        """Make every change since the last commit visible, atomically; returns the new generation (unchanged when
        there was nothing to commit)."""
        self._check_open()
        if not self.has_changes():
            return self.generation
        generation = self.generation + 1
        (self.path / DELETES_DIR).mkdir(exist_ok=True)
        segments = []
        for segment in self.segments:
            deleted = self._deleted[segment["name"]]
            n_deleted = int(deleted.sum())
            if n_deleted == deleted.shape[0]:
                continue  # nothing live: the segment leaves the index
            if segment["name"] in self._dirty:
                relative = f"{DELETES_DIR}/{_file_name(segment['name'])}.{generation}.npy"
                _write_atomic(self.path / relative, _npy_bytes(np.packbits(deleted)))
                segment = {**segment, "deleted": n_deleted, "deletes": relative}
            segments.append(segment)
        self.segments = segments
        if self._encoder_dirty:
            relative = f"{ENCODERS_DIR}/{generation}"
            target = self.path / relative
            shutil.rmtree(target, ignore_errors=True)  # a left-over of a crash before this generation's commit
            temporary = self.path / ENCODERS_DIR / f".{generation}.tmp-{uuid.uuid4().hex[:8]}"
            temporary.parent.mkdir(exist_ok=True)
            self.encoder.save(temporary)
            for file in temporary.rglob("*"):
                if file.is_file():
                    with open(file, "rb") as handle:
                        os.fsync(handle.fileno())
            os.rename(temporary, target)
            self.commit_point["encoder"] = relative
        point = {**self.commit_point, "generation": generation, "segments": segments,
                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "counts": {"documents": len(self._live), "segments": len(segments)}}
        _write_atomic(commit_path(self.path, generation), json.dumps(point, indent=2, sort_keys=True).encode())
        self.commit_point = point
        self._dirty.clear()
        self._new.clear()
        self._encoder_dirty = False
        self._remove_unreferenced()
        return generation

    def _remove_unreferenced(self) -> None:
        """Remove older commit points and every segment, bitmap and encoder the current commit does not name (the
        uncommitted work of this writer is kept)."""
        point = self.commit_point
        keep = {s["path"] for s in point["segments"]} | {f"{SEGMENTS_DIR}/{n}" for n in getattr(self, "_new", ())}
        keep |= {s["path"] for s in getattr(self, "segments", ())}
        keep_files = {s["deletes"] for s in point["segments"] if s.get("deletes")}
        for generation in commit_generations(self.path):
            if generation != point["generation"] or not point["generation"]:
                commit_path(self.path, generation).unlink(missing_ok=True)
        for entry in self.path.glob(".commit_*.tmp-*"):
            entry.unlink(missing_ok=True)
        for folder, kept in ((SEGMENTS_DIR, keep), (DELETES_DIR, keep_files), (ENCODERS_DIR, {point.get("encoder")})):
            base = self.path / folder
            if not base.is_dir():
                continue
            for entry in base.iterdir():
                if f"{folder}/{entry.name}" in kept:
                    continue
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        if point["generation"] and ROOT_SEGMENT not in keep and (self.path / MANIFEST_FILE).exists():
            # a version-1 index whose documents were all merged away or deleted
            for name in LEGACY_FILES:
                target = self.path / name
                if target.is_dir():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)
            if point.get("encoder") != "encoder":
                shutil.rmtree(self.path / "encoder", ignore_errors=True)

    # -------------------------------------------------------------------------------------------- merge
    def merge_candidates(self, force: bool = False) -> list[list[int]]:
        """Groups of segment positions a merge would rewrite. Tiered: segments are put in size tiers (powers of
        ``merge_factor`` above ``floor_segment`` live documents); a tier holding ``merge_factor`` or more segments is
        merged into one, and a segment with more than half its documents deleted is rewritten alone. Forced: all
        segments into one."""
        live = [int(s["documents"]) - int(self._deleted[s["name"]].sum()) for s in self.segments]
        if force:
            needs = len(self.segments) > 1 or any(self._deleted[s["name"]].any() for s in self.segments)
            return [list(range(len(self.segments)))] if needs else []
        tiers: dict[int, list[int]] = {}
        for position, count in enumerate(live):
            tier = 0 if count < self.floor_segment else 1 + int(math.log(count / self.floor_segment,
                                                                         self.merge_factor))
            tiers.setdefault(tier, []).append(position)
        groups = [members for members in tiers.values() if len(members) >= self.merge_factor]
        grouped = {p for g in groups for p in g}
        for position, segment in enumerate(self.segments):
            if position not in grouped and live[position] < EXPUNGE_FRACTION * int(segment["documents"]):
                groups.append([position])
        return sorted(groups)

    def merge(self, force: bool = False, refresh_statistics: bool | None = None) -> int:
        """Merge segments (the tiered policy, or all into one with ``force``), dropping deleted documents, and
        commit. A forced merge refits corpus-statistics encoders (BM25) on the live texts unless
        ``refresh_statistics`` is False. Returns the generation committed."""
        self._check_open()
        groups = self.merge_candidates(force)
        refresh = force and hasattr(self.encoder, "fit_encode") if refresh_statistics is None \
            else bool(refresh_statistics)
        if refresh and not force:
            raise TremorError("refresh_statistics needs a forced merge (all segments re-encoded with one encoder)")
        if refresh and not hasattr(self.encoder, "fit_encode"):
            raise TremorError(f"the {self.encoder.kind} encoder has no corpus statistics to refresh")
        if refresh and not groups and self.segments:
            groups = [list(range(len(self.segments)))]
        for names in [[self.segments[p]["name"] for p in group] for group in groups]:
            self._merge_group(names, refresh)
        return self.commit()

    def _merge_group(self, names: list[str], refresh: bool) -> None:
        group = [p for p, s in enumerate(self.segments) if s["name"] in names]
        members = [self.segments[p] for p in group]
        vectors, docs, lengths = [], [], []
        live = self._live_statistics()
        for segment in members:
            keep = np.flatnonzero(~self._deleted[segment["name"]])
            index, _, store, _ = open_segment(self.path, segment)
            try:
                docs.extend(store.get(keep.tolist()))
            finally:
                store.close()
            if not refresh:
                # a live vocabulary may have grown since the segment was written: its ids are a prefix
                vectors.append(segment_vectors(index)[keep].with_vocab_size(self.encoder.vocab_size))
                if live:
                    lengths.append(np.asarray(self._lengths_of(segment["name"]))[keep])
        merged_lengths = np.concatenate(lengths) if live and lengths else None
        if refresh:
            encoder = copy.copy(self.encoder)  # fit_encode replaces the statistics, it does not mutate them
            if encoder.kind == "bm25":
                encoder.live = True  # a fixed-statistics BM25 index becomes live (see the module docstring)
            merged_vectors, merged_lengths = encoder.fit_documents([d.full_text for d in docs]) if docs \
                else (None, None)
            merged_lengths = merged_lengths if encoder.live else None
            self.encoder = encoder
            self._encoder_dirty = True
        else:
            merged_vectors = SparseVectors.concat(vectors) if vectors else None
        first = group[0]
        for segment in members:
            self._segment_vectors.pop(segment["name"], None)
            self._segment_lengths.pop(segment["name"], None)
            self._ids.pop(segment["name"])
            self._deleted.pop(segment["name"])
            self._dirty.discard(segment["name"])
            self._new.discard(segment["name"])
        self.segments = [s for p, s in enumerate(self.segments) if p not in set(group)]
        if not docs:
            return
        name = self._write_segment(merged_vectors, docs, merged_lengths)
        self.segments.insert(first, self.segments.pop())  # keep the document order of the index
        for number, doc in enumerate(docs):
            self._live[doc.id] = (name, number)


def _only_writer_files(directory: Path) -> bool:
    """True when a directory holds nothing but what a writer that never committed may leave behind."""
    return all(entry.name in (LOCK_FILE, SEGMENTS_DIR, DELETES_DIR, ENCODERS_DIR) or entry.name.startswith(".")
               for entry in directory.iterdir())


def _file_name(segment_name: str) -> str:
    return "root" if segment_name == ROOT_SEGMENT else segment_name


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def read_id_file(path: str | Path) -> list[str]:
    """Ids from a text file, one per line (blank lines skipped)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TremorError(f"{path}: cannot read the id file ({exc})") from None
    return [line.strip() for line in lines if line.strip()]


def live_documents(path: str | Path) -> Sequence[str]:
    """External ids of the live documents of the newest commit (in index order)."""
    directory = Path(path)
    commit = current_commit(directory)
    out: list[str] = []
    for segment in commit["segments"]:
        seg_path = directory / segment["path"]
        store = DocStore(seg_path / DOCSTORE_FILE, int(segment["documents"]))
        try:
            ids = store.ids()
        finally:
            store.close()
        deleted = read_deletes(directory, segment)
        out.extend(ids if deleted is None else [i for i, d in zip(ids, deleted, strict=True) if not d])
    return out
