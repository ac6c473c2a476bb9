"""Neural sparse encoders on tiny random models built here: SPLADE and inference-free against sentence-transformers'
SparseEncoder, the MLP head against a direct computation, echo pooling on a tiny Mistral, loading errors, and
encoders saved beside an index."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in these tests may reach the network

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    AutoModel,
    AutoTokenizer,
    BertConfig,
    BertForMaskedLM,
    BertTokenizerFast,
    MistralConfig,
    MistralForCausalLM,
    PreTrainedTokenizerFast,
)

from tremor.encoders import get_encoder, load_saved_encoder
from tremor.encoders.composition import EncoderConfig, SideConfig
from tremor.encoders.decoder import decoder_config
from tremor.encoders.inference_free import compute_idf, inference_free_config, read_idf_json
from tremor.encoders.neural import NeuralSparseEncoder, load_encoder, save_model_dir
from tremor.encoders.splade import splade_config
from tremor.errors import InputError, TremorError, VocabularyMismatchError
from tremor.index.builder import build_index
from tremor.search import Searcher

WORDS = ["the", "cat", "cats", "sat", "on", "mat", "mats", "dog", "dogs", "chase", "ball", "balls", "park", "quiet",
         "tree", "trees", "pond", "duck", "ducks", "earth", "quake", "earthquakes", "shake", "ground", "fault",
         "faults", "slip", "wave", "waves", "rock", "first", "arrive", "travel", "seismic", "like", "warm", "and",
         "in", "a", "with", "when", "from", "through", "home", "for"]
TEXTS = [
    "The cat sat on the mat. Cats like warm mats.",
    "Dogs chase cats and balls in the park.",
    "quiet",
    "Earthquakes shake the ground when faults slip; seismic waves travel through rock and arrive first, "
    "then more waves arrive from the fault, shaking the quiet park, the pond, the ducks and the trees.",
    "xyzzy plugh",
]
QUERIES = ["cat on a mat", "seismic waves waves", "ducks in a pond", "zz"]
DOC_LEN, QUERY_LEN = 24, 8


def write_wordpiece_vocab(path: Path) -> Path:
    letters = "abcdefghijklmnopqrstuvwxyz"
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *(f"##{c}" for c in letters), *WORDS,
              ".", ",", ";"]
    path.write_text("\n".join(dict.fromkeys(tokens)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bert_parts(tmp_path_factory):
    """A tiny random BERT MLM (hidden 32, 2 layers) and its WordPiece tokenizer."""
    tmp = tmp_path_factory.mktemp("bert")
    tokenizer = BertTokenizerFast(str(write_wordpiece_vocab(tmp / "vocab.txt")))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    model = BertForMaskedLM(config).eval()
    return model, tokenizer


def make_model_dir(path: Path, parts, config, **kwargs) -> Path:
    model, tokenizer = parts
    return save_model_dir(path, config, model=model, tokenizer=tokenizer, **kwargs)


def dense(vectors) -> np.ndarray:
    return vectors.to_dense()


def st_splade(model_dir: Path, max_length: int, pooling: str = "max", activation: str = "relu"):
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SpladePooling

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlm = MLMTransformer(str(model_dir), max_seq_length=max_length)
    return SparseEncoder(modules=[mlm, SpladePooling(pooling, activation_function=activation)], device="cpu")


def st_dense(embeddings) -> np.ndarray:
    return (embeddings.to_dense() if embeddings.is_sparse else embeddings).cpu().numpy()


# --------------------------------------------------------------------------------------- SPLADE = sentence-transformers
@pytest.mark.parametrize(("pooling", "activation", "st_activation"),
                         [("max", "log1p_relu", "relu"), ("sum", "log1p_relu", "relu"),
                          ("max", "log1p_log1p_relu", "log1p_relu")])
def test_splade_equals_sentence_transformers(tmp_path, bert_parts, pooling, activation, st_activation, monkeypatch):
    # the vocabulary head runs over chunks of 3 positions here, so running pools across chunks are exercised
    monkeypatch.setattr("tremor.encoders.components.CHUNK_ELEMENTS", 2 * 3 * len(bert_parts[1]))
    config = splade_config(document_max_length=DOC_LEN, query_max_length=QUERY_LEN, pooling=pooling,
                           activation=activation)
    model_dir = make_model_dir(tmp_path / "splade", bert_parts, config)
    # small batches and a small token budget: several length-sorted batches whose rows must come back in order
    encoder = load_encoder(model_dir, batch_size=2, max_batch_tokens=40)
    docs, queries = encoder.encode_documents(TEXTS), encoder.encode_queries(QUERIES)
    assert docs.vocab_id == queries.vocab_id == encoder.vocab_id and encoder.vocab_id.startswith("splade:")
    st_docs = st_splade(model_dir, DOC_LEN, pooling, st_activation).encode_document(TEXTS)
    st_queries = st_splade(model_dir, QUERY_LEN, pooling, st_activation).encode_query(QUERIES)
    np.testing.assert_allclose(dense(docs), st_dense(st_docs), rtol=0, atol=1e-5)
    np.testing.assert_allclose(dense(queries), st_dense(st_queries), rtol=0, atol=1e-5)
    assert docs.nnz > 0 and np.all(docs.row_nnz() > 0)
    # the long text is truncated to DOC_LEN tokens: appending words past the limit changes nothing
    assert encoder.encode_documents([TEXTS[3] + " dogs dogs"]) == docs[3].with_vocab_id(encoder.vocab_id)


def test_splade_top_k_equals_sentence_transformers_max_active_dims(tmp_path, bert_parts):
    config = splade_config(document_max_length=DOC_LEN, query_max_length=QUERY_LEN, document_top_k=7)
    encoder = load_encoder(make_model_dir(tmp_path / "splade", bert_parts, config))
    docs = encoder.encode_documents(TEXTS)
    assert np.all(docs.row_nnz() == 7)
    st_docs = st_splade(tmp_path / "splade", DOC_LEN).encode_document(TEXTS, max_active_dims=7)
    np.testing.assert_allclose(dense(docs), st_dense(st_docs), rtol=0, atol=1e-5)
    # pruning in load_encoder overrides the model's setting
    assert np.all(load_encoder(tmp_path / "splade", document_top_k=3).encode_documents(TEXTS).row_nnz() == 3)


def test_threshold_pruning_and_bf16_autocast(tmp_path, bert_parts):
    model_dir = make_model_dir(tmp_path / "splade", bert_parts, splade_config(document_max_length=DOC_LEN))
    full = load_encoder(model_dir).encode_documents(TEXTS)
    config = json.loads((model_dir / "tremor_encoder.json").read_text())
    config["document"]["threshold"] = 0.1
    (model_dir / "tremor_encoder.json").write_text(json.dumps(config))
    pruned = load_encoder(model_dir).encode_documents(TEXTS)
    expected = dense(full)
    expected[expected <= 0.1] = 0
    assert pruned.nnz < full.nnz and np.array_equal(dense(pruned), expected)
    # the autocast path (bf16 here on the CPU; bf16 or fp16 on CUDA by default) stays close to fp32
    half = load_encoder(model_dir, precision="bf16").encode_documents(TEXTS)
    assert half.vocab_id == pruned.vocab_id
    np.testing.assert_allclose(dense(half), expected, rtol=0, atol=0.05)


def test_binary_query_head(tmp_path, bert_parts):
    config = EncoderConfig("unified", query=SideConfig(head="binary", max_length=QUERY_LEN),
                           document=SideConfig(head="mlm", max_length=DOC_LEN))
    encoder = load_encoder(make_model_dir(tmp_path / "binary", bert_parts, config))
    vectors = encoder.encode_queries(["cat cat on [SEP] mat", ""])
    assert vectors.to_dicts(encoder.tokens(range(encoder.vocab_size))) == [{"cat": 1.0, "on": 1.0, "mat": 1.0}, {}]


# ------------------------------------------------------------------------------ inference-free = sentence-transformers
@pytest.fixture(scope="module")
def idf_weights(bert_parts):
    _, tokenizer = bert_parts
    rng = np.random.default_rng(1)
    return {token: round(float(rng.uniform(0.1, 5.0)), 4) for token in tokenizer.get_vocab()}


def test_inference_free_equals_sentence_transformers(tmp_path, bert_parts, idf_weights):
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Router
    from sentence_transformers.sparse_encoder.modules import MLMTransformer, SparseStaticEmbedding, SpladePooling

    config = inference_free_config(document_max_length=DOC_LEN, query_max_length=QUERY_LEN)
    model_dir = make_model_dir(tmp_path / "if", bert_parts, config, idf=idf_weights)
    encoder = load_encoder(model_dir)
    assert encoder.kind == "inference_free" and encoder.vocab_id.startswith("inference_free:")
    docs, queries = encoder.encode_documents(TEXTS), encoder.encode_queries(QUERIES)

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        router = Router.for_query_document(
            query_modules=[SparseStaticEmbedding.from_json(str(model_dir / "idf.json"), tokenizer=tokenizer,
                                                           frozen=True)],
            document_modules=[MLMTransformer(str(model_dir), max_seq_length=DOC_LEN), SpladePooling("max")])
    reference = SparseEncoder(modules=[router], device="cpu")
    np.testing.assert_allclose(dense(queries), st_dense(reference.encode_query(QUERIES)), rtol=0, atol=1e-5)
    # the query "cat on a mat" is exactly its distinct tokens weighted by idf.json
    assert queries[0].to_dicts(encoder.tokens(range(encoder.vocab_size)))[0] == pytest.approx(
        {t: idf_weights[t] for t in ("cat", "on", "a", "mat")}, abs=1e-6)
    # documents: SpladePooling keeps special tokens; tremor drops them by default (as OpenSearch's models do, and
    # queries never contain them); everything else is equal
    st_docs = st_dense(reference.encode_document(TEXTS))
    special = sorted(set(tokenizer.all_special_ids))
    assert np.all(dense(docs)[:, special] == 0)
    st_docs[:, special] = 0
    np.testing.assert_allclose(dense(docs), st_docs, rtol=0, atol=1e-5)


def test_compute_idf_and_idf_json_round_trip(tmp_path, bert_parts):
    _, tokenizer = bert_parts
    corpus = ["the cat sat", "the dog", "the cat and the dog", "quiet"]
    table = compute_idf(corpus, tokenizer)
    vocab = tokenizer.get_vocab()
    for token, df in (("the", 3), ("cat", 2), ("quiet", 1), ("pond", 0)):
        assert table[vocab[token]] == pytest.approx(np.log(1 + (4 - df + 0.5) / (df + 0.5)), rel=1e-6)
    assert table[vocab["[CLS]"]] == 0
    model_dir = make_model_dir(tmp_path / "if", bert_parts, inference_free_config(), idf=table)
    np.testing.assert_allclose(read_idf_json(model_dir / "idf.json", tokenizer, len(vocab)), table, rtol=1e-6)


# ------------------------------------------------------------------------------------------ MLP head = direct math
@pytest.mark.parametrize("pooling", ["max", "sum"])
def test_mlp_head_equals_direct_computation(tmp_path, bert_parts, pooling):
    _, tokenizer = bert_parts
    torch.manual_seed(3)
    head = torch.nn.Linear(32, 1)
    config = EncoderConfig("unified",
                           query=SideConfig(head="mlp", pooling=pooling, activation="relu", max_length=QUERY_LEN,
                                            drop_special_tokens=True),
                           document=SideConfig(head="mlm", max_length=DOC_LEN))
    model_dir = make_model_dir(tmp_path / "unified", bert_parts, config, mlp_heads={"query": head})
    encoder = load_encoder(model_dir)
    queries = encoder.encode_queries(QUERIES + TEXTS[:2])

    # direct: a plain BertModel from the same files, one text at a time, the head by hand, a dict per token
    body = AutoModel.from_pretrained(model_dir).eval()
    special = set(tokenizer.all_special_ids)
    for row, text in enumerate(QUERIES + TEXTS[:2]):
        ids = tokenizer(text, truncation=True, max_length=QUERY_LEN, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            hidden = body(input_ids=ids).last_hidden_state[0]
            scores = torch.relu(hidden @ head.weight[0] + head.bias[0]).numpy()
        expected: dict[int, float] = {}
        for token_id, score in zip(ids[0].tolist(), scores.tolist(), strict=True):
            if token_id in special:
                continue
            previous = expected.get(token_id, 0.0)
            expected[token_id] = max(previous, score) if pooling == "max" else previous + score
        expected = {t: w for t, w in expected.items() if w > 0}
        got = queries[row].to_dicts()[0]
        assert got.keys() == expected.keys()
        assert got == pytest.approx(expected, abs=1e-5)
    # no expansion: a query vector only holds its own tokens; documents still expand through the MLM head
    assert set(queries[0].indices) <= set(tokenizer("cat on a mat")["input_ids"])
    assert encoder.encode_documents(["cat"]).nnz > 10


# ----------------------------------------------------------------------------------------- decoder with echo pooling
@pytest.fixture(scope="module")
def mistral_dir(tmp_path_factory):
    """A tiny random Mistral (hidden 32, 2 layers) with a whitespace word-level tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    tmp = tmp_path_factory.mktemp("mistral")
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>")
    config = MistralConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                           tie_word_embeddings=False)
    torch.manual_seed(0)
    model = MistralForCausalLM(config).eval()
    return save_model_dir(tmp / "model", decoder_config(document_max_length=16, query_max_length=8),
                          model=model, tokenizer=tokenizer)


