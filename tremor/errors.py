"""Errors a user can act on: each one says what was wrong, where, and what to do."""

from __future__ import annotations

from pathlib import Path


class TremorError(Exception):
    """Base class for errors caused by input or configuration (not bugs); the CLI prints them without a traceback."""


class InputError(TremorError):
    """Malformed input data, located by file, line and field."""

    def __init__(self, message: str, *, file: str | Path | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.file = str(file) if file is not None else None
        self.line = line
        self.field = field
        where = []
        if self.file is not None:
            where.append(self.file)
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class IndexFormatError(TremorError):
    """An index directory that is missing, truncated, corrupted or of another format version."""


class VocabularyMismatchError(TremorError):
    """Query vectors from one vocabulary sent to an index built with another."""


class QueryError(TremorError):
    """A query that cannot be searched (empty text, bad parameters)."""
