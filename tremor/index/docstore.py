"""The document store: external ids, titles and texts in SQLite, addressed by the index's internal document number."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import quote

from tremor.corpus import Document
from tremor.errors import IndexFormatError

DOCSTORE_FILE = "docstore.sqlite"


def write_docstore(path: Path, documents: Iterable[Document]) -> int:
    """Write documents in order (internal number = position) and return how many were written."""
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        connection.execute("CREATE TABLE docs (idx INTEGER PRIMARY KEY, doc_id TEXT NOT NULL UNIQUE, "
                           "title TEXT NOT NULL, text TEXT NOT NULL)")
        count = 0

        def rows():
            nonlocal count
            for doc in documents:
                yield count, doc.id, doc.title, doc.text
                count += 1

        connection.executemany("INSERT INTO docs VALUES (?, ?, ?, ?)", rows())
        connection.commit()
    finally:
        connection.close()
    return count


class DocStore:
    """Read-only access to a document store written by ``write_docstore``."""

    def __init__(self, path: Path, expected_count: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise IndexFormatError(f"{self.path}: document store missing")
        # immutable: the file never changes once written, so SQLite takes no locks and writes no journal beside it
        uri = f"file:{quote(str(self.path.absolute()))}?mode=ro&immutable=1"
        try:
            self._connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
            columns = [row[1] for row in self._connection.execute("PRAGMA table_info(docs)")]
            if columns != ["idx", "doc_id", "title", "text"]:
                raise IndexFormatError(f"{self.path}: not a tremor document store (table docs has columns "
                                       f"{columns})")
            (count,) = self._connection.execute("SELECT count(*) FROM docs").fetchone()
        except sqlite3.Error as exc:
            raise self._damaged(exc) from None
        if expected_count is not None and count != expected_count:
            raise IndexFormatError(f"{self.path}: document store holds {count} documents, manifest says "
                                   f"{expected_count}")
        self.count = count
        self._ids: list[str] | None = None

    def _damaged(self, exc: Exception) -> IndexFormatError:
        return IndexFormatError(f"{self.path}: document store unreadable ({exc}); the index is damaged, rebuild it "
                                "(tremor index info --verify checks every file)")

    def __len__(self) -> int:
        return self.count

    def ids(self) -> list[str]:
        """External ids of all documents, by internal number (loaded once)."""
        if self._ids is None:
            try:
                rows = self._connection.execute("SELECT idx, doc_id FROM docs ORDER BY idx").fetchall()
            except sqlite3.Error as exc:
                raise self._damaged(exc) from None
            if len(rows) != self.count or (rows and (rows[0][0] != 0 or rows[-1][0] != self.count - 1)):
                raise self._damaged(ValueError("document numbers are not 0 to N-1"))
            self._ids = [row[1] for row in rows]
        return self._ids

    def get(self, numbers: Sequence[int]) -> list[Document]:
        """Documents by internal number, in the order asked."""
        wanted = [int(n) for n in numbers]
        if not wanted:
            return []
        found: dict[int, Document] = {}
        try:
            for start in range(0, len(wanted), 500):
                chunk = wanted[start:start + 500]
                marks = ",".join("?" * len(chunk))
                for idx, doc_id, title, text in self._connection.execute(
                        f"SELECT idx, doc_id, title, text FROM docs WHERE idx IN ({marks})", chunk):
                    found[idx] = Document(doc_id, text, title)
        except sqlite3.Error as exc:
            raise self._damaged(exc) from None
        missing = [n for n in wanted if n not in found]
        if missing:
            raise IndexFormatError(f"{self.path}: documents {missing[:5]} missing from the document store")
        return [found[n] for n in wanted]

    def number_of(self, doc_ids: Iterable[str]) -> list[int]:
        """Internal numbers of external ids (KeyError naming the first unknown id)."""
        lookup = {d: i for i, d in enumerate(self.ids())}
        return [lookup[d] for d in doc_ids]

    def close(self) -> None:
        self._connection.close()
