"""The on-disk index format: a directory with a manifest, memory-mapped arrays, the encoder and a document store.

```
INDEX/
  manifest.json      format name and version, index type and parameters, encoder identity, vocab hash, counts,
                     and for every array its file, dtype, shape, byte size and sha256
  arrays/*.npy       the index arrays, loaded with memory mapping
  encoder/           the encoder's own files (encoder.json names its kind)
  docstore.sqlite    external ids, titles and texts
```

Every write goes to a hidden temporary directory beside the target that is renamed into place only when complete,
so a crash or kill never leaves a half-written index under the real name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from tremor.errors import IndexFormatError, TremorError

FORMAT_NAME = "tremor-index"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
ARRAYS_DIR = "arrays"


@contextlib.contextmanager
def atomic_directory(target: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary directory that becomes ``target`` when the block finishes without error.

    On error the temporary directory is removed and ``target`` is untouched. With ``overwrite``, an existing target is
    replaced (the old one is moved aside first, then deleted)."""
    target = Path(target).absolute()
    if target.exists() and not overwrite:
        raise TremorError(f"{target} already exists; choose another path or pass overwrite (--overwrite)")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        yield temporary
        _fsync_tree(temporary)
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
            os.rename(temporary, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def sequence_hash(items: Sequence[str]) -> str:
    """A short stable hash of an ordered list of strings (a vocabulary, or the document ids of an index)."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(item.encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def save_arrays(directory: Path, arrays: dict[str, np.ndarray]) -> dict[str, dict]:
    """Write each array as ``arrays/<name>.npy``; return the manifest entries describing them."""
    (directory / ARRAYS_DIR).mkdir(exist_ok=True)
    entries = {}
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        relative = f"{ARRAYS_DIR}/{name}.npy"
        path = directory / relative
        np.save(path, array, allow_pickle=False)
        entries[name] = {"file": relative, "dtype": array.dtype.str, "shape": list(array.shape),
                         "bytes": path.stat().st_size, "sha256": file_sha256(path)}
    return entries


def load_arrays(directory: Path, entries: dict[str, dict], mmap: bool = True,
                verify: bool = False) -> dict[str, np.ndarray]:
    """Load the arrays a manifest lists, memory-mapped, checking size, dtype and shape (and sha256 if ``verify``)."""
    arrays = {}
    for name, entry in entries.items():
        path = directory / entry["file"]
        if not path.is_file():
            raise IndexFormatError(f"{directory}: array file {entry['file']} is missing; rebuild the index")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise IndexFormatError(f"{directory}: array file {entry['file']} has {size} bytes, manifest says "
                                   f"{entry['bytes']} (truncated or replaced); rebuild the index")
        if verify and file_sha256(path) != entry["sha256"]:
            raise IndexFormatError(f"{directory}: array file {entry['file']} fails its checksum; rebuild the index")
        try:
            array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise IndexFormatError(f"{directory}: array file {entry['file']} is unreadable ({exc})") from None
        if array.dtype.str != entry["dtype"] or list(array.shape) != entry["shape"]:
            raise IndexFormatError(f"{directory}: array file {entry['file']} is {array.dtype.str}{list(array.shape)}, "
                                   f"manifest says {entry['dtype']}{entry['shape']}")
        arrays[name] = array
    return arrays


def write_manifest(directory: Path, manifest: dict) -> None:
    body = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **manifest}
    (directory / MANIFEST_FILE).write_text(json.dumps(body, indent=2, sort_keys=True), encoding="utf-8")


def check_manifest(path: Path, format_name: str, format_version: int, required: Sequence[str],
                   rebuild_hint: str) -> dict:
    """Read a JSON manifest and check it names ``format_name`` at ``format_version`` and has the ``required`` keys;
    every failure is an IndexFormatError that ends with ``rebuild_hint`` where rebuilding is the remedy."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexFormatError(f"{path}: corrupted manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != format_name:
        raise IndexFormatError(f"{path}: not a {format_name} manifest")
    version = manifest.get("format_version")
    if version != format_version:
        raise IndexFormatError(f"{path}: format version {version}, this tremor reads version {format_version}; "
                               f"{rebuild_hint}")
    for key in required:
        if key not in manifest:
            raise IndexFormatError(f"{path}: corrupted manifest (missing '{key}'); {rebuild_hint}")
    return manifest


def read_manifest(directory: str | Path) -> dict:
    """Read and check an index manifest: present, valid JSON, our format, a version we read, required keys."""
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise IndexFormatError(f"{directory}: no such index directory")
    if not path.is_file():
        raise IndexFormatError(f"{directory}: not a tremor index (no {MANIFEST_FILE})")
    return check_manifest(path, FORMAT_NAME, FORMAT_VERSION, ("index_type", "params", "arrays", "counts",
                                                             "vocab_size"), "rebuild the index with this version")
