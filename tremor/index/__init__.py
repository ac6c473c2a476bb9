"""Indexes over SparseVectors: an exact reference and approximate ones, named by short factory strings.

An index type is a class with ``build(docs, **params)``, ``search(queries, k, **search_params)``, ``params()``,
``arrays()`` and ``from_arrays(...)``. ``"exact"`` or ``"seismic,lambda=3000,beta=0.2,alpha=0.5"`` names one,
in the manner of faiss's index_factory: build-time parameters live in the string, search-time ones are passed to
``search``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from tremor.errors import TremorError

# name -> "module:Class"; imported on first use so that optional kernels compile only when used.
INDEX_TYPES = {
    "exact": "tremor.index.exact:ExactIndex",
    "seismic": "tremor.index.seismic:SeismicIndex",
}


def register_index_type(name: str, target: str) -> None:
    INDEX_TYPES[name] = target


def index_class(name: str) -> type:
    """The class implementing index type ``name``."""
    if name not in INDEX_TYPES:
        raise TremorError(f"unknown index type '{name}' (known: {', '.join(sorted(INDEX_TYPES))})")
    module, cls = INDEX_TYPES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def open_index_dir(path: Path, mmap: bool = True, verify: bool = False) -> tuple:
    """(index object, manifest) of one index directory or segment: its arrays memory-mapped and checked by the
    index class before any kernel reads them (a damaged array is an IndexFormatError naming ``path``)."""
    from tremor.errors import IndexFormatError
    from tremor.index.storage import load_arrays, read_manifest

    manifest = read_manifest(path)
    cls = index_class(manifest["index_type"])
    arrays = load_arrays(path, manifest["arrays"], mmap=mmap, verify=verify)
    try:
        index = cls.from_arrays(arrays, manifest["params"], manifest["vocab_size"], manifest.get("vocab_id"))
    except KeyError as exc:
        raise IndexFormatError(f"{path}: index arrays incomplete (missing {exc})") from None
    except IndexFormatError as exc:
        raise IndexFormatError(f"{path}: {exc}") from None
    return index, manifest


def _parse_value(text: str) -> int | float | bool | str:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("inf", "none"):
        return None if lowered == "none" else float("inf")
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_index_spec(spec: str) -> tuple[str, dict]:
    """Split ``"name,key=value,..."`` into the index type and its build parameters (keys mapped through the class's
    ``SPEC_ALIASES``, values parsed as numbers where they look like numbers)."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise TremorError("empty index spec")
    name, params = parts[0], {}
    cls = index_class(name)
    aliases = getattr(cls, "SPEC_ALIASES", {})
    for part in parts[1:]:
        if "=" not in part:
            raise TremorError(f"index spec '{spec}': expected key=value, got '{part}'")
        key, value = (s.strip() for s in part.split("=", 1))
        params[aliases.get(key, key)] = _parse_value(value)
    return name, params
