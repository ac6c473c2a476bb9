"""Neural sparse encoders: load them from a model directory or a hub name, save model directories, and keep them
beside an index.

A tremor model directory is an ordinary Hugging Face model directory plus one JSON file:

```
MODEL/
  config.json, model.safetensors (or pytorch_model.bin, or sharded with an *.index.json)   the backbone
  tokenizer.json, tokenizer_config.json, ... (vocab.txt)                                     its tokenizer
  tremor_encoder.json     how texts become sparse vectors (optional: without it an MLM loads as SPLADE and a
                          causal LM as a decoder encoder)
  idf.json                inference-free models: {token: weight} for the query side (OpenSearch's format)
  <side>_mlp_head.safetensors   MLP heads only: tensors "weight" (1, hidden) and "bias" (1,)
```

``tremor_encoder.json``::

    {"format": "tremor-encoder", "version": 1,
     "kind": "splade",                       # splade | inference_free | decoder | unified
     "query":    {"max_length": 64},         # settings over the kind's defaults, per side
     "document": {"max_length": 512, "top_k": 256},
     "idf_default": null}                    # weight for vocabulary tokens idf.json lacks (null: that is an error)

Per-side settings (see ``components.SideConfig``): ``head`` mlm | mlp | binary | idf, ``backbone`` encoder | decoder,
``pooling`` max | sum, ``activation`` log1p_relu | log1p_log1p_relu | relu, ``max_length`` (tokens, clamped to the
model's limit), ``echo`` and ``echo_separator`` (decoders), ``top_k`` and ``threshold`` (pruning),
``drop_special_tokens``, ``model`` (the backbone's folder, default "."), ``head_file``. The kinds are presets:
``splade`` (MLM both sides), ``inference_free`` (MLM documents, IDF queries), ``decoder`` (causal LM both sides, echo),
``unified`` (no preset: both sides spelled out, e.g. MLP queries and MLM documents sharing one backbone).
``save_model_dir`` writes this format; ``load_encoder`` reads it.

Beside an index (``encoder/`` of an index directory) a neural encoder stores a reference, not a copy: the model's
absolute path (or hub name and commit), its vocabulary hash (checked at load: a different vocabulary is refused) and a
fingerprint of its files (a change since the build gives a warning). Weights run to gigabytes for decoder models, so
copying them into every index would be wasteful. What an inference-free index needs for queries (tokenizer and
``idf.json``, a few hundred kB) is copied, so such an index is searched without the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tremor.encoders.base import register_encoder, require_texts, vocab_hash, write_encoder_config
from tremor.encoders.composition import SIDES, EncoderConfig, SideConfig
from tremor.encoders.decoder import decoder_config
from tremor.encoders.inference_free import IDF_FILE, idf_table, inference_free_config, read_idf_json, write_idf_json
from tremor.encoders.splade import splade_config
from tremor.errors import IndexFormatError, TremorError, VocabularyMismatchError
from tremor.index.storage import atomic_directory, replaceable_if
from tremor.sparse import SparseVectors

if TYPE_CHECKING:  # torch and transformers load only when a model does: importing this module stays cheap
    import torch

    from tremor.encoders.components import Backbone, Runtime, SideEncoder

MODEL_CONFIG_FILE = "tremor_encoder.json"
MODEL_FORMAT = "tremor-encoder"
MODEL_FORMAT_VERSION = 1
PRESETS = {"splade": splade_config, "inference_free": inference_free_config, "decoder": decoder_config}
KINDS = (*PRESETS, "unified")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
_FINGERPRINT_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".txt", ".pt", ".pth")
_QUERY_TOKENIZER_DIR = "tokenizer"


# ----------------------------------------------------------------------------------------------- configuration
def parse_encoder_config(data: dict[str, Any], where: str = MODEL_CONFIG_FILE) -> EncoderConfig:
    """An ``EncoderConfig`` from the contents of a ``tremor_encoder.json``: the kind's preset, overridden per side."""
    if not isinstance(data, dict):
        raise TremorError(f"{where}: expected a JSON object")
    allowed = {"format", "version", "kind", "query", "document", "idf_default"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise TremorError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(allowed))})")
    version = data.get("version", MODEL_FORMAT_VERSION)
    if data.get("format", MODEL_FORMAT) != MODEL_FORMAT or not isinstance(version, int) \
            or version > MODEL_FORMAT_VERSION:
        raise TremorError(f"{where}: format {data.get('format')!r} version {data.get('version')!r} is not one this "
                          f"tremor reads ({MODEL_FORMAT} {MODEL_FORMAT_VERSION})")
    kind = data.get("kind", "splade")
    if kind not in KINDS:
        raise TremorError(f"{where}: unknown kind '{kind}' (choose from {', '.join(KINDS)})")
    base = PRESETS[kind]() if kind in PRESETS else EncoderConfig(kind)
    idf_default = data.get("idf_default", base.idf_default)
    if idf_default is not None and (not isinstance(idf_default, (int, float)) or not np.isfinite(idf_default)
                                    or idf_default < 0):
        raise TremorError(f"{where}: idf_default must be a number >= 0 or null")
    return EncoderConfig(
        kind,
        query=SideConfig.from_dict(data.get("query", {}), base.query, f"{where}: query"),
        document=SideConfig.from_dict(data.get("document", {}), base.document, f"{where}: document"),
        idf_default=None if idf_default is None else float(idf_default))


