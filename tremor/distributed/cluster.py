"""Joining or starting the Ray cluster that sharded builds and fan-out search run on.

``address`` is what ``--ray`` takes: ``"auto"`` joins the cluster named by ``RAY_ADDRESS`` or started on this machine
with ``ray start``, and otherwise starts a local one in this process; anything else (``"10.0.0.5:6379"``,
``"ray://head:10001"``) must name a running cluster; ``"local"`` always starts a local one. Failures become a
``RayClusterError`` saying what to do.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from types import ModuleType

from tremor.errors import TremorError


class RayClusterError(TremorError):
    """Ray is missing, or no cluster could be joined or started."""


class ShardError(TremorError):
    """A shard's worker failed (died, or could not load its shard) and retrying did not help."""


def require_ray() -> ModuleType:
    """The ``ray`` module, or a RayClusterError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise RayClusterError(f"tremor.distributed needs Ray: pip install 'tremor[ray]' ({exc})") from None
    return ray


def _existing_cluster() -> bool:
    if os.environ.get("RAY_ADDRESS"):
        return True
    try:
        from ray._private.utils import read_ray_address
    except ImportError:  # the helper moved; fall back to starting a local cluster
        return False
    try:
        return bool(read_ray_address())
    except Exception:
        return False


def _check_reachable(address: str, where: str, timeout_s: float = 5.0) -> None:
    """Fail at once when a ``host:port`` address refuses connections (Ray itself would retry for minutes)."""
    host, _, port = address.rpartition(":")
    if "://" in address or address == "auto" or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RayClusterError(f"could not join {where}: nothing answers there ({exc}); start it with "
                              f"'ray start --head --port {port}' or pass --ray auto for a local cluster") from None


def connect(address: str | None = "auto", num_cpus: int | None = None, object_store_memory: int | None = None,
            **init_options) -> bool:
    """Make sure this process is connected to a Ray cluster; return True when this call started or joined it.

    Already connected: nothing happens (False). ``num_cpus`` and ``object_store_memory`` apply only to a local
    cluster started here. Extra ``init_options`` go to ``ray.init``.
    """
    ray = require_ray()
    if ray.is_initialized():
        return False
    address = address or "auto"
    options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False, **init_options}
    if address == "local" or (address == "auto" and not _existing_cluster()):
        options.update(address="local", num_cpus=num_cpus, object_store_memory=object_store_memory)
        where = "a local Ray cluster"
        _bind_loopback(ray)
    else:
        options.update(address=address)
        where = f"the Ray cluster at '{address}'"
        _check_reachable(address, where)
    try:
        ray.init(**options)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError... depending on the cause
        hint = ("check the address and that 'ray status' answers there" if where.startswith("the")
                else "check free memory and /tmp/ray, or start one with 'ray start --head' and pass its address")
        raise RayClusterError(f"could not start or join {where}: {type(exc).__name__}: {exc}; {hint}") from None
    return True


def _bind_loopback(ray: ModuleType) -> None:
    """Keep a local cluster on 127.0.0.1: Ray otherwise announces the machine's network address and its processes
    talk over it. Ray's own switch for a single-machine cluster (read when Ray starts a node, and inherited by its
    worker processes through the environment)."""
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    try:
        from ray._private import ray_constants
    except ImportError:  # the module moved: the environment variable still reaches the processes Ray starts
        return
    ray_constants.ENABLE_RAY_CLUSTER = False


@contextlib.contextmanager
def cluster(address: str | None = "auto", **options) -> Iterator[None]:
    """Connected to Ray for the block; a cluster started or joined here is left again at its end."""
    ray = require_ray()
    started = connect(address, **options)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def cluster_cpus() -> float:
    """CPUs the connected cluster offers in all."""
    return float(require_ray().cluster_resources().get("CPU", 0.0))


def cluster_gpus() -> float:
    """GPUs the connected cluster offers in all."""
    return float(require_ray().cluster_resources().get("GPU", 0.0))


def available_cpus() -> float:
    """CPUs of the connected cluster not held by tasks or actors right now."""
    return float(require_ray().available_resources().get("CPU", 0.0))
