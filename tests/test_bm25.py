import math
from collections import Counter

import numpy as np
import pytest

from tremor.encoders.analyzer import EnglishAnalyzer
from tremor.encoders.bm25 import BM25Encoder, lucene_quantized_length
from tremor.errors import TremorError

CORPUS = [
    "The cat sat on the mat. Cats like warm mats.",
    "Dogs chase cats and balls in the park, running and running.",
    "A quiet park with trees, a pond and ducks.",
    "Earthquakes shake the ground when faults slip.",
    "Seismic waves from earthquakes travel through rock; P waves arrive first.",
    "",
]
QUERIES = ["cat on a mat", "earthquake waves", "running dogs in parks", "unknownword"]


def bm25_by_formula(query: str, doc_index: int, k1: float, b: float) -> float:
    """BM25 straight from the definition, independent of the encoder's arrays."""
    analyze = EnglishAnalyzer()
    docs = [Counter(analyze(text)) for text in CORPUS]
    lengths = [sum(c.values()) for c in docs]
    n = sum(1 for length in lengths if length > 0)
    avgdl = sum(lengths) / n
    score = 0.0
    for term, count in Counter(analyze(query)).items():
        df = sum(1 for d in docs if term in d)
        tf = docs[doc_index].get(term, 0)
        if df == 0 or tf == 0:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        score += count * idf * tf / (tf + k1 * (1 - b + b * lengths[doc_index] / avgdl))
    return score


@pytest.mark.parametrize(("k1", "b"), [(0.9, 0.4), (1.2, 0.75), (0.0, 0.0)])
def test_dot_product_equals_bm25_formula(k1, b):
    encoder = BM25Encoder(k1=k1, b=b, lucene_lengths=False)
    docs = encoder.fit_encode(CORPUS)
    queries = encoder.encode_queries(QUERIES)
    scores = queries.dot(docs)
    for qi, query in enumerate(QUERIES):
        for di in range(len(CORPUS)):
            assert scores[qi, di] == pytest.approx(bm25_by_formula(query, di, k1, b), rel=1e-5, abs=1e-6)
    assert np.all(scores[3] == 0)  # a query of unknown words matches nothing


def test_analyzer_matches_lucene_english_chain():
    analyze = EnglishAnalyzer()
    assert analyze("The Dog's toys are running, and it was RUNNING!") == ["dog", "toi", "run", "run"]
    assert analyze("U.S.A. e.g. 3.5 1,000 covid-19 don't") == ["u.s.a", "e.g", "3.5", "1,000", "covid", "19", "don't"]


def test_lucene_length_quantization():
    lengths = np.arange(0, 5000)
    quantized = lucene_quantized_length(lengths)
    assert np.array_equal(quantized[:24], lengths[:24])
    assert quantized[100] == 96  # SmallFloat.intToByte4 / byte4ToInt
    assert np.all(quantized <= lengths) and np.all(np.diff(quantized) >= 0)


def test_new_documents_use_fitted_statistics_and_query_counts():
    encoder = BM25Encoder()
    corpus_vectors = encoder.fit_encode(CORPUS)
    again = encoder.encode_documents(CORPUS)
    assert np.allclose(again.to_dense(), corpus_vectors.to_dense())
    counts = encoder.encode_queries(["wave wave waves rock"]).to_dicts(encoder.terms)[0]
    assert counts == {"wave": 3.0, "rock": 1.0}
    assert corpus_vectors.vocab_id == encoder.vocab_id


def test_unfitted_and_bad_parameters():
    with pytest.raises(TremorError, match="not fitted"):
        BM25Encoder().encode_queries(["x"])
    with pytest.raises(TremorError, match="k1"):
        BM25Encoder(k1=-1)
    with pytest.raises(TremorError, match="no indexable terms"):
        BM25Encoder().fit_encode(["the a of", ""])


def test_one_query_path_equals_the_batch_path():
    encoder = BM25Encoder()
    encoder.fit_encode(CORPUS)
    queries = [*QUERIES, "waves waves and the waves of earthquakes", "the and of", "Cats' mats, CATS!"]
    batch = encoder.encode_queries(queries)
    for i, text in enumerate(queries):
        one = encoder.encode_queries([text])
        assert one == batch[i] and one.vocab_id == batch.vocab_id
        assert one.indices.dtype == np.int32 and one.values.dtype == np.float32 and one.indptr.dtype == np.int64
