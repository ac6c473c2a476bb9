"""BM25 as a sparse encoder: documents become BM25 term impacts, queries become term counts, so that the inner
product of a query vector and a document vector is exactly the document's BM25 score (Robertson & Zaragoza, in the
form Lucene 8+ uses: idf · tf / (tf + k1·(1 − b + b·dl/avgdl)), idf = ln(1 + (N − df + 0.5)/(df + 0.5))).

The same index machinery then serves lexical and learned vectors. Text is analyzed with ``EnglishAnalyzer`` (a word
analyzer with Porter stemming, as Anserini does) rather than a WordPiece vocabulary, because BM25 over stemmed words is
the baseline everyone compares against; the vocabulary is the set of index terms of the fitted corpus.

Live mode (``live=True``, what a live index that grows by ``IndexWriter.add`` uses): the idf moves to the query side
(documents hold only the saturated term frequency ``tf / (tf + k1·(1 − b + b·dl/avgdl))``, queries hold ``count ·
idf``), the vocabulary grows as documents arrive (new terms get the next ids; ``vocab_size`` is a capacity, a power of
two of at least 65,536, so that segments written before and after share one layout), and the collection statistics
(document frequencies, document count, total length) follow every document added and deleted. A query then sees the
idf of exactly the live documents, as after a full build; only avgdl is the one current when a document arrived.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from tremor.encoders.analyzer import EnglishAnalyzer
from tremor.encoders.base import register_encoder, require_texts, vocab_hash, write_encoder_config
from tremor.errors import IndexFormatError, TremorError
from tremor.sparse import SparseVectors


def _lucene_int4_to_long(i: int) -> int:
    bits = i & 0x07
    shift = (i >> 3) - 1
    return bits if shift == -1 else (bits | 0x08) << shift


def _lucene_long_to_int4(i: int) -> int:
    num_bits = i.bit_length()
    if num_bits < 4:
        return i
    shift = num_bits - 4
    return ((i >> shift) & 0x07) | ((shift + 1) << 3)


_NUM_FREE_VALUES = 255 - _lucene_long_to_int4(2**31 - 1)
LIVE_MIN_CAPACITY = 2**16  # vocabulary capacity of a live encoder: ids fit uint16 until it doubles


def lucene_quantized_length(length: np.ndarray) -> np.ndarray:
    """Document lengths as Lucene stores them in norms (SmallFloat.intToByte4 then byte4ToInt): exact below 24,
    then rounded down to 4 significant bits. Matching this is what lets BM25 scores equal Lucene's."""
    lengths = np.asarray(length, dtype=np.int64)
    out = lengths.copy()
    big = lengths >= _NUM_FREE_VALUES
    if np.any(big):
        encoded = [_NUM_FREE_VALUES + _lucene_long_to_int4(int(x) - _NUM_FREE_VALUES) for x in lengths[big]]
        out[big] = [_NUM_FREE_VALUES + _lucene_int4_to_long(e - _NUM_FREE_VALUES) for e in encoded]
    return out


