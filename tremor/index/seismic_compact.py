"""The compact summary layout of Seismic indexes: 3 bytes per summary entry instead of 4, and no skip list.

A Seismic summary entry says "block b of list t has code c for component j". The packed layout (tremor's first
format, ``summary_entries``) holds it as one uint32, ``component << (block_bits + 8) | block << 8 | code``. The
compact layout drops the component's high byte from the entry: each summary segment (256 consecutive blocks of one
list) is cut into buckets of 256 components (``component >> 8``), and a bucket's entries are

- ``summary_keys`` (uint16): ``(component & 255) << 8 | block within the segment``, ascending (component, block),
- ``summary_codes`` (uint8): the block's 8-bit code for that component,

with ``summary_bucket_indptr[g * n_buckets + h]`` the first entry of bucket h of segment g (n_buckets =
ceil(vocab / 256)). Finding a query component's entries is one table lookup and a short binary search inside its
bucket. The bucket table costs 4 bytes × ceil(vocab / 256) per segment (480 bytes for BERT's 30,522 components).
Indexes written in the packed layout load through ``compact_from_packed``. A build writes packed entries first and
converts them here: to this layout, or with 4-bit codes (``summary_bits=4``) to ``seismic_nibble``'s
(``nibble_from_packed``); ``add_summary_segment`` scores a segment of either.
"""

from __future__ import annotations

import numba
import numpy as np

from tremor.index import seismic_nibble as nibble

BUCKET_BITS = 8  # components per bucket: 256 (the low byte stays in the key)
SEGMENT_BITS = 8  # blocks per segment: 256 (the block byte of the key)
NO_LIST_BITS = (np.zeros(0, np.int64), np.zeros(0, np.int64))  # _place_packed's last arguments for the 8-bit layout


def n_buckets(vocab_size: int) -> int:
    """Buckets per summary segment for a vocabulary of ``vocab_size`` components."""
    return max(1, (int(vocab_size) + (1 << BUCKET_BITS) - 1) >> BUCKET_BITS)


@numba.njit(cache=True, nogil=True)
def _place_packed(list_block_indptr: np.ndarray, list_segment_indptr: np.ndarray, segment_entry_indptr: np.ndarray,
                  entries: np.ndarray, block_bits: int, n_bucket: int, new_list_segments: np.ndarray,
                  slots: np.ndarray, keys: np.ndarray, codes: np.ndarray, fill: bool, list_bits: np.ndarray,
                  table_start: np.ndarray) -> None:
    """Walk the packed entries in order, each to its (segment, bucket) slot, given each list's first new segment
    in ``new_list_segments``: count it into ``slots[1 + slot]`` (``fill`` false), or write its key (and code) at
    ``slots[slot]``, the slot's next free position (``fill`` true). With ``list_bits`` empty the target is the
    compact 8-bit layout (slot (segment, bucket) = segment × n_bucket + bucket); otherwise the 4-bit one
    (``seismic_nibble``: list t's block bits in ``list_bits[t]``, bucket h of segment g at slot table_start[g] - g +
    h, the code inside the key). Packed segments are ascending (component, block) and hold whole new segments when
    block_bits >= 8, so the order carries over (otherwise the caller sorts the buckets)."""
    comp_shift = np.uint64(block_bits + 8)
    block_mask = (np.uint64(1) << np.uint64(block_bits)) - np.uint64(1)
    four_bit = list_bits.shape[0] > 0
    for t in range(list_block_indptr.shape[0] - 1):
        b_bits = list_bits[t] if four_bit else SEGMENT_BITS
        c_bits = nibble.KEY_BITS - b_bits if four_bit else BUCKET_BITS
        g0 = new_list_segments[t]
        for segment in range(list_segment_indptr[t], list_segment_indptr[t + 1]):
            base = (segment - list_segment_indptr[t]) << block_bits
            for e in range(segment_entry_indptr[segment], segment_entry_indptr[segment + 1]):
                entry = np.uint64(entries[e])
                block = base + np.int64((entry >> np.uint64(8)) & block_mask)
                comp = np.int64(entry >> comp_shift)
                g = g0 + (block >> b_bits)
                slot = (table_start[g] - g if four_bit else g * n_bucket) + (comp >> c_bits)
                if not fill:
                    slots[1 + slot] += 1
                    continue
                pos = slots[slot]
                code = np.int64(entry & np.uint64(255))
                if four_bit:
                    keys[pos] = np.uint16(((comp & ((1 << c_bits) - 1)) << (b_bits + 4))
                                          | ((block & ((1 << b_bits) - 1)) << 4) | (code & nibble.LEVELS))
                else:
                    keys[pos] = np.uint16(((comp & 255) << 8) | (block & 255))
                    codes[pos] = np.uint8(code)
                slots[slot] = pos + 1


