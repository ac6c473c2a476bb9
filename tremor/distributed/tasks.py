"""Running work on Ray: remote functions created on first use (so importing tremor never imports Ray), a bounded
number of tasks in flight, progress on the driver, and task failures turned back into tremor's own errors."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from tqdm.auto import tqdm

from tremor.distributed.cluster import ShardError, require_ray
from tremor.errors import TremorError


@functools.cache
def remote(function: Callable, **options) -> Any:
    """``ray.remote(**options)(function)`` (one CPU per task unless ``options`` say otherwise), made once per
    (function, options)."""
    return require_ray().remote(**{"num_cpus": 1, **options})(function)


def unwrap(exc: BaseException, what: str) -> BaseException:
    """The TremorError a remote task raised (so the CLI prints its message), or a ShardError naming ``what``."""
    ray = require_ray()
    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, TremorError):
            return cause
        if cause is not None:
            return ShardError(f"{what} failed: {type(cause).__name__}: {cause}")
    text = str(exc).strip().splitlines()
    return ShardError(f"{what} failed: {type(exc).__name__}: {text[-1] if text else ''}")


def run_bounded(submits: Sequence[Callable[[], Any]], names: Sequence[str], workers: int | None,
                weights: Sequence[int] | None = None, desc: str = "", progress: bool = False) -> list[Any]:
    """Call each ``submits[i]()`` (which returns an ObjectRef) with at most ``workers`` results outstanding, and
    return the results in order; ``weights`` (e.g. documents per task) drive the progress bar."""
    ray = require_ray()
    limit = len(submits) if workers is None else max(1, int(workers))
    weights = list(weights) if weights is not None else [1] * len(submits)
    results: list[Any] = [None] * len(submits)
    pending: dict[Any, int] = {}
    next_task = 0
    with tqdm(total=sum(weights), desc=desc, unit="doc", disable=not progress) as bar:
        while next_task < len(submits) or pending:
            while next_task < len(submits) and len(pending) < limit:
                pending[submits[next_task]()] = next_task
                next_task += 1
            done, _ = ray.wait(list(pending), num_returns=1)
            number = pending.pop(done[0])
            try:
                results[number] = ray.get(done[0])
            except Exception as exc:
                for ref in pending:
                    ray.cancel(ref)
                raise unwrap(exc, names[number]) from None
            bar.update(weights[number])
    return results
