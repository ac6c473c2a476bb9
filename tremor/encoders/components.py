"""The parts a neural sparse encoder is built from, after "A Unified Framework for Learned Sparse Retrieval"
(Nguyen, MacAvaney & Yates, 2023): a backbone, a head, an activation, a pooling and a sparsifier, chosen per side so
that queries and documents may be encoded differently (MLP queries with MLM documents, IDF queries, ...).

- backbone: ``encoder`` (bidirectional, ``AutoModelForMaskedLM`` / ``AutoModel``) or ``decoder`` (causal,
  ``AutoModelForCausalLM``; with ``echo`` the text is repeated and only the second copy is pooled).
- head: ``mlm`` (the model's vocabulary projection: expansion over the whole vocabulary), ``mlp`` (a linear layer
  giving each input token one weight: term weighting without expansion), ``binary`` (1 per input token, no model),
  ``idf`` (an IDF table per input token, no model: the query side of inference-free models).
- activation: ``log1p_relu`` (SPLADE's log(1 + ReLU(x))), ``log1p_log1p_relu`` (applied twice, as in OpenSearch's
  v3 models) or ``relu``.
- pooling: ``max`` (SPLADE v2 and later) or ``sum`` (SPLADE v1) over the pooled positions of each text.
- sparsifier: keep the ``top_k`` largest weights and/or only weights above ``threshold``.

``SideEncoder`` runs one side over a list of texts: tokenizes once, sorts by length, pads batches under a token
budget, runs the model under ``torch.inference_mode`` (and autocast on CUDA), and moves each batch to the CPU once as
CSR arrays.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from tremor.encoders.composition import SideConfig
from tremor.errors import TremorError
from tremor.sparse import SparseVectors


# ------------------------------------------------------------------------------------------------------- runtime
@dataclass(frozen=True)
class Runtime:
    """Where and how models run: device, autocast dtype (None = full precision), the dtype decoder weights are
    loaded in (bf16 on GPU), texts per batch and the token budget of a padded batch."""

    device: torch.device
    autocast_dtype: torch.dtype | None
    decoder_dtype: torch.dtype
    batch_size: int = 32
    max_batch_tokens: int = 16384

    @classmethod
    def resolve(cls, device: str | torch.device = "auto", precision: str = "auto", batch_size: int = 32,
                max_batch_tokens: int = 16384) -> Runtime:
        """``device="auto"`` picks CUDA when present. ``precision="auto"``: bf16 autocast on CUDA (fp16 where bf16
        is unsupported), full fp32 on CPU; or force "fp32", "bf16" or "fp16"."""
        if batch_size < 1 or max_batch_tokens < 1:
            raise TremorError("batch_size and max_batch_tokens must be positive")
        if isinstance(device, str) and device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError):
            raise TremorError(f"unknown device '{device}' (use auto, cpu, cuda or cuda:N)") from None
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise TremorError(f"device '{device}' asked for, but CUDA is not available here; use device='auto'")
        cuda = resolved.type == "cuda"
        half = torch.bfloat16 if not cuda or torch.cuda.is_bf16_supported() else torch.float16
        choices = {"auto": half if cuda else None, "fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
        if precision not in choices:
            raise TremorError(f"unknown precision '{precision}' (choose from {', '.join(choices)})")
        autocast = choices[precision]
        decoder_dtype = autocast if (cuda and autocast is not None) else torch.float32
        return cls(resolved, autocast, decoder_dtype, int(batch_size), int(max_batch_tokens))

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)


# ----------------------------------------------------------------------------------------------------- the math
def activate(scores: torch.Tensor, activation: str) -> torch.Tensor:
    """The activation on raw head scores (all choices are monotone, so max pooling may run before them)."""
    out = torch.relu(scores)
    if activation == "relu":
        return out
    out = torch.log1p(out)
    return torch.log1p(out) if activation == "log1p_log1p_relu" else out


def pool_expansion(logits: torch.Tensor, pool_mask: torch.Tensor, pooling: str, activation: str) -> torch.Tensor:
    """SPLADE pooling of vocabulary logits (B, L, V) over the positions in ``pool_mask`` (B, L) to (B, V) float32:
    w_j = max_i act(logit_ij), computed as act(max_i logit_ij) because act is monotone, or sum_i act(logit_ij).
    ``logits`` is overwritten (it is a fresh model output; copying it would double the largest tensor)."""
    mask = pool_mask.unsqueeze(-1)
    if pooling == "max":
        if not bool(pool_mask.all()):
            logits.masked_fill_(~mask, float("-inf"))
        return activate(logits.amax(dim=1).float(), activation)
    return (activate(logits.float(), activation) * mask).sum(dim=1)


def pool_term_weights(token_weights: torch.Tensor, input_ids: torch.Tensor, pool_mask: torch.Tensor,
                      vocab_size: int, pooling: str) -> torch.Tensor:
    """Place per-position weights (B, L) at their input token ids, combining repeats by max or sum, to (B, V)."""
    weights = (token_weights.float() * pool_mask).clamp_min(0.0)
    out = torch.zeros(input_ids.shape[0], vocab_size, dtype=torch.float32, device=input_ids.device)
    if pooling == "max":
        return out.scatter_reduce_(1, input_ids, weights, reduce="amax", include_self=True)
    return out.scatter_add_(1, input_ids, weights)


def sparsify_to_csr(weights: torch.Tensor, top_k: int | None, threshold: float) -> SparseVectors:
    """(B, V) weights to CSR on the CPU in one transfer: entries above ``threshold`` and, with ``top_k``, at least the
    k-th largest of their row (ties are then settled exactly, to the smaller token id, by ``SparseVectors.prune``)."""
    if not torch.isfinite(weights).all():
        raise TremorError("the model produced non-finite term weights; try precision='fp32'")
    keep = weights > threshold
    if top_k is not None and top_k < weights.shape[1]:
        kth = torch.topk(weights, top_k, dim=1).values[:, -1:]
        keep &= weights >= kth
    rows, cols = keep.nonzero(as_tuple=True)
    counts = torch.bincount(rows, minlength=weights.shape[0])
    values = weights[rows, cols]
    counts, cols, values = counts.cpu().numpy(), cols.to(torch.int32).cpu().numpy(), values.cpu().numpy()
    indptr = np.zeros(counts.shape[0] + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    vectors = SparseVectors(indptr, cols, values, weights.shape[1])
    if top_k is not None and np.any(counts > top_k):
        vectors = vectors.prune(k=top_k, threshold=threshold)
    return vectors


# --------------------------------------------------------------------------------------------------- the backbone
CHUNK_ELEMENTS = 1 << 26  # logits per position chunk in pooled expansion (256 MiB in fp32)
# Logits per block of the CPU max-pooling path (64 MiB in fp32, a few texts x the whole vocabulary). Smaller,
# cache-sized blocks measured faster on an idle machine but several times slower on a loaded one (every operator
# call synchronizes the intra-op threads, and a preempted thread stalls it), so blocks stay large.
CPU_BLOCK_ELEMENTS = 1 << 24
SMALL_TEXT_TOKENS = 64  # a single text this short (a query) is encoded on one CPU thread
_ZERO_AT_NONPOSITIVE = ("relu", "log1p_relu", "log1p_log1p_relu")  # act(x) = 0 for every x <= 0


class _LinearTail:
    """The vocabulary head split as ``features(hidden) @ weight.T (+ bias)``: the module before the output
    projection (BERT's transform, RoBERTa's dense + norm, nothing for a bare ``lm_head``) and the projection's
    weight, with the bias appended as one more column (``augmented``, V x (H + 1)) when there is one."""

    def __init__(self, head: torch.nn.Module, decoder: torch.nn.Linear) -> None:
        path = next(name for name, module in head.named_modules() if module is decoder)
        self.features = _without_submodule(head, path) if path else torch.nn.Identity()
        bias = decoder.bias
        self.has_bias = bias is not None
        weight = decoder.weight.detach()
        self.augmented = torch.cat([weight, bias.detach()[:, None].to(weight.dtype)], dim=1).contiguous() \
            if self.has_bias else weight

    def inputs(self, hidden: torch.Tensor, pool_mask: torch.Tensor | None) -> torch.Tensor:
        """The projection's input rows, a column of ones appended for the bias; rows outside the pool (None: every
        row is in it) are all zero, so their logits are exactly 0: under a ReLU-based activation a 0 never changes a
        max-pooled weight."""
        x = self.features(hidden)
        if self.has_bias:
            x = torch.cat([x, torch.ones_like(x[..., :1])], dim=-1)
        return x if pool_mask is None else x * pool_mask.unsqueeze(-1).to(x.dtype)


def _without_submodule(root: torch.nn.Module, path: str) -> torch.nn.Module:
    """A shallow copy of ``root`` whose submodule at ``path`` is an Identity (parameters are shared, not copied)."""
    head, _, rest = path.partition(".")
    copy = torch.nn.Module.__new__(type(root))
    copy.__dict__ = dict(root.__dict__)
    copy._modules = dict(root._modules)
    copy._modules[head] = _without_submodule(root._modules[head], rest) if rest else torch.nn.Identity()
    return copy


class Backbone:
    """One transformer, shared by the sides that name the same model folder: pooled vocabulary logits for ``mlm``
    heads, last hidden states for ``mlp`` heads.

    Where the model's vocabulary head is a separate module (``cls`` in BERT-style MLMs, ``lm_head`` in RoBERTa-style
    MLMs and causal LMs) and reproduces the model's own logits, ``expansion`` runs the transformer body once and the
    head over chunks of positions, keeping a running pool: the (B, L, V) logits tensor, the largest in the
    computation, never exists whole, and positions outside the pool (an echo's first copy) skip the head entirely.
    Max pooling goes further where the head ends in a linear projection (checked the same way): the projection runs
    in blocks of (texts x vocabulary) without its bias-broadcast copy or a mask pass, the bias riding as one more
    input column (see ``_LinearTail``). The vocabulary projection is most of a small model's work: for
    BERT-tiny (hidden 128) it is 30,522 x 128 multiply-adds per token against about 200,000 for the two layers.
    """

    def __init__(self, model: torch.nn.Module, decoder: bool) -> None:
        self.model = model.eval()
        self.decoder = decoder
        self.head = self._separable_head()
        self.tail = self._linear_tail()

    def _check_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        device = next(self.model.parameters()).device
        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(0, self.output_size, (2, 8), generator=generator).to(device)
        return ids, torch.ones_like(ids)

    def _same_logits(self, split: torch.Tensor, full: torch.Tensor) -> bool:
        return split.shape == full.shape and torch.allclose(split, full, rtol=1e-3, atol=1e-3 * float(
            full.abs().max().clamp_min(1.0)))

    def _separable_head(self) -> torch.nn.Module | None:
        """The module mapping last hidden states to logits, if the model's forward does nothing after it (checked on
        a small input; models that soft-cap logits are excluded outright)."""
        size = self.output_size
        config = getattr(self.model, "config", None)
        if size is None or any("softcap" in key and value for key, value in vars(config or {}).items()):
            return None
        ids, attention = self._check_inputs()
        for name in ("cls", "lm_head"):
            head = getattr(self.model, name, None)
            if not isinstance(head, torch.nn.Module):
                continue
            with torch.inference_mode():
                full = self.logits(ids, attention).float()
                try:
                    split = head(self.hidden(ids, attention)).float()
                except (RuntimeError, TypeError, ValueError):
                    continue
            if self._same_logits(split, full):
                return head
        return None

    def _linear_tail(self) -> _LinearTail | None:
        """The head as features + linear projection, when the output embeddings are a Linear inside the head and
        that split reproduces the head's logits (checked on a small input)."""
        decoder = self.model.get_output_embeddings() if self.head is not None else None
        if not isinstance(decoder, torch.nn.Linear) or not any(m is decoder for m in self.head.modules()):
            return None
        tail = _LinearTail(self.head, decoder)
        ids, attention = self._check_inputs()
        with torch.inference_mode():
            hidden = self.hidden(ids, attention)
            full = self.head(hidden).float()
            x = tail.inputs(hidden, None)
            split = (x @ tail.augmented.T).float()
        return tail if self._same_logits(split, full) else None

    def expansion(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pool_mask: torch.Tensor,
                  pooling: str, activation: str) -> torch.Tensor:
        """(B, V) float32 pooled term weights of the vocabulary head (see ``pool_expansion``)."""
        if self.head is None:
            return pool_expansion(self.logits(input_ids, attention_mask), pool_mask, pooling, activation)
        hidden = self.hidden(input_ids, attention_mask)
        if self.tail is not None and pooling == "max" and activation in _ZERO_AT_NONPOSITIVE:
            return self._blocked_max(hidden, pool_mask, activation)
        batch, length = pool_mask.shape
        step = max(1, CHUNK_ELEMENTS // (batch * self.output_size))
        running = None  # max pooling: the running max of raw logits (the activation is monotone, applied once)
        for start in range(0, length, step):
            mask = pool_mask[:, start:start + step]
            if not bool(mask.any()):
                continue
            logits = self.head(hidden[:, start:start + step])
            if pooling == "max":
                if not bool(mask.all()):
                    logits.masked_fill_(~mask.unsqueeze(-1), float("-inf"))
                part = logits.amax(dim=1)
                running = part if running is None else torch.maximum(running, part, out=running)
            else:
                part = (activate(logits.float(), activation) * mask.unsqueeze(-1)).sum(dim=1)
                running = part if running is None else running.add_(part)
        if running is None:
            return torch.zeros(batch, self.output_size, dtype=torch.float32, device=input_ids.device)
        return activate(running.float(), activation) if pooling == "max" else running

    def _blocked_max(self, hidden: torch.Tensor, pool_mask: torch.Tensor, activation: str) -> torch.Tensor:
        """act(max over pooled positions of the logits), the projection run per block of texts x vocabulary.
        Positions outside the pool give logits of exactly 0 (see ``_LinearTail.inputs``), which leaves
        act(max) unchanged because act(x) = 0 for x <= 0; a text with no pooled position gets all zeros."""
        tail = self.tail
        x = tail.inputs(hidden, None if bool(pool_mask.all()) else pool_mask)
        weight = tail.augmented
        batch, length = pool_mask.shape
        vocab = weight.shape[0]
        budget = CPU_BLOCK_ELEMENTS if x.device.type == "cpu" else CHUNK_ELEMENTS
        width = min(vocab, max(256, budget // max(length, 1)))
        rows = max(1, min(batch, budget // (max(length, 1) * width)))
        out = None  # allocated at the first block, in the dtype the product has (bf16/fp16 under autocast)
        for r in range(0, batch, rows):
            texts = x[r:r + rows]
            for v in range(0, vocab, width):
                logits = torch.matmul(texts, weight[v:v + width].T)
                if out is None:
                    out = torch.empty(batch, vocab, dtype=logits.dtype, device=x.device)
                torch.amax(logits, dim=1, out=out[r:r + rows, v:v + width])
        return activate(out.float(), activation)

    @property
    def output_size(self) -> int | None:
        """Width of the vocabulary logits, or None for a model loaded without its LM head."""
        head = self.model.get_output_embeddings() if hasattr(self.model, "get_output_embeddings") else None
        return None if head is None else int(head.weight.shape[0])

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        body = self.model.base_model if self.output_size is not None else self.model
        return body(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


# -------------------------------------------------------------------------------------------------- one side
@dataclass
class TokenizedTexts:
    """Model inputs for a list of texts, flat: ``ids`` and ``pool`` (positions pooled over) concatenated, with the
    per-text ``lengths``."""

    ids: np.ndarray
    pool: np.ndarray
    lengths: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        out = np.zeros(self.lengths.shape[0] + 1, np.int64)
        np.cumsum(self.lengths, out=out[1:])
        return out


def pad_batch(texts: TokenizedTexts, rows: np.ndarray, pad_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Right-padded (input_ids, attention_mask, pool_mask) arrays for the texts ``rows``, without a Python loop."""
    offsets = texts.offsets
    lengths = texts.lengths[rows]
    width = max(int(lengths.max()) if lengths.size else 0, 1)
    total = int(lengths.sum())
    row_of = np.repeat(np.arange(rows.shape[0]), lengths)
    starts = np.repeat(offsets[rows], lengths)
    within = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    source = starts + within
    input_ids = np.full((rows.shape[0], width), pad_id, dtype=np.int64)
    attention = np.zeros((rows.shape[0], width), dtype=np.int64)
    pool = np.zeros((rows.shape[0], width), dtype=bool)
    input_ids[row_of, within] = texts.ids[source]
    attention[row_of, within] = 1
    pool[row_of, within] = texts.pool[source]
    return input_ids, attention, pool


def length_batches(lengths: np.ndarray, batch_size: int, max_batch_tokens: int) -> list[np.ndarray]:
    """Text indices grouped into batches, longest first, each at most ``batch_size`` texts and (unless one text alone
    exceeds it) ``max_batch_tokens`` padded tokens."""
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < order.shape[0]:
        width = max(int(lengths[order[start]]), 1)
        size = max(1, min(batch_size, max_batch_tokens // width))
        batches.append(order[start:start + size])
        start += size
    return batches


class SideEncoder:
    """Encodes texts for one side: tokenizer → (backbone → head) → pooling → activation → sparsifier → CSR."""

    def __init__(self, config: SideConfig, tokenizer, vocab_size: int, runtime: Runtime,
                 backbone: Backbone | None = None, mlp: torch.nn.Linear | None = None,
                 table: np.ndarray | None = None) -> None:
        if config.needs_model and backbone is None:
            raise TremorError(f"a '{config.head}' head needs a backbone model")
        if config.head == "mlp" and mlp is None:
            raise TremorError("an 'mlp' head needs its linear layer")
        if config.head == "idf" and table is None:
            raise TremorError("an 'idf' head needs an IDF table")
        self.config = config
        self.tokenizer = tokenizer
        self.vocab_size = int(vocab_size)
        self.runtime = runtime
        self.backbone = backbone
        self.mlp = mlp
        self.table = None if table is None else np.asarray(table, dtype=np.float32)
        self.special_ids = np.array(sorted(set(tokenizer.all_special_ids)), dtype=np.int64)
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
        self.pad_id = int(pad)

    # ------------------------------------------------------------------------------------------------ tokenizing
    def tokenize(self, texts: Sequence[str]) -> TokenizedTexts:
        """Token ids of every text as the model sees them, with the positions that are pooled."""
        cfg = self.config
        with_specials = cfg.needs_model and cfg.backbone == "encoder"
        encoded = self.tokenizer(list(texts), add_special_tokens=with_specials, truncation=True,
                                 max_length=cfg.max_length, return_attention_mask=False,
                                 return_token_type_ids=False)["input_ids"]
        lengths = np.fromiter((len(ids) for ids in encoded), dtype=np.int64, count=len(encoded))
        ids = np.fromiter((t for row in encoded for t in row), dtype=np.int64, count=int(lengths.sum()))
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise TremorError(f"the tokenizer produced token id {int(ids.max())} but the vocabulary has "
                              f"{self.vocab_size} entries: the tokenizer does not belong to this model")
        pool = np.ones(ids.shape[0], dtype=bool)
        if cfg.head != "mlm" and cfg.drop_special_tokens:
            pool &= ~np.isin(ids, self.special_ids)
        texts_in = TokenizedTexts(ids, pool, lengths)
        if cfg.backbone == "decoder" and cfg.needs_model:
            from tremor.encoders.decoder import decoder_inputs

            texts_in = decoder_inputs(texts_in, self.tokenizer, cfg.echo, cfg.echo_separator)
        return texts_in

    # -------------------------------------------------------------------------------------------------- encoding
    def encode(self, texts: Sequence[str], progress: bool = False) -> SparseVectors:
        """Sparse vectors of ``texts`` (rows in input order, no vocabulary id)."""
        texts = list(texts)
        if not texts:
            return SparseVectors.empty(0, self.vocab_size)
        tokenized = self.tokenize(texts)
        if not self.config.needs_model:
            return self._encode_static(tokenized)
        if len(texts) == 1:  # one query: no batching, no reordering, nothing to pad
            with self._one_thread_if_small(int(tokenized.lengths[0])):
                return sparsify_to_csr(self._batch_weights(tokenized, np.zeros(1, np.int64)), self.config.top_k,
                                       self.config.threshold)
        batches = length_batches(tokenized.lengths, self.runtime.batch_size, self.runtime.max_batch_tokens)
        parts: list[SparseVectors] = []
        with tqdm(total=len(texts), desc="encoding", unit="text", disable=not progress) as bar:
            for rows in batches:
                parts.append(sparsify_to_csr(self._batch_weights(tokenized, rows), self.config.top_k,
                                             self.config.threshold))
                bar.update(rows.shape[0])
        order = np.concatenate(batches)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(order.shape[0])
        stacked = SparseVectors.concat(parts)
        return stacked[inverse]

    @contextlib.contextmanager
    def _one_thread_if_small(self, tokens: int):
        """Run one short text (up to SMALL_TEXT_TOKENS) on one CPU thread: its work is about a millisecond, and each
        of the model's ~30 operators would otherwise wait for a second intra-op thread, which on shared cores costs
        a scheduler slice each time (measured: 940 ms against 73 ms per query at load average 10 on 2 cores)."""
        if self.runtime.device.type != "cpu" or tokens > SMALL_TEXT_TOKENS or torch.get_num_threads() == 1:
            yield
            return
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    def _batch_weights(self, tokenized: TokenizedTexts, rows: np.ndarray) -> torch.Tensor:
        device = self.runtime.device
        input_ids, attention, pool = (torch.from_numpy(a).to(device, non_blocking=True)
                                      for a in pad_batch(tokenized, rows, self.pad_id))
        cfg = self.config
        with torch.inference_mode(), self.runtime.autocast():
            if cfg.head == "mlm":
                weights = self.backbone.expansion(input_ids, attention, pool, cfg.pooling, cfg.activation)
            else:
                scores = self.mlp(self.backbone.hidden(input_ids, attention)).squeeze(-1)
                weights = pool_term_weights(activate(scores.float(), cfg.activation), input_ids, pool,
                                            self.vocab_size, cfg.pooling)
            if cfg.drop_special_tokens and self.special_ids.size:
                weights[:, torch.from_numpy(self.special_ids).to(device)] = 0.0
        return weights

    def _encode_static(self, tokenized: TokenizedTexts) -> SparseVectors:
        """Binary or IDF weights of the distinct input tokens, special tokens always dropped (no model runs)."""
        n = tokenized.lengths.shape[0]
        keep = ~np.isin(tokenized.ids, self.special_ids)
        rows = np.repeat(np.arange(n, dtype=np.int64), tokenized.lengths)[keep]
        ids = tokenized.ids[keep]
        values = np.ones(ids.shape[0], np.float32) if self.config.head == "binary" else self.table[ids]
        vectors = SparseVectors.from_coo(rows, ids, values, n, self.vocab_size, reduce="max")
        cfg = self.config
        if cfg.top_k is not None or cfg.threshold > 0:
            vectors = vectors.prune(k=cfg.top_k, threshold=cfg.threshold)
        return vectors

    def position_weights(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(token ids, per-position weights) of the pooled positions of one text, before pooling: a (P, V) array for
        an ``mlm`` head, (P,) for the others. For inspecting what each token contributes."""
        tokenized = self.tokenize([text])
        ids = tokenized.ids[tokenized.pool]
        if not self.config.needs_model:
            weights = np.ones(ids.shape[0], np.float32) if self.config.head == "binary" else self.table[ids]
            return ids, weights
        device = self.runtime.device
        input_ids, attention, pool = (torch.from_numpy(a).to(device)
                                      for a in pad_batch(tokenized, np.zeros(1, np.int64), self.pad_id))
        with torch.inference_mode(), self.runtime.autocast():
            if self.config.head == "mlm":
                scores = self.backbone.logits(input_ids, attention)[0][pool[0]]
            else:
                scores = self.mlp(self.backbone.hidden(input_ids, attention)).squeeze(-1)[0][pool[0]]
            weights = activate(scores.float(), self.config.activation)
        return ids, weights.cpu().numpy()
