"""What every sparse encoder offers, and how encoders are saved beside an index and loaded back.

An encoder turns text into ``SparseVectors`` over its vocabulary. Documents and queries may be encoded differently
(BM25 impacts vs term counts, a model vs an IDF table). An index directory stores its encoder under ``encoder/``
(``encoder.json`` names the kind), so ``Searcher.load`` can encode queries exactly as the index expects.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from tremor.errors import IndexFormatError, TremorError
from tremor.index.storage import sequence_hash
from tremor.sparse import SparseVectors

ENCODER_FILE = "encoder.json"


@runtime_checkable
class SparseEncoder(Protocol):
    """Text to sparse vectors. ``vocab_id`` ("<kind>:<vocab hash>") ties vectors to their vocabulary."""

    kind: str

    @property
    def vocab_size(self) -> int: ...

    @property
    def vocab_id(self) -> str: ...

    def encode_documents(self, texts: Sequence[str]) -> SparseVectors: ...

    def encode_queries(self, texts: Sequence[str]) -> SparseVectors: ...

    def save(self, directory: Path) -> None: ...


def vocab_hash(tokens: Sequence[str]) -> str:
    """A short stable hash of an id-ordered token list."""
    return sequence_hash(tokens)


_LOADERS: dict[str, Callable[[Path, dict], SparseEncoder]] = {}


def register_encoder(kind: str) -> Callable:
    """Class decorator: the class's ``load(directory, config)`` classmethod restores encoders of this kind."""

    def wrap(cls):
        _LOADERS[kind] = cls.load
        return cls

    return wrap


def write_encoder_config(directory: Path, config: dict) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ENCODER_FILE).write_text(json.dumps(config, indent=2, sort_keys=True), encoding="utf-8")


def load_saved_encoder(directory: Path) -> SparseEncoder:
    """Restore the encoder saved in ``directory`` (the ``encoder/`` folder of an index)."""
    config_path = Path(directory) / ENCODER_FILE
    if not config_path.is_file():
        raise IndexFormatError(f"{config_path}: missing; the index has no saved encoder")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise IndexFormatError(f"{config_path}: invalid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise IndexFormatError(f"{config_path}: not UTF-8 ({exc.reason} at byte {exc.start}); the encoder files are "
                               "damaged") from None
    if not isinstance(config, dict):
        raise IndexFormatError(f"{config_path}: not an encoder description (a JSON object)")
    kind = config.get("kind")
    _import_builtin_encoders()
    if kind not in _LOADERS:
        raise IndexFormatError(f"{config_path}: unknown encoder kind '{kind}' (known: {', '.join(sorted(_LOADERS))})")
    return _LOADERS[kind](Path(directory), config)


def _import_builtin_encoders() -> None:
    # Importing registers the loaders; neural encoders import torch lazily inside their modules.
    import tremor.encoders.bm25
    import tremor.encoders.neural  # noqa: F401


def registered_kinds() -> list[str]:
    _import_builtin_encoders()
    return sorted(_LOADERS)


def require_texts(texts: Sequence[str] | str) -> list[str]:
    if isinstance(texts, str):
        raise TremorError("pass a list of texts, not a single string")
    return list(texts)
