"""An English word analyzer that reproduces Lucene's EnglishAnalyzer closely enough for BM25 parity with Anserini.

The chain is the one Anserini's default analyzer applies: word segmentation in the spirit of Unicode UAX #29 (what
Lucene's StandardTokenizer implements), removal of the English possessive ``'s``, lowercasing, Lucene's 33 English
stop words, and the original Porter stemmer (PyStemmer's ``porter`` algorithm is the same algorithm as Lucene's
PorterStemFilter). Using the same analysis as the reference BM25 runs is what makes tremor's BM25 numbers comparable
with published Pyserini baselines.
"""

from __future__ import annotations

import re
from functools import lru_cache

import Stemmer

# Lucene EnglishAnalyzer.ENGLISH_STOP_WORDS_SET
LUCENE_ENGLISH_STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with",
})

# A word: letters/digits/underscore runs, joined across an apostrophe, period or colon between letters or digits
# (UAX #29 MidLetter / MidNumLet), and across a comma or semicolon between digits (MidNum), as StandardTokenizer does.
_WORD = re.compile(
    r"\w+"  # a run of letters, digits or underscore
    r"(?:(?:[.'’:](?=\w)|(?<=\d)[,;](?=\d))\w+)*"  # joined across mid-word punctuation
)
_MAX_TOKEN_LENGTH = 255


class EnglishAnalyzer:
    """Text to a list of index terms: segment, drop possessives, lowercase, drop stop words, Porter-stem."""

    def __init__(self, stopwords: frozenset[str] | None = LUCENE_ENGLISH_STOP_WORDS, stemmer: str | None = "porter"):
        self.stopwords = stopwords or frozenset()
        self.stemmer_name = stemmer
        self._stemmer = Stemmer.Stemmer(stemmer) if stemmer else None
        self._stem = lru_cache(maxsize=1 << 20)(self._stem_uncached)

    def _stem_uncached(self, word: str) -> str:
        return self._stemmer.stemWord(word) if self._stemmer else word

    def config(self) -> dict:
        return {"stopwords": sorted(self.stopwords), "stemmer": self.stemmer_name}

    @classmethod
    def from_config(cls, config: dict) -> EnglishAnalyzer:
        return cls(frozenset(config.get("stopwords", [])), config.get("stemmer"))

    def __call__(self, text: str) -> list[str]:
        terms = []
        stop = self.stopwords
        for match in _WORD.finditer(text):
            word = match.group()
            if len(word) > _MAX_TOKEN_LENGTH:
                continue
            if word.endswith(("'s", "’s", "'S", "’S")):
                word = word[:-2]
            word = word.lower()
            if not word or word in stop:
                continue
            terms.append(self._stem(word))
        return terms
