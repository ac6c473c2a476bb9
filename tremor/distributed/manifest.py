"""The sharded index format: a directory of ordinary index directories plus a ``shards.json`` naming them.

```
SHARDED/
  shards.json        format "tremor-shards", version, index type, encoder, counts, and per shard its directory,
                     first global document number, document count and the sha256 of its manifest.json
  shard-0000/        an ordinary tremor index directory (manifest.json, arrays/, encoder/, docstore.sqlite)
  shard-0001/
  ...
```

Shards hold contiguous runs of the corpus in its order, so global document number = shard offset + local number,
and ties between shards break by that global order. The whole directory is written under a temporary name and
renamed into place, like every index.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tremor.errors import IndexFormatError
from tremor.index.storage import MANIFEST_FILE, check_manifest, file_sha256

SHARDS_FORMAT = "tremor-shards"
SHARDS_VERSION = 1
SHARDS_FILE = "shards.json"


def shard_name(number: int) -> str:
    return f"shard-{number:04d}"


def is_sharded(path: str | Path) -> bool:
    """True when ``path`` is a sharded index directory (has a shards.json)."""
    return (Path(path) / SHARDS_FILE).is_file()


def write_shards_manifest(directory: Path, shards: list[dict], body: dict) -> None:
    """Write ``shards.json``; each shard entry gets the sha256 of its own manifest."""
    entries = []
    for entry in shards:
        manifest = directory / entry["path"] / MANIFEST_FILE
        entries.append({**entry, "manifest_sha256": file_sha256(manifest)})
    document = {"format": SHARDS_FORMAT, "format_version": SHARDS_VERSION,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **body, "shards": entries}
    (directory / SHARDS_FILE).write_text(json.dumps(document, indent=2, sort_keys=True), encoding="utf-8")


def read_shards_manifest(directory: str | Path, verify: bool = True) -> dict:
    """Read and check ``shards.json``: our format and version, shard entries contiguous in document order, each
    shard directory present with the manifest it was built with (when ``verify``)."""
    directory = Path(directory)
    path = directory / SHARDS_FILE
    if not path.is_file():
        raise IndexFormatError(f"{directory}: not a sharded tremor index (no {SHARDS_FILE})")
    hint = "rebuild the sharded index"
    manifest = check_manifest(path, SHARDS_FORMAT, SHARDS_VERSION, ("shards", "counts", "index_type"), hint)
    shards = manifest["shards"]
    if not isinstance(shards, list) or not shards:
        raise IndexFormatError(f"{path}: 'shards' must be a non-empty list; {hint}")
    expected_offset = 0
    for number, entry in enumerate(shards):
        where = f"{path}: shards[{number}]"
        try:
            relative, offset, count = str(entry["path"]), int(entry["offset"]), int(entry["documents"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"{where} is incomplete ({exc}); {hint}") from None
        if Path(relative).is_absolute() or ".." in Path(relative).parts:
            raise IndexFormatError(f"{where}: path '{relative}' must name a directory inside {directory}")
        if offset != expected_offset:
            raise IndexFormatError(f"{where}: offset {offset}, expected {expected_offset} (shards must be "
                                   f"contiguous in document order); {hint}")
        expected_offset += count
        shard_manifest = directory / relative / MANIFEST_FILE
        if not shard_manifest.is_file():
            raise IndexFormatError(f"{where}: shard directory {directory / relative} is missing or not an index")
        if verify and file_sha256(shard_manifest) != entry.get("manifest_sha256"):
            raise IndexFormatError(f"{where}: {shard_manifest} differs from the one this sharded index was built "
                                   f"with (replaced or corrupted); {hint}")
    if expected_offset != manifest["counts"].get("documents"):
        raise IndexFormatError(f"{path}: shards hold {expected_offset} documents, counts say "
                               f"{manifest['counts'].get('documents')}; {hint}")
    return manifest
