"""Listwise document training against a fixed query table: with a fresh cache the loss is exactly the
whole-collection cross-entropy, hard negatives are the cached ranking's top unjudged documents, a few steps lower the
loss on the judged documents, and the saved model keeps the table and loads as an encoder."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from tiny_dense import CORPUS, tiny_bert

from tremor.encoders import get_encoder
from tremor.encoders.inference_free import IDF_FILE, compute_idf, read_idf_json
from tremor.encoders.training.listwise import ListwiseCollection, ListwiseConfig, ListwiseTrainer, query_matrix
from tremor.encoders.training.query_weights import query_token_ids
from tremor.encoders.training.student import SparseStudent
from tremor.encoders.training.trainer import TrainConfig
from tremor.errors import TremorError

IDS = list(CORPUS)
TEXTS = [CORPUS[d].full_text for d in IDS]
QUERIES = ["seismic waves in rock", "cats on a mat", "ducks in the pond", "earthquakes and faults"]
JUDGED = [{4: 1.0, 3: 1.0}, {0: 1.0}, {2: 2.0}, {3: 1.0}]


def make_student(tmp_path, kind: str = "inference_free") -> SparseStudent:
    backbone = tiny_bert(tmp_path / "backbone")
    torch.manual_seed(0)
    probe = SparseStudent.from_backbone(backbone, "splade")
    idf = compute_idf(TEXTS, probe.tokenizer, probe.model.config.vocab_size)
    student = SparseStudent.from_backbone(backbone, kind, idf if kind == "inference_free" else None,
                                          query_max_length=16, document_max_length=32)
    student.model.eval()  # no dropout: the cache and the live vectors must agree exactly
    return student


def make_collection(student: SparseStudent) -> ListwiseCollection:
    with torch.no_grad():
        cache = sp.csr_matrix(student.document_representations(TEXTS).numpy())
    return ListwiseCollection("tiny", TEXTS, cache, query_token_ids(student.tokenizer, QUERIES), JUDGED)


def config(**extra) -> TrainConfig:
    return TrainConfig(**{"steps": 4, "queries_per_batch": 2, "learning_rate": 5e-3, "lr_warmup_steps": 0,
                          "regularizer": "idf_flops", "doc_reg_weight": 1e-4, "reg_warmup_steps": 0,
                          "checkpoint_every": 10, "bf16": False, **extra})


def test_loss_with_a_fresh_cache_is_the_whole_collection_cross_entropy(tmp_path):
    student = make_student(tmp_path)
    trainer = ListwiseTrainer(student, [make_collection(student)], config(),
                              ListwiseConfig(positives=1, negatives=1, depth=2, scale=0.5), tmp_path / "run")
    batch = trainer._batch(0)
    collection, rows, live, _ = batch
    assert len(rows) == 2 and 0 < len(live) <= 5
    with torch.no_grad():
        loss = trainer._losses(batch, 0)["rank"]
        queries = query_matrix(student.query_idf, [collection.queries[r] for r in rows])
        scores = 0.5 * queries @ student.document_representations(TEXTS).T  # every document live
        target = torch.zeros_like(scores)
        for i, r in enumerate(rows):
            for doc, grade in JUDGED[r].items():
                target[i, doc] = grade
        expected = -(target / target.sum(1, keepdim=True) * torch.log_softmax(scores, 1)).sum(1).mean()
    assert float(loss) == pytest.approx(float(expected), rel=1e-4, abs=1e-5)


def full_collection_loss(student, collection, rows, scale):
    """The whole-collection cross-entropy with every document encoded live."""
    queries = query_matrix(student.query_idf, [collection.queries[r] for r in rows])
    scores = scale * queries @ student.document_representations(TEXTS).T
    target = torch.zeros_like(scores)
    for i, r in enumerate(rows):
        for doc, grade in JUDGED[r].items():
            target[i, doc] = grade
    return -(target / target.sum(1, keepdim=True) * torch.log_softmax(scores, 1)).sum(1).mean()


def test_sampled_gradient_is_the_whole_collection_gradient_when_every_stratum_is_drawn(tmp_path):
    """With all judged, hard and other documents drawn (every weight 1) the surrogate's gradient is exactly the
    whole-collection cross-entropy's; the "mixed" estimator's loss is that cross-entropy too."""
    student = make_student(tmp_path)
    collection = make_collection(student)
    params = [p for p in student.model.parameters() if p.requires_grad]
    grads = {}
    for estimator in ("sampled", "mixed"):
        trainer = ListwiseTrainer(student, [collection], config(queries_per_batch=3),
                                  ListwiseConfig(positives=5, negatives=5, depth=5, random=5, scale=0.7,
                                                 estimator=estimator), tmp_path / estimator)
        batch = trainer._batch(1)
        assert sorted(batch[2]) == list(range(5))
        assert all(weight == 1.0 for pool in batch[3] for _, weight in pool)
        parts = trainer._losses(batch, 1)
        loss = parts["surrogate"] if estimator == "sampled" else parts["rank"]
        grads[estimator] = torch.autograd.grad(loss, params, allow_unused=True)
    expected = torch.autograd.grad(full_collection_loss(student, collection, batch[1], 0.7), params,
                                   allow_unused=True)
    for estimator, got in grads.items():
        for g, e in zip(got, expected, strict=True):
            if e is None:
                assert g is None or torch.count_nonzero(g) == 0
            else:
                torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6, msg=estimator)


def test_importance_weights_are_stratum_sizes_over_samples(tmp_path):
    student = make_student(tmp_path)
    trainer = ListwiseTrainer(student, [make_collection(student)], config(queries_per_batch=1),
                              ListwiseConfig(positives=1, negatives=1, depth=2, random=1), tmp_path / "run")
    for step in range(5):
        collection, rows, live, pools = trainer._batch(step)
        judged = collection.judged[rows[0]]
        rest = 5 - len(judged) - len(collection.hard[rows[0]])
        weights = [w for _, w in pools[0]]
        assert weights == [float(len(judged)), 2.0, float(rest)][:len(weights)]
        assert live[pools[0][0][0]] in judged and live[pools[0][1][0]] in collection.hard[rows[0]]


def test_hard_negatives_are_the_top_unjudged_documents():
    table = np.zeros(8, np.float32)
    table[[1, 2]] = [1.0, 2.0]
    docs = sp.csr_matrix(np.array([[0, 1, 1, 0, 0, 0, 0, 0],     # score 3, judged
                                   [0, 0, 1, 0, 0, 0, 0, 0],     # 2
                                   [0, 1, 0, 0, 0, 0, 0, 0],     # 1
                                   [0, 0, 0, 1, 0, 0, 0, 0]],    # 0
                                  dtype=np.float32))
    collection = ListwiseCollection("c", ["a", "b", "c", "d"], docs, [np.array([1, 2]), np.array([3])],
                                    [{0: 1.0}, {}])
    assert len(collection.queries) == 1  # a query without judged documents is dropped
    collection.refresh(table, depth=2)
    assert collection.hard[0].tolist() == [1, 2]
    np.testing.assert_allclose(collection.cached_scores[0], [3, 2, 1, 0])


def test_training_lowers_the_loss_and_saves_the_table(tmp_path):
    student = make_student(tmp_path)
    table = student.query_idf.clone()
    collection = make_collection(student)
    student.model.train()
    trainer = ListwiseTrainer(student, [collection], config(steps=6, queries_per_batch=4, snapshot_every=6),
                              ListwiseConfig(positives=2, negatives=2, depth=3, scale=1.0), tmp_path / "run")
    fixed = trainer._batch(0)
    student.model.eval()
    with torch.no_grad():
        before = float(trainer._losses(fixed, 0)["rank"])
    student.model.train()
    state = trainer.train(progress=False)
    assert len(state.history) == 6 and all(np.isfinite(h["loss"]) for h in state.history)
    student.model.eval()
    with torch.no_grad():
        after = float(trainer._losses(fixed, 0)["rank"])
    assert after < before
    model_dir = tmp_path / "run" / "snapshots" / "step-6"
    saved = read_idf_json(model_dir / IDF_FILE, student.tokenizer, student.model.config.vocab_size)
    expected = table.masked_fill(student.special_tokens, 0.0).numpy()
    np.testing.assert_allclose(saved, expected, rtol=1e-6)
    encoder = get_encoder(str(model_dir), device="cpu")
    assert encoder.kind == "inference_free" and encoder.encode_documents(TEXTS).nnz > 0


def test_configuration_errors_are_clear(tmp_path):
    splade = make_student(tmp_path, "splade")
    collection = ListwiseCollection("tiny", TEXTS, sp.csr_matrix((5, splade.model.config.vocab_size)),
                                    query_token_ids(splade.tokenizer, QUERIES), JUDGED)
    with pytest.raises(TremorError, match="inference-free"):
        ListwiseTrainer(splade, [collection], config(), ListwiseConfig(), tmp_path / "run")
    student = make_student(tmp_path / "if")
    with pytest.raises(TremorError, match="estimator"):
        ListwiseTrainer(student, [make_collection(student)], config(), ListwiseConfig(estimator="exact"),
                        tmp_path / "run")
    with pytest.raises(TremorError, match="no training query"):
        ListwiseCollection("empty", TEXTS, sp.csr_matrix((5, 10)), [np.array([1])], [{}])
    with pytest.raises(TremorError, match="cached vectors"):
        ListwiseCollection("short", TEXTS[:2], sp.csr_matrix((5, 10)), [np.array([1])], [{0: 1.0}])
