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

import numba
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
    at = _first_decrease(indptr)
    if at >= 0:
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
    if flat.dtype == np.float16:
        flat = flat.view(np.uint16)  # checked by its bits: Numba has no float16
        at = _first_bad_half(flat, nonnegative)
    else:
        at = _first_bad_value(flat, nonnegative)
    if at >= 0:
        value = values.reshape(-1)[at]
        raise corrupt(name, f"value {value} at position {at} is not finite" if not np.isfinite(value)
                      else f"weight {value} at position {at} is negative")


def check_sorted_rows(name: str, indptr: np.ndarray, items: np.ndarray, what: str) -> None:
    """Within each CSR row the items strictly increase (ids sorted and unique per row, as written); the offsets must
    have been checked."""
    at = _first_unsorted(indptr, items)
    if at >= 0:
        raise corrupt(name, f"{what} out of order at position {at} ({int(items[at - 1])} then {int(items[at])} in "
                            "one list)")


@numba.njit(cache=True, nogil=True)
def _first_decrease(indptr: np.ndarray) -> int:
    for i in range(indptr.shape[0] - 1):
        if indptr[i + 1] < indptr[i]:
            return i
    return -1


@numba.njit(cache=True, nogil=True)
def _first_unsorted(indptr: np.ndarray, items: np.ndarray) -> int:
    for row in range(indptr.shape[0] - 1):
        for p in range(indptr[row] + 1, indptr[row + 1]):
            if items[p] <= items[p - 1]:
                return p
    return -1


@numba.njit(cache=True, nogil=True)
def _first_bad_value(values: np.ndarray, nonnegative: bool) -> int:
    for i in range(values.shape[0]):
        v = values[i]
        if not np.isfinite(v) or (nonnegative and v < 0):
            return i
    return -1


@numba.njit(cache=True, nogil=True)
def _first_bad_half(bits: np.ndarray, nonnegative: bool) -> int:
    """float16 bits: exponent all ones is inf or NaN; the sign bit set on a non-zero is negative."""
    for i in range(bits.shape[0]):
        b = bits[i]
        if (b & 0x7C00) == 0x7C00 or (nonnegative and (b & 0x8000) != 0 and (b & 0x7FFF) != 0):
            return i
    return -1


@numba.njit(cache=True, nogil=True)
def first_entry_outside_its_list(list_segment_indptr: np.ndarray, list_block_indptr: np.ndarray,
                                 segment_entry_indptr: np.ndarray, entries: np.ndarray, block_bits: int) -> tuple:
    """(segment, block) of the first Seismic summary segment holding an entry whose block (the segment's rank in
    its list << block_bits, plus the entry's block field) is not one of its list's blocks, or (-1, -1). Offsets must
    have been checked."""
    mask = (1 << block_bits) - 1
    for term in range(list_segment_indptr.shape[0] - 1):
        n_blocks = list_block_indptr[term + 1] - list_block_indptr[term]
        first = list_segment_indptr[term]
        for segment in range(first, list_segment_indptr[term + 1]):
            largest = 0
            for e in range(segment_entry_indptr[segment], segment_entry_indptr[segment + 1]):
                largest = max(largest, (entries[e] >> 8) & mask)  # a max reduction: vectorised by the compiler
            if segment_entry_indptr[segment + 1] > segment_entry_indptr[segment] and \
                    ((segment - first) << block_bits) + largest >= n_blocks:
                return segment, ((segment - first) << block_bits) + largest
    return -1, -1
