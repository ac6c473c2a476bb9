"""Training from an already trained SPLADE backbone (the splade-tiny path), on a tiny BertForMaskedLM built here: the
MLM head is kept as is, a step trains, checkpoints resume, the saved directory loads with ``load_encoder``, and a
sparse teacher (the backbone itself, as a tremor encoder) enters the weighted ensemble target."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from tiny_dense import CORPUS, tiny_bert
from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

from tremor.encoders import load_encoder
from tremor.encoders.inference_free import compute_idf
from tremor.encoders.training.data import Example
from tremor.encoders.training.student import SparseStudent, bert_head, load_mlm_backbone
from tremor.encoders.training.teachers import (
    parse_weights,
    set_targets,
    sparse_teacher,
    teacher_agreement,
    weighted_target,
)
from tremor.encoders.training.trainer import TrainConfig, Trainer
from tremor.errors import TremorError


def examples() -> list[Example]:
    return [Example("cat on a mat", "d1", ["d2", "d3"],
                    teachers={"dense": [0.9, 0.1, 0.2], "bm25": [5.0, 0.0, 1.0]}),
            Example("seismic waves", "d5", ["d4", "d1"],
                    teachers={"dense": [0.8, 0.6, 0.0], "bm25": [7.0, 2.0, 0.0]}),
            Example("ducks in a pond", "d3", ["d2", "d5"],
                    teachers={"dense": [0.7, 0.2, 0.1], "bm25": [4.0, 1.0, 0.0]})]


def sparse_backbone(directory) -> str:
    """A splade-tiny-shaped stand-in: a BertForMaskedLM saved with its MLM head (2 layers), as the named model's
    package folder holds it (a plain transformers directory, no tremor_encoder.json)."""
    words = tiny_bert(directory / "words")
    tokenizer = BertTokenizerFast.from_pretrained(str(words))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=64)
    torch.manual_seed(0)
    model = BertForMaskedLM(config).eval()
    with torch.no_grad():  # a head whose logits are positive for some terms, as a trained SPLADE head's are
        model.cls.predictions.decoder.bias.fill_(0.5)
    out = directory / "backbone"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> str:
    return sparse_backbone(tmp_path_factory.mktemp("splade_backbone"))


def student(path: str, kind: str) -> SparseStudent:
    model, tokenizer, fresh = load_mlm_backbone(path)
    assert not fresh  # the trained head is loaded, not re-initialized
    idf = compute_idf([d.full_text for d in CORPUS.values()], tokenizer, model.config.vocab_size)
    return SparseStudent(model, tokenizer, kind, idf if kind == "inference_free" else None,
                         query_max_length=16, document_max_length=32)


def test_backbone_head_is_kept(backbone):
    model, _, fresh = load_mlm_backbone(backbone)
    saved = BertForMaskedLM.from_pretrained(backbone)
    assert not fresh
    assert torch.equal(bert_head(model)[1].bias, saved.cls.predictions.decoder.bias)
    assert torch.equal(bert_head(model)[0].dense.weight, saved.cls.predictions.transform.dense.weight)


def test_sparse_teacher_enters_the_ensemble(backbone):
    data = examples()
    encoder = load_encoder(backbone, device="cpu", document_max_length=32)
    sparse_teacher(data, encoder, CORPUS)
    for example in data:
        assert set(example.teachers) == {"dense", "bm25", "splade"}
        query = encoder.encode_queries([example.query])
        docs = encoder.encode_documents([CORPUS[d].full_text for d in example.candidates])
        assert np.allclose(example.teachers["splade"], query.dot(docs)[0], atol=1e-5)
    # precomputed document vectors (a whole-corpus `tremor encode` output) give the same scores
    ids = sorted(CORPUS)
    again = examples()
    sparse_teacher(again, encoder, CORPUS, encoder.encode_documents([CORPUS[d].full_text for d in ids]),
                   {d: i for i, d in enumerate(ids)})
    for a, b in zip(data, again, strict=True):
        assert np.allclose(a.teachers["splade"], b.teachers["splade"], atol=1e-5)

    # the target is Σ_k w_k · minmax(teacher_k) / Σ_k w_k, times the scale: the sparse teacher moves it
    example = data[1]
    two = weighted_target(example, {"dense": 1, "bm25": 1}, scale=1.0)
    three = weighted_target(example, {"dense": 1, "bm25": 1, "splade": 1}, scale=1.0)
    only_sparse = weighted_target(example, {"splade": 1}, scale=1.0)
    splade = np.array(example.teachers["splade"])
    span = splade.max() - splade.min()
    expected = (splade - splade.min()) / span if span > 1e-6 else np.zeros(3)
    assert np.allclose(only_sparse, expected, atol=1e-6)
    assert np.allclose(three, (2 * np.array(two) + expected) / 3, atol=1e-6)
    set_targets(data, parse_weights("dense=1,bm25=1,splade=1"), scale=30.0)
    assert np.allclose(data[1].teacher_scores, 30 * np.array(three), atol=1e-4)
    assert 0.0 <= teacher_agreement(data, "splade") <= 1.0 and teacher_agreement(data, "bm25") == 1.0


def test_teacher_weight_errors():
    with pytest.raises(TremorError, match="name=number"):
        parse_weights("dense=x")
    with pytest.raises(TremorError, match="positive weight"):
        parse_weights("dense=0")
    with pytest.raises(TremorError, match="teacher"):
        weighted_target(examples()[0], {"splade": 1.0}, scale=1.0)
    assert parse_weights("dense=1, bm25") == {"dense": 1.0, "bm25": 1.0}


@pytest.mark.parametrize(("kind", "regularizer"), [("inference_free", "idf_flops"), ("splade", "flops")])
def test_train_checkpoint_resume_and_load(tmp_path, backbone, kind, regularizer):
    data = examples()
    sparse_teacher(data, load_encoder(backbone, device="cpu", document_max_length=32), CORPUS)
    set_targets(data, {"dense": 1.0, "bm25": 1.0, "splade": 1.0}, scale=10.0)
    config = TrainConfig(steps=2, queries_per_batch=2, learning_rate=1e-3, lr_warmup_steps=0, in_batch_weight=0.1,
                         regularizer=regularizer, doc_reg_weight=1e-3, reg_warmup_steps=0, checkpoint_every=1,
                         bf16=False)
    first = Trainer(student(backbone, kind), data, CORPUS, config, tmp_path / "run")
    state = first.train(progress=False)
    assert [h["step"] for h in state.history] == [1, 2] and all(np.isfinite(h["loss"]) for h in state.history)
    before = load_mlm_backbone(backbone)[0].state_dict()
    assert any(not torch.equal(t, before[n]) for n, t in first.model.model.state_dict().items())  # it learned

    longer = TrainConfig(**{**config.__dict__, "steps": 3})
    resumed = Trainer(student(backbone, kind), data, CORPUS, longer, tmp_path / "run")
    assert resumed.load_checkpoint() and resumed.state.step == 2
    for name, tensor in resumed.model.state_dict().items():
        assert torch.equal(tensor, first.model.state_dict()[name]), name
    state = resumed.train(progress=False)
    assert [h["step"] for h in state.history] == [1, 2, 3]

    model_dir = resumed.save_model()
    encoder = load_encoder(str(model_dir), device="cpu")
    assert encoder.kind == kind
    docs = encoder.encode_documents([d.full_text for d in CORPUS.values()])
    with torch.no_grad():
        resumed.model.eval()
        trained = resumed.model.document_representations([d.full_text for d in CORPUS.values()])
    assert np.allclose(docs.to_dense(), trained.numpy(), atol=1e-4)  # the directory is the trained model
    queries = encoder.encode_queries(["seismic waves"])
    assert queries.nnz > 0
    if kind == "inference_free":  # queries are the IDF table's weights of the query's tokens
        idf = resumed.model.query_idf.numpy()
        indices, values = queries.row(0)
        assert np.allclose(values, idf[indices], atol=1e-5)
