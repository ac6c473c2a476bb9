"""Reading an index directory as one snapshot while another process may replace it.

A rebuild writes a new directory beside the old one and swaps it into place; the old one is then deleted. A reader
that opened files one by one by path could mix the two, or find files gone. ``load_snapshot`` instead opens the
directory once and reads every file through that handle (Linux: ``/proc/self/fd/N``), so everything comes from the
one directory it opened; if that fails or the path was swapped meanwhile (checked by directory identity, which the
open handle keeps from being reused), it starts again on the new directory, a bounded number of times. A load thus
sees one complete index, or raises a clear error.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from tremor.errors import IndexFormatError, TremorError

T = TypeVar("T")
LOAD_ATTEMPTS = 8
# while a replacement is in flight without an atomic exchange, the path is missing for a moment
MISSING_GRACE_SECONDS = 0.5


@contextlib.contextmanager
def pinned_directory(path: Path) -> Iterator[tuple[Path, tuple[int, int] | None]]:
    """(a path naming the directory ``path`` names now, even after it is renamed or replaced; its identity).

    On Linux the path goes through an open directory handle; elsewhere it is ``path`` itself and the identity check
    in ``load_snapshot`` is what catches a replacement."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except FileNotFoundError:
        raise IndexFormatError(f"{path}: no such index directory") from None
    except NotADirectoryError:
        raise IndexFormatError(f"{path}: is a file, not an index directory") from None
    except PermissionError as exc:
        raise IndexFormatError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        stat = os.fstat(fd)
        proc = Path(f"/proc/self/fd/{fd}")
        root = proc if sys.platform.startswith("linux") and proc.is_dir() else path
        yield root, (stat.st_dev, stat.st_ino)
    finally:
        os.close(fd)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _relabel(exc: BaseException, root: Path, path: Path) -> BaseException:
    """``exc`` with the handle path in its message replaced by the real one (a TremorError for OS errors)."""
    message = str(exc).replace(str(root), str(path))
    if isinstance(exc, TremorError):
        try:
            relabelled = type(exc)(message)
        except TypeError:
            relabelled = IndexFormatError(message)
        return relabelled
    if isinstance(exc, OSError):
        return IndexFormatError(f"{path}: index incomplete or unreadable ({message}); rebuild the index")
    return exc


def load_snapshot(path: str | Path, load: Callable[[Path], T]) -> T:
    """``load(root)`` with ``root`` naming one fixed directory (see the module docstring): retried when the
    directory at ``path`` was replaced during the load; other failures are raised (OS errors as
    IndexFormatError, paths shown as ``path``)."""
    path = Path(path)
    deadline = time.monotonic() + MISSING_GRACE_SECONDS
    for attempt in range(LOAD_ATTEMPTS):
        try:
            pin = pinned_directory(path)
            root, identity = pin.__enter__()
        except IndexFormatError:
            # a replacement without an atomic exchange leaves the path missing for a moment
            if not path.exists() and _replacing(path) and time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            raise
        try:
            try:
                result = load(root)
            except Exception as exc:
                if _identity(path) != identity and attempt + 1 < LOAD_ATTEMPTS:
                    continue  # replaced while we read it: read the new one
                raise _relabel(exc, root, path) from None
            if _identity(path) != identity and attempt + 1 < LOAD_ATTEMPTS:
                continue  # replaced meanwhile: anything opened by name (SQLite) may be from the new one
            return result
        finally:
            pin.__exit__(None, None, None)
    raise IndexFormatError(f"{path}: the index was replaced {LOAD_ATTEMPTS} times while loading; try again")


def _replacing(path: Path) -> bool:
    """Whether a replacement of ``path`` is in flight (a tremor temporary or old directory beside it)."""
    from tremor.index.storage import glob_escape

    pattern = glob_escape(path.name)
    return any(path.parent.glob(f".{pattern}.tmp-*")) or any(path.parent.glob(f".{pattern}.old-*"))