def compact_from_packed(list_block_indptr: np.ndarray, list_segment_indptr: np.ndarray,
                        segment_entry_indptr: np.ndarray, entries: np.ndarray, block_bits: int,
                        vocab_size: int) -> dict[str, np.ndarray]:
    """The compact summary arrays (``list_segment_indptr``, ``summary_bucket_indptr``, ``summary_keys``,
    ``summary_codes``) of packed ones (checked beforehand)."""
    n_bucket = n_buckets(vocab_size)
    n_blocks = np.diff(np.asarray(list_block_indptr, np.int64))
    new_list_segments = np.zeros(n_blocks.shape[0] + 1, dtype=np.int64)
    np.cumsum((n_blocks + (1 << SEGMENT_BITS) - 1) >> SEGMENT_BITS, out=new_list_segments[1:])
    n_segments = int(new_list_segments[-1])
    n_entries = int(entries.shape[0])
    offset_dtype = np.int32 if n_entries < 2**31 else np.int64
    keys = np.empty(n_entries, dtype=np.uint16)
    codes = np.empty(n_entries, dtype=np.uint8)
    counts = np.zeros(n_segments * n_bucket + 1, dtype=np.int64)
    _place_packed(list_block_indptr, list_segment_indptr, segment_entry_indptr, entries, block_bits, n_bucket,
                  new_list_segments, counts, keys, codes, False, *NO_LIST_BITS)
    bucket_indptr = np.cumsum(counts)
    cursor = bucket_indptr[:-1].copy()
    _place_packed(list_block_indptr, list_segment_indptr, segment_entry_indptr, entries, block_bits, n_bucket,
                  new_list_segments, cursor, keys, codes, True, *NO_LIST_BITS)
    if block_bits < SEGMENT_BITS:
        # packed segments smaller than compact ones: a bucket got its entries segment by segment, so sort it
        _sort_buckets(bucket_indptr, keys, codes)
    return {"list_segment_indptr": new_list_segments, "summary_bucket_indptr": bucket_indptr.astype(offset_dtype),
            "summary_keys": keys, "summary_codes": codes}


def nibble_from_packed(list_block_indptr: np.ndarray, list_segment_indptr: np.ndarray,
                       segment_entry_indptr: np.ndarray, entries: np.ndarray, block_bits: int,
                       vocab_size: int) -> dict[str, np.ndarray]:
    """The 4-bit layout's arrays (``list_segment_indptr``, ``summary_table_start``, ``summary_bucket_anchor``,
    ``summary_bucket_offsets``, ``summary_keys``; see ``seismic_nibble``) of packed entries whose codes are below
    16."""
    bits, new_list_segments, table_start = nibble.layout(list_block_indptr, vocab_size)
    n_segments = int(new_list_segments[-1])
    keys = np.empty(int(entries.shape[0]), dtype=np.uint16)
    no_codes = np.empty(0, dtype=np.uint8)
    counts = np.zeros(int(table_start[-1]) - n_segments + 1, dtype=np.int64)
    _place_packed(list_block_indptr, list_segment_indptr, segment_entry_indptr, entries, block_bits, 0,
                  new_list_segments, counts, keys, no_codes, False, bits, table_start)
    slot_indptr = np.cumsum(counts)
    cursor = slot_indptr[:-1].copy()
    _place_packed(list_block_indptr, list_segment_indptr, segment_entry_indptr, entries, block_bits, 0,
                  new_list_segments, cursor, keys, no_codes, True, bits, table_start)
    if block_bits < nibble.MAX_BLOCK_BITS:  # a segment took entries from several packed segments
        _sort_buckets(slot_indptr, keys, no_codes)
    # row r of segment g is slot r - g's start (its last row, the next segment's first slot, is its end)
    segment_of_row = np.repeat(np.arange(n_segments, dtype=np.int64), np.diff(table_start))
    rows = slot_indptr[np.arange(int(table_start[-1]), dtype=np.int64) - segment_of_row]
    anchor, offsets = nibble.anchored(rows)
    return {"list_segment_indptr": new_list_segments, "summary_table_start": table_start,
            "summary_bucket_anchor": anchor, "summary_bucket_offsets": offsets, "summary_keys": keys}


