"""The learned query-term weight table of inference-free models: fitting moves only the training queries' tokens,
keeps weights >= 0, fixes a ranking the IDF table gets wrong, returns the best epoch by the dev callback, and the
table written as a model directory's idf.json is what the encoder loads and looks queries up in."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from tiny_dense import CORPUS, tiny_bert
from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

from tremor.encoders import load_encoder
from tremor.encoders.inference_free import IDF_FILE, compute_idf, read_idf_json
from tremor.encoders.training.query_weights import (
    QueryCollection,
    QueryTermWeights,
    QueryWeightConfig,
    fit_query_weights,
    query_token_ids,
    save_with_query_table,
)
from tremor.encoders.training.student import SparseStudent
from tremor.errors import TremorError


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return BertTokenizerFast.from_pretrained(str(tiny_bert(tmp_path_factory.mktemp("qw") / "words")))


def ranking_problem(tokenizer):
    """Two documents that each match one of the query's two terms: under the IDF table the wrong one (matching the
    rarer, higher-IDF term) wins; the judgements say the term with the lower IDF is the one that matters."""
    vocab = tokenizer.get_vocab()
    idf = np.ones(len(vocab), np.float32)
    idf[vocab["seismic"]], idf[vocab["waves"]] = 2.0, 1.0
    idf[sorted(tokenizer.all_special_ids)] = 0.0
    docs = sp.csr_matrix(np.stack([np.eye(len(vocab), dtype=np.float32)[vocab["seismic"]],
                                   np.eye(len(vocab), dtype=np.float32)[vocab["waves"]],
                                   np.eye(len(vocab), dtype=np.float32)[vocab["cat"]]]))
    queries = query_token_ids(tokenizer, ["seismic waves", "seismic waves", "waves"])
    return idf, QueryCollection(docs, queries, [{1: 1.0}, {1: 2.0}, {1: 1.0}])


def test_query_token_ids_are_distinct_and_drop_special_tokens(tokenizer):
    ids = query_token_ids(tokenizer, ["the cat [SEP] the cat"])[0]
    vocab = tokenizer.get_vocab()
    assert ids.tolist() == sorted([vocab["the"], vocab["cat"]])


def test_fit_moves_only_training_tokens_and_fixes_the_ranking(tokenizer):
    idf, data = ranking_problem(tokenizer)
    vocab = tokenizer.get_vocab()
    seismic, waves = vocab["seismic"], vocab["waves"]
    before = data.documents @ np.where(np.isin(np.arange(idf.size), data.queries[0]), idf, 0)
    assert before[0] > before[1]  # IDF ranks the unjudged document first

    def dev(table: np.ndarray) -> float:  # "dev": does the judged document win for "seismic waves"?
        return float(table[waves] > table[seismic])

    result = fit_query_weights(idf, [data], QueryWeightConfig(epochs=30, queries_per_batch=2, learning_rate=0.1,
                                                              l2=0.0), evaluate=dev)
    table = result.table
    assert table[waves] > table[seismic]
    assert np.all(table >= 0)
    moved = np.flatnonzero(table != idf)
    assert set(moved) <= {seismic, waves}
    assert table[vocab["cat"]] == idf[vocab["cat"]]
    assert result.history[0] == {"epoch": 0, "dev": 0.0}
    assert result.best_epoch == min(h["epoch"] for h in result.history if h["dev"] == 1.0)


def test_l2_pull_keeps_the_table_near_idf(tokenizer):
    idf, data = ranking_problem(tokenizer)
    free = fit_query_weights(idf, [data], QueryWeightConfig(epochs=20, learning_rate=0.1, l2=0.0)).table
    pulled = fit_query_weights(idf, [data], QueryWeightConfig(epochs=20, learning_rate=0.1, l2=10.0)).table
    distance = lambda t: float(np.abs(np.log(t[idf > 0] / idf[idf > 0])).sum())  # noqa: E731
    assert distance(pulled) < distance(free)


def test_weights_are_positive_and_start_at_idf():
    idf = np.array([0.0, 1.5, 3.0], np.float32)
    module = QueryTermWeights(idf, np.array([1, 2]))
    assert np.array_equal(module.table(), idf)
    with torch.no_grad():
        module.log_ratio.fill_(-50.0)
    assert np.all(module.table() >= 0)
    with pytest.raises(TremorError):
        QueryTermWeights(np.array([1.0, -1.0], np.float32), np.array([0]))


def test_no_training_tokens_is_an_error(tokenizer):
    idf, data = ranking_problem(tokenizer)
    empty = QueryCollection(data.documents, [np.zeros(0, np.int64)], [{0: 1.0}])
    with pytest.raises(TremorError, match="no training query"):
        fit_query_weights(idf, [empty])


def test_learned_table_is_written_to_idf_json_and_loaded_by_the_encoder(tmp_path, tokenizer):
    """A tiny inference-free model directory, its table replaced by a fitted one: idf.json round-trips exactly and
    the loaded encoder weights a query's tokens with the learned weights."""
    words = tmp_path / "words"
    tokenizer.save_pretrained(words)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=64)
    torch.manual_seed(0)
    model = BertForMaskedLM(config).eval()
    idf = compute_idf([d.full_text for d in CORPUS.values()], tokenizer, config.vocab_size)
    base = tmp_path / "base"
    SparseStudent(model, tokenizer, "inference_free", idf, query_max_length=16,
                  document_max_length=32).save_model(base)

    documents = load_encoder(str(base), device="cpu").encode_documents([d.full_text for d in CORPUS.values()])
    queries = query_token_ids(tokenizer, ["seismic waves", "cat on the mat", "ducks in a pond"])
    data = QueryCollection(documents.to_scipy(), queries, [{4: 1.0}, {0: 1.0}, {2: 1.0}])
    table = fit_query_weights(read_idf_json(base / IDF_FILE, tokenizer, config.vocab_size), [data],
                              QueryWeightConfig(epochs=5, learning_rate=0.2, l2=0.0)).table
    assert not np.allclose(table, read_idf_json(base / IDF_FILE, tokenizer, config.vocab_size))

    out = save_with_query_table(base, table, tmp_path / "learned")
    assert save_with_query_table(base, table, out) == out  # a rerun replaces its own output
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not a model")
    with pytest.raises(TremorError, match=r"has no idf\.json"):  # never a directory it did not write
        save_with_query_table(base, table, other)
    assert (other / "notes.txt").read_text() == "not a model"
    assert np.array_equal(read_idf_json(out / IDF_FILE, tokenizer, config.vocab_size), table)
    assert json.loads((out / "tremor_encoder.json").read_text())["kind"] == "inference_free"
    assert (base / IDF_FILE).read_text() != (out / IDF_FILE).read_text()  # the base directory is left alone

    encoder = load_encoder(str(out), device="cpu")
    vectors = encoder.encode_queries(["seismic waves"])
    ids, weights = vectors.row(0)
    vocab = tokenizer.get_vocab()
    assert sorted(ids.tolist()) == sorted([vocab["seismic"], vocab["waves"]])
    assert np.array_equal(weights, table[ids])
    # the documents are unchanged: same model weights
    again = encoder.encode_documents([d.full_text for d in CORPUS.values()])
    assert again == documents


def test_save_rejects_negative_weights_and_non_inference_free_dirs(tmp_path):
    with pytest.raises(TremorError, match="not an inference-free model"):
        save_with_query_table(tmp_path, np.ones(3, np.float32), tmp_path / "out")


def test_clean_positives_keeps_what_the_teacher_ranks_first():
    from tremor.encoders.training.data import Example, clean_positives

    data = [Example("a", "d1", ["d2", "d3"], source="nfcorpus/train", teachers={"dense": [0.9, 0.2, 0.5]}),
            Example("b", "d1", ["d2", "d3"], source="nfcorpus/train", teachers={"dense": [0.4, 0.2, 0.5]}),
            Example("c", "d1", ["d2", "d3"], source="scifact/train", teachers={"dense": [0.1, 0.2, 0.5]})]
    assert [e.query for e in clean_positives(data, ["nfcorpus"])] == ["a", "c"]
    with pytest.raises(TremorError, match="no 'bm25' teacher"):
        clean_positives(data, ["nfcorpus"], "bm25")
