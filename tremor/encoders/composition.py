"""What a neural sparse encoder is made of, as plain settings (no torch): per side a head, a backbone, a pooling, an
activation and a sparsifier, after "A Unified Framework for Learned Sparse Retrieval" (Nguyen, MacAvaney & Yates,
2023). ``tremor.encoders.components`` runs them; ``tremor_encoder.json`` spells them out (see ``neural``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from tremor.errors import TremorError

HEADS = ("mlm", "mlp", "binary", "idf")
BACKBONES = ("encoder", "decoder")
POOLINGS = ("max", "sum")
ACTIVATIONS = ("log1p_relu", "log1p_log1p_relu", "relu")
SIDES = ("query", "document")


# ----------------------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class SideConfig:
    """How one side (queries or documents) is encoded. ``model`` is the backbone's folder relative to the model
    directory ("." = the directory itself); ``head_file`` is the MLP head's safetensors file (tensors ``weight``
    (1, hidden) and ``bias`` (1,)), by default ``<side>_mlp_head.safetensors``."""

    head: str = "mlm"
    backbone: str = "encoder"
    pooling: str = "max"
    activation: str = "log1p_relu"
    max_length: int = 256
    echo: bool = False
    echo_separator: str = ""
    top_k: int | None = None
    threshold: float = 0.0
    drop_special_tokens: bool = False
    model: str = "."
    head_file: str | None = None

    @property
    def needs_model(self) -> bool:
        """Whether this side runs a transformer (MLM and MLP heads) or only a tokenizer (binary, IDF)."""
        return self.head in ("mlm", "mlp")

    def mlp_head_file(self, side: str) -> str:
        return self.head_file or f"{side}_mlp_head.safetensors"

    def validate(self, where: str) -> SideConfig:
        """Raise TremorError naming ``where`` for any impossible setting; return self."""
        def bad(message: str) -> TremorError:
            return TremorError(f"{where}: {message}")

        for name, value, allowed in (("head", self.head, HEADS), ("backbone", self.backbone, BACKBONES),
                                     ("pooling", self.pooling, POOLINGS),
                                     ("activation", self.activation, ACTIVATIONS)):
            if value not in allowed:
                raise bad(f"unknown {name} '{value}' (choose from {', '.join(allowed)})")
        if not isinstance(self.max_length, int) or self.max_length < 1:
            raise bad(f"max_length must be a positive integer (got {self.max_length!r})")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 1):
            raise bad(f"top_k must be a positive integer or null (got {self.top_k!r})")
        if not np.isfinite(self.threshold) or self.threshold < 0:
            raise bad(f"threshold must be a finite number >= 0 (got {self.threshold!r})")
        if self.echo and self.backbone != "decoder":
            raise bad("echo applies to decoder backbones only (an encoder already sees the whole text)")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: SideConfig | None = None, where: str = "side") -> SideConfig:
        """Settings from ``data`` over ``base`` (a kind's defaults); unknown keys are an error."""
        if not isinstance(data, dict):
            raise TremorError(f"{where}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise TremorError(f"{where}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        values = dict(data)
        if "threshold" in values:
            values["threshold"] = float(values["threshold"])
        return replace(base or cls(), **values).validate(where)


@dataclass(frozen=True)
class EncoderConfig:
    """A whole encoder: its kind (splade, inference_free, decoder or unified) and the two sides. ``idf_default``
    fills vocabulary tokens an ``idf.json`` does not list (None: a missing token is an error)."""

    kind: str
    query: SideConfig = field(default_factory=SideConfig)
    document: SideConfig = field(default_factory=SideConfig)
    idf_default: float | None = None

    def side(self, name: str) -> SideConfig:
        return self.query if name == "query" else self.document

    @property
    def sides(self) -> tuple[SideConfig, SideConfig]:
        return self.query, self.document

    @property
    def needs_idf(self) -> bool:
        return any(side.head == "idf" for side in self.sides)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "query": self.query.to_dict(), "document": self.document.to_dict(),
                "idf_default": self.idf_default}