@numba.njit(cache=True, nogil=True)
def _sort_buckets(bucket_indptr: np.ndarray, keys: np.ndarray, codes: np.ndarray) -> None:
    """Sort every bucket's entries by key (keys are distinct within a bucket; no codes: keys only)."""
    for slot in range(bucket_indptr.shape[0] - 1):
        lo = bucket_indptr[slot]
        hi = bucket_indptr[slot + 1]
        if hi - lo > 1:
            order = np.argsort(keys[lo:hi])
            keys[lo:hi] = keys[lo:hi][order]
            if codes.shape[0] > 0:
                codes[lo:hi] = codes[lo:hi][order]


@numba.njit(cache=True, nogil=True)
def first_key_outside_its_list(list_segment_indptr: np.ndarray, list_block_indptr: np.ndarray,
                               bucket_indptr: np.ndarray, keys: np.ndarray, n_bucket: int) -> tuple:
    """(segment, block) of the first compact segment with an entry whose block (the segment's rank in its list << 8,
    plus the key's low byte) is not one of its list's blocks, or (-1, -1). Offsets must have been checked."""
    for term in range(list_segment_indptr.shape[0] - 1):
        n_blocks = list_block_indptr[term + 1] - list_block_indptr[term]
        first = list_segment_indptr[term]
        for segment in range(first, list_segment_indptr[term + 1]):
            largest = -1
            for e in range(bucket_indptr[segment * n_bucket], bucket_indptr[(segment + 1) * n_bucket]):
                largest = max(largest, np.int64(keys[e] & 255))
            if largest >= 0 and ((segment - first) << SEGMENT_BITS) + largest >= n_blocks:
                return segment, ((segment - first) << SEGMENT_BITS) + largest
    return -1, -1


@numba.njit(cache=True, nogil=True, _nrt=False)
def add_summary_segment(segment: int, base: int, block_bits: int, n_bucket: int, table_start: np.ndarray,
                        anchor: np.ndarray, bucket_table: np.ndarray, keys: np.ndarray, codes: np.ndarray,
                        q_indices: np.ndarray, q_values: np.ndarray, q_dense: np.ndarray, n_terms: int,
                        linear_below: int, block_codes: np.ndarray, block_weight: np.ndarray) -> None:
    """Add one summary segment's scores against the query to ``block_codes`` (sum of weight × code) and
    ``block_weight`` (sum of weights) at ``base`` + block within the segment. With ``table_start`` non-empty the
    summaries are 4-bit (``seismic_nibble.add_segment``, ``block_bits`` its list's); otherwise they are this module's
    compact layout, ``bucket_table`` its absolute bucket offsets. A segment with fewer than ``linear_below`` entries
    is read in one pass with the query's weights from ``q_dense``; otherwise each query component's bucket is looked
    up and binary-searched. Both add in ascending component order."""
    if table_start.shape[0] > 0:
        nibble.add_segment(segment, base, block_bits, table_start, anchor, bucket_table, keys, q_indices,
                           q_values, q_dense, n_terms, linear_below, block_codes, block_weight)
        return
    row = segment * n_bucket
    seg_lo = bucket_table[row]
    seg_hi = bucket_table[row + n_bucket]
    if seg_hi - seg_lo < linear_below:
        for h in range(n_bucket):
            high = h << 8
            for e in range(bucket_table[row + h], bucket_table[row + h + 1]):
                key = np.int64(keys[e])
                weight = q_dense[high | (key >> 8)]
                if weight != 0:
                    blk = base + (key & 255)
                    block_codes[blk] += weight * np.float32(codes[e])
                    block_weight[blk] += weight
        return
    for p in range(q_indices.shape[0]):
        comp = np.int64(q_indices[p])
        if comp >= n_terms:
            continue
        end = bucket_table[row + (comp >> 8) + 1]
        low = comp & 255
        lo = nibble.lower_bound(keys, np.int64(bucket_table[row + (comp >> 8)]), np.int64(end), np.uint16(low << 8))
        weight = q_values[p]
        while lo < end and (np.int64(keys[lo]) >> 8) == low:
            blk = base + (np.int64(keys[lo]) & 255)
            block_codes[blk] += weight * np.float32(codes[lo])
            block_weight[blk] += weight
            lo += 1
