"""Sharded encoding: a corpus split across Ray actors that each hold one replica of the encoder, writing vector
shards in tremor's vector-file format (``tremor.encoders.vector_files``).

Every shard of the corpus is cut into parts of ``part_size`` documents; an idle worker takes the next part, encodes
it and writes ``OUT/shard-NNNN/part-NNNN`` itself, so workers stay busy and the driver only counts progress. On a
cluster with GPUs each worker asks for one (``num_gpus=1``) and encodes there; otherwise it takes ``cpus_per_worker``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tremor.corpus import Document
from tremor.distributed.cluster import cluster_cpus, cluster_gpus, require_ray
from tremor.distributed.manifest import shard_name
from tremor.distributed.tasks import unwrap
from tremor.encoders.vector_files import read_vectors, write_vectors
from tremor.errors import TremorError
from tremor.sparse import SparseVectors


class EncoderWorker:
    """A Ray actor body: one encoder replica that encodes parts of a corpus into vector directories."""

    def __init__(self, encoder: Any, options: dict) -> None:
        from tremor.encoders import get_encoder

        self.encoder = get_encoder(encoder, **options)

    def ready(self) -> str:
        return self.encoder.vocab_id

    def save_encoder(self, directory: str) -> dict:
        """Write the encoder's files (what an index keeps in ``encoder/``) and return its config."""
        self.encoder.save(Path(directory))
        return self.encoder.config()

    def encode(self, texts: list[str], ids: list[str], out: str, meta: dict) -> dict:
        """Encode documents and write them as a vectors directory at ``out``."""
        started = time.perf_counter()
        vectors = self.encoder.encode_documents(texts)
        seconds = time.perf_counter() - started
        write_vectors(out, vectors, ids, {"side": "document", **meta})
        return {"documents": len(texts), "postings": vectors.nnz, "encode_seconds": seconds}


@dataclass(frozen=True)
class VectorShards:
    """Where ``encode_sharded`` wrote each shard's parts, with the encoder's config and timings."""

    root: Path
    parts: list[list[Path]]
    encoder_config: dict
    stats: list[dict]

    def read_shard(self, number: int) -> SparseVectors:
        """The vectors of one shard, its parts concatenated in corpus order."""
        return read_shard_vectors(self.parts[number])


def read_shard_vectors(parts: list[Path]) -> SparseVectors:
    """Concatenate the vector parts of one shard (in order)."""
    return SparseVectors.concat([read_vectors(p, mmap=False)[1] for p in parts])


def worker_resources(cpus_per_worker: float = 1.0) -> dict:
    """Ray resources of one encoder worker: a whole GPU where the cluster has GPUs, else ``cpus_per_worker``."""
    return {"num_gpus": 1, "num_cpus": 1} if cluster_gpus() >= 1 else {"num_cpus": cpus_per_worker}


def default_workers(cpus_per_worker: float = 1.0) -> int:
    """One worker per GPU, or as many as the cluster's CPUs hold."""
    gpus = int(cluster_gpus())
    return gpus if gpus else max(1, int(cluster_cpus() // max(cpus_per_worker, 1e-3)))


def encode_sharded(documents: list[Document], ranges: list[tuple[int, int]], encoder: Any, out: str | Path,
                   workers: int | None = None, part_size: int = 2048, encoder_options: dict | None = None,
                   encoder_dir: str | Path | None = None, cpus_per_worker: float = 1.0,
                   progress: bool = False) -> VectorShards:
    """Encode ``documents`` (shard ``s`` = ``documents[ranges[s][0]:ranges[s][1]]``) with ``workers`` replicas of
    ``encoder`` (a model directory, hub name or encoder object) into vector parts under ``out``.

    ``encoder_dir``: also save the encoder's files there (from a worker, so the driver never loads the model).
    Needs a connected Ray cluster (``tremor.distributed.connect``).
    """
    ray = require_ray()
    from tqdm.auto import tqdm

    if part_size < 1:
        raise TremorError(f"part_size must be at least 1 (got {part_size})")
    out = Path(out).absolute()
    workers = workers or default_workers(cpus_per_worker)
    actor_class = ray.remote(**worker_resources(cpus_per_worker))(EncoderWorker)
    encoder_ref = ray.put(encoder)
    pool = [actor_class.remote(encoder_ref, dict(encoder_options or {})) for _ in range(workers)]
    try:
        config = {}
        # workers join as the cluster places them: parts go to whichever replicas are up, never to one still
        # waiting for resources (a cluster busy with other work may place fewer than asked)
        starting = {actor.ready.remote(): actor for actor in pool}
        if encoder_dir is not None:
            first_ready, _ = ray.wait(list(starting), num_returns=1)
            _get(ray, first_ready[0], f"loading the encoder {encoder!r} on a worker")
            config = _get(ray, starting[first_ready[0]].save_encoder.remote(str(encoder_dir)),
                          f"saving the encoder {encoder!r}")
        jobs = []  # (shard, part, start, end)
        for shard, (start, end) in enumerate(ranges):
            for part, lo in enumerate(range(start, end, part_size)):
                jobs.append((shard, part, lo, min(lo + part_size, end)))
        parts: list[list[Path]] = [[] for _ in ranges]
        for shard, part, _, _ in jobs:
            parts[shard].append(out / shard_name(shard) / f"part-{part:04d}")
        stats: list[dict] = []
        idle: list[Any] = []
        running: dict[Any, tuple] = {}
        queue = list(reversed(jobs))
        with tqdm(total=len(documents), desc="encoding", unit="doc", disable=not progress) as bar:
            while queue or running:
                while queue and idle:
                    shard, part, lo, hi = job = queue.pop()
                    chunk = documents[lo:hi]
                    worker = idle.pop()
                    meta = {"shard": shard, "part": part, "offset": lo}
                    ref = worker.encode.remote([d.full_text for d in chunk], [d.id for d in chunk],
                                               str(parts[shard][part]), meta)
                    running[ref] = (worker, job)
                done, _ = ray.wait([*running, *starting], num_returns=1)
                if done[0] in starting:
                    _get(ray, done[0], f"loading the encoder {encoder!r} on a worker")
                    idle.append(starting.pop(done[0]))
                    continue
                worker, (shard, part, lo, hi) = running.pop(done[0])
                result = _get(ray, done[0], f"encoding documents {lo}-{hi - 1} (shard {shard}, part {part})")
                stats.append({"shard": shard, "part": part, **result})
                idle.append(worker)
                bar.update(hi - lo)
    finally:
        for actor in pool:
            ray.kill(actor)
    return VectorShards(out, parts, config, stats)


def _get(ray, ref: Any, what: str) -> Any:
    try:
        return ray.get(ref)
    except Exception as exc:
        raise unwrap(exc, what) from None