def without_echo(model_dir: Path, target: Path) -> Path:
    shutil.copytree(model_dir, target)
    config = json.loads((target / "tremor_encoder.json").read_text())
    config["query"]["echo"] = config["document"]["echo"] = False
    (target / "tremor_encoder.json").write_text(json.dumps(config))
    return target


def test_echo_lets_a_token_weight_depend_on_later_text(tmp_path, mistral_dir, monkeypatch):
    monkeypatch.setattr("tremor.encoders.components.CHUNK_ELEMENTS", 2 * 64)  # the LM head over 2-position chunks
    echo = load_encoder(mistral_dir)
    assert echo._side("document").backbone.head is echo._side("document").backbone.model.lm_head
    plain = load_encoder(without_echo(mistral_dir, tmp_path / "plain"))
    first, second = "cat sat on the mat", "cat sat on the pond"
    ids_a, echo_a = echo.position_weights(first)
    _, echo_b = echo.position_weights(second)
    _, plain_a = plain.position_weights(first)
    _, plain_b = plain.position_weights(second)
    assert ids_a.tolist() == echo.tokenizer(first, add_special_tokens=False)["input_ids"]  # the second copy only
    assert echo_a.shape == plain_a.shape == (5, echo.vocab_size)
    # without echo, 'cat' (position 0) has the same weights whatever follows; with echo it does not
    np.testing.assert_allclose(plain_a[:4], plain_b[:4], rtol=0, atol=1e-6)
    assert np.abs(echo_a[0] - echo_b[0]).max() > 1e-4
    # pooled vectors are max-pooled log1p(ReLU) of the positions' logits
    vectors = echo.encode_documents([first, second, ""])
    np.testing.assert_allclose(dense(vectors[:2]), [echo_a.max(axis=0), echo_b.max(axis=0)], rtol=0, atol=1e-6)
    assert vectors.vocab_id.startswith("decoder:") and vectors.row_nnz()[2] == 0
    # a plain causal-LM directory (no tremor_encoder.json) loads as a decoder encoder with echo
    bare = tmp_path / "bare"
    shutil.copytree(mistral_dir, bare)
    (bare / "tremor_encoder.json").unlink()
    loaded = load_encoder(bare, document_max_length=16)
    assert loaded.kind == "decoder" and loaded.encoder_config.document.echo
    np.testing.assert_allclose(dense(loaded.encode_documents([first])), dense(vectors[:1]), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------------------------------- loading errors
def test_plain_mlm_directory_loads_as_splade(tmp_path, bert_parts):
    model, tokenizer = bert_parts
    model.save_pretrained(tmp_path / "plain")
    tokenizer.save_pretrained(tmp_path / "plain")
    encoder = get_encoder(str(tmp_path / "plain"), document_max_length=DOC_LEN)
    assert isinstance(encoder, NeuralSparseEncoder) and encoder.kind == "splade"
    st_docs = st_splade(tmp_path / "plain", DOC_LEN).encode_document(TEXTS)
    np.testing.assert_allclose(dense(encoder.encode_documents(TEXTS)), st_dense(st_docs), rtol=0, atol=1e-5)


def test_loading_errors_are_clear(tmp_path, bert_parts, idf_weights):
    _, tokenizer = bert_parts
    good = make_model_dir(tmp_path / "good", bert_parts, "splade")

    no_weights = tmp_path / "no_weights"
    shutil.copytree(good, no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(TremorError, match="has no weights"):
        load_encoder(no_weights)

    with pytest.raises(TremorError, match="no such model directory"):
        load_encoder(tmp_path / "missing")

    # a hub name, offline: a clear error, no download attempt
    with pytest.raises(TremorError, match="downloads are off"):
        load_encoder("tremor-tests/no-such-model", offline=True)

    # a tokenizer from a bigger vocabulary than the model's
    small = BertForMaskedLM(BertConfig(vocab_size=40, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=64, max_position_embeddings=64))
    with pytest.raises(VocabularyMismatchError, match="does not belong to this model"):
        save_model_dir(tmp_path / "mismatch", "splade", model=small, tokenizer=tokenizer)
    small.save_pretrained(tmp_path / "mismatch")
    tokenizer.save_pretrained(tmp_path / "mismatch")
    with pytest.raises(VocabularyMismatchError, match="does not belong to this model"):
        load_encoder(tmp_path / "mismatch")

    # idf.json: a missing entry, an unknown token, no file at all
    partial = dict(idf_weights)
    del partial["cat"]
    with pytest.raises(InputError, match=r"no IDF weight for 1 vocabulary token.*'cat'.*idf_default"):
        make_model_dir(tmp_path / "partial", bert_parts, "inference_free", idf=partial)
    if_dir = make_model_dir(tmp_path / "if", bert_parts, "inference_free", idf=idf_weights)
    (if_dir / "idf.json").write_text(json.dumps({**idf_weights, "zebra": 1.0}))
    with pytest.raises(InputError, match=r"not in the model's tokenizer.*'zebra'"):
        load_encoder(if_dir)
    (if_dir / "idf.json").write_text(json.dumps(partial))
    config = json.loads((if_dir / "tremor_encoder.json").read_text())
    (if_dir / "tremor_encoder.json").write_text(json.dumps({**config, "idf_default": 0.5}))
    assert load_encoder(if_dir).encode_queries(["cat"]).values.tolist() == [0.5]
    (if_dir / "idf.json").unlink()
    with pytest.raises(TremorError, match=r"idf\.json: missing"):
        load_encoder(if_dir)

    # bad tremor_encoder.json settings
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    for body, message in (({"kind": "colbert"}, "unknown kind 'colbert'"),
                          ({"document": {"pooling": "mean"}}, "document: unknown pooling 'mean'"),
                          ({"query": {"echo": True}}, "echo applies to decoder backbones only"),
                          ({"query": {"top_k": 0}}, "top_k must be a positive integer"),
                          ({"query": {"maxlen": 3}}, "unknown setting.*maxlen")):
        (bad / "tremor_encoder.json").write_text(json.dumps(body))
        with pytest.raises(TremorError, match=message):
            load_encoder(bad)


# ------------------------------------------------------------------------------------------------ beside an index
def test_index_with_splade_encoder_end_to_end(tmp_path, bert_parts, tiny_corpus):
    model_dir = make_model_dir(tmp_path / "splade", bert_parts,
                               splade_config(document_max_length=DOC_LEN, query_max_length=QUERY_LEN))
    out = build_index(tiny_corpus, tmp_path / "idx", encoder=str(model_dir), progress=False)
    saved = json.loads((out / "encoder" / "encoder.json").read_text())
    assert saved["model"] == str(model_dir.resolve()) and saved["kind"] == "splade"
    assert not (out / "encoder" / "model.safetensors").exists()  # a reference, not a copy

    searcher = Searcher.load(out)
    encoder = load_encoder(model_dir)
    documents = [json.loads(line) for line in tiny_corpus.read_text().splitlines()]
    doc_vectors = encoder.encode_documents([f"{d['title']} {d['text']}" if d["title"] else d["text"]
                                            for d in documents])
    query = "cats on warm mats"
    expected = encoder.encode_queries([query]).dot(doc_vectors)[0]
    hits = searcher.search(query, k=3)
    assert [h.id for h in hits] == [documents[i]["_id"] for i in np.argsort(-expected, kind="stable")[:3]]
    assert [h.score for h in hits] == pytest.approx(np.sort(expected)[::-1][:3].tolist(), rel=1e-5)

    # the model changes after the build: a warning; a model of another vocabulary: refused
    (model_dir / "tremor_encoder.json").write_text((model_dir / "tremor_encoder.json").read_text() + " ")
    with pytest.warns(UserWarning, match="changed since this index was built"):
        Searcher.load(out)
    other = tmp_path / "other"
    small = BertForMaskedLM(BertConfig(vocab_size=len(bert_parts[1]) + 3, hidden_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=64, max_position_embeddings=64))
    shutil.rmtree(model_dir)
    save_model_dir(model_dir, "splade", model=small, tokenizer=bert_parts[1])
    with pytest.raises(VocabularyMismatchError, match="rebuild the index"):
        Searcher.load(out)
    shutil.rmtree(model_dir)
    with pytest.raises(TremorError, match="no longer exists"):
        Searcher.load(out)
    assert not other.exists()


def test_inference_free_index_searches_without_the_model(tmp_path, bert_parts, idf_weights, tiny_corpus):
    model_dir = make_model_dir(tmp_path / "if", bert_parts,
                               inference_free_config(document_max_length=DOC_LEN, query_max_length=QUERY_LEN),
                               idf=idf_weights)
    out = build_index(tiny_corpus, tmp_path / "idx", encoder=str(model_dir), progress=False)
    before = Searcher.load(out).search("cat on a mat", k=6)
    shutil.rmtree(model_dir)  # queries need only the tokenizer and idf.json saved beside the index
    after = Searcher.load(out).search("cat on a mat", k=6)
    assert [(h.id, h.score) for h in after] == [(h.id, h.score) for h in before] and before
    restored = load_saved_encoder(out / "encoder")
    assert restored.encode_queries(["cat on a mat"]).to_dicts(restored.tokens(range(restored.vocab_size)))[0] == \
        pytest.approx({t: idf_weights[t] for t in ("cat", "on", "a", "mat")}, abs=1e-6)
    with pytest.raises(TremorError, match="needed to encode documents and no longer exists"):
        restored.encode_documents(["cat"])


# ------------------------------------------------------------------------------------------------------ command line
def test_cli_index_build_search_and_encode(tmp_path, bert_parts, tiny_corpus):
    from click.testing import CliRunner

    from tremor.cli import cli
    from tremor.encoders.vector_files import read_vectors

    model_dir = make_model_dir(tmp_path / "splade", bert_parts,
                               splade_config(document_max_length=DOC_LEN, query_max_length=QUERY_LEN))
    runner = CliRunner()
    built = runner.invoke(cli, ["index", "build", "--corpus", str(tiny_corpus), "--out", str(tmp_path / "idx"),
                                "--encoder", str(model_dir), "--quiet"])
    assert built.exit_code == 0, built.output
    assert "built exact index of 6 documents" in built.output
    found = runner.invoke(cli, ["search", str(tmp_path / "idx"), "cats on warm mats", "-k", "2", "--json"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.output.splitlines()[0])["hits"]
    assert [h["id"] for h in hits] == [h.id for h in Searcher.load(tmp_path / "idx").search("cats on warm mats", k=2)]

    encoded = runner.invoke(cli, ["encode", "--encoder", str(model_dir), "--corpus", str(tiny_corpus), "--out",
                                  str(tmp_path / "vectors"), "--top-k", "5", "--quiet"])
    assert encoded.exit_code == 0, encoded.output
    ids, vectors, meta = read_vectors(tmp_path / "vectors")
    encoder = load_encoder(model_dir, document_top_k=5)
    documents = [json.loads(line) for line in tiny_corpus.read_text().splitlines()]
    assert ids == [d["_id"] for d in documents] and meta["side"] == "document"
    assert vectors == encoder.encode_documents([f"{d['title']} {d['text']}" if d["title"] else d["text"]
                                                for d in documents])
    assert vectors.vocab_id == encoder.vocab_id and np.all(vectors.row_nnz() == 5)

    queries_out = tmp_path / "queries.jsonl"
    encoded = runner.invoke(cli, ["encode", "--encoder", str(model_dir), "--queries",
                                  str(tiny_corpus.parent / "tiny_queries.tsv"), "--out", str(queries_out),
                                  "--format", "jsonl", "--quiet"])
    assert encoded.exit_code == 0, encoded.output
    assert "queries (" in encoded.output  # "encoded N queries (...)", not "querys"
    lines = [json.loads(line) for line in queries_out.read_text().splitlines()]
    assert lines[0]["id"] == "q1" and lines[0]["contents"] == "cat on a mat"
    expected = encoder.encode_queries(["cat on a mat"]).to_dicts(encoder.tokens(range(encoder.vocab_size)))[0]
    # the file was encoded in a padded batch, the reference alone: BLAS may sum in another order (float32 noise)
    assert lines[0]["vector"] == pytest.approx(expected, rel=1e-4, abs=1e-7)

    again = runner.invoke(cli, ["encode", "--encoder", str(model_dir), "--queries", str(queries_out.parent),
                                "--out", str(queries_out), "--format", "jsonl"])
    assert again.exit_code != 0 and "already exists" in again.output
    missing = runner.invoke(cli, ["encode", "--encoder", str(tmp_path / "nope"), "--corpus", str(tiny_corpus),
                                  "--out", str(tmp_path / "v2")])
    assert missing.exit_code != 0 and "no such model directory" in missing.output
    assert not (tmp_path / "v2").exists()
