"""BEIR-style evaluation: datasets, systems, metrics, run files, reports, and Lucene as a peer.

```python
from tremor.eval import load_dataset, SearcherRetriever, evaluate_system

dataset = load_dataset("../shared/data/beir/scifact")           # or "beir/scifact/test" (ir_datasets)
result = evaluate_system(SearcherRetriever.from_index("indexes/scifact-bm25"), dataset)
print(result.evaluation.aggregate)                               # {"nDCG@10": 0.6789, "R@100": ..., ...}
```

A system is anything with ``name`` and ``retrieve(queries, k) -> {query id: {doc id: score}}`` (``Retriever``).
The Lucene peers live in ``tremor.eval.peers`` (imported on use: they start a JVM).
"""

from tremor.eval.datasets import Dataset, available_splits, load_dataset
from tremor.eval.metrics import DEFAULT_MEASURES, Evaluation, evaluate_run
from tremor.eval.runs import Run, cut_run, read_run, write_run
from tremor.eval.systems import (
    Retriever,
    SearcherRetriever,
    SystemResult,
    build_system,
    evaluate_system,
    query_latency,
)

__all__ = [
    "DEFAULT_MEASURES",
    "Dataset",
    "Evaluation",
    "Retriever",
    "Run",
    "SearcherRetriever",
    "SystemResult",
    "available_splits",
    "build_system",
    "cut_run",
    "evaluate_run",
    "evaluate_system",
    "load_dataset",
    "query_latency",
    "read_run",
    "write_run",
]
