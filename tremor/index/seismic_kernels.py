"""Numba kernels of the Seismic index: building blocked posting lists with quantized summaries, and searching them.

Bruch, Nardini, Rulli, Venturini, "Efficient Inverted Indexes for Approximate Retrieval over Learned Sparse
Representations" (SIGIR 2024), and the κ-NN refinement of "Pairing Clustered Inverted Indexes with κ-NN Graphs"
(CIKM 2024). ``tremor.index.seismic`` arranges the arrays; everything that touches postings or documents is here.

Array layout (one posting list per vocabulary term t):

- forward index: ``doc_indptr`` (int64), ``doc_components`` (uint16, or int32 for vocabularies over 65,536 terms),
  and the kernels' ``doc_values`` argument, a pair (values, scales): float16 bits as uint16 (decoded with the CPU's
  half-precision conversion) and an empty scale array, or, for a quantized forward index, 8-bit codes and a float32
  scale per document (value = code × scale).
- blocks: list t owns blocks ``list_block_indptr[t]:list_block_indptr[t+1]``; block b owns
  ``posting_docs[block_indptr[b]:block_indptr[b+1]]`` (int32 document numbers, ascending within a block).
- summaries: for each list, a small inverted index from component to the list's blocks, cut into segments of
  2**block_bits blocks so that an entry fits one integer. List t owns segments
  ``list_segment_indptr[t]:list_segment_indptr[t+1]``; segment g owns ``summary_entries[segment_entry_indptr[g]:
  segment_entry_indptr[g+1]]``, each ``component << (block_bits + 8) | block within the segment << 8 | code``,
  ascending (so a component's entries are adjacent and found by one search). uint32 entries when the component
  needs at most 20 bits (block_bits = 24 - component bits, 512 blocks per segment for BERT's vocabulary), else
  uint64 with block_bits = 16. Block b's value for a code is
  ``block_min[b] + code * block_scale[b]``, rounded up at build time so that it never falls below the block's true
  coordinate-wise maximum.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from tremor.index.intrinsics import prefetch
from tremor.index.seismic_compact import SEGMENT_BITS, add_summary_segment
from tremor.index.seismic_nibble import list_block_bits
from tremor.index.topk import heap_drain_sorted, heap_push

# ---------------------------------------------------------------------------------------------------- primitives


@intrinsic
def half_to_float(typingctx, bits):
    """A stored document value to float32: float16 bits (a 16-bit integer) by LLVM's fpext (one vcvtph2ps on CPUs
    with F16C), an 8-bit code (the quantized forward index) by an unsigned conversion."""
    if not isinstance(bits, types.Integer) or bits.bitwidth not in (8, 16):
        return None
    width = bits.bitwidth

    def codegen(context, builder, signature, args):
        if width == 8:
            return builder.uitofp(args[0], ir.FloatType())
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return types.float32(bits), codegen


GATHER_WIDTH = 16  # document entries per step of the vectorized inner product


def _host_gathers() -> bool:
    """Whether this CPU has vector gathers (AVX2 or AVX-512). Without them LLVM emulates ``gather_dot``'s gathers
    with one scalar load per lane, so such CPUs keep the scalar loop built for them (not measured on one here)."""
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features()
    return any(features.get(name, False) for name in ("avx2", "avx512f"))


HOST_GATHERS = _host_gathers()


@intrinsic
def gather_dot(typingctx, q_dense, components, values, start, end):
    """Sum of ``q_dense[components[p]] * value(values[p])`` over the first whole multiple of GATHER_WIDTH positions
    of ``[start, end)`` (the caller adds the rest): GATHER_WIDTH components loaded at once, their query weights
    fetched with one masked gather, the values widened (float16 bits with one conversion, 8-bit codes unsigned) and
    multiplied into a vector of partial sums, added up at the end. The scalar loop is bound by one dependent load
    per entry; this does a step's loads together."""
    if not (isinstance(q_dense, types.Array) and q_dense.dtype == types.float32
            and isinstance(components, types.Array) and isinstance(components.dtype, types.Integer)
            and isinstance(values, types.Array) and isinstance(values.dtype, types.Integer)
            and values.dtype.bitwidth in (8, 16)
            and isinstance(start, types.Integer) and isinstance(end, types.Integer)):
        return None
    width = GATHER_WIDTH
    component_bits = components.dtype.bitwidth
    value_bits = values.dtype.bitwidth

    def codegen(context, builder, signature, args):
        i32, i64, f32 = ir.IntType(32), ir.IntType(64), ir.FloatType()
        floats = ir.VectorType(f32, width)
        pointers = ir.VectorType(ir.PointerType(f32), width)
        q_data = context.make_array(signature.args[0])(context, builder, args[0]).data
        c_data = context.make_array(signature.args[1])(context, builder, args[1]).data
        v_data = context.make_array(signature.args[2])(context, builder, args[2]).data
        first = context.cast(builder, args[3], signature.args[3], types.int64)
        last = context.cast(builder, args[4], signature.args[4], types.int64)
        steps = builder.udiv(builder.sub(last, first), i64(width))
        gather = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(floats, [pointers, i32, ir.VectorType(ir.IntType(1), width), floats]),
            f"llvm.masked.gather.v{width}f32.v{width}p0")
        every_lane = ir.Constant(ir.VectorType(ir.IntType(1), width), [1] * width)
        sums = cgutils.alloca_once_value(builder, ir.Constant(floats, [0.0] * width))
        with cgutils.for_range(builder, steps) as loop:
            p = builder.add(first, builder.mul(loop.index, i64(width)))
            comp_vector = ir.VectorType(ir.IntType(component_bits), width)
            comps = builder.load(builder.bitcast(builder.gep(c_data, [p]), ir.PointerType(comp_vector)),
                                 align=component_bits // 8)
            if component_bits < 32:
                comps = builder.zext(comps, ir.VectorType(i32, width))
            # a vector getelementptr (one address per lane: q_dense + 4 × component), which LLVM lowers to a gather
            # with 32-bit indices; llvmlite types a GEP result as one pointer, so the vector type is set here
            addresses = builder.gep(q_data, [comps], inbounds=True, source_etype=f32)
            addresses.type = pointers
            weights = builder.call(gather, [addresses, i32(4), every_lane, ir.Constant(floats, ir.Undefined)])
            value_vector = ir.VectorType(ir.IntType(value_bits), width)
            raw = builder.load(builder.bitcast(builder.gep(v_data, [p]), ir.PointerType(value_vector)),
                               align=value_bits // 8)
            if value_bits == 16:
                decoded = builder.fpext(builder.bitcast(raw, ir.VectorType(ir.HalfType(), width)), floats)
            else:
                decoded = builder.uitofp(raw, floats)
            builder.store(builder.fadd(builder.load(sums), builder.fmul(weights, decoded)), sums)
        vector = builder.load(sums)
        total = builder.extract_element(vector, i32(0))
        for lane in range(1, width):
            total = builder.fadd(total, builder.extract_element(vector, i32(lane)))
        return total

    return types.float32(q_dense, components, values, start, end), codegen


@numba.njit(cache=True, nogil=True, inline="always")
def _splitmix64(state: np.uint64) -> tuple:
    """One step of SplitMix64: (next state, 64 random bits). Deterministic on every thread."""
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state, z ^ (z >> np.uint64(31))


@numba.njit(cache=True, nogil=True, _nrt=False)
def _doc_dot(doc: int, doc_indptr: np.ndarray, doc_components: np.ndarray, doc_values: np.ndarray,
             doc_scale: np.ndarray, q_dense: np.ndarray) -> np.float32:
    """Inner product of document ``doc`` (forward index) with a query scattered into a dense array. ``doc_values``
    and ``doc_scale``: float16 bits and no scales, or 8-bit codes and each document's scale (arrays, not the
    kernels' (values, scales) pair: taking a tuple apart here costs two atomic reference counts per document). On CPUs
    with vector gathers, GATHER_WIDTH entries at a time (``gather_dot``); otherwise four running sums (combined in a
    fixed order) keep the additions from waiting on each other, and unsigned positions spare Numba's negative-index
    handling in the loop (``_doc_dot_scalar``)."""
    if HOST_GATHERS:
        start = doc_indptr[doc]
        end = doc_indptr[doc + 1]
        total = gather_dot(q_dense, doc_components, doc_values, start, end)
        p = start + ((end - start) // GATHER_WIDTH) * GATHER_WIDTH
        while p < end:
            total += q_dense[doc_components[p]] * half_to_float(doc_values[p])
            p += 1
        if doc_scale.shape[0] > 0:
            return total * doc_scale[doc]
        return total
    return _doc_dot_scalar(doc, doc_indptr, doc_components, doc_values, doc_scale, q_dense)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _doc_dot_scalar(doc: int, doc_indptr: np.ndarray, doc_components: np.ndarray, doc_values: np.ndarray,
                    doc_scale: np.ndarray, q_dense: np.ndarray) -> np.float32:
    """``_doc_dot`` without vector gathers (for CPUs that have none)."""
    s0 = np.float32(0.0)
    s1 = np.float32(0.0)
    s2 = np.float32(0.0)
    s3 = np.float32(0.0)
    one = np.uint64(1)
    two = np.uint64(2)
    three = np.uint64(3)
    four = np.uint64(4)
    p = np.uint64(doc_indptr[doc])
    end = np.uint64(doc_indptr[doc + 1])
    while p + four <= end:
        s0 += q_dense[doc_components[p]] * half_to_float(doc_values[p])
        s1 += q_dense[doc_components[p + one]] * half_to_float(doc_values[p + one])
        s2 += q_dense[doc_components[p + two]] * half_to_float(doc_values[p + two])
        s3 += q_dense[doc_components[p + three]] * half_to_float(doc_values[p + three])
        p += four
    while p < end:
        s0 += q_dense[doc_components[p]] * half_to_float(doc_values[p])
        p += one
    if doc_scale.shape[0] > 0:
        return ((s0 + s1) + (s2 + s3)) * doc_scale[doc]
    return (s0 + s1) + (s2 + s3)


# --------------------------------------------------------------------------------------------------------- build


@numba.njit(cache=True, nogil=True, parallel=True)
def quantize_forward(doc_indptr: np.ndarray, values: np.ndarray) -> tuple:
    """8-bit forward-index values: (codes, per-document scales) with value ≈ code × scale, scale = the document's
    largest value / 255 and codes rounded to nearest."""
    n_docs = doc_indptr.shape[0] - 1
    codes = np.zeros(values.shape[0], dtype=np.uint8)
    scales = np.zeros(n_docs, dtype=np.float32)
    for doc in numba.prange(n_docs):
        top = np.float32(0.0)
        for p in range(doc_indptr[doc], doc_indptr[doc + 1]):
            top = max(top, values[p])
        if top <= 0:
            continue
        scale = np.float32(top / np.float32(255.0))
        scales[doc] = scale
        for p in range(doc_indptr[doc], doc_indptr[doc + 1]):
            codes[p] = np.uint8(min(255.0, max(0.0, np.floor(values[p] / scale + np.float32(0.5)))))
    return codes, scales


@numba.njit(cache=True, nogil=True, parallel=True)
def dequantize_forward(doc_indptr: np.ndarray, codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """The float32 values 8-bit forward-index codes stand for (code × the document's scale)."""
    values = np.empty(codes.shape[0], dtype=np.float32)
    for doc in numba.prange(doc_indptr.shape[0] - 1):
        for p in range(doc_indptr[doc], doc_indptr[doc + 1]):
            values[p] = np.float32(codes[p]) * scales[doc]
    return values


@numba.njit(cache=True, nogil=True, parallel=True)
def top_components(doc_indptr: np.ndarray, doc_components: np.ndarray, values: np.ndarray, doc_cut: int) -> tuple:
    """Each document's ``doc_cut`` largest components (ties to the smaller id): (components, values, counts)."""
    n_docs = doc_indptr.shape[0] - 1
    out_components = np.zeros((n_docs, doc_cut), dtype=np.int32)
    out_values = np.zeros((n_docs, doc_cut), dtype=np.float32)
    counts = np.zeros(n_docs, dtype=np.int32)
    for doc in numba.prange(n_docs):
        start = doc_indptr[doc]
        end = doc_indptr[doc + 1]
        if end - start <= doc_cut:
            for j in range(end - start):
                out_components[doc, j] = doc_components[start + j]
                out_values[doc, j] = values[start + j]
            counts[doc] = end - start
        else:
            order = np.argsort(-values[start:end], kind="mergesort")
            for j in range(doc_cut):
                out_components[doc, j] = doc_components[start + order[j]]
                out_values[doc, j] = values[start + order[j]]
            counts[doc] = doc_cut
    return out_components, out_values, counts


@numba.njit(cache=True, nogil=True, parallel=True)
def kept_lengths(post_indptr: np.ndarray, post_values: np.ndarray, threshold: float, cap: int) -> np.ndarray:
    """Length of every posting list after static pruning: entries >= ``threshold``, at most ``cap`` per list."""
    n_lists = post_indptr.shape[0] - 1
    lengths = np.zeros(n_lists, dtype=np.int64)
    for t in numba.prange(n_lists):
        count = 0
        for p in range(post_indptr[t], post_indptr[t + 1]):
            if post_values[p] >= threshold and post_values[p] > 0:
                count += 1
        lengths[t] = min(count, cap)
    return lengths


@numba.njit(cache=True, nogil=True)
def _prune_list(docs: np.ndarray, values: np.ndarray, threshold: float, n_keep: int, out: np.ndarray) -> None:
    """Write into ``out`` (ascending) the ``n_keep`` documents of one list with the largest values >= threshold;
    ties at the cut go to the smaller document numbers."""
    n = docs.shape[0]
    eligible = 0
    for p in range(n):
        if values[p] >= threshold and values[p] > 0:
            eligible += 1
    cut = threshold
    if eligible > n_keep:
        candidates = np.empty(eligible, dtype=np.float32)
        j = 0
        for p in range(n):
            if values[p] >= threshold and values[p] > 0:
                candidates[j] = values[p]
                j += 1
        cut = np.partition(candidates, eligible - n_keep)[eligible - n_keep]
        above = 0
        for p in range(n):
            if values[p] > cut:
                above += 1
        at_cut_allowed = n_keep - above
    else:
        at_cut_allowed = n
    j = 0
    for p in range(n):
        v = values[p]
        if v <= 0 or v < threshold or v < cut:
            continue
        if v == cut and eligible > n_keep:
            if at_cut_allowed == 0:
                continue
            at_cut_allowed -= 1
        out[j] = docs[p]
        j += 1


@numba.njit(cache=True, nogil=True)
def _cluster_list(docs: np.ndarray, n_centroids: int, min_cluster_size: int, seed: np.uint64,
                  doc_indptr: np.ndarray, doc_components: np.ndarray, values: np.ndarray,
                  top_comp: np.ndarray, top_val: np.ndarray, top_count: np.ndarray,
                  head: np.ndarray, comp_count: np.ndarray, comp_touched: np.ndarray, scores: np.ndarray,
                  out_docs: np.ndarray, out_sizes: np.ndarray) -> int:
    """Random-centroid clustering of one posting list (Seismic's blocking).

    ``n_centroids`` documents are sampled as centroids; every document joins the centroid with the largest inner
    product between the document's top components and the centroid's full vector (an inverted index over the
    centroids makes this cheap). Clusters of ``min_cluster_size`` documents or fewer are dissolved and their
    documents reassigned. Writes the documents grouped by cluster (ascending within a cluster) to ``out_docs`` and
    the cluster sizes to ``out_sizes``; returns the number of clusters."""
    n = docs.shape[0]
    # sample centroid positions: partial Fisher-Yates shuffle
    positions = np.arange(n)
    state = seed
    for i in range(n_centroids):
        state, bits = _splitmix64(state)
        j = i + np.int64(bits % np.uint64(n - i))
        positions[i], positions[j] = positions[j], positions[i]
    centroid_docs = positions[:n_centroids].copy()
    # inverted index over the centroids' vectors (CSR over the components they use): start in head[component],
    # length in comp_count[component]
    n_comps = 0
    total = 0
    for c in range(n_centroids):
        d = docs[centroid_docs[c]]
        for p in range(doc_indptr[d], doc_indptr[d + 1]):
            comp = doc_components[p]
            if comp_count[comp] == 0:
                comp_touched[n_comps] = comp
                n_comps += 1
            comp_count[comp] += 1
            total += 1
    start = 0
    for i in range(n_comps):
        comp = comp_touched[i]
        head[comp] = start
        start += comp_count[comp]
    entry_centroid = np.empty(total, dtype=np.int32)
    entry_value = np.empty(total, dtype=np.float32)
    for c in range(n_centroids):
        d = docs[centroid_docs[c]]
        for p in range(doc_indptr[d], doc_indptr[d + 1]):
            comp = doc_components[p]
            e = head[comp]
            entry_centroid[e] = c
            entry_value[e] = values[p]
            head[comp] = e + 1
    for i in range(n_comps):
        comp = comp_touched[i]
        head[comp] -= comp_count[comp]
    assignment = np.empty(n, dtype=np.int32)
    removed = np.zeros(n_centroids, dtype=np.bool_)
    for rnd in range(2):
        for i in range(n):
            if rnd == 1 and not removed[assignment[i]]:
                continue
            d = docs[i]
            for j in range(top_count[d]):
                comp = top_comp[d, j]
                count = comp_count[comp]
                if count == 0:
                    continue
                v = top_val[d, j]
                first = head[comp]
                for e in range(first, first + count):
                    scores[entry_centroid[e]] += v * entry_value[e]
            # every document of the list shares the list's term with every centroid: a dense scan costs no more
            best = -1
            best_score = np.float32(0.0)
            for c in range(n_centroids):
                sc = scores[c]
                scores[c] = 0.0
                if sc > best_score and not removed[c]:
                    best = c
                    best_score = sc
            if best < 0:
                # no shared component with any live centroid: the first live one
                best = 0
                while best < n_centroids - 1 and removed[best]:
                    best += 1
            assignment[i] = best
        if rnd == 1 or min_cluster_size <= 0:
            break
        sizes = np.zeros(n_centroids, dtype=np.int64)
        for i in range(n):
            sizes[assignment[i]] += 1
        any_removed = False
        n_live = 0
        for c in range(n_centroids):
            if sizes[c] <= min_cluster_size:
                removed[c] = True
                any_removed = any_removed or sizes[c] > 0
            else:
                n_live += 1
        if n_live == 0:
            assignment[:] = 0
            break
        if not any_removed:
            break
    for i in range(n_comps):
        comp = comp_touched[i]
        head[comp] = -1
        comp_count[comp] = 0
    # group by cluster, keeping document order inside a cluster (counting sort)
    counts = np.zeros(n_centroids + 1, dtype=np.int64)
    for i in range(n):
        counts[assignment[i] + 1] += 1
    n_blocks = 0
    for c in range(n_centroids):
        if counts[c + 1] > 0:
            out_sizes[n_blocks] = counts[c + 1]
            n_blocks += 1
        counts[c + 1] += counts[c]
    for i in range(n):
        c = assignment[i]
        out_docs[counts[c]] = docs[i]
        counts[c] += 1
    return n_blocks


@numba.njit(cache=True, nogil=True)
def _energy_cut(values: np.ndarray, goal: float) -> tuple:
    """Where to cut values taken largest first until their sum reaches ``goal`` (the crossing value included):
    returns (cut, ties) meaning keep every value > cut and ``ties`` of the values == cut; (0, 0), keeping
    everything, if the goal is not reached. Linear time: 256 value buckets locate the crossing, and only that
    bucket's values are sorted."""
    n = values.shape[0]
    top = np.float32(0.0)
    for i in range(n):
        top = max(top, values[i])
    if top <= 0:
        return np.float32(0.0), 0
    n_buckets = 256
    width = np.float32(n_buckets) / top
    bucket_sum = np.zeros(n_buckets, dtype=np.float64)
    for i in range(n):
        bucket_sum[min(int(values[i] * width), n_buckets - 1)] += values[i]
    acc = 0.0
    crossing = -1
    for bucket in range(n_buckets - 1, -1, -1):
        if acc + bucket_sum[bucket] >= goal:
            crossing = bucket
            break
        acc += bucket_sum[bucket]
    if crossing < 0:
        return np.float32(0.0), 0
    count = 0
    for i in range(n):
        if min(int(values[i] * width), n_buckets - 1) == crossing:
            count += 1
    inside = np.empty(count, dtype=np.float32)
    count = 0
    for i in range(n):
        if min(int(values[i] * width), n_buckets - 1) == crossing:
            inside[count] = values[i]
            count += 1
    inside = -np.sort(-inside)
    j = 0
    while j < count - 1:
        acc += inside[j]
        if acc >= goal:
            break
        j += 1
    cut = inside[j]
    ties = 0
    for i in range(j + 1):
        if inside[i] == cut:
            ties += 1
    return cut, ties


@numba.njit(cache=True, nogil=True)
def _summarize_list(block_docs: np.ndarray, block_sizes: np.ndarray, n_blocks: int, summary_energy: float,
                    doc_indptr: np.ndarray, doc_components: np.ndarray, values: np.ndarray, max_value: np.ndarray,
                    comp_count: np.ndarray, comp_touched: np.ndarray, out_min: np.ndarray, out_scale: np.ndarray,
                    block_bits: int, list_term: int, out_entries: np.ndarray, out_segment_sizes: np.ndarray,
                    tmp_comp: np.ndarray, tmp_block: np.ndarray, tmp_code: np.ndarray, round_up: bool = True,
                    levels: int = 255) -> int:
    """Summaries of one list's blocks: coordinate-wise max over a block's documents, trimmed to the largest entries
    that hold ``summary_energy`` of its L1 mass, quantized to ``levels`` + 1 codes (rounded up). The list's own term
    ``list_term``, which every document of the block has, always stays (the trim could drop it when weights are
    flat, as BM25's are). ``levels`` is the largest code: 255 (8-bit summaries) or 15 (4-bit). Written as the list's
    small inverted index, one segment per 2**block_bits blocks: an entry per (component, block) packs
    ``component << (block_bits + 8) | block within the segment << 8 | code``, ascending within a segment. Returns
    the number of entries; the segments' entry counts go to ``out_segment_sizes``. ``tmp_*`` are scratch of at least
    ``out_entries``' length (the caller's, reused from list to list: fresh memory costs a page clear per list)."""
    n_entries = 0
    block_entry_start = np.empty(n_blocks + 1, dtype=np.int64)
    start = 0
    for b in range(n_blocks):
        end = start + block_sizes[b]
        n_touched = 0
        for i in range(start, end):
            d = block_docs[i]
            for p in range(doc_indptr[d], doc_indptr[d + 1]):
                v = values[p]
                if v <= 0:
                    continue
                comp = doc_components[p]
                if max_value[comp] == 0.0:
                    comp_touched[n_touched] = comp
                    n_touched += 1
                    max_value[comp] = v
                elif v > max_value[comp]:
                    max_value[comp] = v
        block_values = np.empty(n_touched, dtype=np.float32)
        total = 0.0
        for j in range(n_touched):
            block_values[j] = max_value[comp_touched[j]]
            total += block_values[j]
        if summary_energy < 1.0 and n_touched > 0:
            cut, ties = _energy_cut(block_values, summary_energy * total)
        else:
            cut, ties = np.float32(0.0), 0
        top = np.float32(0.0)
        low = np.float32(np.inf)
        first_entry = n_entries
        block_entry_start[b] = n_entries
        for j in range(n_touched):
            comp = comp_touched[j]
            v = max_value[comp]
            if comp != list_term:
                if v < cut or (v == cut and ties == 0):
                    continue
                if v == cut:
                    ties -= 1
            top = max(top, v)
            low = min(low, v)
            tmp_comp[n_entries] = comp
            tmp_block[n_entries] = b
            n_entries += 1
        if n_entries > first_entry:
            scale = np.float32((top - low) / levels)
            if scale > 0:
                # make sure the largest code reaches the maximum despite float rounding
                while low + np.float32(levels) * scale < top:
                    scale = np.float32(scale * np.float32(1.0 + 1e-6))
            out_min[b] = low
            out_scale[b] = scale
            for e in range(first_entry, n_entries):
                v = max_value[tmp_comp[e]]
                code = 0
                if scale > 0 and round_up:
                    code = min(levels, int(np.ceil((v - low) / scale)))
                    while code < levels and low + np.float32(code) * scale < v:
                        code += 1
                elif scale > 0:
                    code = min(levels, int(np.floor((v - low) / scale + np.float32(0.5))))
                tmp_code[e] = code
        else:
            out_min[b] = 0.0
            out_scale[b] = 0.0
        for j in range(n_touched):
            max_value[comp_touched[j]] = 0.0
        start = end
    block_entry_start[n_blocks] = n_entries
    # per segment, order the entries by component (counting sort, stable: blocks stay ascending in a component)
    segment_blocks = 1 << block_bits
    comp_shift = np.uint64(block_bits + 8)
    out = 0
    for segment in range((n_blocks + segment_blocks - 1) // segment_blocks):
        first_block = segment * segment_blocks
        e0 = block_entry_start[first_block]
        e1 = block_entry_start[min(first_block + segment_blocks, n_blocks)]
        n_components = 0
        for e in range(e0, e1):
            comp = tmp_comp[e]
            if comp_count[comp] == 0:
                comp_touched[n_components] = comp
                n_components += 1
            comp_count[comp] += 1
        distinct = np.sort(comp_touched[:n_components])
        cursor = out
        for i in range(n_components):
            comp = distinct[i]
            count = comp_count[comp]
            comp_count[comp] = cursor  # reuse as the write position
            cursor += count
        for e in range(e0, e1):
            comp = tmp_comp[e]
            pos = comp_count[comp]
            block_in_segment = np.uint64(tmp_block[e] - first_block)
            out_entries[pos] = ((np.uint64(comp) << comp_shift) | (block_in_segment << np.uint64(8))
                                | np.uint64(tmp_code[e]))
            comp_count[comp] = pos + 1
        for i in range(n_components):
            comp_count[distinct[i]] = 0
        out_segment_sizes[segment] = e1 - e0
        out = cursor
    return n_entries


@numba.njit(cache=True, nogil=True, parallel=True)
def prune_lists(post_indptr: np.ndarray, post_docs: np.ndarray, post_values: np.ndarray, threshold: float,
                kept: np.ndarray, kept_offset: np.ndarray, doc_indptr: np.ndarray, out_docs: np.ndarray,
                out_bounds: np.ndarray) -> None:
    """Static pruning of every list into ``out_docs[kept_offset[t]:]``; ``out_bounds[t]`` gets the summed length
    of the kept documents (a bound on the list's summary entries)."""
    n_lists = post_indptr.shape[0] - 1
    for t in numba.prange(n_lists):
        n = kept[t]
        if n == 0:
            out_bounds[t] = 0
            continue
        start = post_indptr[t]
        end = post_indptr[t + 1]
        out = out_docs[kept_offset[t]:kept_offset[t] + n]
        _prune_list(post_docs[start:end], post_values[start:end], threshold, n, out)
        bound = 0
        for i in range(n):
            bound += doc_indptr[out[i] + 1] - doc_indptr[out[i]]
        out_bounds[t] = bound


@numba.njit(cache=True, nogil=True, parallel=True)
def build_lists(first_term: int, schedule: np.ndarray, n_chunks: int, kept: np.ndarray, kept_offset: np.ndarray,
                centroid_fraction: float, min_cluster_size: int, summary_energy: float, seed: int,
                doc_indptr: np.ndarray, doc_components: np.ndarray, values: np.ndarray, top_comp: np.ndarray,
                top_val: np.ndarray, top_count: np.ndarray, vocab_size: int, block_slot: np.ndarray,
                segment_slot: np.ndarray, summary_slot: np.ndarray, posting_docs: np.ndarray, block_sizes: np.ndarray,
                block_min: np.ndarray, block_scale: np.ndarray, n_blocks_out: np.ndarray, block_bits: int,
                sum_entries: np.ndarray, segment_sizes: np.ndarray, n_sum_entries: np.ndarray,
                round_up: bool = True, levels: int = 255) -> None:
    """Block and summarize the pruned lists of terms ``first_term + i`` (a batch), in parallel over lists.

    Threads take the batch positions of ``schedule`` (costliest first) in turn. List i is rewritten in block order
    in place in ``posting_docs``, its blocks go to ``block_slot[i]`` (room for one block per centroid) and its
    summary to ``summary_slot[i]`` of the batch buffers, its segment sizes at ``block_slot[i] >> block_bits`` and
    on (one slot per 2**block_bits block slots, rounded up per list); the actual counts go to ``n_blocks_out`` and
    ``n_sum_entries``."""
    for chunk in numba.prange(n_chunks):
        head = np.full(vocab_size, -1, dtype=np.int32)
        max_value = np.zeros(vocab_size, dtype=np.float32)
        comp_count = np.zeros(vocab_size, dtype=np.int32)
        comp_touched = np.empty(vocab_size, dtype=np.int32)
        largest = 0
        for r in range(chunk, schedule.shape[0], n_chunks):
            largest = max(largest, summary_slot[schedule[r] + 1] - summary_slot[schedule[r]])
        tmp_comp = np.empty(largest, dtype=np.int32)
        tmp_block = np.empty(largest, dtype=np.int32)
        tmp_code = np.empty(largest, dtype=np.uint8)
        for r in range(chunk, schedule.shape[0], n_chunks):
            i = schedule[r]
            t = first_term + i
            n = kept[t]
            if n == 0:
                n_blocks_out[i] = 0
                n_sum_entries[i] = 0
                continue
            out_docs = posting_docs[kept_offset[t]:kept_offset[t] + n]
            n_centroids = min(max(1, int(centroid_fraction * n)), 65535, n)
            b0 = block_slot[i]
            if n_centroids <= 1:
                block_sizes[b0] = n
                n_blocks = 1
            else:
                pruned = out_docs.copy()
                scores = np.zeros(n_centroids, dtype=np.float32)
                n_blocks = _cluster_list(pruned, n_centroids, min_cluster_size,
                                         np.uint64(seed) * np.uint64(1000003) + np.uint64(t), doc_indptr,
                                         doc_components, values, top_comp, top_val, top_count, head, comp_count,
                                         comp_touched, scores, out_docs, block_sizes[b0:b0 + n_centroids])
            n_blocks_out[i] = n_blocks
            s0 = summary_slot[i]
            s1 = summary_slot[i + 1]
            n_sum_entries[i] = _summarize_list(
                out_docs, block_sizes[b0:b0 + n_blocks], n_blocks, summary_energy, doc_indptr, doc_components,
                values, max_value, comp_count, comp_touched, block_min[b0:b0 + n_blocks],
                block_scale[b0:b0 + n_blocks], block_bits, t, sum_entries[s0:s1], segment_sizes[segment_slot[i]:],
                tmp_comp, tmp_block, tmp_code, round_up, levels)


@numba.njit(cache=True, nogil=True)
def gather_batch(n_lists: int, block_slot: np.ndarray, segment_slot: np.ndarray, summary_slot: np.ndarray,
                 n_blocks: np.ndarray, n_entries: np.ndarray, block_bits: int, block_sizes: np.ndarray,
                 block_min: np.ndarray, block_scale: np.ndarray, segment_sizes: np.ndarray, sum_entries: np.ndarray,
                 entries_out: np.ndarray, entry_start: int) -> tuple:
    """Copy a batch's variable-size outputs out of their slots: blocks and segments into new dense arrays
    (returned, with each list's segment count), summary entries into ``entries_out`` from ``entry_start`` on."""
    total_blocks = 0
    total_segments = 0
    n_segments = np.zeros(n_lists, dtype=np.int64)
    for i in range(n_lists):
        total_blocks += n_blocks[i]
        n_segments[i] = (n_blocks[i] + (1 << block_bits) - 1) >> block_bits
        total_segments += n_segments[i]
    out_sizes = np.empty(total_blocks, dtype=np.int64)
    out_min = np.empty(total_blocks, dtype=np.float32)
    out_scale = np.empty(total_blocks, dtype=np.float32)
    out_segments = np.empty(total_segments, dtype=np.int64)
    b = 0
    g = 0
    e = entry_start
    for i in range(n_lists):
        for j in range(n_blocks[i]):
            out_sizes[b] = block_sizes[block_slot[i] + j]
            out_min[b] = block_min[block_slot[i] + j]
            out_scale[b] = block_scale[block_slot[i] + j]
            b += 1
        for j in range(n_segments[i]):
            out_segments[g] = segment_sizes[segment_slot[i] + j]
            g += 1
        s0 = summary_slot[i]
        for j in range(n_entries[i]):
            entries_out[e] = sum_entries[s0 + j]
            e += 1
    return out_sizes, out_min, out_scale, n_segments, out_segments


# -------------------------------------------------------------------------------------------------------- search


@numba.njit(cache=True, nogil=True, _nrt=False)
def _prefetch_vector(doc: int, doc_indptr: np.ndarray, doc_components: np.ndarray, doc_values: np.ndarray,
                     visited: np.ndarray) -> None:
    """Prefetch an unseen document's vector, one cache line (32 two-byte entries) at a time."""
    if visited[doc >> 6] & (np.uint64(1) << np.uint64(doc & 63)):
        return
    for q in range(doc_indptr[doc], doc_indptr[doc + 1], 32):
        prefetch(doc_components, q)
        prefetch(doc_values, q)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _score_docs(docs: np.ndarray, start: int, end: int, k: int, size: int, n_visited: int, doc_indptr: np.ndarray,
                doc_components: np.ndarray, doc_values: tuple, q_dense: np.ndarray, visited: np.ndarray,
                visited_docs: np.ndarray, heap_scores: np.ndarray, heap_docs: np.ndarray) -> tuple:
    """Score the unseen documents ``docs[start:end]`` exactly and offer them to the heap; returns the new heap size
    and visited count. Memory is requested ahead: a document's offsets OFFSETS_AHEAD places ahead, its vector
    VECTORS_AHEAD places ahead."""
    values, scales = doc_values
    for p in range(start, min(start + OFFSETS_AHEAD, end)):
        prefetch(doc_indptr, docs[p])
    for p in range(start, min(start + VECTORS_AHEAD, end)):
        _prefetch_vector(docs[p], doc_indptr, doc_components, values, visited)
    for p in range(start, end):
        doc = docs[p]
        if p + OFFSETS_AHEAD < end:
            prefetch(doc_indptr, docs[p + OFFSETS_AHEAD])
        if p + VECTORS_AHEAD < end:
            _prefetch_vector(docs[p + VECTORS_AHEAD], doc_indptr, doc_components, values, visited)
        word = doc >> 6
        bit = np.uint64(1) << np.uint64(doc & 63)
        if visited[word] & bit:
            continue
        visited[word] |= bit
        visited_docs[n_visited] = doc
        n_visited += 1
        score = _doc_dot(doc, doc_indptr, doc_components, values, scales, q_dense)
        if score > 0 and (size < k or score >= heap_scores[0]):
            size = heap_push(heap_scores, heap_docs, size, k, score, doc)
    return size, n_visited


@numba.njit(cache=True, nogil=True, _nrt=False)
def _score_block(b: int, k: int, size: int, n_visited: int, posting_docs: np.ndarray, block_indptr: np.ndarray,
                 doc_indptr: np.ndarray, doc_components: np.ndarray, doc_values: tuple, q_dense: np.ndarray,
                 visited: np.ndarray, visited_docs: np.ndarray, heap_scores: np.ndarray,
                 heap_docs: np.ndarray) -> tuple:
    """Score the unseen documents of block ``b`` (see ``_score_docs``)."""
    return _score_docs(posting_docs, block_indptr[b], block_indptr[b + 1], k, size, n_visited, doc_indptr,
                       doc_components, doc_values, q_dense, visited, visited_docs, heap_scores, heap_docs)


@numba.njit(cache=True, nogil=True, _nrt=False)
def _sift_blocks(order: np.ndarray, bounds: np.ndarray, size: int, i: int) -> None:
    """Restore the max-heap (by ``bounds``) of block numbers ``order[:size]`` below position i."""
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        largest = left
        if left + 1 < size and bounds[order[left + 1]] > bounds[order[left]]:
            largest = left + 1
        if bounds[order[largest]] > bounds[order[i]]:
            order[i], order[largest] = order[largest], order[i]
            i = largest
        else:
            return


SKIP = 32  # summary entries per skip-list sample (the packed layout's, checked when such an index loads)
# a summary segment with fewer than this many entries per query term is read in one pass instead of searched
LINEAR_SUMMARY = 2
VECTORS_AHEAD = 4  # prefetch distance, in documents, for document vectors
OFFSETS_AHEAD = 7  # ... and for their offsets (needed to find the vectors)
# a summary score is summed in another order than a document's score; this slack keeps float rounding from skipping
# a block whose bound equals the k-th score (so heap_factor 1 with untrimmed summaries stays exact, ties included)
BOUND_SLACK = np.float32(1.0 + 1e-5)


# not inlined: numba's inliner refuses a callee with this many arguments, and one call per query costs nothing
@numba.njit(cache=True, nogil=True)
def _visit_lists(q_indices: np.ndarray, q_values: np.ndarray, k: int, query_cut: int, heap_factor: float,
                 sort_first: bool, direct_postings: int, doc_indptr: np.ndarray, doc_components: np.ndarray,
                 doc_values: tuple, list_block_indptr: np.ndarray, block_indptr: np.ndarray, block_min: np.ndarray,
                 block_scale: np.ndarray, posting_docs: np.ndarray, list_segment_indptr: np.ndarray,
                 summary: tuple, n_bucket: int, list_max: np.ndarray, q_dense: np.ndarray, visited: np.ndarray,
                 visited_docs: np.ndarray, block_codes: np.ndarray, block_weight: np.ndarray, block_order: np.ndarray,
                 heap_scores: np.ndarray, heap_docs: np.ndarray, size: int, n_visited: int) -> tuple:
    """The list visits of ``_search_one`` (query scattered into ``q_dense`` already), into a heap holding ``size``
    documents; returns (heap size, documents visited). Several indexes sharing document numbering (the segments of a
    live index) can be visited one after the other with one heap, each pruning against the k-th score so far.
    ``summary`` is (table starts, bucket anchors, bucket table, keys, codes) of either summary layout
    (``add_summary_segment``)."""
    n_terms = list_block_indptr.shape[0] - 1
    n_q = q_indices.shape[0]
    table_start, bucket_anchor, bucket_table, summary_keys, summary_codes = summary
    four_bit = table_start.shape[0] > 0
    linear_below = LINEAR_SUMMARY * n_q
    bound_order = np.argsort(-q_values * list_max[np.minimum(q_indices, n_terms - 1)], kind="mergesort")
    order = bound_order[np.argsort(-q_values[bound_order], kind="mergesort")]
    n_cut = 0
    for r in range(n_q):
        if n_cut >= query_cut:
            break
        term = q_indices[order[r]]
        if term >= n_terms or q_values[order[r]] <= 0:
            continue
        n_cut += 1
        first_block = list_block_indptr[term]
        n_blocks = list_block_indptr[term + 1] - first_block
        if n_blocks == 0:
            continue
        if block_indptr[first_block + n_blocks] - block_indptr[first_block] <= direct_postings:
            for blk in range(n_blocks):
                size, n_visited = _score_block(first_block + blk, k, size, n_visited, posting_docs, block_indptr,
                                               doc_indptr, doc_components, doc_values, q_dense, visited,
                                               visited_docs, heap_scores, heap_docs)
            continue
        # summary scores of this list's blocks: the query against each block's quantized summary
        first_segment = list_segment_indptr[term]
        segment_bits = list_block_bits(n_blocks) if four_bit else SEGMENT_BITS
        for segment in range(first_segment, list_segment_indptr[term + 1]):
            add_summary_segment(segment, (segment - first_segment) << segment_bits, segment_bits, n_bucket,
                                table_start, bucket_anchor, bucket_table, summary_keys, summary_codes, q_indices,
                                q_values, q_dense, n_terms, linear_below, block_codes, block_weight)
        for j in range(n_blocks):
            b = first_block + j
            block_codes[j] = block_scale[b] * block_codes[j] + block_min[b] * block_weight[j]
            block_weight[j] = 0.0
        if sort_first and n_cut == 1:
            # first list: blocks by decreasing summary score (a heap, popped until a block fails the test, after
            # which every remaining block fails too)
            for j in range(n_blocks):
                block_order[j] = j
            for j in range(n_blocks // 2 - 1, -1, -1):
                _sift_blocks(block_order, block_codes, n_blocks, j)
            remaining = n_blocks
            while remaining > 0:
                blk = block_order[0]
                if size == k and block_codes[blk] * BOUND_SLACK < heap_factor * heap_scores[0]:
                    break
                size, n_visited = _score_block(first_block + blk, k, size, n_visited, posting_docs, block_indptr,
                                               doc_indptr, doc_components, doc_values, q_dense, visited,
                                               visited_docs, heap_scores, heap_docs)
                remaining -= 1
                block_order[0] = block_order[remaining]
                _sift_blocks(block_order, block_codes, remaining, 0)
        else:
            for blk in range(n_blocks):
                if size == k and block_codes[blk] * BOUND_SLACK < heap_factor * heap_scores[0]:
                    continue
                size, n_visited = _score_block(first_block + blk, k, size, n_visited, posting_docs, block_indptr,
                                               doc_indptr, doc_components, doc_values, q_dense, visited,
                                               visited_docs, heap_scores, heap_docs)
        block_codes[:n_blocks] = 0.0
    return size, n_visited


@numba.njit(cache=True, nogil=True)
def _search_one(q_indices: np.ndarray, q_values: np.ndarray, k: int, query_cut: int, heap_factor: float,
                n_knn: int, sort_first: bool, direct_postings: int, doc_indptr: np.ndarray,
                doc_components: np.ndarray, doc_values: tuple, list_block_indptr: np.ndarray, block_indptr: np.ndarray,
                block_min: np.ndarray, block_scale: np.ndarray, posting_docs: np.ndarray,
                list_segment_indptr: np.ndarray, summary: tuple, n_bucket: int, knn: np.ndarray,
                list_max: np.ndarray,
                q_dense: np.ndarray, visited: np.ndarray, visited_docs: np.ndarray, block_codes: np.ndarray,
                block_weight: np.ndarray,
                block_order: np.ndarray, heap_scores: np.ndarray, heap_docs: np.ndarray, out_scores: np.ndarray,
                out_docs: np.ndarray, blocked_words: np.ndarray | None = None) -> None:
    """Seismic search of one query; scratch arrays come in zeroed and are left zeroed. With a filter,
    ``visited`` comes in equal to ``blocked_words`` (the excluded documents' bits: they are never scored, as if
    already seen, so the heap fills with allowed documents only) and is left equal to it.

    For each of the ``query_cut`` largest query terms (equal weights, common with BM25 queries, go to the term whose
    list holds the larger value: it can add the most to a score, so visiting it first fills the heap with strong
    documents sooner), score the list's block summaries against the whole query,
    skip a block when the heap holds k documents and summary score < heap_factor × the heap's minimum, and otherwise
    score the block's unseen documents exactly. A list of at most ``direct_postings`` postings is scored without its
    summaries (looking the query up in them costs about as much as scoring a few documents). With ``n_knn`` > 0 the
    results are then expanded through each result's nearest neighbours (SeismicWave)."""
    n_terms = list_block_indptr.shape[0] - 1
    n_q = q_indices.shape[0]
    if n_q == 0:
        return
    for p in range(n_q):
        if q_indices[p] < n_terms:
            q_dense[q_indices[p]] = q_values[p]
    size, n_visited = _visit_lists(q_indices, q_values, k, query_cut, heap_factor, sort_first, direct_postings,
                                   doc_indptr, doc_components, doc_values, list_block_indptr, block_indptr, block_min,
                                   block_scale, posting_docs, list_segment_indptr, summary, n_bucket, list_max,
                                   q_dense, visited,
                                   visited_docs, block_codes, block_weight, block_order, heap_scores, heap_docs, 0, 0)
    if n_knn > 0 and knn.shape[1] > 0 and size > 0:
        results = heap_docs[:size].copy()
        width = min(n_knn, knn.shape[1])
        for r in range(results.shape[0]):
            neighbours = knn[results[r]]
            end = 0
            while end < width and neighbours[end] >= 0:
                end += 1
            size, n_visited = _score_docs(neighbours, 0, end, k, size, n_visited, doc_indptr, doc_components,
                                          doc_values, q_dense, visited, visited_docs, heap_scores, heap_docs)
    heap_drain_sorted(heap_scores, heap_docs, size, out_scores, out_docs)
    if blocked_words is None:
        for i in range(n_visited):
            visited[visited_docs[i] >> 6] = 0
    else:
        for i in range(n_visited):
            word = visited_docs[i] >> 6
            visited[word] = blocked_words[word]
    for p in range(n_q):
        if q_indices[p] < n_terms:
            q_dense[q_indices[p]] = 0.0


@numba.njit(cache=True, nogil=True)
def search_serial(q_indptr: np.ndarray, q_indices: np.ndarray, q_values: np.ndarray, k: int, query_cut: int,
                  heap_factor: float, n_knn: int, sort_first: bool, direct_postings: int, doc_indptr: np.ndarray,
                  doc_components: np.ndarray, doc_values: tuple, list_block_indptr: np.ndarray,
                  block_indptr: np.ndarray, block_min: np.ndarray, block_scale: np.ndarray,
                  posting_docs: np.ndarray, list_segment_indptr: np.ndarray, summary: tuple, n_bucket: int,
                  knn: np.ndarray, list_max: np.ndarray, q_dense: np.ndarray, visited: np.ndarray,
                  visited_docs: np.ndarray, block_codes: np.ndarray, block_weight: np.ndarray,
                  block_order: np.ndarray, blocked_words: np.ndarray | None = None) -> tuple:
    """Search queries one after the other on the calling thread, with caller-owned (zeroed) scratch arrays; with a
    filter, ``visited`` must come in equal to ``blocked_words``."""
    n_queries = q_indptr.shape[0] - 1
    out_scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
    out_docs = np.full((n_queries, k), -1, dtype=np.int64)
    heap_scores = np.empty(k, dtype=np.float32)
    heap_docs = np.empty(k, dtype=np.int64)
    for qi in range(n_queries):
        s = q_indptr[qi]
        e = q_indptr[qi + 1]
        _search_one(q_indices[s:e], q_values[s:e], k, query_cut, heap_factor, n_knn, sort_first, direct_postings,
                    doc_indptr,
                    doc_components, doc_values, list_block_indptr, block_indptr, block_min, block_scale,
                    posting_docs, list_segment_indptr, summary, n_bucket,
                    knn, list_max, q_dense, visited, visited_docs, block_codes, block_weight, block_order,
                    heap_scores, heap_docs, out_scores[qi], out_docs[qi], blocked_words)
    return out_scores, out_docs


@numba.njit(cache=True, nogil=True, parallel=True)
def search_parallel(q_indptr: np.ndarray, q_indices: np.ndarray, q_values: np.ndarray, k: int, query_cut: int,
                    heap_factor: float, n_knn: int, sort_first: bool, direct_postings: int, doc_indptr: np.ndarray,
                    doc_components: np.ndarray, doc_values: tuple, list_block_indptr: np.ndarray,
                    block_indptr: np.ndarray, block_min: np.ndarray, block_scale: np.ndarray,
                    posting_docs: np.ndarray, list_segment_indptr: np.ndarray, summary: tuple, n_bucket: int,
                    knn: np.ndarray, list_max: np.ndarray, max_blocks: int, n_chunks: int,
                    blocked_words: np.ndarray | None = None) -> tuple:
    """Search a batch of queries in parallel over threads, each thread with its own scratch arrays (and, with a
    filter, the excluded documents marked as visited from the start)."""
    n_queries = q_indptr.shape[0] - 1
    n_docs = doc_indptr.shape[0] - 1
    n_terms = list_block_indptr.shape[0] - 1
    out_scores = np.full((n_queries, k), -np.inf, dtype=np.float32)
    out_docs = np.full((n_queries, k), -1, dtype=np.int64)
    for chunk in numba.prange(n_chunks):
        q_dense = np.zeros(n_terms, dtype=np.float32)
        visited = np.zeros((n_docs >> 6) + 1, dtype=np.uint64)
        if blocked_words is not None:
            visited[:] = blocked_words
        visited_docs = np.empty(n_docs, dtype=np.int32)
        block_codes = np.zeros(max_blocks, dtype=np.float32)
        block_weight = np.zeros(max_blocks, dtype=np.float32)
        block_order = np.empty(max_blocks, dtype=np.int32)
        heap_scores = np.empty(k, dtype=np.float32)
        heap_docs = np.empty(k, dtype=np.int64)
        for qi in range(chunk, n_queries, n_chunks):
            s = q_indptr[qi]
            e = q_indptr[qi + 1]
            _search_one(q_indices[s:e], q_values[s:e], k, query_cut, heap_factor, n_knn, sort_first, direct_postings,
                    doc_indptr,
                        doc_components, doc_values, list_block_indptr, block_indptr, block_min, block_scale,
                        posting_docs, list_segment_indptr, summary,
                        n_bucket, knn, list_max, q_dense, visited, visited_docs, block_codes,
                        block_weight, block_order, heap_scores, heap_docs, out_scores[qi], out_docs[qi],
                        blocked_words)
    return out_scores, out_docs


@numba.njit(cache=True, nogil=True, parallel=True)
def score_subset(q_indptr: np.ndarray, q_indices: np.ndarray, q_values: np.ndarray, rows: np.ndarray,
                 subset: np.ndarray, doc_indptr: np.ndarray, doc_components: np.ndarray, doc_values: tuple,
                 n_terms: int, k: int, out_scores: np.ndarray, out_docs: np.ndarray) -> None:
    """Exact top k over just the documents ``subset`` (ascending) from the forward index, for the queries ``rows``,
    written into those rows of out_*: the filtered search's fallback when few documents are allowed."""
    m = subset.shape[0]
    values, scales = doc_values
    for r in numba.prange(rows.shape[0]):
        qi = rows[r]
        q_dense = np.zeros(n_terms, dtype=np.float32)
        for p in range(q_indptr[qi], q_indptr[qi + 1]):
            if q_indices[p] < n_terms:
                q_dense[q_indices[p]] = q_values[p]
        heap_scores = np.empty(k, dtype=np.float32)
        heap_docs = np.empty(k, dtype=np.int64)
        size = 0
        for i in range(m):
            doc = subset[i]
            score = _doc_dot(doc, doc_indptr, doc_components, values, scales, q_dense)
            if score > 0 and (size < k or score >= heap_scores[0]):
                size = heap_push(heap_scores, heap_docs, size, k, score, doc)
        out_scores[qi, :] = -np.inf
        out_docs[qi, :] = -1
        heap_drain_sorted(heap_scores, heap_docs, size, out_scores[qi], out_docs[qi])


@numba.njit(cache=True, nogil=True)
def drop_self(scores: np.ndarray, docs: np.ndarray, first_doc: int, width: int) -> np.ndarray:
    """κ-NN rows from self-search results: row i lists the best ``width`` documents other than ``first_doc + i``
    (padded with -1)."""
    n = docs.shape[0]
    out = np.full((n, width), -1, dtype=np.int32)
    for i in range(n):
        j = 0
        for r in range(docs.shape[1]):
            d = docs[i, r]
            if d < 0 or j >= width:
                break
            if d == first_doc + i:
                continue
            out[i, j] = d
            j += 1
    return out
