"""Structural checks of index arrays at load: everything a search kernel indexes with, checked before it can.

A Numba kernel trusts its arrays: a document number past the end or an offset out of order reads outside an array
and crashes the process. These checks run once per load, vectorised (a few passes over each array, no Python loop
over postings), so a damaged index is a clear ``IndexFormatError`` naming the array and what is wrong, never a
segmentation fault. Values are checked for being finite and non-negative (a NaN would silently drop a document).

They do not prove an index undamaged: a weight changed from 0.31 to 0.32, or one valid document number replaced by
another, keeps the structure valid; only the checksums (``verify=True``, ``tremor index info --verify``) find that.
Any loader of index arrays (whole indexes, segments) calls these from its ``check_arrays``.
"""

from __future__ import annotations

import numpy as np

from tremor.errors import IndexFormatError

# arrays are scanned in chunks of this many elements, so a check never allocates more than a few such buffers
CHUNK = 1 << 22


def corrupt(name: str, problem: str) -> IndexFormatError:
    """The error for a damaged array ``name`` (its file is ``arrays/<name>.npy``)."""
    return IndexFormatError(f"arrays/{name}.npy: {problem}; the index is corrupted, rebuild it")


def check_kind(name: str, array: np.ndarray, kinds: str, ndim: int = 1) -> None:
    """The array has one of the numpy dtype kinds ``kinds`` ('i', 'u', 'f') and ``ndim`` dimensions."""
    if not isinstance(array, np.ndarray) or array.dtype.kind not in kinds or array.ndim != ndim:
        described = f"{array.dtype}{list(array.shape)}" if isinstance(array, np.ndarray) else type(array).__name__
        raise corrupt(name, f"unexpected array type {described}")


def check_length(name: str, array: np.ndarray, length: int, what: str) -> None:
    if array.shape[0] != length:
        raise corrupt(name, f"holds {array.shape[0]} entries, expected {length} ({what})")


def check_offsets(name: str, indptr: np.ndarray, n_rows: int, n_items: int, items: str) -> None:
    """``indptr`` is a CSR offset array of ``n_rows`` rows over ``n_items`` items: n_rows + 1 entries, starting at
    0, never decreasing, ending at ``n_items``."""
    check_kind(name, indptr, "iu")
    check_length(name, indptr, n_rows + 1, f"one per row plus one, {n_rows} rows")
    if int(indptr[0]) != 0:
        raise corrupt(name, f"first offset is {int(indptr[0])}, expected 0")
    if int(indptr[-1]) != n_items:
        raise corrupt(name, f"last offset is {int(indptr[-1])}, expected the number of {items} ({n_items})")
    for start in range(0, n_rows, CHUNK):
        part = np.asarray(indptr[start:start + CHUNK + 1])
        steps = np.diff(part.astype(np.int64, copy=False))
        if steps.size and int(steps.min()) < 0:
            at = start + int(np.argmax(steps < 0))
            raise corrupt(name, f"offsets decrease at row {at} ({int(indptr[at])} then {int(indptr[at + 1])})")


def check_ids(name: str, ids: np.ndarray, limit: int, what: str, low: int = 0) -> None:
    """Every id lies in [low, limit) (``low`` = -1 allows the -1 padding of fixed-width rows)."""
    check_kind(name, ids, "iu", ids.ndim if isinstance(ids, np.ndarray) and ids.ndim else 1)
    flat = ids.reshape(-1)
    for start in range(0, flat.shape[0], CHUNK):
        part = np.asarray(flat[start:start + CHUNK])
        if not part.size:
            continue
        smallest, largest = int(part.min()), int(part.max())
        if smallest < low or largest >= limit:
            bad = part[(part < low) | (part >= limit)][0]
            at = start + int(np.argmax(part == bad))
            raise corrupt(name, f"{what} {int(bad)} at position {at} is out of range [{low}, {limit})")


def check_values(name: str, values: np.ndarray, nonnegative: bool = True) -> None:
    """Every value is finite (and, for weights, not negative)."""
    check_kind(name, values, "f", values.ndim if isinstance(values, np.ndarray) and values.ndim else 1)
    flat = values.reshape(-1)
    for start in range(0, flat.shape[0], CHUNK):
        part = np.asarray(flat[start:start + CHUNK])
        finite = np.isfinite(part)
        if not finite.all():
            at = start + int(np.argmin(finite))
            raise corrupt(name, f"value {part[at - start]} at position {at} is not finite")
        if nonnegative and part.size and float(part.min()) < 0:
            at = start + int(np.argmax(part < 0))
            raise corrupt(name, f"weight {part[at - start]} at position {at} is negative")


def check_sorted_rows(name: str, indptr: np.ndarray, items: np.ndarray, what: str) -> None:
    """Within each CSR row the items strictly increase (ids sorted and unique per row, as written)."""
    n = items.shape[0]
    if n < 2:
        return
    for start in range(0, n - 1, CHUNK):
        stop = min(start + CHUNK, n - 1)
        part = np.asarray(items[start:stop + 1]).astype(np.int64, copy=False)
        bad = np.flatnonzero(np.diff(part) <= 0) + start  # item bad+1 does not exceed item bad
        if not bad.size:
            continue
        # a row boundary between bad and bad+1 makes the pair legal: bad+1 starts a row
        starts = np.asarray(indptr)
        row_starts = np.searchsorted(starts, bad + 1, side="left")
        legal = (row_starts < starts.shape[0]) & (starts[np.minimum(row_starts, starts.shape[0] - 1)] == bad + 1)
        if not legal.all():
            at = int(bad[np.argmin(legal)])
            raise corrupt(name, f"{what} out of order at position {at + 1} ({int(items[at])} then "
                                f"{int(items[at + 1])} in one list)")
