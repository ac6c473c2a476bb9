"""Why a document matched: the terms it shares with the query, each with query weight × document weight.

A sparse score is a dot product, so it splits exactly into per-term contributions. The document side is read from
the index's own forward arrays (what the kernels scored), never by re-encoding the text: an exact index keeps
``doc_indptr / doc_indices / doc_values``, a Seismic index ``doc_indptr / doc_components / doc_values`` (float16).
A query term is an *expansion* when the encoder added it: it is not among the terms of the query text (BM25
queries have none; a SPLADE query usually has many).
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from tremor.errors import QueryError, TremorError
from tremor.sparse import SparseVectors


@numba.njit(cache=True, nogil=True)
def _matches(q_indices: np.ndarray, doc_indptr: np.ndarray, doc_terms: np.ndarray,
             numbers: np.ndarray) -> tuple:
    """For each document number, the positions (in the forward arrays and in the query) of the terms both share;
    CSR over ``numbers`` (indptr, doc positions, query positions). Query indices are sorted (CSR invariant)."""
    n = numbers.shape[0]
    indptr = np.zeros(n + 1, dtype=np.int64)
    capacity = 0
    for i in range(n):
        if numbers[i] >= 0:
            length = doc_indptr[numbers[i] + 1] - doc_indptr[numbers[i]]
            capacity += min(length, q_indices.shape[0])
    doc_pos = np.empty(capacity, dtype=np.int64)
    q_pos = np.empty(capacity, dtype=np.int64)
    m = 0
    for i in range(n):
        doc = numbers[i]
        if doc >= 0:
            for p in range(doc_indptr[doc], doc_indptr[doc + 1]):
                term = np.int64(doc_terms[p])
                j = np.searchsorted(q_indices, term)
                if j < q_indices.shape[0] and q_indices[j] == term:
                    doc_pos[m] = p
                    q_pos[m] = j
                    m += 1
        indptr[i + 1] = m
    return indptr, doc_pos[:m], q_pos[:m]


def forward_arrays(index) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(doc_indptr, doc term ids, doc values) of an index's forward arrays, as stored (no copy; a quantized forward
    index is decoded to its float values)."""
    if len(getattr(index, "doc_scale", ())):
        decoded = index.documents()
        return decoded.indptr, decoded.indices, decoded.values
    for terms in ("doc_indices", "doc_components"):
        if all(hasattr(index, name) for name in ("doc_indptr", terms, "doc_values")):
            return index.doc_indptr, getattr(index, terms), index.doc_values
    raise TremorError(f"the '{getattr(index, 'index_type', type(index).__name__)}' index keeps no forward arrays; "
                      "explain needs them")


def query_surface_ids(encoder, text: str) -> set[int] | None:
    """Vocabulary ids of the terms written in ``text`` as the encoder reads it (BM25: analyzed terms; neural
    encoders: the tokenizer's ids), or None when the encoder does not say."""
    term_ids = getattr(encoder, "term_ids", None)
    analyzer = getattr(encoder, "analyzer", None)
    if isinstance(term_ids, dict) and callable(analyzer):
        return {term_ids[t] for t in analyzer(text) if t in term_ids}
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is not None:
        return set(tokenizer(text, add_special_tokens=False)["input_ids"])
    return None


class Vocabulary:
    """Token ↔ id for an encoder's vocabulary (built once, on first use)."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self._tokens: list[str] | None = None
        self._ids: dict[str, int] | None = None

    @property
    def tokens(self) -> list[str]:
        if self._tokens is None:
            self._tokens = list(self.encoder.tokens(np.arange(self.encoder.vocab_size)))
        return self._tokens

    def token_ids(self, tokens: Sequence[str]) -> list[int]:
        """Ids of ``tokens``; QueryError naming the first unknown one."""
        if self._ids is None:
            self._ids = {t: i for i, t in enumerate(self.tokens)}
        out = []
        for token in tokens:
            if token not in self._ids:
                raise QueryError(f"'{token}' is not in the index's vocabulary; use the tokens POST /encode returns "
                                 "for this index")
            out.append(self._ids[token])
        return out


def vector_from_tokens(weights: dict[str, float], vocabulary: Vocabulary, vocab_size: int,
                       vocab_id: str | None) -> SparseVectors:
    """One query vector from ``{token: weight}`` (weights finite and >= 0; zero weights dropped)."""
    ids = vocabulary.token_ids(list(weights))
    values = np.asarray(list(weights.values()), dtype=np.float64)
    if values.size and (not np.all(np.isfinite(values)) or values.min() < 0):
        raise QueryError("query vector weights must be finite numbers >= 0")
    order = np.argsort(ids, kind="stable")
    ids_sorted = np.asarray(ids, dtype=np.int32)[order]
    values = values[order].astype(np.float32)
    keep = values > 0
    ids_sorted, values = ids_sorted[keep], values[keep]
    if not ids_sorted.size:
        raise QueryError("the query vector has no term with a weight above 0")
    return SparseVectors(np.array([0, ids_sorted.size], np.int64), ids_sorted, values, vocab_size, vocab_id)


def query_terms(query: SparseVectors, row: int, vocabulary: Vocabulary, surface: set[int] | None) -> list[dict]:
    """The terms of query ``row`` by decreasing weight: token, weight, and whether it is an expansion (None when
    there is no text to compare with)."""
    lo, hi = query.indptr[row], query.indptr[row + 1]
    ids, values = query.indices[lo:hi], query.values[lo:hi]
    order = np.lexsort((ids, -values))
    tokens = vocabulary.tokens
    return [{"token": tokens[int(ids[i])], "weight": float(values[i]),
             "expansion": None if surface is None else int(ids[i]) not in surface} for i in order]


def explain_hits(index, query: SparseVectors, row: int, numbers: np.ndarray, vocabulary: Vocabulary,
                 surface: set[int] | None, max_terms: int = 64) -> list[dict]:
    """Per document number (in order): the matched terms sorted by contribution (query weight × document weight,
    largest first, at most ``max_terms``), their count, and the sparse score they add up to."""
    doc_indptr, doc_terms, doc_values = forward_arrays(index)
    lo, hi = query.indptr[row], query.indptr[row + 1]
    q_indices = np.ascontiguousarray(query.indices[lo:hi], dtype=np.int64)
    q_values = np.asarray(query.values[lo:hi], dtype=np.float32)
    numbers = np.ascontiguousarray(numbers, dtype=np.int64)
    indptr, doc_pos, q_pos = _matches(q_indices, doc_indptr, doc_terms, numbers)
    q_weight = q_values[q_pos]
    d_weight = np.asarray(doc_values[doc_pos], dtype=np.float32)
    product = q_weight * d_weight
    hit_of = np.repeat(np.arange(numbers.shape[0]), np.diff(indptr))
    order = np.lexsort((-product, hit_of))  # by hit, then by contribution
    tokens = vocabulary.tokens
    term_ids = q_indices[q_pos]
    out = []
    for h in range(numbers.shape[0]):
        chosen = order[indptr[h]:indptr[h + 1]]
        terms = [{"token": tokens[int(term_ids[i])], "query_weight": float(q_weight[i]),
                  "doc_weight": float(d_weight[i]), "product": float(product[i]),
                  "expansion": None if surface is None else int(term_ids[i]) not in surface}
                 for i in chosen[:max_terms]]
        out.append({"sparse_score": float(product[chosen].sum(dtype=np.float64)), "n_matched": int(chosen.size),
                    "terms": terms})
    return out
