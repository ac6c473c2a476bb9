"""Fan-out search over a sharded index: one Ray actor per shard holds that shard's index memory-mapped; a query
batch is encoded once on the caller, sent to every shard, and the per-shard top k are merged.

Shards hold contiguous runs of the corpus, so a document's global number is its shard's offset plus its local
number; the merge orders by (score descending, global number ascending), the order a single index breaks ties in,
which makes exact search over the shards return exactly the single index's top k. A shard whose actor dies is
restarted from its directory and asked again (``retries`` times); if that fails too the search raises a
``ShardError`` naming the shard: results are never silently drawn from fewer shards.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tremor.corpus import Document
from tremor.distributed.cluster import ShardError, available_cpus, connect, require_ray
from tremor.distributed.manifest import read_shards_manifest
from tremor.distributed.tasks import unwrap
from tremor.encoders import load_saved_encoder
from tremor.errors import IndexFormatError, TremorError
from tremor.index.docstore import DOCSTORE_FILE, DocStore
from tremor.index.storage import read_manifest
from tremor.search.searcher import Searcher, open_index
from tremor.sparse import SparseVectors


class ShardWorker:
    """A Ray actor body: one shard's index, memory-mapped, answering top-k searches with local numbers."""

    def __init__(self, path: str) -> None:
        self.index, _ = open_index(path)

    def ready(self) -> int:
        return self.index.n_docs

    def search(self, queries: SparseVectors, k: int, params: dict) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(queries, k, **params)


class ShardedDocStore:
    """The shards' document stores as one, addressed by global document number."""

    def __init__(self, stores: list[DocStore], offsets: np.ndarray) -> None:
        self.stores = stores
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.count = sum(len(s) for s in stores)
        self._ids: list[str] | None = None

    def __len__(self) -> int:
        return self.count

    def ids(self) -> list[str]:
        """External ids of all documents, by global number (loaded once)."""
        if self._ids is None:
            self._ids = [doc_id for store in self.stores for doc_id in store.ids()]
        return self._ids

    def get(self, numbers: Sequence[int]) -> list[Document]:
        """Documents by global number, in the order asked."""
        wanted = np.asarray(numbers, dtype=np.int64)
        if wanted.size and (wanted.min() < 0 or wanted.max() >= self.count):
            raise TremorError(f"document numbers must lie in [0, {self.count})")
        owner = np.searchsorted(self.offsets, wanted, side="right") - 1
        out: list[Document | None] = [None] * len(wanted)
        for shard in np.unique(owner).tolist():
            where = np.flatnonzero(owner == shard)
            for position, doc in zip(where.tolist(), self.stores[shard].get(wanted[where] - self.offsets[shard]),
                                     strict=True):
                out[position] = doc
        return out  # type: ignore[return-value]

    def close(self) -> None:
        for store in self.stores:
            store.close()


