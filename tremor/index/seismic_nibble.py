"""The 4-bit summary layout of Seismic indexes: 2 bytes per summary entry, with block and code inside the key.

A summary entry says "block b of list t has code c for component j". With 4-bit codes (``summary_bits=4``) one
16-bit key holds all of it: ``(j & (2**cbits - 1)) << (bbits + 4) | b within its segment << 4 | c``, where a list
with n blocks uses segments of 2**bbits blocks, bbits = ceil(log2 n) clamped to [4, 8], and buckets of 2**cbits
components, cbits = 12 - bbits. A list of at most 256 blocks is then one segment (the query's components are looked
up once per list, not once per 16 blocks), while a short list keeps a small bucket table: every list's table costs
about 2 bytes per 4,096 (component, block) pairs.

Arrays (besides the common ones):

- ``summary_keys`` (uint16): per segment, bucket by bucket, ascending keys (so ascending (component, block)),
- ``summary_table_start`` (int64): where each segment's rows start in the bucket table, plus the table's length;
  segment g has n_bucket + 1 rows, the starts of its buckets and its end,
- ``summary_bucket_offsets`` (uint16) and ``summary_bucket_anchor`` (uint32, or int64 past 2**32 entries): row r
  of the table is entry ``anchor[r >> 4] + offsets[r]``. A bucket holds at most 4,096 entries (one per (component,
  block) pair), so 16 consecutive rows span under 65,536 entries and 16-bit offsets from their group's first row
  always fit: 2.25 bytes a row.

Finding a query component's entries is one table lookup and a short binary search inside its bucket.
"""

from __future__ import annotations

import numba
import numpy as np

from tremor.index.intrinsics import prefetch

KEY_BITS = 12  # component and block bits of a key (the other 4 hold the code)
ANCHOR_BITS = 4  # table rows per anchor: 16
MIN_BLOCK_BITS = 4
MAX_BLOCK_BITS = 8
LEVELS = 15  # largest 4-bit code


@numba.njit(cache=True, nogil=True, inline="always")
def list_block_bits(n_blocks: int) -> int:
    """Block bits of a list with ``n_blocks`` blocks: ceil(log2 n_blocks) clamped to [4, 8]."""
    bits = MIN_BLOCK_BITS
    while bits < MAX_BLOCK_BITS and (1 << bits) < n_blocks:
        bits += 1
    return bits


