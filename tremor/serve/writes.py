"""Writes over HTTP: ``POST /documents`` and ``DELETE /documents/{id}`` on a live index.

One ``IndexWriter`` per index, opened on the first write and kept, with a lock so writes take turns; each write
commits. Readers never see a half-made change: after a commit the app swaps in a freshly opened ``ServedIndex``
(searches already running keep the old object and its snapshot), and every process checks the commit generation
in the directory listing (throttled) before a request, so a write in one process shows in the others.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tremor.corpus import Document
from tremor.errors import TremorError
from tremor.serve.limits import ApiError


class IndexWrites:
    """The lazily opened writer of one index directory, and the lock that serialises its writes."""

    def __init__(self, path: str | Path, hold: bool = True, wait_s: float = 0.0) -> None:
        """``hold``: keep the writer (and its lock) open between writes (one server process); otherwise open it
        per write and close it after, waiting up to ``wait_s`` for another process's write to finish."""
        self.path = Path(path)
        self.hold = hold
        self.wait_s = wait_s
        self._lock = threading.Lock()
        self._writer = None

    def _open(self):
        from tremor.index.segments import IndexWriter

        deadline = time.monotonic() + self.wait_s
        while self._writer is None:
            try:
                self._writer = IndexWriter(self.path)
            except TremorError as exc:
                if "another IndexWriter holds" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise ApiError(409, str(exc)) from None
                time.sleep(0.05)
        return self._writer

    def _done(self) -> None:
        if not self.hold and self._writer is not None:
            self._writer.close()
            self._writer = None

    def add(self, documents: list[Document]) -> dict:
        """Add or replace ``documents`` and commit; the new generation and live count."""
        with self._lock:
            writer = self._open()
            try:
                added = writer.add(documents)
                generation = writer.commit()
                return {"added": added, "generation": int(generation), "documents": len(writer)}
            finally:
                self._done()

    def delete(self, doc_id: str) -> dict:
        """Delete one document by id and commit; 404 when no live document has that id."""
        with self._lock:
            writer = self._open()
            try:
                if writer.delete([doc_id]) == 0:
                    raise ApiError(404, f"no live document with id '{doc_id}'")
                generation = writer.commit()
                return {"deleted": 1, "generation": int(generation), "documents": len(writer)}
            finally:
                self._done()

    def close(self) -> None:
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
