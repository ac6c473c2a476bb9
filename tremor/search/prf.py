"""Pseudo-relevance feedback: move each query toward its top-ranked documents and search again.

Sparse side: Rocchio (Rocchio, "Relevance Feedback in Information Retrieval", 1971) on SparseVectors,
q' = α·q + β·mean(top fb_docs document vectors), pruned to the ``fb_terms`` largest weights. Dense side: Vector-PRF
(Li et al., "Pseudo Relevance Feedback with Deep Language Models and Dense Retrievers: Successes and Pitfalls",
TOIS 2023), on query and document embeddings: Average, q' = mean(q, d₁…d_k), and Rocchio, q' = α·q + β·mean(d₁…d_k).

A query without feedback documents (fb_docs = 0, or no hits) keeps its vector unchanged, so searching again returns
the original run. Feedback documents come from whatever run is given, which is how the interpolation placements of
Li et al. (SIGIR 2022) are built: feedback from the sparse run, the dense run, or their fusion.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp

from tremor.errors import QueryError, TremorError
from tremor.sparse import SparseVectors

VECTOR_PRF_METHODS = ("average", "rocchio")


def feedback_documents(numbers: np.ndarray, fb_docs: int) -> np.ndarray:
    """The top ``fb_docs`` internal numbers of each ranked list (int64 [n, fb_docs], -1 where the list is short)."""
    numbers = np.asarray(numbers, dtype=np.int64)
    if fb_docs < 0:
        raise QueryError(f"fb_docs must be >= 0 (got {fb_docs})")
    out = np.full((numbers.shape[0], fb_docs), -1, dtype=np.int64)
    width = min(fb_docs, numbers.shape[1])
    out[:, :width] = numbers[:, :width]
    return out


@numba.njit(cache=True, nogil=True)
def _gather_rows(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, rows: np.ndarray) -> tuple:
    """CSR of the selected rows, in the order given."""
    new_indptr = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    for i in range(rows.shape[0]):
        new_indptr[i + 1] = new_indptr[i] + indptr[rows[i] + 1] - indptr[rows[i]]
    new_indices = np.empty(new_indptr[-1], dtype=np.int32)
    new_values = np.empty(new_indptr[-1], dtype=np.float32)
    for i in range(rows.shape[0]):
        start = indptr[rows[i]]
        length = indptr[rows[i] + 1] - start
        new_indices[new_indptr[i]:new_indptr[i] + length] = indices[start:start + length]
        new_values[new_indptr[i]:new_indptr[i] + length] = values[start:start + length]
    return new_indptr, new_indices, new_values


def sparse_document_vectors(searcher, numbers: np.ndarray) -> SparseVectors:
    """Document vectors by internal number, from wherever the searcher has them: the index's own
    ``document_vectors(numbers)``, its forward arrays (``doc_indptr``/``doc_indices``/``doc_values``), its
    ``documents()``, or, failing those, the texts in the document store re-encoded with the index's encoder."""
    numbers = np.asarray(numbers, dtype=np.int64)
    index = searcher.index
    if numbers.size and (numbers.min() < 0 or numbers.max() >= index.n_docs):
        raise TremorError(f"document numbers must lie in [0, {index.n_docs})")
    if hasattr(index, "document_vectors"):
        return index.document_vectors(numbers)
    if all(hasattr(index, name) for name in ("doc_indptr", "doc_indices", "doc_values")):
        indptr, indices, values = _gather_rows(np.asarray(index.doc_indptr), np.asarray(index.doc_indices),
                                               np.asarray(index.doc_values), numbers)
        return SparseVectors(indptr, indices, values, index.vocab_size, index.vocab_id)
    if hasattr(index, "documents"):
        documents = index.documents()
        indptr, indices, values = _gather_rows(documents.indptr, documents.indices, documents.values, numbers)
        return SparseVectors(indptr, indices, values, documents.vocab_size, documents.vocab_id)
    if getattr(searcher, "docstore", None) is not None and getattr(searcher, "encoder", None) is not None:
        return searcher.encoder.encode_documents([doc.full_text for doc in searcher.docstore.get(numbers.tolist())])
    raise TremorError(f"the '{getattr(index, 'index_type', type(index).__name__)}' index keeps no document vectors "
                      "and the searcher has no document store and encoder to rebuild them; sparse PRF needs one")