def merge_top_k(results: Sequence[tuple[np.ndarray, np.ndarray]], offsets: Sequence[int],
                k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-shard (scores, local numbers) rows into the global top k, best first, ties by global number;
    padding stays (-inf, -1)."""
    scores = np.concatenate([r[0] for r in results], axis=1).astype(np.float32, copy=False)
    numbers = np.concatenate([np.where(r[1] >= 0, r[1] + offset, -1) for r, offset in zip(results, offsets,
                                                                                           strict=True)], axis=1)
    sort_numbers = np.where(numbers >= 0, numbers, np.iinfo(np.int64).max)
    order = np.lexsort((sort_numbers, -scores), axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, order, axis=1)
    top_numbers = np.take_along_axis(numbers, order, axis=1)
    if top_scores.shape[1] < k:  # fewer candidates than k over all shards
        pad = k - top_scores.shape[1]
        top_scores = np.pad(top_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        top_numbers = np.pad(top_numbers, ((0, 0), (0, pad)), constant_values=-1)
    return top_scores, top_numbers.astype(np.int64, copy=False)


class ShardedSearcher(Searcher):
    """The ``Searcher`` API over a sharded index directory, searching its shards in parallel on Ray.

    Open one with ``ShardedSearcher.load(path)`` (joins or starts a Ray cluster, see ``tremor.distributed.connect``);
    ``close()`` stops the shard actors.
    """

    def __init__(self, path: Path, manifest: dict, encoder, docstore: ShardedDocStore | None, shard_dirs: list[Path],
                 offsets: np.ndarray, cpus_per_shard: float | None = None, retries: int = 1,
                 timeout_s: float | None = None, started_ray: bool = False, start_timeout_s: float = 120.0,
                 **search_params) -> None:
        self.path = path
        self.manifest = manifest
        self.encoder = encoder
        self.docstore = docstore
        self.index = None
        self.search_params = search_params
        self.shard_dirs = shard_dirs
        self.offsets = offsets
        self.retries = int(retries)
        self.timeout_s = timeout_s
        self.restarts = 0
        self.start_timeout_s = start_timeout_s
        self._started_ray = started_ray
        ray = require_ray()
        # by default the shards share what the cluster has free (at most one CPU each): a searcher must not wait
        # forever for CPUs that other work holds
        cpus = cpus_per_shard if cpus_per_shard is not None else \
            max(0.01, math.floor(min(1.0, available_cpus() / len(shard_dirs)) * 100) / 100)
        self.cpus_per_shard = cpus
        self._actor_class = ray.remote(num_cpus=cpus, max_concurrency=1, scheduling_strategy="SPREAD")(ShardWorker)
        self._actors: list[Any] = [None] * len(shard_dirs)
        if encoder is not None and encoder.vocab_id != manifest.get("vocab_id"):
            raise TremorError(f"encoder vocabulary '{encoder.vocab_id}' does not match the shards' "
                              f"'{manifest.get('vocab_id')}'")
        for number in range(len(shard_dirs)):
            self._actors[number] = self._actor_class.remote(str(shard_dirs[number]))
        for number in range(len(shard_dirs)):
            self._wait_ready(number)

    @classmethod
    def load(cls, path: str | Path, address: str | None = "auto", cpus_per_shard: float | None = None,
             retries: int = 1, timeout_s: float | None = None, verify: bool = True,
             **search_params) -> ShardedSearcher:
        """Open a sharded index directory and start one actor per shard; ``search_params`` become the defaults.

        ``address``: the Ray cluster to use when this process is not connected yet (``"auto"``: the running one, or
        a local one started here). ``retries``: restarts of a dead shard actor per search before giving up."""
        path = Path(path).absolute()
        manifest = read_shards_manifest(path, verify=verify)
        shard_dirs = [path / entry["path"] for entry in manifest["shards"]]
        offsets = np.array([entry["offset"] for entry in manifest["shards"]], dtype=np.int64)
        stores = []
        for entry, directory in zip(manifest["shards"], shard_dirs, strict=True):
            shard_manifest = read_manifest(directory)
            if shard_manifest.get("vocab_id") != manifest.get("vocab_id"):
                raise IndexFormatError(f"{directory}: vocabulary {shard_manifest.get('vocab_id')} differs from the "
                                       f"sharded index's {manifest.get('vocab_id')}; rebuild the sharded index")
            if (directory / DOCSTORE_FILE).exists():
                stores.append(DocStore(directory / DOCSTORE_FILE, entry["documents"]))
        docstore = ShardedDocStore(stores, offsets) if len(stores) == len(shard_dirs) else None
        encoder_dir = shard_dirs[0] / "encoder"
        encoder = load_saved_encoder(encoder_dir) if encoder_dir.is_dir() else None
        started = connect(address)
        try:
            return cls(path, manifest, encoder, docstore, shard_dirs, offsets, cpus_per_shard, retries, timeout_s,
                       started, **search_params)
        except BaseException:
            if started:
                require_ray().shutdown()
            raise

    # ------------------------------------------------------------------------------------------------- actors
    def _wait_ready(self, number: int) -> None:
        ray = require_ray()
        try:
            ray.get(self._actors[number].ready.remote(), timeout=self.start_timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise ShardError(f"the worker of shard {number} ({self.shard_dirs[number]}) did not start within "
                             f"{self.start_timeout_s:.0f}s: the cluster may lack the CPUs it asks for "
                             f"({self.cpus_per_shard}); pass a smaller cpus_per_shard or free the cluster") from None
        except Exception as exc:
            raise unwrap(exc, f"starting the worker of shard {number} ({self.shard_dirs[number]})") from None

    def restart_shard(self, number: int) -> None:
        """Replace shard ``number``'s actor with a fresh one loaded from its directory."""
        ray = require_ray()
        old = self._actors[number]
        if old is not None:
            ray.kill(old)
        self._actors[number] = self._actor_class.remote(str(self.shard_dirs[number]))
        self._wait_ready(number)
        self.restarts += 1

    def actor(self, number: int) -> Any:
        """The Ray actor serving shard ``number`` (for monitoring and fault tests)."""
        return self._actors[number]

    @property
    def n_shards(self) -> int:
        return len(self.shard_dirs)

    @property
    def n_docs(self) -> int:
        return int(self.manifest["counts"]["documents"])

    # ------------------------------------------------------------------------------------------------- search
    def search_vectors(self, queries: SparseVectors, k: int = 10, **search_params) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, global doc numbers) over all shards for already encoded queries, padded with (-inf, -1)."""
        ray = require_ray()
        params = {**self.search_params, **search_params}
        if int(k) < 1:
            from tremor.errors import QueryError

            raise QueryError(f"k must be at least 1 (got {k})")
        # queries go inline with each call (Ray moves large batches through its object store by itself); one get for
        # all shards, and shard by shard only when something failed
        refs = [actor.search.remote(queries, int(k), params) for actor in self._actors]
        try:
            results = ray.get(refs, timeout=self.timeout_s)
        except Exception:
            results = [self._result(number, ref, queries, int(k), params) for number, ref in enumerate(refs)]
        return merge_top_k(results, self.offsets.tolist(), int(k))

    def _result(self, number: int, ref: Any, queries: SparseVectors, k: int, params: dict) -> tuple:
        """One shard's answer; a dead actor is restarted and asked again up to ``retries`` times."""
        ray = require_ray()
        attempts = 0
        while True:
            try:
                return ray.get(ref, timeout=self.timeout_s)
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                if attempts >= self.retries:
                    raise ShardError(
                        f"shard {number} ({self.shard_dirs[number]}) did not answer: its worker died "
                        f"({type(exc).__name__}) and {attempts} restart(s) did not help; no partial results are "
                        "returned") from None
                attempts += 1
                self.restart_shard(number)
                ref = self._actors[number].search.remote(queries, k, params)
            except ray.exceptions.GetTimeoutError:
                raise ShardError(f"shard {number} ({self.shard_dirs[number]}) did not answer within "
                                 f"{self.timeout_s}s; no partial results are returned") from None
            except ray.exceptions.RayTaskError as exc:
                raise unwrap(exc, f"searching shard {number} ({self.shard_dirs[number]})") from None

    def close(self) -> None:
        """Stop the shard actors (and the Ray cluster, when ``load`` started it)."""
        ray = require_ray()
        if ray.is_initialized():
            for actor in self._actors:
                if actor is not None:
                    ray.kill(actor)
        self._actors = [None] * len(self.shard_dirs)
        if self.docstore is not None:
            self.docstore.close()
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    def __enter__(self) -> ShardedSearcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
