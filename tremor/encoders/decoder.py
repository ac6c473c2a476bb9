"""Decoder-only sparse encoders, as in "Mistral-SPLADE: LLMs for better Learned Sparse Retrieval" (Doshi et al.,
2024): any ``AutoModelForCausalLM`` whose LM-head logits go through SPLADE's log-saturation and max pooling.

A causal model's position i sees only tokens up to i, so on its own a token's weights ignore the text after it. Echo
embeddings ("Repetition Improves Language Model Embeddings", Springer et al., 2024) fix that: the input is the text
twice (``[BOS] text [separator] text``) and only the second copy's positions are pooled, each of which has attended to
the whole first copy. On CUDA the decoder's weights are loaded in bf16.
"""

from __future__ import annotations

import numpy as np

from tremor.encoders.components import EncoderConfig, SideConfig, TokenizedTexts

KIND = "decoder"


def decoder_config(document_max_length: int = 512, query_max_length: int = 64, echo: bool = True,
                   echo_separator: str = "", pooling: str = "max", activation: str = "log1p_relu",
                   document_top_k: int | None = None, query_top_k: int | None = None) -> EncoderConfig:
    """A Mistral-SPLADE encoder: the same causal model on both sides, echo input, max pooling of log1p(ReLU)."""
    side = SideConfig(head="mlm", backbone="decoder", pooling=pooling, activation=activation, echo=echo,
                      echo_separator=echo_separator)
    return EncoderConfig(
        KIND,
        query=SideConfig(**{**side.to_dict(), "max_length": query_max_length, "top_k": query_top_k}).validate("query"),
        document=SideConfig(**{**side.to_dict(), "max_length": document_max_length,
                               "top_k": document_top_k}).validate("document"))


def decoder_inputs(texts: TokenizedTexts, tokenizer, echo: bool, separator: str = "") -> TokenizedTexts:
    """Causal-model inputs from the texts' token ids (tokenized without special tokens): ``[BOS] ids`` pooling over
    ``ids``, or with ``echo`` ``[BOS] ids sep ids`` pooling over the second copy only. Vectorized over all texts."""
    prefix = np.array([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else [], dtype=np.int64)
    sep = np.array(tokenizer(separator, add_special_tokens=False)["input_ids"] if echo and separator else [],
                   dtype=np.int64)
    lengths = texts.lengths
    p, s = prefix.shape[0], sep.shape[0]
    new_lengths = p + lengths + (s + lengths if echo else 0)
    n_out = int(new_lengths.sum())
    row = np.repeat(np.arange(lengths.shape[0]), new_lengths)
    starts_out = np.cumsum(new_lengths) - new_lengths
    j = np.arange(n_out) - starts_out[row]          # position within the row
    length = lengths[row]
    source = (texts.offsets[:-1])[row]              # where the row's token ids start in texts.ids
    ids = np.empty(n_out, np.int64)
    pool = np.zeros(n_out, dtype=bool)

    in_prefix = j < p
    ids[in_prefix] = prefix[j[in_prefix]]
    first = (j >= p) & (j < p + length)
    ids[first] = texts.ids[source[first] + j[first] - p]
    if echo:
        in_sep = (j >= p + length) & (j < p + length + s)
        ids[in_sep] = sep[j[in_sep] - p - length[in_sep]]
        second = j >= p + length + s
        k = source[second] + j[second] - p - length[second] - s
        ids[second] = texts.ids[k]
        pool[second] = texts.pool[k]
    else:
        pool[first] = texts.pool[source[first] + j[first] - p]
    return TokenizedTexts(ids, pool, new_lengths.astype(np.int64))