def model_config_dict(config: EncoderConfig) -> dict[str, Any]:
    """The ``tremor_encoder.json`` contents for ``config`` (every setting spelled out)."""
    return {"format": MODEL_FORMAT, "version": MODEL_FORMAT_VERSION, **config.to_dict()}


# ------------------------------------------------------------------------------------------------ model source
@dataclass(frozen=True)
class ModelSource:
    """Where a model lives: an absolute local directory, or a hub repository id (with a revision)."""

    name: str
    local: bool
    revision: str | None = None
    offline: bool = False
    named: str | None = None  # the registry name (tremor.models) this directory was resolved from, if any

    @classmethod
    def resolve(cls, spec: str | Path, revision: str | None = None, offline: bool | None = None) -> ModelSource:
        path = Path(spec).expanduser()
        if offline is None and not path.is_dir():
            from tremor.encoders.hub import downloads_possible

            offline = not downloads_possible()  # offline: fail at once instead of waiting through hub retries
        if path.is_dir():
            return cls(str(path.resolve()), True, None, bool(offline))
        text = str(spec)
        if path.exists():
            raise TremorError(f"{spec}: is a file; give a model directory or a hub name")
        if text.startswith((".", "/", "~")) or text.count("/") > 1 or not text.strip():
            raise TremorError(f"{spec}: no such model directory")
        return cls(text, False, revision, offline)

    def describe(self) -> str:
        return self.name if self.local else f"'{self.name}' (no local directory of that name; tried as a hub name)"

    def folder(self, sub: str) -> tuple[str, dict[str, Any]]:
        """(path or repo id, from_pretrained keyword arguments) of a sub-folder ("." = the root)."""
        if self.local:
            return str(Path(self.name) / sub), {"local_files_only": True}
        kwargs: dict[str, Any] = {"revision": self.revision, "local_files_only": self.offline}
        if sub not in (".", ""):
            kwargs["subfolder"] = sub
        return self.name, kwargs

    def file(self, relative: str) -> Path | None:
        """A file of the model (downloaded from the hub if need be), or None when the model has no such file."""
        if self.local:
            path = Path(self.name) / relative
            return path if path.is_file() else None
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        try:
            return Path(hf_hub_download(self.name, relative, revision=self.revision,
                                        local_files_only=self.offline))
        except LocalEntryNotFoundError:
            raise TremorError(self._unreachable("not in the local Hugging Face cache")) from None
        except EntryNotFoundError:
            return None
        except Exception as exc:  # network, unknown repository, gated repository, bad revision, ...
            raise TremorError(self._unreachable(f"{type(exc).__name__}: {exc}")) from None

    def _unreachable(self, why: str) -> str:
        mode = ("downloads are off (HF_HUB_OFFLINE / offline=True) or the hub cannot be reached" if self.offline
                else "the hub could not be reached")
        return (f"cannot load {self.describe()}: {why}; {mode}. Pass a local model directory instead, or "
                "download the model where a network exists")

    def check_local_folder(self, sub: str) -> None:
        """Refuse a local folder that is not a Hugging Face model directory with weights."""
        if not self.local:
            return
        folder = Path(self.name) / sub
        if not folder.is_dir():
            raise TremorError(f"{folder}: no such model folder")
        if not (folder / "config.json").is_file():
            raise TremorError(f"{folder}: not a Hugging Face model directory (no config.json)")
        if not any((folder / name).is_file() for name in WEIGHT_FILES):
            raise TremorError(f"{folder}: the model directory has no weights (none of {', '.join(WEIGHT_FILES)}); "
                              "save the model with save_pretrained or save_model_dir")

    def fingerprint(self) -> str | None:
        """A hash of the model's files (names, sizes, contents; files over 64 MiB by their first and last 4 MiB),
        to notice a model changed after an index was built with it. None for hub models (their revision says it)."""
        if not self.local:
            return None
        root = Path(self.name)
        digest = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in _FINGERPRINT_SUFFIXES):
            relative = path.relative_to(root)
            if any(part.startswith(".") for part in relative.parts) or path.name.lower() == "readme.txt":
                continue
            size = path.stat().st_size
            digest.update(f"{relative.as_posix()}\0{size}\0".encode())
            with open(path, "rb") as handle:
                if size <= 64 << 20:
                    digest.update(handle.read())
                else:
                    digest.update(handle.read(4 << 20))
                    handle.seek(size - (4 << 20))
                    digest.update(handle.read())
        return digest.hexdigest()[:16]


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' per-tensor progress bars while a model loads or saves (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    if enabled:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _load_tokenizer(path_or_name: str, kwargs: dict[str, Any], where: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path_or_name, **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TremorError(f"{where}: cannot load the tokenizer ({type(exc).__name__}: {exc}); a model directory must "
                          "contain the tokenizer files saved with the model") from None


