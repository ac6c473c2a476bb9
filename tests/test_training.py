"""Training end to end on a tiny random backbone: the loss goes down, checkpoints resume, and the saved model
directory loads as an encoder that indexes and searches."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from tiny_dense import CORPUS, tiny_bert

from tremor.encoders import get_encoder
from tremor.encoders.inference_free import compute_idf
from tremor.encoders.training.data import Example
from tremor.encoders.training.student import SparseStudent
from tremor.encoders.training.trainer import TrainConfig, Trainer
from tremor.errors import TremorError
from tremor.index.builder import build_index
from tremor.search import Searcher

EXAMPLES = [
    Example("cat on a mat", "d1", ["d2", "d3"], teacher_scores=[3.0, 0.0, 0.5]),
    Example("seismic waves", "d5", ["d4", "d1"], teacher_scores=[3.0, 1.0, 0.0]),
    Example("ducks in a pond", "d3", ["d2", "d5"], teacher_scores=[3.0, 0.5, 0.0]),
]


def student(tmp_path, kind: str) -> SparseStudent:
    backbone = tiny_bert(tmp_path / "backbone")
    torch.manual_seed(0)
    probe = SparseStudent.from_backbone(backbone, "splade")
    idf = compute_idf([d.full_text for d in CORPUS.values()], probe.tokenizer, probe.model.config.vocab_size)
    return SparseStudent.from_backbone(backbone, kind, idf if kind == "inference_free" else None,
                                       query_max_length=16, document_max_length=32)


@pytest.mark.parametrize(("kind", "regularizer"), [("inference_free", "idf_flops"), ("splade", "flops")])
def test_three_steps_lower_the_loss_and_save_a_loadable_model(tmp_path, kind, regularizer):
    model = student(tmp_path, kind)
    config = TrainConfig(steps=3, queries_per_batch=len(EXAMPLES), learning_rate=5e-3, lr_warmup_steps=0,
                         regularizer=regularizer, doc_reg_weight=1e-4, reg_warmup_steps=0, checkpoint_every=10,
                         bf16=False)
    trainer = Trainer(model, EXAMPLES, CORPUS, config, tmp_path / "run")
    # learning rate decays to zero at the last step, so compare the first two steps' losses on the same batch
    state = trainer.train(progress=False)
    assert len(state.history) == 3 and all(np.isfinite(h["loss"]) for h in state.history)
    assert state.history[1]["rank"] < state.history[0]["rank"]
    model_dir = trainer.save_model()
    encoder = get_encoder(str(model_dir), device="cpu")
    assert encoder.kind == kind
    docs = encoder.encode_documents([d.full_text for d in CORPUS.values()])
    assert len(docs) == 5 and docs.nnz > 0
    index = build_index(list(CORPUS.values()), tmp_path / "index", encoder=encoder, progress=False)
    hits = Searcher.load(index).search("seismic waves", k=5)
    assert hits and {h.id for h in hits} <= set(CORPUS)


def test_checkpoint_resume_continues_where_it_stopped(tmp_path):
    config = TrainConfig(steps=2, queries_per_batch=2, learning_rate=1e-3, lr_warmup_steps=0,
                         regularizer="idf_flops", checkpoint_every=1, bf16=False)
    first = Trainer(student(tmp_path, "inference_free"), EXAMPLES, CORPUS, config, tmp_path / "run")
    first.train(progress=False)
    assert (tmp_path / "run" / "checkpoint" / "state.pt").is_file()
    longer = TrainConfig(**{**config.__dict__, "steps": 3})
    resumed = Trainer(student(tmp_path / "again", "inference_free"), EXAMPLES, CORPUS, longer, tmp_path / "run")
    assert resumed.load_checkpoint() and resumed.state.step == 2
    for name, tensor in resumed.model.state_dict().items():
        assert torch.equal(tensor, first.model.state_dict()[name]), name
    state = resumed.train(progress=False)
    assert [h["step"] for h in state.history] == [1, 2, 3]


def test_contrastive_term_added_to_distillation(tmp_path):
    """kl + contrastive_weight·CE: both terms are logged, the CE term is the weighted cross-entropy of the judged
    positive, and with teacher scores that rank a negative first the combined loss still raises the positive."""
    examples = [Example(e.query, e.positive, e.negatives, teacher_scores=list(reversed(e.teacher_scores)),
                        source="toy/train") for e in EXAMPLES]  # teachers that prefer the last negative
    config = TrainConfig(steps=4, queries_per_batch=len(examples), learning_rate=5e-3, lr_warmup_steps=0,
                         contrastive_weight=3.0, doc_reg_weight=0.0, query_reg_weight=0.0, checkpoint_every=10,
                         bf16=False)
    trainer = Trainer(student(tmp_path, "splade"), examples, CORPUS, config, tmp_path / "run")
    batch = trainer._batch(0)
    parts = trainer._losses(batch, 0)
    assert set(parts) >= {"rank", "contrastive"}
    plain = Trainer(trainer.model, examples, CORPUS, TrainConfig(**{**config.__dict__, "contrastive_weight": 0.0}),
                    tmp_path / "plain")
    assert "contrastive" not in plain._losses(batch, 0)
    only = Trainer(trainer.model, examples, CORPUS,
                   TrainConfig(**{**config.__dict__, "contrastive_sources": ("scifact",)}), tmp_path / "only")
    assert only._losses(batch, 0)["contrastive"].item() == 0.0  # no example of that source in the batch
    state = trainer.train(progress=False)
    assert all(np.isfinite(h["contrastive"]) for h in state.history)
    assert state.history[1]["contrastive"] < state.history[0]["contrastive"]


def test_configuration_errors_are_clear(tmp_path):
    splade = student(tmp_path, "splade")
    with pytest.raises(TremorError, match="already the ranking loss"):
        Trainer(splade, EXAMPLES, CORPUS, TrainConfig(loss="contrastive", contrastive_weight=1.0), tmp_path / "run")
    with pytest.raises(TremorError, match="inference-free"):
        Trainer(splade, EXAMPLES, CORPUS, TrainConfig(regularizer="idf_flops"), tmp_path / "run")
    with pytest.raises(TremorError, match="teacher scores"):
        Trainer(splade, [Example("q", "d1", ["d2"])], CORPUS, TrainConfig(loss="kl"), tmp_path / "run")
    with pytest.raises(TremorError, match="IDF table"):
        SparseStudent(splade.model, splade.tokenizer, "inference_free")


def test_sparse_gradient_pooling_equals_dense_computation(tmp_path):
    """The training-time expansion (active logits recomputed with gradient) has the dense computation's values and
    gradients."""
    from tremor.encoders.components import pool_expansion
    from tremor.encoders.training.student import init_fresh_head

    model = student(tmp_path, "splade")
    texts = [d.full_text for d in CORPUS.values()]
    init_fresh_head(model.model, model.tokenizer, texts, target_nnz=10, max_length=32)
    model.train()
    model.model.config.hidden_dropout_prob = 0.0
    for module in model.model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    weights = torch.rand(len(texts), model.model.config.vocab_size)
    sparse = model.document_representations(texts)
    (sparse * weights).sum().backward()
    sparse_grads = {n: p.grad.clone() for n, p in model.model.named_parameters() if p.grad is not None}
    model.model.zero_grad()
    batch = model.tokenizer(texts, truncation=True, max_length=32, padding=True, return_tensors="pt")
    dense = pool_expansion(model.model(**batch).logits, batch["attention_mask"].bool(), "max", "log1p_relu")
    (dense * weights).sum().backward()
    assert 0 < (sparse > 0).sum(1).float().mean() < 40  # the calibrated head starts sparse
    assert torch.allclose(sparse, dense, atol=1e-5)
    for name, param in model.model.named_parameters():
        if param.grad is not None:
            assert torch.allclose(sparse_grads[name], param.grad, atol=1e-5), name
