"""Encoders: text to SparseVectors (BM25 here; neural models in their own modules)."""

from __future__ import annotations

from tremor.encoders.base import SparseEncoder, load_saved_encoder, registered_kinds
from tremor.encoders.bm25 import BM25Encoder
from tremor.errors import TremorError

__all__ = ["BM25Encoder", "SparseEncoder", "get_encoder", "load_saved_encoder", "registered_kinds"]


def get_encoder(spec: str | SparseEncoder, **options) -> SparseEncoder:
    """An encoder from a name ("bm25"), a model directory or hub name, or an encoder object (returned as is)."""
    if not isinstance(spec, str):
        return spec
    if spec.lower() == "bm25":
        return BM25Encoder(**options)
    try:
        from tremor.encoders.neural import load_encoder as load_neural
    except ImportError:
        raise TremorError(f"unknown encoder '{spec}': this installation knows only 'bm25'") from None
    return load_neural(spec, **options)