def _load_hf_config(source: ModelSource, sub: str):
    from transformers import AutoConfig

    name, kwargs = source.folder(sub)
    try:
        return AutoConfig.from_pretrained(name, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise TremorError(f"cannot read the model config of {source.describe()} ({type(exc).__name__}: {exc})") \
            from None


def _load_backbone(source: ModelSource, sub: str, decoder: bool, with_lm_head: bool, runtime: Runtime) -> Backbone:
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

    from tremor.encoders.components import Backbone

    source.check_local_folder(sub)
    cls = AutoModelForCausalLM if decoder else (AutoModelForMaskedLM if with_lm_head else AutoModel)
    name, kwargs = source.folder(sub)
    dtype = runtime.decoder_dtype if decoder else torch.float32
    try:
        with _quiet_transformers():
            model = cls.from_pretrained(name, dtype=dtype, **kwargs)
    except ValueError as exc:
        raise TremorError(f"{source.describe()} ({sub}): cannot load it as {cls.__name__} ({exc}); check the side's "
                          "'backbone' (encoder for masked LMs, decoder for causal LMs) in tremor_encoder.json") \
            from None
    except (OSError, RuntimeError) as exc:
        raise TremorError(f"{source.describe()} ({sub}): cannot load the model weights ({type(exc).__name__}: "
                          f"{exc})") from None
    return Backbone(model.to(runtime.device), decoder)


def _load_mlp_head(source: ModelSource, relative: str, hidden_size: int, runtime: Runtime) -> torch.nn.Linear:
    import torch
    from safetensors.torch import load_file

    path = source.file(relative)
    if path is None:
        raise TremorError(f"{source.describe()}: the MLP head file '{relative}' is missing")
    try:
        tensors = load_file(str(path))
        weight, bias = tensors["weight"], tensors["bias"]
    except (OSError, KeyError, RuntimeError) as exc:
        raise TremorError(f"{path}: not an MLP head (needs tensors 'weight' and 'bias'): {exc}") from None
    if tuple(weight.shape) != (1, hidden_size) or tuple(bias.shape) != (1,):
        raise TremorError(f"{path}: MLP head has weight {tuple(weight.shape)} and bias {tuple(bias.shape)}; the "
                          f"backbone needs (1, {hidden_size}) and (1,)")
    head = torch.nn.Linear(hidden_size, 1)
    with torch.no_grad():
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    return head.to(runtime.device).eval()


def _model_limit(tokenizer, hf_config) -> int | None:
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is None or limit > 1_000_000:
        limit = getattr(hf_config, "max_position_embeddings", None) if hf_config is not None else None
    return int(limit) if limit else None


def _clamp(side: SideConfig, limit: int | None) -> SideConfig:
    """Cap a side's max_length so that the model's input fits its position limit (both echo copies and BOS)."""
    if limit is None or not side.needs_model:
        return side
    room = (limit - 2) // 2 if side.echo else limit - (1 if side.backbone == "decoder" else 0)
    return side if side.max_length <= room else replace(side, max_length=max(room, 1))


def _vocab_tokens(tokenizer, vocab_size: int, where: str) -> list[str]:
    tokens = [f"[id:{i}]" for i in range(vocab_size)]  # ids the tokenizer never produces (padded vocabularies)
    for token, token_id in tokenizer.get_vocab().items():
        if token_id >= vocab_size:
            raise VocabularyMismatchError(
                f"{where}: the tokenizer has token id {token_id} ('{token}') but the model's vocabulary has "
                f"{vocab_size} entries; the tokenizer does not belong to this model")
        tokens[token_id] = token
    return tokens


# ----------------------------------------------------------------------------------------------------- encoder
@register_encoder("splade")
@register_encoder("inference_free")
@register_encoder("decoder")
@register_encoder("unified")
class NeuralSparseEncoder:
    """A neural sparse encoder assembled from components (see ``tremor.encoders.components``): one side for queries,
    one for documents, sharing the tokenizer, the vocabulary and (where both name it) the backbone.

    Build one with ``load_encoder(model_dir_or_hub_name)``.
    """

    def __init__(self, source: ModelSource, config: EncoderConfig, runtime: Runtime, tokenizer, vocab_size: int,
                 table: np.ndarray | None = None, lazy_sides: Sequence[str] = ()) -> None:
        self.kind = config.kind
        self.source = source
        self.encoder_config = config
        self.runtime = runtime
        self.tokenizer = tokenizer
        self._vocab_size = int(vocab_size)
        self._tokens = _vocab_tokens(tokenizer, self._vocab_size, source.describe())
        self._vocab_hash = vocab_hash(self._tokens)
        self.table = table
        self._backbones: dict[str, Backbone] = {}
        self._sides: dict[str, SideEncoder] = {}
        self._fingerprint: str | None = None
        self._expected_fingerprint: str | None = None
        for name in SIDES:
            if name not in lazy_sides:
                self._side(name)

    # -------------------------------------------------------------------------------------------------- identity
    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def vocab_id(self) -> str:
        return f"{self.kind}:{self._vocab_hash}"

    def tokens(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Vocabulary tokens of the given ids (for reading vectors)."""
        return [self._tokens[int(i)] for i in ids]

    # -------------------------------------------------------------------------------------------------- assembly
    def _backbone(self, side: SideConfig) -> Backbone:
        key = side.model
        wants_head = any(s.head == "mlm" and s.model == key for s in self.encoder_config.sides)
        if key not in self._backbones:
            if self._expected_fingerprint is not None:
                self._check_fingerprint()
            backbone = _load_backbone(self.source, key, side.backbone == "decoder", wants_head, self.runtime)
            size = backbone.output_size if wants_head else None
            if size is not None and size != self._vocab_size:
                raise VocabularyMismatchError(f"{self.source.describe()}: the model's vocabulary has {size} entries, "
                                              f"expected {self._vocab_size}")
            self._backbones[key] = backbone
        return self._backbones[key]

    def _side(self, name: str) -> SideEncoder:
        if name in self._sides:
            return self._sides[name]
        from tremor.encoders.components import SideEncoder

        side = self.encoder_config.side(name)
        backbone = self._backbone(side) if side.needs_model else None
        mlp = None
        if side.head == "mlp":
            body = backbone.model.base_model if backbone.output_size is not None else backbone.model
            mlp = _load_mlp_head(self.source, side.mlp_head_file(name), int(body.config.hidden_size), self.runtime)
        self._sides[name] = SideEncoder(side, self.tokenizer, self._vocab_size, self.runtime, backbone, mlp,
                                        self.table if side.head == "idf" else None)
        return self._sides[name]

    # --------------------------------------------------------------------------------------------------- encoding
    def encode_documents(self, texts: Sequence[str], progress: bool = False) -> SparseVectors:
        """Document vectors, one row per text, in input order."""
        return self._side("document").encode(require_texts(texts), progress).with_vocab_id(self.vocab_id)

    def encode_queries(self, texts: Sequence[str], progress: bool = False) -> SparseVectors:
        """Query vectors, one row per text, in input order."""
        return self._side("query").encode(require_texts(texts), progress).with_vocab_id(self.vocab_id)

    def position_weights(self, text: str, side: str = "document") -> tuple[np.ndarray, np.ndarray]:
        """(token ids, weights per pooled position) of one text before pooling; see ``SideEncoder``."""
        if side not in SIDES:
            raise TremorError(f"side must be one of {', '.join(SIDES)}")
        return self._side(side).position_weights(text)

    # ------------------------------------------------------------------------------------------------ save/load
    def _query_self_contained(self) -> bool:
        return not self.encoder_config.query.needs_model

    def fingerprint(self) -> str | None:
        if self._fingerprint is None:
            self._fingerprint = self.source.fingerprint()
        return self._fingerprint

    def config(self) -> dict[str, Any]:
        """What ``encoder.json`` beside an index records: the model reference, vocabulary and settings."""
        return {"kind": self.kind, "model": self.source.name, "local": self.source.local,
                "revision": self.source.revision, "named_model": self.source.named, "vocab_size": self._vocab_size,
                "vocab_hash": self._vocab_hash,
                "fingerprint": self.fingerprint(), "encoder": self.encoder_config.to_dict(),
                "query_files": self._query_self_contained()}

    def save(self, directory: Path) -> None:
        """Write ``encoder.json`` (a reference to the model, see the module docstring) and, when queries need no
        model, the tokenizer and IDF table they do need."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self._query_self_contained():
            self.tokenizer.save_pretrained(str(directory / _QUERY_TOKENIZER_DIR))
            if self.table is not None:
                write_idf_json(directory / IDF_FILE, self.table, self.tokenizer)
        write_encoder_config(directory, self.config())

    @classmethod
    def load(cls, directory: Path, config: dict) -> NeuralSparseEncoder:
        """Restore the encoder an index was built with from its ``encoder/`` folder."""
        directory = Path(directory)
        try:
            encoder_config = parse_encoder_config(config["encoder"], f"{directory / 'encoder.json'}")
            vocab_size = int(config["vocab_size"])
            expected_hash = str(config["vocab_hash"])
            source = ModelSource(str(config["model"]), bool(config["local"]), config.get("revision"))
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"{directory}: encoder.json is incomplete ({exc})") from None
        if config.get("named_model"):  # a named model: find its package wherever it is installed now
            from tremor.models import model_path

            name = str(config["named_model"])
            source = ModelSource(str(model_path(name)), True, None, named=name)
        from tremor.encoders.components import Runtime

        runtime = Runtime.resolve()
        if config.get("query_files"):
            tokenizer = _load_tokenizer(str(directory / _QUERY_TOKENIZER_DIR), {"local_files_only": True},
                                        str(directory))
            table = read_idf_json(directory / IDF_FILE, tokenizer, vocab_size, encoder_config.idf_default) \
                if encoder_config.needs_idf else None
            encoder = cls(source, encoder_config, runtime, tokenizer, vocab_size, table, lazy_sides=SIDES)
        else:
            if source.local and not Path(source.name).is_dir():
                raise IndexFormatError(
                    f"{directory}: the index was built with the model at {source.name}, which no longer exists; "
                    "put it back, point 'model' in encoder.json at its new place, or rebuild the index")
            encoder = _open(source, encoder_config, runtime, lazy_sides=SIDES)
        if encoder._vocab_hash != expected_hash or encoder.vocab_size != vocab_size:
            raise VocabularyMismatchError(
                f"{directory}: the model at {source.describe()} has vocabulary {encoder.kind}:{encoder._vocab_hash} "
                f"({encoder.vocab_size} entries) but the index was built with {encoder.kind}:{expected_hash} "
                f"({vocab_size}); rebuild the index with this model")
        encoder._expected_fingerprint = config.get("fingerprint")
        if not config.get("query_files"):
            encoder._side("query")
        return encoder

    def _check_fingerprint(self) -> None:
        if not self.source.local or not Path(self.source.name).is_dir():
            if self.source.local:
                raise TremorError(f"the model at {self.source.name} is needed to encode documents and no longer "
                                  "exists; put it back or point 'model' in the index's encoder.json at it")
            return
        current = self.fingerprint()
        if current != self._expected_fingerprint:
            warnings.warn(f"the model files at {self.source.name} changed since this index was built: queries are "
                          "encoded with the new model, documents were encoded with the old one; rebuild the index",
                          stacklevel=3)
        self._expected_fingerprint = None


# ---------------------------------------------------------------------------------------------- public loaders
def _default_kind(source: ModelSource) -> str:
    path = source.file("config.json")
    if path is None:
        raise TremorError(f"{source.describe()}: not a Hugging Face model directory (no config.json)")
    try:
        architectures = json.loads(path.read_text(encoding="utf-8")).get("architectures") or []
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as exc:
        raise TremorError(f"{path}: invalid JSON ({exc})") from None
    return "decoder" if any(str(a).endswith("ForCausalLM") for a in architectures) else "splade"


def read_model_config(source: ModelSource) -> EncoderConfig:
    """The encoder settings of a model: its ``tremor_encoder.json``, or the default for its architecture."""
    path = source.file(MODEL_CONFIG_FILE)
    if path is None:
        return PRESETS[_default_kind(source)]()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TremorError(f"{path}: invalid JSON ({exc})") from None
    return parse_encoder_config(data, str(path))


def _open(source: ModelSource, config: EncoderConfig, runtime: Runtime,
          lazy_sides: Sequence[str] = ()) -> NeuralSparseEncoder:
    name, kwargs = source.folder(".")
    if source.local and not (Path(name) / "config.json").is_file() and any(s.needs_model for s in config.sides):
        raise TremorError(f"{name}: not a Hugging Face model directory (no config.json)")
    tokenizer = _load_tokenizer(name, kwargs, source.describe())
    model_folders = sorted({s.model for s in config.sides if s.needs_model})
    hf_configs = {folder: _load_hf_config(source, folder) for folder in model_folders}
    commit = next((getattr(c, "_commit_hash", None) for c in hf_configs.values()), None)
    if not source.local and source.revision is None and commit:
        source = replace(source, revision=commit)  # the index then refers to exactly these weights
    sizes = {folder: getattr(c, "vocab_size", None) or getattr(c.get_text_config(), "vocab_size", None)
             for folder, c in hf_configs.items()}
    if len(set(sizes.values())) > 1:
        raise VocabularyMismatchError(f"{source.describe()}: the sides' models have different vocabularies {sizes}")
    vocab_size = int(next(iter(sizes.values()))) if sizes else len(tokenizer)
    clamped = {}
    for side_name in SIDES:
        side = config.side(side_name)
        hf_config = hf_configs.get(side.model)
        clamped[side_name] = _clamp(side, _model_limit(tokenizer, hf_config))
    config = replace(config, query=clamped["query"], document=clamped["document"])
    table = None
    if config.needs_idf:
        idf_path = source.file(IDF_FILE)
        table = read_idf_json(idf_path if idf_path is not None else Path(name) / IDF_FILE, tokenizer, vocab_size,
                              config.idf_default)
    return NeuralSparseEncoder(source, config, runtime, tokenizer, vocab_size, table, lazy_sides)


def load_encoder(spec: str | Path, *, device: str = "auto", precision: str = "auto", batch_size: int = 32,
                 max_batch_tokens: int = 16384, revision: str | None = None, offline: bool | None = None,
                 query_max_length: int | None = None, document_max_length: int | None = None,
                 query_top_k: int | None = None, document_top_k: int | None = None) -> NeuralSparseEncoder:
    """A neural sparse encoder from a named offline model (``"splade-tiny"``, see ``tremor.models``), a tremor model
    directory or a Hugging Face hub name.

    Settings come from the model's ``tremor_encoder.json`` (a plain MLM directory loads as SPLADE) and, for a named
    model, its registry entry; the keyword arguments override lengths and pruning. ``device="auto"`` uses CUDA where
    present; ``offline`` (default: the HF_HUB_OFFLINE setting) forbids downloads.
    """
    from tremor.models import is_named_model, model_path, named_model

    named = None
    if is_named_model(spec):
        entry = named_model(str(spec))
        if entry.kind != "splade":
            raise TremorError(f"'{spec}' is a {entry.kind} model, not a sparse encoder; use it as the dense side "
                              f"(tremor index add-dense --model {spec})")
        named = entry.name
        query_max_length = query_max_length or entry.settings.get("query_max_length")
        document_max_length = document_max_length or entry.settings.get("document_max_length")
        spec = model_path(named)
    source = ModelSource.resolve(spec, revision, offline)
    if named is not None:
        source = replace(source, named=named)
    config = read_model_config(source)
    overrides = {("query", "max_length"): query_max_length, ("document", "max_length"): document_max_length,
                 ("query", "top_k"): query_top_k, ("document", "top_k"): document_top_k}
    for (side_name, key), value in overrides.items():
        if value is not None:
            side = SideConfig.from_dict({key: value}, config.side(side_name), f"load_encoder {side_name}_{key}")
            config = replace(config, **{side_name: side})
    from tremor.encoders.components import Runtime

    runtime = Runtime.resolve(device, precision, batch_size, max_batch_tokens)
    return _open(source, config, runtime)


def save_model_dir(directory: str | Path, config: EncoderConfig | str = "splade", model=None, tokenizer=None,
                   idf: np.ndarray | dict[str, float] | None = None,
                   mlp_heads: dict[str, torch.nn.Linear] | None = None, overwrite: bool = False) -> Path:
    """Write a tremor model directory (see the module docstring) atomically: the Hugging Face ``model`` and
    ``tokenizer``, ``tremor_encoder.json`` for ``config`` (an EncoderConfig or a kind's name for its defaults), the
    IDF table (array over token ids, or {token: weight}) for IDF sides, and the MLP heads by side name."""
    from safetensors.torch import save_file

    if isinstance(config, str):
        if config not in PRESETS:
            raise TremorError(f"unknown encoder kind '{config}' (presets: {', '.join(PRESETS)}; for 'unified' pass "
                              "an EncoderConfig)")
        config = PRESETS[config]()
    if tokenizer is None:
        raise TremorError("save_model_dir needs the tokenizer")
    sides = dict(zip(SIDES, config.sides, strict=True))
    if any(s.needs_model for s in sides.values()) and model is None:
        raise TremorError(f"the '{config.kind}' encoder runs a model; pass model=")
    if any(s.needs_model and s.model not in (".", "") for s in sides.values()):
        raise TremorError("save_model_dir writes one backbone at the directory's root; sides must use model='.'")
    mlp_heads = mlp_heads or {}
    for name, side in sides.items():
        if side.head == "mlp" and name not in mlp_heads:
            raise TremorError(f"the {name} side has an mlp head; pass mlp_heads={{'{name}': torch.nn.Linear(...)}}")
    if config.needs_idf and idf is None:
        raise TremorError(f"the '{config.kind}' encoder weights queries by IDF; pass idf= (see compute_idf)")
    vocab_size = int(model.config.vocab_size) if model is not None else len(tokenizer)
    _vocab_tokens(tokenizer, vocab_size, "save_model_dir")
    with atomic_directory(directory, overwrite=overwrite, replaceable=replaceable_if("config.json")) as tmp:
        if model is not None:
            with _quiet_transformers():
                model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / MODEL_CONFIG_FILE).write_text(json.dumps(model_config_dict(config), indent=2), encoding="utf-8")
        if config.needs_idf:
            table = idf_table(idf, tokenizer, vocab_size, config.idf_default, "idf") if isinstance(idf, dict) \
                else np.asarray(idf, dtype=np.float32)
            if table.shape != (vocab_size,):
                raise TremorError(f"idf has shape {table.shape}; expected ({vocab_size},), one weight per token id")
            write_idf_json(tmp / IDF_FILE, table, tokenizer)
        for name, head in mlp_heads.items():
            if name not in sides or sides[name].head != "mlp":
                raise TremorError(f"mlp_heads['{name}'] given, but that side's head is not 'mlp'")
            save_file({"weight": head.weight.detach().float().cpu().contiguous(),
                       "bias": head.bias.detach().float().cpu().contiguous()},
                      str(tmp / sides[name].mlp_head_file(name)))
    return Path(directory)
