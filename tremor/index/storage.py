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
import ctypes
import errno
import hashlib
import json
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from tremor.errors import IndexFormatError, TremorError

FORMAT_NAME = "tremor-index"
FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
ARRAYS_DIR = "arrays"


BUILD_MARKER = ".tremor-build.json"  # inside a temporary build directory while it is being written


def replaceable_if(marker: str, format_name: str | None = None) -> Callable[[Path], str | None]:
    """A check for ``atomic_directory(replaceable=...)``: an existing directory may be replaced only when it holds
    ``marker`` (a file name or glob) and, with ``format_name``, that JSON file names this format. The check returns
    None when the directory may go, else what it is instead."""

    def check(target: Path) -> str | None:
        found = sorted(target.glob(marker))
        if not found:
            return f"it has no {marker}, so it is not {format_name or 'what this command writes'}"
        if format_name is not None:
            try:
                body = json.loads(found[0].read_text(encoding="utf-8"))
            except (OSError, ValueError):
                body = None
            if not isinstance(body, dict) or body.get("format") != format_name:
                return f"its {found[0].name} is not a {format_name} manifest"
        return None

    return check


def check_replaceable(target: str | Path, overwrite: bool,
                      replaceable: Callable[[Path], str | None] | None = None) -> None:
    """Refuse an existing ``target`` unless ``overwrite`` is set and ``replaceable`` (default: a tremor index
    directory) accepts it: ``--overwrite`` never deletes a directory tremor did not write."""
    target = Path(target)
    if not (target.exists() or target.is_symlink()):
        return
    if not overwrite:
        raise TremorError(f"{target} already exists; choose another path or pass overwrite (--overwrite)")
    if not target.is_dir() or target.is_symlink():
        raise TremorError(f"{target} exists and is not a directory; refusing to replace it (remove it yourself)")
    why = (replaceable or replaceable_if(MANIFEST_FILE, FORMAT_NAME))(target)
    if why is not None:
        raise TremorError(f"{target} exists and {why}; --overwrite replaces only a directory tremor wrote, so "
                          "remove it yourself or choose another path")


