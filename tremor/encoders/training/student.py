"""The trainable student: an MLM backbone with SPLADE pooling, as a torch module with gradients.

Documents: w_j = max_i log(1 + ReLU(logit_ij)) over the document's positions (``components.pool_expansion``, the same
function inference uses). Queries: the same model (``splade``) or a fixed IDF lookup of the query's tokens
(``inference_free``). ``save_model`` writes a tremor model directory that ``tremor.encoders.get_encoder`` loads, so
what is trained is exactly what is indexed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from tremor.encoders.components import pool_expansion
from tremor.encoders.inference_free import inference_free_config
from tremor.encoders.neural import save_model_dir
from tremor.encoders.splade import splade_config
from tremor.errors import TremorError

KINDS = ("splade", "inference_free")


def load_mlm_backbone(path: str | Path):
    """(masked-LM model, tokenizer, whether the MLM head had to be created) from a directory. A sentence-transformers
    directory such as all-MiniLM-L6-v2 has no MLM head: the decoder is then tied to the word embeddings and the
    transform starts fresh (see ``init_fresh_head``)."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, info = AutoModelForMaskedLM.from_pretrained(str(path), tie_word_embeddings=True,
                                                               output_loading_info=True)
            tokenizer = AutoTokenizer.from_pretrained(str(path))
    except OSError as exc:
        raise TremorError(f"cannot load a masked-LM backbone from '{path}': {exc}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
    fresh = any(".predictions.transform." in key for key in info.get("missing_keys", []))
    return model, tokenizer, fresh


def bert_head(model) -> tuple[torch.nn.Module, torch.nn.Linear] | None:
    """(transform, decoder) of a BERT-family MLM head, or None for other architectures."""
    predictions = getattr(getattr(model, "cls", None), "predictions", None)
    if predictions is None or not hasattr(predictions, "transform"):
        return None
    return predictions.transform, predictions.decoder


@torch.no_grad()
def init_fresh_head(model, tokenizer, texts: Sequence[str], target_nnz: float = 200.0,
                    max_length: int = 256) -> float:
    """Initialize a newly created BERT MLM head so that SPLADE pooling starts sparse and lexical.

    The transform starts as the identity (dense = I, zero bias; LayerNorm neutral), so position i scores vocabulary
    term t by the tied embedding E_t · LN(gelu(h_i)): a position's own token and its neighbours in embedding space
    score highest. A random transform instead gives every term a positive maximum somewhere in a long text, so all
    30k terms would start active. Then one scalar bias is set so that a document of ``texts`` has about
    ``target_nnz`` active terms on average. Returns that bias."""
    head = bert_head(model)
    if head is None:
        raise TremorError("init_fresh_head supports BERT-family masked-LM heads")
    transform, decoder = head
    hidden = transform.dense.weight.shape[0]
    transform.dense.weight.copy_(torch.eye(hidden))
    transform.dense.bias.zero_()
    transform.LayerNorm.weight.fill_(1.0)
    transform.LayerNorm.bias.zero_()
    decoder.bias.zero_()
    model.eval()
    batch = tokenizer(list(texts), truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    logits = model(**batch).logits
    pooled = logits.masked_fill(~batch["attention_mask"].bool().unsqueeze(-1), float("-inf")).amax(dim=1)
    quantile = 1.0 - target_nnz / pooled.shape[1]
    shift = float(torch.quantile(pooled.float().flatten()[::7], quantile))  # strided sample keeps quantile() cheap
    decoder.bias.fill_(-shift)
    return -shift


def _max_logits(states: torch.Tensor, mask: torch.Tensor,
                decoder: torch.nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """Per text, the maximum vocabulary logit of each term over the text's real positions and where it occurs
    ([B, V] values, [B, V] positions). One text at a time over its unpadded positions, with one max pass: the
    [B, L, V] tensor of a whole batch (hundreds of MB) is never materialized, which was most of a step's time."""
    n_texts, vocab = states.shape[0], decoder.weight.shape[0]
    best = torch.empty(n_texts, vocab, dtype=torch.float32, device=states.device)
    position = torch.empty(n_texts, vocab, dtype=torch.long, device=states.device)
    for row in range(n_texts):
        real = torch.nonzero(mask[row], as_tuple=True)[0]
        values, where = decoder(states[row, real]).max(dim=0)
        best[row] = values.float()
        position[row] = real[where]
    return best, position


class SparseStudent(torch.nn.Module):
    """SPLADE or inference-free student over a masked-LM backbone."""

    def __init__(self, model, tokenizer, kind: str = "splade", idf: np.ndarray | None = None,
                 query_max_length: int = 64, document_max_length: int = 256) -> None:
        super().__init__()
        if kind not in KINDS:
            raise TremorError(f"unknown student kind '{kind}' ({', '.join(KINDS)})")
        if kind == "inference_free" and idf is None:
            raise TremorError("an inference-free student needs the query IDF table")
        self.model = model
        self.tokenizer = tokenizer
        self.kind = kind
        self.query_max_length = query_max_length
        self.document_max_length = document_max_length
        self.saved_document_max_length: int | None = None  # what save_model records, when not the training length
        vocab_size = int(model.config.vocab_size)
        special = torch.zeros(vocab_size, dtype=torch.bool)
        special[sorted(set(tokenizer.all_special_ids))] = True
        self.register_buffer("special_tokens", special, persistent=False)
        if idf is not None:
            table = torch.as_tensor(np.asarray(idf, dtype=np.float32))
            if table.shape != (vocab_size,):
                raise TremorError(f"IDF table has shape {tuple(table.shape)}; expected ({vocab_size},)")
            # strictly positive where it can matter, so IDF-aware FLOPS is defined for every column
            self.register_buffer("query_idf", table.clamp_min(1e-3), persistent=False)
        else:
            self.query_idf = None

    @classmethod
    def from_backbone(cls, path: str | Path, kind: str = "splade", idf: np.ndarray | None = None,
                      calibration_texts: Sequence[str] = (), **lengths) -> SparseStudent:
        """A student over the backbone at ``path``; a missing MLM head is initialized with ``init_fresh_head`` on
        ``calibration_texts`` (some corpus documents)."""
        model, tokenizer, fresh = load_mlm_backbone(path)
        if fresh and calibration_texts:
            init_fresh_head(model, tokenizer, calibration_texts,
                            max_length=lengths.get("document_max_length", 256))
        return cls(model, tokenizer, kind, idf, **lengths)

    def freeze_output_bias(self) -> None:
        """Keep the vocabulary head's per-term bias fixed. That bias is shared by every document, so with a few hard
        negatives per positive the ranking loss pushes the bias of frequent query terms down for the whole corpus at
        once, and document expansions collapse; the backbone and transform still learn which terms a document
        should activate."""
        head = bert_head(self.model)
        if head is None:
            raise TremorError("freeze_output_bias supports BERT-family masked-LM heads")
        head[1].bias.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _expansion(self, texts: Sequence[str], max_length: int) -> torch.Tensor:
        batch = self.tokenizer(list(texts), truncation=True, max_length=max_length, padding=True,
                               return_tensors="pt").to(self.device)
        head = bert_head(self.model)
        if head is None:
            logits = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            return pool_expansion(logits, batch["attention_mask"].bool(), "max", "log1p_relu")
        if not torch.is_grad_enabled():  # validation: the same pooling, without the [B, L, V] logits
            transform, decoder = head
            hidden = self.model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            best, _ = _max_logits(transform(hidden.last_hidden_state), batch["attention_mask"].bool(), decoder)
            return torch.log1p(torch.relu(best))
        return self._sparse_grad_expansion(batch, *head)

    def _sparse_grad_expansion(self, batch, transform: torch.nn.Module, decoder: torch.nn.Linear) -> torch.Tensor:
        """max-pooled log(1 + ReLU(logits)) with exactly the gradients of the dense computation, at a fraction of the
        cost. Max pooling passes gradient only to each term's argmax position, and ReLU only where that maximum is
        positive; so the [B, L, V] vocabulary logits are computed without gradient to find the active (document,
        term, position) triples, and only those logits are recomputed with gradient."""
        mask = batch["attention_mask"].bool()
        hidden = self.model.base_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        states = transform(hidden.last_hidden_state)  # [B, L, H], with gradient
        with torch.no_grad():
            best, position = _max_logits(states.detach(), mask, decoder)  # [B, V] each
            docs, terms = torch.nonzero(best > 0, as_tuple=True)
        active_states = states[docs, position[docs, terms]]  # [P, H]
        active_logits = (active_states * decoder.weight[terms]).sum(-1) + decoder.bias[terms]
        out = torch.zeros(best.shape, dtype=torch.float32, device=best.device)
        return out.index_put((docs, terms), torch.log1p(torch.relu(active_logits.float())))

    def document_representations(self, texts: Sequence[str]) -> torch.Tensor:
        """[B, V] document term weights, with gradients."""
        weights = self._expansion(texts, self.document_max_length)
        if self.kind == "inference_free":  # special-token columns are never indexed by inference-free encoders
            weights = weights.masked_fill(self.special_tokens, 0.0)
        return weights

    def query_representations(self, texts: Sequence[str]) -> torch.Tensor:
        """[B, V] query term weights: the model's expansion (SPLADE) or IDF weights of the query's tokens."""
        if self.kind == "splade":
            return self._expansion(texts, self.query_max_length)
        encoded = self.tokenizer(list(texts), add_special_tokens=False, truncation=True,
                                 max_length=self.query_max_length)["input_ids"]
        out = torch.zeros(len(encoded), self.query_idf.shape[0], device=self.device)
        for row, ids in enumerate(encoded):
            if ids:
                index = torch.tensor(ids, device=self.device)
                out[row, index] = self.query_idf[index]
        return out.masked_fill(self.special_tokens, 0.0)

    def save_model(self, directory: Path) -> None:
        """A tremor model directory (weights, tokenizer, tremor_encoder.json, idf.json for inference-free)."""
        document_max_length = self.saved_document_max_length or self.document_max_length
        if self.kind == "splade":
            config = splade_config(document_max_length=document_max_length, query_max_length=self.query_max_length)
            idf = None
        else:
            config = inference_free_config(document_max_length=document_max_length,
                                           query_max_length=self.query_max_length)
            idf = self.query_idf.masked_fill(self.special_tokens, 0.0).detach().cpu().numpy()
        save_model_dir(directory, config, model=self.model, tokenizer=self.tokenizer, idf=idf)
