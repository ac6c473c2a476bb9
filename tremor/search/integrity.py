"""Whole-index checks: every file the manifests name (arrays, encoder, document store, dense side) against its
recorded size and sha256, and the leftovers of killed builds beside an index."""

from __future__ import annotations

from pathlib import Path

from tremor.index.storage import directory_bytes, stale_build_directories


def verify_index(path: str | Path) -> tuple[int, list[str]]:
    """Load the index at ``path`` with every checksum checked (IndexFormatError on the first mismatch); returns
    (files verified, notes on what the manifests do not cover)."""
    from tremor.search.dense import DENSE_DIR, DenseIndex
    from tremor.search.searcher import Searcher

    path = Path(path)
    searcher = Searcher.load(path, verify=True)
    manifest = searcher.manifest
    count = len(manifest["arrays"])
    notes = []
    if "files" in manifest:
        count += len(manifest["files"])
    else:
        notes.append("this index was written before manifests listed every file: its document store and encoder "
                     "have no checksums (rebuild it to cover them)")
    if (path / DENSE_DIR).is_dir():
        _, dense_manifest = DenseIndex.load(path / DENSE_DIR, verify=True)
        count += len(dense_manifest["files"])
    return count, notes


def stale_builds_report(path: str | Path) -> list[dict]:
    """Leftovers of killed builds to ``path`` (removed by the next build to it): name and size of each."""
    return [{"path": str(stale), "bytes": directory_bytes(stale)} for stale in stale_build_directories(path)]
