"""Several server processes on one port, for when a single process's Python work (HTTP parsing, JSON, the glue
around each search) is the limit rather than the search kernels.

Each process opens its own listening socket with SO_REUSEPORT, so the kernel spreads new connections evenly across
them (a shared accepting socket lets one busy process take most of a burst of keep-alive connections). Every process
memory-maps the same index files, so the arrays are in memory once, in the page cache. The parent only starts the
processes, stops them on SIGINT/SIGTERM, and stops all of them if one dies.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import time

from tremor.errors import TremorError


def _listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _serve_one(host: str, port: int, log_level: str, access_log: bool) -> None:
    import uvicorn

    from tremor.serve.app import app_from_environment

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop (it sends SIGTERM)
    app = app_from_environment()
    sock = _listening_socket(host, port)
    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


def run_processes(processes: int, host: str, port: int, log_level: str = "warning", access_log: bool = False) -> None:
    """Run ``processes`` servers of the app ``app_from_environment`` builds, all listening on ``host:port``."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise TremorError("--processes > 1 needs SO_REUSEPORT (Linux, BSD, macOS)")
    try:
        _listening_socket(host, port).close()  # the port is free (or already shared with SO_REUSEPORT)
    except OSError as exc:
        raise TremorError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_serve_one, args=(host, port, log_level, access_log), daemon=True)
                for _ in range(processes)]
    stopping = False

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for child in children:
            child.start()
        while not stopping and all(child.is_alive() for child in children):
            time.sleep(0.2)
    finally:
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in children:
            child.join(max(0.1, deadline - time.monotonic()))
            if child.is_alive():
                child.kill()
                child.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    failed = [child.exitcode for child in children if child.exitcode not in (0, -signal.SIGTERM)]
    if failed and not stopping:
        raise TremorError(f"a server process stopped with exit code {failed[0]}; the others were stopped too")