def layout(list_block_indptr: np.ndarray, vocab_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(per-list block bits, list_segment_indptr, summary_table_start) of the 4-bit layout for these lists."""
    n_blocks = np.diff(np.asarray(list_block_indptr, np.int64))
    bits = np.full(n_blocks.shape[0], MIN_BLOCK_BITS, dtype=np.int64)
    for b in range(MIN_BLOCK_BITS + 1, MAX_BLOCK_BITS + 1):
        bits[n_blocks > (1 << (b - 1))] = b
    n_segments = (n_blocks + (1 << bits) - 1) >> bits
    list_segments = np.zeros(n_blocks.shape[0] + 1, dtype=np.int64)
    np.cumsum(n_segments, out=list_segments[1:])
    comp_bits = KEY_BITS - bits
    rows = np.repeat((int(vocab_size) + (1 << comp_bits) - 1) >> comp_bits, n_segments) + 1
    table_start = np.zeros(int(list_segments[-1]) + 1, dtype=np.int64)
    np.cumsum(rows, out=table_start[1:])
    return bits, list_segments, table_start


def table_rows(anchor: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Every table row's entry position (int64)."""
    return np.repeat(np.asarray(anchor, np.int64), 1 << ANCHOR_BITS)[:offsets.shape[0]] + offsets


def anchored(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(anchors, 16-bit offsets) of non-decreasing table rows whose 16-row groups each span under 65,536 entries."""
    anchor = rows[::1 << ANCHOR_BITS]
    offsets = rows - np.repeat(anchor, 1 << ANCHOR_BITS)[:rows.shape[0]]
    if offsets.size and int(offsets.max()) >= 2**16:
        raise ValueError("a bucket holds more than 4,096 entries (one per (component, block) pair)")
    dtype = np.uint32 if (rows[-1] if rows.size else 0) < 2**32 else np.int64
    return anchor.astype(dtype), offsets.astype(np.uint16)


@numba.njit(cache=True, nogil=True, _nrt=False)
def add_segment(segment: int, base: int, b_bits: int, table_start: np.ndarray, anchor: np.ndarray,
                offsets: np.ndarray, keys: np.ndarray, q_indices: np.ndarray, q_values: np.ndarray,
                q_dense: np.ndarray, n_terms: int, linear_below: int, block_codes: np.ndarray,
                block_weight: np.ndarray) -> None:
    """Add one 4-bit segment's scores against the query to ``block_codes`` (sum of weight × code) and
    ``block_weight`` (sum of weights) at ``base`` + block within the segment; ``b_bits`` is its list's block bits.
    A segment with fewer than ``linear_below`` entries is read in one pass with the query's weights from
    ``q_dense``; otherwise each query component's bucket is looked up and binary-searched."""
    c_bits = KEY_BITS - b_bits
    key_shift = b_bits + 4
    block_mask = (1 << b_bits) - 1
    row = table_start[segment]
    n_bucket = table_start[segment + 1] - row - 1
    if _row(anchor, offsets, row + n_bucket) - _row(anchor, offsets, row) < linear_below:
        for h in range(n_bucket):
            high = h << c_bits
            for e in range(_row(anchor, offsets, row + h), _row(anchor, offsets, row + h + 1)):
                key = np.int64(keys[e])
                weight = q_dense[high | (key >> key_shift)]
                if weight != 0:
                    blk = base + ((key >> 4) & block_mask)
                    block_codes[blk] += weight * np.float32(key & LEVELS)
                    block_weight[blk] += weight
        return
    low_mask = (1 << c_bits) - 1
    # a long list's table has ~2,000 rows per segment: start every query component's row on its way first, so the
    # cache misses overlap instead of following one another through the binary searches
    for p in range(q_indices.shape[0]):
        if q_indices[p] < n_terms:
            prefetch(offsets, row + (np.int64(q_indices[p]) >> c_bits))
    for p in range(q_indices.shape[0]):
        comp = np.int64(q_indices[p])
        if comp >= n_terms:
            continue
        h = comp >> c_bits
        end = _row(anchor, offsets, row + h + 1)
        low = comp & low_mask
        lo = lower_bound(keys, _row(anchor, offsets, row + h), end, np.uint16(low << key_shift))
        weight = q_values[p]
        while lo < end and (np.int64(keys[lo]) >> key_shift) == low:
            key = np.int64(keys[lo])
            blk = base + ((key >> 4) & block_mask)
            block_codes[blk] += weight * np.float32(key & LEVELS)
            block_weight[blk] += weight
            lo += 1


@numba.njit(cache=True, nogil=True, inline="always")
def _row(anchor: np.ndarray, offsets: np.ndarray, r: int) -> int:
    """Entry position of table row ``r``."""
    return np.int64(anchor[r >> ANCHOR_BITS]) + np.int64(offsets[r])


@numba.njit(cache=True, nogil=True, inline="always")
def lower_bound(keys: np.ndarray, lo: int, hi: int, target: np.uint16) -> int:
    """First position in [lo, hi) whose key is >= ``target`` (keys ascending there), or hi."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def first_bad_row(table_start: np.ndarray, anchor: np.ndarray, offsets: np.ndarray, n_entries: int) -> int:
    """The first table row that lies past the entries or below the row before it (the first row must be entry 0,
    the last the entry count, and a segment's end row its next one's start), or -1 if none does."""
    n_rows = offsets.shape[0]
    if n_rows == 0:
        return -1
    if _row(anchor, offsets, 0) != 0:
        return 0
    for r in range(1, n_rows):
        if _row(anchor, offsets, r) < _row(anchor, offsets, r - 1) or _row(anchor, offsets, r) > n_entries:
            return r
    for g in range(table_start.shape[0] - 2):
        if _row(anchor, offsets, table_start[g + 1] - 1) != _row(anchor, offsets, table_start[g + 1]):
            return table_start[g + 1]
    if _row(anchor, offsets, n_rows - 1) != n_entries:
        return n_rows - 1
    return -1


@numba.njit(cache=True, nogil=True)
def first_key_outside_its_list(list_segment_indptr: np.ndarray, list_block_indptr: np.ndarray,
                               table_start: np.ndarray, anchor: np.ndarray, offsets: np.ndarray,
                               keys: np.ndarray) -> tuple:
    """(segment, block) of the first segment with an entry whose block (the segment's rank in its list << block
    bits, plus the key's block field) is not one of its list's blocks, or (-1, -1). Offsets must have been checked."""
    for term in range(list_segment_indptr.shape[0] - 1):
        n_blocks = list_block_indptr[term + 1] - list_block_indptr[term]
        b_bits = list_block_bits(n_blocks)
        first = list_segment_indptr[term]
        for segment in range(first, list_segment_indptr[term + 1]):
            largest = -1
            for e in range(_row(anchor, offsets, table_start[segment]),
                           _row(anchor, offsets, table_start[segment + 1] - 1)):
                largest = max(largest, (np.int64(keys[e]) >> 4) & ((1 << b_bits) - 1))
            block = ((segment - first) << b_bits) + largest
            if largest >= 0 and block >= n_blocks:
                return segment, block
    return -1, -1

