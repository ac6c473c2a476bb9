"""Searching indexes with text: the Searcher, and (in their own modules) fusion and feedback stages."""

import importlib

from tremor.search.searcher import Hit, Searcher, open_index

# Hybrid search pieces, imported on first use (the dense side loads faiss, and torch when encoding).
_LAZY = {
    "DenseIndex": "tremor.search.dense", "DenseSearcher": "tremor.search.dense", "add_dense": "tremor.search.dense",
    "fuse": "tremor.search.fusion", "interpolate": "tremor.search.fusion",
    "reciprocal_rank_fusion": "tremor.search.fusion", "rocchio": "tremor.search.prf",
    "vector_prf": "tremor.search.prf", "HybridSearcher": "tremor.search.pipeline",
    "PipelineConfig": "tremor.search.pipeline", "Run": "tremor.search.pipeline",
    "hybrid_pipeline": "tremor.search.pipeline",
}

__all__ = ["Hit", "Searcher", "open_index", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tremor.search' has no attribute '{name}'")