def _row_normalized(matrix: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    return sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ matrix


def rocchio(queries: SparseVectors, feedback: np.ndarray, document_vectors, alpha: float = 1.0,
            beta: float = 0.75, fb_terms: int | None = 100, normalize: bool = True,
            query_side_weights: np.ndarray | None = None) -> SparseVectors:
    """Rocchio (1971) on sparse vectors: q' = α·q + β·mean(feedback documents), keeping the ``fb_terms`` largest
    weights (None: all).

    feedback: int64 [n, k] internal numbers, -1 for none. document_vectors: ``numbers -> SparseVectors``.
    normalize: scale q and each document vector to unit length first, so that α and β weigh directions rather than
    the encoders' scales (BM25 queries are term counts, documents are impacts). Rows without feedback keep q.
    query_side_weights: per-term weights the encoder puts on queries instead of documents (live BM25: the idf); the
    expansion is computed with them moved to the document side, as over an index that holds them, then moved back.
    """
    feedback = np.asarray(feedback, dtype=np.int64)
    if feedback.ndim != 2 or feedback.shape[0] != len(queries):
        raise QueryError(f"feedback must be [{len(queries)}, k] document numbers (got {list(feedback.shape)})")
    if alpha < 0 or beta < 0:
        raise QueryError(f"Rocchio weights must be >= 0 (got alpha={alpha}, beta={beta})")
    if fb_terms is not None and fb_terms < 1:
        raise QueryError(f"fb_terms must be at least 1 (got {fb_terms})")
    valid = feedback >= 0
    counts = valid.sum(axis=1)
    with_feedback = counts > 0
    if not with_feedback.any():
        return queries
    unique, position = np.unique(feedback[valid], return_inverse=True)
    docs = document_vectors(unique).to_scipy().astype(np.float64)
    query_matrix = queries.to_scipy().astype(np.float64)
    moved = None
    if query_side_weights is not None:
        moved = np.ones(queries.vocab_size)
        weights = np.asarray(query_side_weights, np.float64)[:queries.vocab_size]
        moved[:weights.shape[0]] = np.where(weights > 0, weights, 1.0)
        query_matrix = query_matrix @ sp.diags(1.0 / moved)
        docs = docs @ sp.diags(moved[:docs.shape[1]])
    if normalize:
        docs = _row_normalized(docs)
        query_matrix = _row_normalized(query_matrix)
    rows = np.nonzero(valid)[0]
    mean_weights = sp.csr_matrix((1.0 / counts[rows], (rows, position)), shape=(len(queries), len(unique)))
    expanded = alpha * query_matrix + beta * (mean_weights @ docs)
    expanded = sp.diags(with_feedback.astype(np.float64)) @ expanded
    expanded = SparseVectors.from_scipy(expanded, vocab_id=queries.vocab_id).prune(k=fb_terms)
    if moved is not None:
        expanded = SparseVectors.from_scipy(expanded.to_scipy() @ sp.diags(moved.astype(np.float32)),
                                            vocab_id=queries.vocab_id)
    kept = sp.diags((~with_feedback).astype(np.float32)) @ queries.to_scipy()
    return SparseVectors.from_scipy(expanded.to_scipy() + kept, vocab_id=queries.vocab_id)


def vector_prf(queries: np.ndarray, feedback_vectors: np.ndarray, feedback_mask: np.ndarray,
               method: str = "average", alpha: float = 1.0, beta: float = 1.0) -> np.ndarray:
    """Vector-PRF (Li et al., TOIS 2023) on dense embeddings.

    queries: float32 [n, d]; feedback_vectors: [n, k, d]; feedback_mask: bool [n, k], True where a feedback document
    exists. average: q' = (q + Σ dᵢ)/(1 + k). rocchio: q' = α·q + β·(Σ dᵢ)/k. Rows without feedback keep q.
    """
    if method not in VECTOR_PRF_METHODS:
        raise QueryError(f"unknown Vector-PRF method '{method}' (known: {', '.join(VECTOR_PRF_METHODS)})")
    queries = np.asarray(queries, dtype=np.float32)
    mask = np.asarray(feedback_mask, dtype=bool)
    summed = (np.asarray(feedback_vectors, dtype=np.float32) * mask[:, :, None]).sum(axis=1)
    counts = mask.sum(axis=1)[:, None].astype(np.float32)
    if method == "average":
        expanded = (queries + summed) / (1.0 + counts)
    else:
        expanded = alpha * queries + beta * summed / np.maximum(counts, 1.0)
    return np.where(counts > 0, expanded, queries).astype(np.float32)