@contextlib.contextmanager
def atomic_directory(target: str | Path, overwrite: bool = False,
                     replaceable: Callable[[Path], str | None] | None = None) -> Iterator[Path]:
    """Yield a fresh temporary directory that becomes ``target`` when the block finishes without error.

    On error the temporary directory is removed and ``target`` is untouched. With ``overwrite``, an existing target is
    replaced, but only one that ``replaceable`` accepts (default: a tremor index directory, see
    ``check_replaceable``); the swap is one atomic exchange where the system has one, so the path never goes
    missing. Temporary directories left by killed builds to the same path are removed first
    (``stale_build_directories``)."""
    target = Path(target).absolute()
    check_replaceable(target, overwrite, replaceable)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in stale_build_directories(target):
        shutil.rmtree(stale, ignore_errors=True)
    temporary = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    temporary.mkdir()
    try:
        (temporary / BUILD_MARKER).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                          "started": time.time()}), encoding="utf-8")
        yield temporary
        (temporary / BUILD_MARKER).unlink()
        _fsync_tree(temporary)
        if target.exists():
            check_replaceable(target, overwrite, replaceable)  # it may have changed while the build ran
            if _exchange(temporary, target):
                shutil.rmtree(temporary, ignore_errors=True)  # now the previous directory
                return
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
            os.rename(temporary, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(temporary, target)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _exchange(first: Path, second: Path) -> bool:
    """Swap two directory entries atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(error, os.strerror(error), str(second))


def stale_build_directories(target: str | Path) -> list[Path]:
    """Temporary directories beside ``target`` left by builds that were killed: ``.NAME.tmp-*`` holding tremor's
    build marker whose process is gone (or that were left empty), and ``.NAME.old-*`` holding a tremor manifest
    (a replaced directory whose removal was cut short). Nothing else is ever listed."""
    target = Path(target).absolute()
    out = []
    if not target.parent.is_dir():
        return out
    host = socket.gethostname()
    for candidate in sorted(target.parent.glob(f".{glob_escape(target.name)}.tmp-*")):
        if not candidate.is_dir() or candidate.is_symlink():
            continue
        marker = candidate / BUILD_MARKER
        if marker.is_file():
            try:
                owner = json.loads(marker.read_text(encoding="utf-8"))
                pid, owner_host = int(owner["pid"]), str(owner["host"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if owner_host == host and not _alive(pid):
                out.append(candidate)
        elif time.time() - candidate.stat().st_mtime > 60 and (
                not any(candidate.iterdir())
                or str(_manifest_format(candidate / MANIFEST_FILE)).startswith("tremor-")):
            out.append(candidate)  # emptied, or the replaced index after an exchange whose removal was cut short
    for candidate in sorted(target.parent.glob(f".{glob_escape(target.name)}.old-*")):
        if candidate.is_dir() and not candidate.is_symlink() and \
                str(_manifest_format(candidate / MANIFEST_FILE)).startswith("tremor-"):
            out.append(candidate)
    return out


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _manifest_format(path: Path) -> str | None:
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return body.get("format") if isinstance(body, dict) else None


def directory_bytes(path: Path) -> int:
    """Bytes of the files under ``path``."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file() and not p.is_symlink())


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


def _relative_file(directory: Path, name: object) -> Path:
    """``directory / name`` for a manifest-named file, refusing names that leave the directory."""
    if not isinstance(name, str) or not name or name.startswith(("/", "\\")) or ".." in Path(name).parts:
        raise IndexFormatError(f"{directory}: manifest names a file {name!r} outside the index; corrupted manifest")
    return directory / name


def load_arrays(directory: Path, entries: dict[str, dict], mmap: bool = True,
                verify: bool = False) -> dict[str, np.ndarray]:
    """Load the arrays a manifest lists, memory-mapped, checking size, dtype and shape (and sha256 if ``verify``)."""
    arrays = {}
    if not isinstance(entries, dict):
        raise IndexFormatError(f"{directory}: corrupted manifest ('arrays' is not a mapping)")
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not {"file", "bytes", "dtype", "shape"} <= set(entry):
            raise IndexFormatError(f"{directory}: corrupted manifest (array entry {name!r} incomplete)")
        path = _relative_file(directory, entry["file"])
        if not path.is_file():
            raise IndexFormatError(f"{directory}: array file {entry['file']} is missing; rebuild the index")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise IndexFormatError(f"{directory}: array file {entry['file']} has {size} bytes, manifest says "
                                   f"{entry['bytes']} (truncated or replaced); rebuild the index")
        if verify and file_sha256(path) != entry.get("sha256"):
            raise IndexFormatError(f"{directory}: array file {entry['file']} fails its checksum; rebuild the index")
        try:
            array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except Exception as exc:  # a damaged header fails inside numpy's parser with any of several error types
            raise IndexFormatError(f"{directory}: array file {entry['file']} is unreadable "
                                   f"({type(exc).__name__}: {exc}); rebuild the index") from None
        if not isinstance(array, np.ndarray) or array.dtype.str != entry["dtype"] \
                or list(array.shape) != entry["shape"]:
            found = f"{array.dtype.str}{list(array.shape)}" if isinstance(array, np.ndarray) else "not an array"
            raise IndexFormatError(f"{directory}: array file {entry['file']} is {found}, "
                                   f"manifest says {entry['dtype']}{entry['shape']}")
        arrays[name] = array
    return arrays


def file_entries(directory: Path, relative: Sequence[str]) -> dict[str, dict]:
    """Manifest entries (byte size, sha256) for files of ``directory``, by relative path."""
    return {name: {"bytes": (directory / name).stat().st_size, "sha256": file_sha256(directory / name)}
            for name in relative}


def tree_files(directory: Path, under: str) -> list[str]:
    """Relative paths of every file below ``directory / under`` (sorted)."""
    root = directory / under
    return sorted(str(p.relative_to(directory)) for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


def check_files(directory: Path, entries: dict[str, dict], verify: bool = False, hint: str = "rebuild the index",
                only: Callable[[str], bool] | None = None) -> int:
    """Check the files a manifest lists (``{relative path: {bytes, sha256}}``): present, of the recorded size, and
    with ``verify`` of the recorded sha256. Returns how many were checked."""
    if not isinstance(entries, dict):
        raise IndexFormatError(f"{directory}: corrupted manifest ('files' is not a mapping)")
    checked = 0
    for name, entry in entries.items():
        if only is not None and not only(name):
            continue
        path = _relative_file(directory, name)
        if not isinstance(entry, dict) or "bytes" not in entry:
            raise IndexFormatError(f"{directory}: corrupted manifest (file entry {name!r} incomplete)")
        if not path.is_file():
            raise IndexFormatError(f"{directory}: {name} is missing; {hint}")
        if path.stat().st_size != entry["bytes"]:
            raise IndexFormatError(f"{directory}: {name} has {path.stat().st_size} bytes, manifest says "
                                   f"{entry['bytes']} (truncated or replaced); {hint}")
        if verify and file_sha256(path) != entry.get("sha256"):
            raise IndexFormatError(f"{directory}: {name} fails its checksum; {hint}")
        checked += 1
    return checked


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
    if not isinstance(version, int) or isinstance(version, bool):
        raise IndexFormatError(f"{path}: corrupted manifest (format_version is {version!r}, a "
                               f"{type(version).__name__}; expected the integer {format_version}); {rebuild_hint}")
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
    if directory.exists() and not directory.is_dir():
        raise IndexFormatError(f"{directory}: is a file, not an index directory")
    if not directory.is_dir():
        raise IndexFormatError(f"{directory}: no such index directory")
    if not path.is_file():
        raise IndexFormatError(f"{directory}: not a tremor index (no {MANIFEST_FILE})")
    manifest = check_manifest(path, FORMAT_NAME, FORMAT_VERSION, ("index_type", "params", "arrays", "counts",
                                                                 "vocab_size"), "rebuild the index with this version")
    counts = manifest["counts"]
    for key, ok in (("params", isinstance(manifest["params"], dict)), ("arrays", isinstance(manifest["arrays"], dict)),
                    ("counts", isinstance(counts, dict) and _count(counts.get("documents"))),
                    ("vocab_size", _count(manifest["vocab_size"])),
                    ("files", isinstance(manifest.get("files", {}), dict))):
        if not ok:
            raise IndexFormatError(f"{path}: corrupted manifest ('{key}' is not what an index records); "
                                   "rebuild the index")
    return manifest


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
