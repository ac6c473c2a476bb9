"""Inference-free learned sparse retrieval ("Towards Competitive Search Relevance For Inference-Free Learned Sparse
Retrievers", Geng et al., 2024, and OpenSearch's ``opensearch-neural-sparse-encoding-doc-*`` models): documents go
through an MLM encoder as in SPLADE, queries through no model at all. A query is its distinct tokenizer ids (special
tokens dropped), each weighted by an IDF table. The table comes from an ``idf.json`` (token → weight, the format
published with OpenSearch's models) or is computed from a corpus with ``compute_idf``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from tremor.encoders.components import EncoderConfig, SideConfig
from tremor.errors import InputError, TremorError

KIND = "inference_free"
IDF_FILE = "idf.json"


def inference_free_config(document_max_length: int = 512, query_max_length: int = 64,
                          activation: str = "log1p_relu", document_top_k: int | None = None,
                          drop_special_tokens: bool = True, idf_default: float | None = None) -> EncoderConfig:
    """MLM documents (special-token columns zeroed, as OpenSearch's reference code does; queries never contain
    special tokens, so this only saves postings) and IDF-weighted query tokens."""
    return EncoderConfig(
        KIND,
        query=SideConfig(head="idf", max_length=query_max_length).validate("query"),
        document=SideConfig(head="mlm", pooling="max", activation=activation, max_length=document_max_length,
                            top_k=document_top_k, drop_special_tokens=drop_special_tokens).validate("document"),
        idf_default=idf_default)


def _id_to_token(tokenizer, vocab_size: int) -> list[str | None]:
    tokens: list[str | None] = [None] * vocab_size
    for token, token_id in tokenizer.get_vocab().items():
        if 0 <= token_id < vocab_size:
            tokens[token_id] = token
    return tokens


def idf_table(weights: dict[str, float], tokenizer, vocab_size: int, default: float | None = None,
              source: str | Path = IDF_FILE) -> np.ndarray:
    """A float32 weight per token id from a {token: weight} mapping. A token the tokenizer does not know, a weight
    that is not a finite number >= 0, or (without ``default``) a vocabulary token with no entry is an error; special
    tokens never carry weight."""
    if not isinstance(weights, dict):
        raise InputError("expected a JSON object {token: weight}", file=source)
    vocab = tokenizer.get_vocab()
    unknown = [t for t in weights if t not in vocab]
    if unknown:
        examples = ", ".join(map(repr, unknown[:5]))
        raise InputError(f"{len(unknown)} token(s) not in the model's tokenizer (e.g. {examples}); this IDF table "
                         "belongs to another vocabulary", file=source)
    table = np.full(vocab_size, np.nan, dtype=np.float64)
    for token, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise InputError(f"weight must be a finite number >= 0, got {weight!r}", file=source, field=token)
        token_id = vocab[token]
        if token_id >= vocab_size:
            raise InputError(f"token id {token_id} is outside the model's vocabulary of {vocab_size}", file=source,
                             field=token)
        table[token_id] = weight
    names = _id_to_token(tokenizer, vocab_size)
    table[[i for i, name in enumerate(names) if name is None]] = 0.0  # ids no text can produce
    table[sorted(set(tokenizer.all_special_ids))] = 0.0
    missing = np.flatnonzero(np.isnan(table))
    if missing.size:
        if default is None:
            examples = ", ".join(repr(names[i]) for i in missing[:5])
            raise InputError(f"no IDF weight for {missing.size} vocabulary token(s) (e.g. {examples}); add them, or "
                             "set \"idf_default\" in tremor_encoder.json to give unlisted tokens a weight",
                             file=source)
        table[missing] = default
    return table.astype(np.float32)


def read_idf_json(path: str | Path, tokenizer, vocab_size: int, default: float | None = None) -> np.ndarray:
    """Read an ``idf.json`` (OpenSearch format: {token: weight}) into a weight per token id."""
    path = Path(path)
    if not path.is_file():
        raise TremorError(f"{path}: missing; an inference-free model needs its IDF table (token → weight). Compute "
                          "one with tremor.encoders.inference_free.compute_idf and save it with save_model_dir")
    try:
        weights = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"invalid JSON ({exc})", file=path) from None
    return idf_table(weights, tokenizer, vocab_size, default, source=path)


def idf_dict(table: np.ndarray, tokenizer) -> dict[str, float]:
    """The {token: weight} mapping of a table, for every token the tokenizer knows (special tokens included, at 0)."""
    tokens = _id_to_token(tokenizer, table.shape[0])
    return {token: float(table[i]) for i, token in enumerate(tokens) if token is not None}


def write_idf_json(path: str | Path, table: np.ndarray, tokenizer) -> None:
    Path(path).write_text(json.dumps(idf_dict(table, tokenizer), ensure_ascii=False), encoding="utf-8")


def compute_idf(texts: Iterable[str], tokenizer, vocab_size: int | None = None, max_length: int | None = None,
                batch_size: int = 4096) -> np.ndarray:
    """IDF per token id over a corpus, in BM25's form ln(1 + (N − df + 0.5)/(df + 0.5)) (always > 0); df counts the
    texts containing the token (special tokens excluded and weighted 0); N is the number of texts."""
    size = int(vocab_size) if vocab_size is not None else len(tokenizer)
    df = np.zeros(size, np.int64)
    n = 0
    batch: list[str] = []

    def count(chunk: list[str]) -> None:
        encoded = tokenizer(chunk, add_special_tokens=False, truncation=max_length is not None,
                            max_length=max_length, return_attention_mask=False)["input_ids"]
        lengths = np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))
        ids = np.fromiter((t for row in encoded for t in row), dtype=np.int64, count=int(lengths.sum()))
        rows = np.repeat(np.arange(len(encoded), dtype=np.int64), lengths)
        distinct = np.unique(rows * size + ids)  # one (text, token) pair per text containing the token
        df[:] += np.bincount(distinct % size, minlength=size)

    for text in texts:
        batch.append(text)
        n += 1
        if len(batch) == batch_size:
            count(batch)
            batch = []
    if batch:
        count(batch)
    if n == 0:
        raise TremorError("compute_idf: the corpus has no texts")
    table = np.log1p((n - df + 0.5) / (df + 0.5))
    table[sorted(set(tokenizer.all_special_ids))] = 0.0
    return table.astype(np.float32)
