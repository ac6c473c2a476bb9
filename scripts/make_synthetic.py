"""Seeded SPLADE-like synthetic collection: documents and queries as SparseVectors, for index benchmarks.

    python scripts/make_synthetic.py --docs 1000000 --queries 1000 --out runs/synthetic-1m [--seed 42]

What it imitates (learned sparse vectors over BERT's 30,522 WordPiece ids):
- Zipfian term frequencies: every term has a global popularity rank, p(rank r) ∝ (r + 10)^-1.05, so a few terms occur
  in a large share of documents (expansion "stop words") and most are rare.
- Topical structure, so that documents correlate with queries and similar documents share terms: 2,000 topics,
  each a core of 400 terms (drawn with a flattened popularity bias, Zipfian inside the topic) and a wider set of
  3,000 expansion terms (popular terms more likely). A document mixes one or two topics: ≈45% of its draws from the
  core, ≈40% from the expansion set, ≈15% from the global background. Weights are skewed as in SPLADE: a topic's
  central terms are heavy (up to ≈2–3), peripheral, expansion and background terms light (≈0.1–0.3, log-normal).
- ≈120 non-zeros per document (varying per document), ≈40 per query.
- Queries start from a random seed document: a share of its strongest terms, more terms of its topic, and a few
  popular background terms. Query weights follow (rank + 1)^-1 times log-normal noise, with the document's and topic's
  terms ranked first, so a handful of terms carry most of the weight mass (about half in the top five).

Writes ``docs.npz`` and ``queries.npz`` (CSR arrays: indptr, indices, values, vocab_size) and ``meta.json``.
The same seed gives the same files; documents are generated in chunks with per-chunk seeds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tremor.sparse import SparseVectors

VOCAB_SIZE = 30522
N_TOPICS = 2000
TOPIC_TERMS = 400
EXPANSION_TERMS = 3000
CHUNK = 50_000


class SyntheticModel:
    """The fixed parts of the generator (term popularity, topics), derived from the seed."""

    def __init__(self, seed: int, vocab_size: int = VOCAB_SIZE, n_topics: int = N_TOPICS,
                 topic_terms: int = TOPIC_TERMS) -> None:
        rng = np.random.default_rng([seed, 0])
        self.vocab_size = vocab_size
        # term id of each popularity rank (ids are not ordered by frequency, as in a real vocabulary)
        self.rank_to_term = rng.permutation(vocab_size).astype(np.int32)
        popularity = (np.arange(vocab_size) + 10.0) ** -1.05
        self.background_cdf = np.cumsum(popularity / popularity.sum())
        # topics prefer mid-frequency terms: sample their terms with the popularity flattened
        flattened = popularity ** 0.35
        flattened /= flattened.sum()
        self.topics = np.empty((n_topics, topic_terms), dtype=np.int32)
        for t in range(n_topics):
            ranks = rng.choice(vocab_size, size=topic_terms, replace=False, p=flattened)
            self.topics[t] = self.rank_to_term[ranks]
        # each topic also has a wider, lighter set of expansion terms (popular terms more likely), ranked by popularity
        expansion_bias = popularity ** 0.7
        expansion_bias /= expansion_bias.sum()
        self.expansions = np.empty((n_topics, EXPANSION_TERMS), dtype=np.int32)
        for t in range(n_topics):
            ranks = np.sort(rng.choice(vocab_size, size=EXPANSION_TERMS, replace=False, p=expansion_bias))
            self.expansions[t] = self.rank_to_term[ranks]
        expansion = (np.arange(EXPANSION_TERMS) + 5.0) ** -1.0
        self.expansion_cdf = np.cumsum(expansion / expansion.sum())
        inside = (np.arange(topic_terms) + 1.0) ** -0.8
        self.topic_cdf = np.cumsum(inside / inside.sum())
        # a topic's terms carry larger weights the more central they are to it
        self.topic_importance = 0.25 + 2.0 * (np.arange(topic_terms) + 1.0) ** -0.6
        topic_popularity = (np.arange(n_topics) + 20.0) ** -0.6
        self.topic_popularity_cdf = np.cumsum(topic_popularity / topic_popularity.sum())

    def _sample(self, cdf: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(cdf, rng.random(n)), cdf.shape[0] - 1)

    def documents(self, n: int, seed: tuple) -> tuple[SparseVectors, np.ndarray]:
        """n document vectors and their primary topic ids."""
        rng = np.random.default_rng(seed)
        primary = self._sample(self.topic_popularity_cdf, rng, n)
        secondary = np.where(rng.random(n) < 0.5, self._sample(self.topic_popularity_cdf, rng, n), primary)
        draws = np.clip(rng.normal(146, 40, n), 40, 400).astype(np.int64)  # ≈120 distinct after merging repeats
        rows = np.repeat(np.arange(n), draws)
        m = rows.shape[0]
        source = rng.random(m)  # < 0.45: topic core term, < 0.85: topic expansion term, else background
        topic = np.where(rng.random(m) < 0.7, primary[rows], secondary[rows])
        inside = self._sample(self.topic_cdf, rng, m)
        expansion = self.expansions[topic, self._sample(self.expansion_cdf, rng, m)]
        background = self.rank_to_term[self._sample(self.background_cdf, rng, m)]
        cols = np.where(source < 0.45, self.topics[topic, inside], np.where(source < 0.85, expansion, background))
        values = np.where(source < 0.45, rng.lognormal(0.0, 0.4, m) * self.topic_importance[inside],
                          np.where(source < 0.85, rng.lognormal(-1.9, 0.6, m), rng.lognormal(-2.3, 0.6, m)))
        return SparseVectors.from_coo(rows, cols, values.astype(np.float32), n, self.vocab_size,
                                      reduce="max"), primary

    def queries(self, docs: SparseVectors, doc_topics: np.ndarray, n: int, seed: int) -> SparseVectors:
        """n query vectors, each grown from a random seed document of ``docs``."""
        rng = np.random.default_rng([seed, 1])
        rows, cols, priority = [], [], []
        for qi, doc in enumerate(rng.integers(0, len(docs), n)):
            terms, weights = docs.row(int(doc))
            strongest = terms[np.argsort(-weights, kind="stable")[:30]]
            from_doc = rng.choice(strongest, size=min(len(strongest), int(rng.integers(10, 18))), replace=False)
            from_topic = self.topics[doc_topics[doc], self._sample(self.topic_cdf, rng, int(rng.integers(16, 25)))]
            from_background = self.rank_to_term[self._sample(self.background_cdf, rng, int(rng.integers(7, 13)))]
            chosen = np.concatenate([from_doc, from_topic, from_background])
            # document terms rank first, then topic terms, background last; Gumbel noise mixes the groups a little
            bias = np.concatenate([np.full(len(from_doc), 2.0), np.full(len(from_topic), 1.0),
                                   np.zeros(len(from_background))])
            rows.append(np.full(len(chosen), qi))
            cols.append(chosen)
            priority.append(bias + rng.gumbel(0.0, 0.6, len(chosen)))
        rows_a, cols_a, priority_a = np.concatenate(rows), np.concatenate(cols), np.concatenate(priority)
        # weight by rank of priority within each query: (rank + 1)^-1 × log-normal noise, scaled to SPLADE's range
        order = np.lexsort((-priority_a, rows_a))
        rows_a, cols_a = rows_a[order], cols_a[order]
        starts = np.searchsorted(rows_a, np.arange(n))
        rank = np.arange(rows_a.shape[0]) - starts[rows_a]
        values = 2.5 * (rank + 1.0) ** -1.0 * rng.lognormal(0.0, 0.2, rank.shape[0])
        return SparseVectors.from_coo(rows_a, cols_a, values.astype(np.float32), n, self.vocab_size, reduce="max")


def generate(n_docs: int, n_queries: int, seed: int = 42, progress: bool = True) -> tuple[SparseVectors, SparseVectors]:
    """The synthetic documents and queries for ``seed`` (deterministic)."""
    model = SyntheticModel(seed)
    parts, topics = [], []
    for start in tqdm(range(0, n_docs, CHUNK), desc="documents", unit="chunk", disable=not progress):
        part, part_topics = model.documents(min(CHUNK, n_docs - start), (seed, 2, start // CHUNK))
        parts.append(part)
        topics.append(part_topics)
    docs = SparseVectors.concat(parts)
    return docs, model.queries(docs, np.concatenate(topics), n_queries, seed)


def save_vectors(path: Path, vectors: SparseVectors) -> None:
    np.savez(path, indptr=vectors.indptr, indices=vectors.indices, values=vectors.values,
             vocab_size=np.int64(vectors.vocab_size))


def load_vectors(path: str | Path) -> SparseVectors:
    """Read vectors written by this script (``docs.npz`` / ``queries.npz``)."""
    with np.load(path) as data:
        return SparseVectors(data["indptr"], data["indices"], data["values"], int(data["vocab_size"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=Path("runs/synthetic-1m"))
    args = parser.parse_args()
    started = time.perf_counter()
    docs, queries = generate(args.docs, args.queries, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    save_vectors(args.out / "docs.npz", docs)
    save_vectors(args.out / "queries.npz", queries)
    df = np.bincount(docs.indices, minlength=docs.vocab_size)
    q_values = np.sort(queries.to_scipy().toarray(), axis=1)[:, ::-1]
    meta = {"seed": args.seed, "documents": len(docs), "queries": len(queries), "vocab_size": docs.vocab_size,
            "doc_nnz_mean": docs.nnz / len(docs), "query_nnz_mean": queries.nnz / len(queries),
            "terms_used": int((df > 0).sum()), "max_document_frequency": int(df.max()),
            "query_top5_mass": float((q_values[:, :5].sum(1) / q_values.sum(1)).mean()),
            "seconds": round(time.perf_counter() - started, 1)}
    (args.out / "meta.json").write_text(json.dumps(meta, indent=2))
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
