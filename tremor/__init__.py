"""tremor: a learned-sparse retrieval engine (sparse encoders, a Seismic-style index in Numba, BEIR evaluation)."""

from tremor.corpus import Document, Query, read_documents, read_qrels, read_queries
from tremor.encoders import BM25Encoder, get_encoder
from tremor.errors import TremorError
from tremor.index.builder import build_index
from tremor.index.exact import ExactIndex
from tremor.search import Hit, Searcher
from tremor.sparse import SparseVectors

__version__ = "0.1.0"

__all__ = [
    "BM25Encoder",
    "Document",
    "ExactIndex",
    "Hit",
    "Query",
    "Searcher",
    "SparseVectors",
    "TremorError",
    "build_index",
    "get_encoder",
    "read_documents",
    "read_qrels",
    "read_queries",
]