@register_encoder("bm25")
class BM25Encoder:
    """BM25 impacts for documents, term counts for queries (dot product = BM25 score).

    k1, b: the BM25 parameters (Anserini's defaults 0.9 / 0.4). lucene_lengths: quantize document lengths as Lucene
    does, so scores match Lucene's to float precision. live: idf on the query side and a growing vocabulary with
    statistics that follow additions and deletions (see the module docstring); the dot product is the same BM25 score.
    """

    kind = "bm25"

    def __init__(self, k1: float = 0.9, b: float = 0.4, analyzer: EnglishAnalyzer | None = None,
                 lucene_lengths: bool = True, live: bool = False) -> None:
        if k1 < 0 or not 0 <= b <= 1:
            raise TremorError(f"BM25 needs k1 >= 0 and 0 <= b <= 1 (got k1={k1}, b={b})")
        self.k1 = float(k1)
        self.b = float(b)
        self.analyzer = analyzer or EnglishAnalyzer()
        self.lucene_lengths = lucene_lengths
        self.live = bool(live)
        self.total_length = 0
        self._live_token = ""
        self.terms: list[str] = []
        self.term_ids: dict[str, int] = {}
        self.df = np.zeros(0, np.int64)
        self.n_docs = 0
        self.avgdl = 0.0
        self._vocab_hash = ""

    # -------------------------------------------------------------------------------------------------- identity
    @property
    def fitted(self) -> bool:
        return bool(self.terms)

    @property
    def vocab_size(self) -> int:
        if self.live:  # a capacity: grows by doubling, so vectors written before and after mostly share it
            return max(LIVE_MIN_CAPACITY, 1 << max(len(self.terms) - 1, 0).bit_length())
        return max(len(self.terms), 1)

    @property
    def vocab_id(self) -> str:
        # a live vocabulary only grows (earlier ids keep their terms), so it keeps one identity until it is refitted
        return f"bm25-live:{self._live_token}" if self.live else f"bm25:{self._vocab_hash}"

    def idf(self) -> np.ndarray:
        """Lucene's BM25 idf per vocabulary term."""
        return np.log1p((self.n_docs - self.df + 0.5) / (self.df + 0.5))

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise TremorError("BM25Encoder is not fitted: call fit_encode(documents) on the corpus first")

    # ------------------------------------------------------------------------------------------------------ fit
    def fit_encode(self, texts: Iterable[str]) -> SparseVectors:
        """Learn vocabulary, document frequencies and average length from the corpus, and return its impacts."""
        return self.fit_documents(texts)[0]

    def fit_documents(self, texts: Iterable[str]) -> tuple[SparseVectors, np.ndarray]:
        """``fit_encode`` that also returns each document's length in terms (what a live index keeps to uncount a
        deleted document)."""
        provisional: dict[str, int] = {}
        doc_terms: list[np.ndarray] = []
        for text in texts:
            ids = [provisional.setdefault(term, len(provisional)) for term in self.analyzer(text)]
            doc_terms.append(np.asarray(ids, dtype=np.int64))
        if not provisional:
            raise TremorError("BM25: the corpus has no indexable terms")
        self.terms = sorted(provisional)
        self.term_ids = {t: i for i, t in enumerate(self.terms)}
        remap = np.empty(len(provisional), np.int64)
        for term, pid in provisional.items():
            remap[pid] = self.term_ids[term]
        counts = self._counts([remap[ids] for ids in doc_terms])
        lengths = np.array([len(ids) for ids in doc_terms], dtype=np.int64)
        self.df = np.bincount(counts.indices, minlength=len(self.terms)).astype(np.int64)
        # Lucene's collection statistics count only documents that have the field, i.e. at least one term.
        self.n_docs = int(np.count_nonzero(lengths))
        self.total_length = int(lengths.sum())
        self.avgdl = float(self.total_length / max(self.n_docs, 1))
        self._vocab_hash = vocab_hash(self.terms)
        self._live_token = uuid.uuid4().hex[:16] if self.live else ""
        return self._impacts(counts, lengths), lengths

    # ---------------------------------------------------------------------------------------------- live mode
    def add_documents(self, texts: Iterable[str]) -> tuple[SparseVectors, np.ndarray]:
        """Live mode: count new documents into the statistics (new terms join the vocabulary) and return their
        vectors (saturated tf under the updated avgdl) and their lengths in terms (for ``remove_documents``)."""
        if not self.live:
            raise TremorError("BM25Encoder.add_documents needs live=True (statistics that follow the documents)")
        if not self.fitted:
            return self.fit_documents(texts)
        known, new_terms = self.term_ids, {}
        doc_terms = []
        for text in texts:  # nothing changes until every text is analyzed (an error leaves the encoder as it was)
            ids = []
            for term in self.analyzer(text):
                number = known.get(term)
                if number is None:
                    number = new_terms.setdefault(term, len(self.terms) + len(new_terms))
                ids.append(number)
            doc_terms.append(np.asarray(ids, dtype=np.int64))
        if new_terms:
            self.terms = self.terms + list(new_terms)
            self.term_ids = {**known, **new_terms}
            self._vocab_hash = vocab_hash(self.terms)
        counts = self._counts(doc_terms)
        lengths = np.array([len(ids) for ids in doc_terms], dtype=np.int64)
        df = np.zeros(len(self.terms), np.int64)
        df[:self.df.shape[0]] = self.df
        df += np.bincount(counts.indices, minlength=len(self.terms))[:len(self.terms)]
        self.df = df
        self.n_docs += int(np.count_nonzero(lengths))
        self.total_length += int(lengths.sum())
        self.avgdl = float(self.total_length / max(self.n_docs, 1))
        return self._impacts(counts, lengths), lengths

    def remove_documents(self, vectors: SparseVectors, lengths: np.ndarray) -> None:
        """Live mode: take documents out of the statistics (their vectors give the terms they hold)."""
        if not self.live:
            raise TremorError("BM25Encoder.remove_documents needs live=True")
        lengths = np.asarray(lengths, dtype=np.int64)
        present = np.asarray(vectors.indices, np.int64)
        self.df = self.df - np.bincount(present, minlength=self.df.shape[0])[:self.df.shape[0]]
        self.n_docs -= int(np.count_nonzero(lengths))
        self.total_length -= int(lengths.sum())
        if self.df.min(initial=0) < 0 or self.n_docs < 0 or self.total_length < 0:
            raise TremorError("BM25 live statistics went negative: a document was removed that was never added")
        self.avgdl = float(self.total_length / max(self.n_docs, 1))

    def query_side_weights(self) -> np.ndarray | None:
        """Per-term weights that queries carry and documents do not (live mode: the idf), or None. Rocchio PRF divides
        them out of queries and multiplies them into feedback documents, so that it expands as over a full build."""
        return self.idf() if self.live else None

    @classmethod
    def from_statistics(cls, terms: Sequence[str], df: np.ndarray, n_docs: int, avgdl: float, k1: float = 0.9,
                        b: float = 0.4, analyzer: EnglishAnalyzer | None = None,
                        lucene_lengths: bool = True) -> BM25Encoder:
        """A fitted encoder from collection statistics gathered elsewhere (e.g. merged over the shards of a corpus):
        ``terms`` sorted, ``df`` per term, ``n_docs`` documents with at least one term, ``avgdl`` their mean length."""
        if list(terms) != sorted(terms) or len(terms) != len(df) or not terms:
            raise TremorError("BM25 statistics: terms must be sorted, non-empty and one df per term")
        encoder = cls(k1, b, analyzer, lucene_lengths)
        encoder.terms = list(terms)
        encoder.term_ids = {t: i for i, t in enumerate(encoder.terms)}
        encoder.df = np.asarray(df, dtype=np.int64)
        encoder.n_docs = int(n_docs)
        encoder.avgdl = float(avgdl)
        encoder._vocab_hash = vocab_hash(encoder.terms)
        return encoder

    def impacts_from_counts(self, counts: SparseVectors, lengths: np.ndarray) -> SparseVectors:
        """BM25 impacts of documents given their term counts over this vocabulary and their lengths in terms."""
        self._require_fitted()
        return self._impacts(counts, np.asarray(lengths, dtype=np.int64))

    def _counts(self, docs: Sequence[np.ndarray]) -> SparseVectors:
        rows = np.repeat(np.arange(len(docs), dtype=np.int64), [len(d) for d in docs])
        cols = np.concatenate(docs) if docs else np.zeros(0, np.int64)
        return SparseVectors.from_coo(rows, cols, np.ones(cols.shape[0], np.float32), len(docs), self.vocab_size,
                                      reduce="sum")

    def _impacts(self, counts: SparseVectors, lengths: np.ndarray) -> SparseVectors:
        dl = lucene_quantized_length(lengths) if self.lucene_lengths else lengths
        norm = self.k1 * ((1.0 - self.b) + self.b * dl.astype(np.float64) / max(self.avgdl, 1e-9))
        row_of = np.repeat(np.arange(len(counts)), counts.row_nnz())
        tf = counts.values.astype(np.float64)
        saturation = tf / (tf + norm[row_of])
        weights = saturation if self.live else self.idf()[counts.indices] * saturation
        return SparseVectors(counts.indptr, counts.indices, weights.astype(np.float32), self.vocab_size,
                             self.vocab_id)

    def _term_id_list(self, text: str) -> list[int]:
        """Vocabulary ids of the text's terms, in order (terms outside the vocabulary dropped)."""
        ids = self.term_ids
        return [ids[t] for t in self.analyzer(text) if t in ids]

    def _term_ids(self, text: str) -> np.ndarray:
        return np.asarray(self._term_id_list(text), dtype=np.int64)

    # --------------------------------------------------------------------------------------------------- encode
    def encode_documents(self, texts: Sequence[str]) -> SparseVectors:
        """BM25 impacts of new documents under the fitted statistics (terms outside the vocabulary are dropped)."""
        self._require_fitted()
        texts = require_texts(texts)
        lengths = np.array([len(self.analyzer(t)) for t in texts], dtype=np.int64)
        return self._impacts(self._counts([self._term_ids(t) for t in texts]), lengths)

    def encode_queries(self, texts: Sequence[str]) -> SparseVectors:
        """Query term counts over the vocabulary (a repeated term counts twice, as in Anserini's bag of words); in
        live mode each count times the term's current idf."""
        self._require_fitted()
        texts = require_texts(texts)
        if len(texts) == 1:  # one query (interactive search): counted in Python, valid by construction
            counts = Counter(self._term_id_list(texts[0]))
            terms = sorted(counts)
            values = np.array([counts[t] for t in terms], np.float32)
            if self.live:
                values = (values * self.idf()[terms]).astype(np.float32)
            return SparseVectors.trusted(np.array([0, len(terms)], np.int64), np.array(terms, np.int32),
                                         values, self.vocab_size, self.vocab_id)
        counts = self._counts([self._term_ids(t) for t in texts])
        if self.live:
            counts = SparseVectors(counts.indptr, counts.indices,
                                   (counts.values * self.idf()[counts.indices]).astype(np.float32),
                                   counts.vocab_size)
        return counts.with_vocab_id(self.vocab_id)

    def tokens(self, vector_row: np.ndarray) -> list[str]:
        """Terms of the given token ids (for explaining results)."""
        return [self.terms[i] for i in vector_row]

    # ------------------------------------------------------------------------------------------------ save/load
    def config(self) -> dict:
        return {"kind": self.kind, "k1": self.k1, "b": self.b, "lucene_lengths": self.lucene_lengths,
                "analyzer": self.analyzer.config(), "n_docs": self.n_docs, "avgdl": self.avgdl,
                "vocab_size": len(self.terms), "vocab_hash": self._vocab_hash, "live": self.live,
                "total_length": self.total_length, "live_token": self._live_token}

    def save(self, directory: Path) -> None:
        self._require_fitted()
        directory = Path(directory)
        write_encoder_config(directory, self.config())
        (directory / "vocab.json").write_text(json.dumps(self.terms, ensure_ascii=False), encoding="utf-8")
        np.save(directory / "df.npy", self.df)

    @classmethod
    def load(cls, directory: Path, config: dict) -> BM25Encoder:
        try:
            encoder = cls(config["k1"], config["b"], EnglishAnalyzer.from_config(config["analyzer"]),
                          config["lucene_lengths"], bool(config.get("live", False)))
            encoder.total_length = int(config.get("total_length", 0))
            encoder._live_token = str(config.get("live_token", ""))
            encoder.terms = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
            encoder.df = _load_npy(directory / "df.npy")
            encoder.n_docs = int(config["n_docs"])
            encoder.avgdl = float(config["avgdl"])
        except (KeyError, OSError, ValueError, TypeError) as exc:
            raise IndexFormatError(f"{directory}: BM25 encoder files are incomplete or corrupt ({exc})") from None
        encoder.term_ids = {t: i for i, t in enumerate(encoder.terms)}
        encoder._vocab_hash = vocab_hash(encoder.terms)
        if encoder._vocab_hash != config.get("vocab_hash") or encoder.df.shape[0] != len(encoder.terms):
            raise IndexFormatError(f"{directory}: BM25 vocabulary does not match its recorded hash")
        if not math.isfinite(encoder.avgdl):
            raise IndexFormatError(f"{directory}: BM25 avgdl is not finite")
        return encoder


def _load_npy(path: Path) -> np.ndarray:
    """``np.load`` with any parse failure of a damaged header as a ValueError."""
    try:
        return np.load(path, allow_pickle=False)
    except OSError:
        raise
    except Exception as exc:  # numpy's header parser fails with several error types (SyntaxError, TokenError, ...)
        raise ValueError(f"{path.name} is unreadable ({type(exc).__name__})") from None
