"""Encoders: text to SparseVectors (BM25 here; neural models in their own modules)."""

from __future__ import annotations

from tremor.encoders.base import SparseEncoder, load_saved_encoder, registered_kinds
from tremor.encoders.bm25 import BM25Encoder

__all__ = ["BM25Encoder", "SparseEncoder", "get_encoder", "load_encoder", "load_saved_encoder", "registered_kinds"]


def get_encoder(spec: str | SparseEncoder, **options) -> SparseEncoder:
    """An encoder from a name ("bm25"), a model directory or hub name, or an encoder object (returned as is)."""
    if not isinstance(spec, str):
        return spec
    if spec.lower() == "bm25":
        return BM25Encoder(**options)
    return load_encoder(spec, **options)


def load_encoder(spec: str, **options) -> SparseEncoder:
    """A neural sparse encoder from a tremor model directory or a hub name (see ``tremor.encoders.neural``)."""
    from tremor.encoders.neural import load_encoder as load_neural

    return load_neural(spec, **options)
