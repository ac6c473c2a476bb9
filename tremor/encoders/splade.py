"""SPLADE ("SPLADE: Sparse Lexical and Expansion Model for First Stage Ranking", Formal et al., 2021, and SPLADE v2):
any ``AutoModelForMaskedLM``; the weight of vocabulary term j in a text is w_j = max_i log(1 + ReLU(logit_ij)) over
the text's tokens i (padding excluded), or the sum over i with ``pooling="sum"`` (SPLADE v1). Queries and documents
use the same model with their own maximum lengths and pruning (top-k and/or threshold).
"""

from __future__ import annotations

from tremor.encoders.components import EncoderConfig, SideConfig

KIND = "splade"


def splade_config(document_max_length: int = 512, query_max_length: int = 64, pooling: str = "max",
                  activation: str = "log1p_relu", document_top_k: int | None = None, query_top_k: int | None = None,
                  threshold: float = 0.0) -> EncoderConfig:
    """A SPLADE encoder: MLM head on both sides."""
    def side(max_length: int, top_k: int | None, name: str) -> SideConfig:
        return SideConfig(head="mlm", backbone="encoder", pooling=pooling, activation=activation,
                          max_length=max_length, top_k=top_k, threshold=threshold).validate(name)

    return EncoderConfig(KIND, query=side(query_max_length, query_top_k, "query"),
                         document=side(document_max_length, document_top_k, "document"))
