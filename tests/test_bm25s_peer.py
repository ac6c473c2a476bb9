"""bm25s as a peer: configured as the same BM25 (Lucene variant, k1, b), so on text both analyzers read alike the
scores agree with tremor's; blank, unknown-word and over-deep queries are handled."""

import pytest

pytest.importorskip("bm25s")

from tremor.corpus import Document, Query
from tremor.encoders import BM25Encoder
from tremor.errors import TremorError
from tremor.eval.bm25s_peer import BM25SPeer
from tremor.index.exact import ExactIndex

# Words that both analyzers keep and stem alike: no stop words, no one-letter words, no punctuation inside words.
TEXTS = ["quick brown foxes jump over lazy dogs", "lazy dogs sleep all day long", "brown bears fish salmon rivers",
         "foxes hunt rabbits near rivers", "salmon swim upstream every autumn season", "quick rabbits escape foxes"]
QUERIES = ["quick foxes", "lazy dogs rivers", "salmon season", "brown rabbits escape"]


def test_scores_equal_tremor_bm25_on_text_both_analyzers_read_alike():
    documents = [Document(f"d{i}", text) for i, text in enumerate(TEXTS)]
    peer = BM25SPeer.build(documents, k1=0.9, b=0.4, stemmer="porter")
    run = peer.retrieve([Query(f"q{i}", text) for i, text in enumerate(QUERIES)], k=10)
    encoder = BM25Encoder(k1=0.9, b=0.4)
    index = ExactIndex.build(encoder.fit_encode(TEXTS))
    scores, numbers = index.search(encoder.encode_queries(QUERIES), k=10)
    for i in range(len(QUERIES)):
        expected = {f"d{n}": float(s) for s, n in zip(scores[i], numbers[i], strict=True) if n >= 0}
        assert run[f"q{i}"].keys() == expected.keys()
        assert run[f"q{i}"] == pytest.approx(expected, rel=1e-5)


def test_blank_unknown_and_deep_queries():
    peer = BM25SPeer.build([Document(f"d{i}", text) for i, text in enumerate(TEXTS)])
    run = peer.retrieve([Query("blank", "  "), Query("unknown", "zebra giraffe"), Query("deep", "rivers")], k=50)
    assert run["blank"] == {} and run["unknown"] == {}
    assert set(run["deep"]) == {"d2", "d3"}  # only matching documents, even when k exceeds the corpus
    one = peer.retrieve([Query("deep", "rivers")], k=1)
    assert len(one["deep"]) == 1


def test_empty_corpus_and_unknown_stemmer_are_refused():
    with pytest.raises(TremorError, match="no documents"):
        BM25SPeer.build([])
    with pytest.raises(TremorError, match="unknown stemmer"):
        BM25SPeer.build([Document("d", "text")], stemmer="klingon")
