"""A writer and a reader of a live index run as separate processes by tests/test_live_processes.py.

The writer replays a fixed, seeded script: step g (g = 1, 2, ...) adds a batch (some ids already present: updates),
deletes a few ids, and commits, through a merge every fourth step; so generation g always holds ``expected(g)``.

    python tests/live_worker.py write INDEX_DIR MAX_GENERATION   # prints "ready G", then "committed G" lines
    python tests/live_worker.py read INDEX_DIR SECONDS           # prints one JSON line per search
"""

from __future__ import annotations

import json
import random
import sys
import time

WORDS = ["cat", "dog", "mat", "park", "tree", "pond", "duck", "rock", "wave", "fault", "ground", "quake", "ball",
         "home", "river", "stone", "cloud", "rain", "wind", "sun"]
POOL = [f"d{i}" for i in range(60)]
QUERIES = ["cat park", "wave rock fault", "duck pond tree", "rain wind cloud sun"]


def step_ops(generation: int) -> tuple[list[tuple[str, str]], list[str], str | None]:
    """(documents to add as (id, text), ids to delete, merge kind or None) of step ``generation``."""
    rng = random.Random(1000 + generation)
    size = 30 if generation == 1 else rng.randint(3, 8)
    ids = POOL[:30] if generation == 1 else rng.sample(POOL, size)
    docs = [(doc_id, " ".join(rng.choices(WORDS, k=rng.randint(3, 12))) + f" g{generation}") for doc_id in ids]
    deletes = [] if generation == 1 else rng.sample(POOL, rng.randint(0, 4))
    merge = None if generation % 4 else ("force" if generation % 8 == 0 else "tiered")
    return docs, deletes, merge


def expected(generation: int) -> dict[str, str]:
    """id -> text of the live documents after step ``generation`` (a dict replaying the script)."""
    state: dict[str, str] = {}
    for g in range(1, generation + 1):
        docs, deletes, _ = step_ops(g)
        for doc_id, text in docs:
            state[doc_id] = text
        for doc_id in deletes:
            state.pop(doc_id, None)
    return state


def write(path: str, max_generation: int) -> None:
    from tremor.corpus import Document
    from tremor.index.segments import IndexWriter

    writer = IndexWriter(path, encoder="bm25", index="exact", merge_factor=3, floor_segment=10)
    warm_up()
    print("ready", writer.generation, flush=True)
    while writer.generation < max_generation:
        generation = writer.generation + 1
        docs, deletes, merge = step_ops(generation)
        writer.add([Document(doc_id, text) for doc_id, text in docs])
        writer.delete(deletes)
        if merge is None:
            done = writer.commit()
        else:
            done = writer.merge(force=merge == "force")
        assert done == generation, (done, generation)
        print("committed", done, flush=True)
    writer.close()


def warm_up() -> None:
    """Load the compiled kernels a step uses, so that kills land in steps rather than in loading them."""
    import numpy as np

    from tremor.index.exact import ExactIndex
    from tremor.sparse import SparseVectors

    vectors = SparseVectors.from_coo(np.array([0, 1]), np.array([1, 0]), np.ones(2, np.float32), 2, 2, reduce="sum")
    ExactIndex.build(vectors).search(vectors, 1)


def read(path: str, seconds: float) -> None:
    from tremor.search import Searcher

    searcher = Searcher.load(path)
    # compile (or load) the kernels before the timed reading: the all-segments one of this several-segment commit,
    # and the one-segment one a forced merge leads to
    searcher.batch_search(QUERIES, k=5, with_text=False)
    searcher.index.indexes[0].search(searcher.encode_queries(QUERIES), 5)
    print("ready", flush=True)
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        searcher.refresh()
        generation = searcher.manifest["generation"]
        live = searcher.index.live_mask()
        ids = searcher.docstore.ids()
        live_ids = sorted(i for i, alive in zip(ids, live, strict=True) if alive)
        hits = [[h.id for h in hits] for hits in searcher.batch_search(QUERIES, k=5, with_text=False)]
        print(json.dumps({"generation": generation, "live": live_ids, "hits": hits}), flush=True)


if __name__ == "__main__":
    mode, directory, value = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "write":
        write(directory, int(value))
    else:
        read(directory, float(value))
