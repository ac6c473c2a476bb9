"""Limits of the HTTP service: request size, query length, k, time, concurrency, and the optional API key.

``ServeLimits`` holds the numbers; ``GuardMiddleware`` (plain ASGI, so it costs little per request) refuses an
oversized body with 413 and a missing or wrong API key with 401 before the application reads anything;
``SearchPool`` runs searches on worker threads with a cap on those running and those waiting (429 beyond it) and a
per-request timeout (408).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote_to_bytes

API_KEY_ENV = "TREMOR_API_KEY"
API_KEY_HEADER = "x-api-key"
COOKIE = "tremor_api_key"


@dataclass(frozen=True)
class ServeLimits:
    """What one request may ask for, and how much work the server takes on at once."""

    max_k: int = 1000                  # largest k (and hybrid depth) a request may ask for
    max_query_chars: int = 1000        # longest query text
    max_document_chars: int = 100_000  # longest text POST /encode takes on the document side
    max_batch: int = 64                # queries in one batch request
    max_vector_terms: int = 4096       # entries of a pre-encoded query vector
    max_body_bytes: int = 1 << 20      # request body size
    timeout_s: float = 10.0            # per request, waiting for a worker included
    workers: int = 4                   # searches running at once (threads)
    max_waiting: int = 256             # searches queued for a worker before new ones get 429

    def check(self) -> None:
        for name in ("max_k", "max_query_chars", "max_document_chars", "max_batch", "max_vector_terms",
                     "max_body_bytes", "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 (got {getattr(self, name)})")
        if not self.timeout_s > 0 or self.max_waiting < 0:
            raise ValueError("timeout_s must be > 0 and max_waiting >= 0")


class ApiError(Exception):
    """An error answered as JSON ``{"error": {"status": ..., "message": ...}}`` with a 4xx status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_body(status: int, message: str) -> bytes:
    return json.dumps({"error": {"status": status, "message": message}}, ensure_ascii=False).encode("utf-8")


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the service reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class GuardMiddleware:
    """Plain ASGI middleware: the API key (when set) on every request, and the body size limit."""

    def __init__(self, app, max_body_bytes: int, api_key: str | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.api_key = api_key.encode("utf-8") if api_key else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        if self.api_key is not None:
            how = self._authorized(scope, headers)
            if how is None:
                await _send_error(send, 401, "missing or wrong API key: send it in the X-API-Key header (or "
                                             "'Authorization: Bearer KEY'; open the web page as /?api_key=KEY)",
                                  {"www-authenticate": "Bearer"})
                return
            if how == "query":  # the web page: a cookie lets its scripts, styles and API calls through
                send = self._with_cookie(send)
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _send_error(send, 400, "the Content-Length header is not a number")
                return
            if declared > self.max_body_bytes:
                await _send_error(send, 413, self._too_large())
                return
        if scope.get("method") in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        # read the whole body first (it is small by construction), counting, then hand it on in one piece
        chunks, received = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body = message.get("body", b"")
            received += len(body)
            if received > self.max_body_bytes:
                await _send_error(send, 413, self._too_large())
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return (f"request body over the server's limit of {self.max_body_bytes} bytes; send fewer or shorter "
                "queries (or start the server with a larger --max-body)")

    def _authorized(self, scope, headers: dict) -> str | None:
        """How the request proved it knows the key ('header', 'cookie' or 'query'), or None."""
        candidates = [("header", headers.get(API_KEY_HEADER.encode()))]
        auth = headers.get(b"authorization", b"")
        if auth[:7].lower() == b"bearer ":
            candidates.append(("header", auth[7:].strip()))
        for part in headers.get(b"cookie", b"").split(b";"):
            name, _, value = part.strip().partition(b"=")
            if name == COOKIE.encode():
                candidates.append(("cookie", unquote_to_bytes(value)))
        if scope.get("method") == "GET" and scope.get("query_string"):
            values = parse_qs(scope["query_string"].decode("latin-1")).get("api_key")
            if values:
                candidates.append(("query", values[0].encode("utf-8")))
        for how, given in candidates:
            if given is not None and hmac.compare_digest(given, self.api_key):
                return how
        return None

    def _with_cookie(self, send):
        cookie = (f"{COOKIE}={quote(self.api_key.decode('utf-8'), safe='')}; Path=/; HttpOnly; "
                  "SameSite=Strict").encode("latin-1")

        async def sending(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        return sending


async def _send_error(send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    body = error_body(status, message)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class SearchPool:
    """Worker threads for searches (the Numba kernels release the GIL, so they run on every core), with a cap on
    queued work and a per-request timeout. A timed-out search still holds its worker until the kernel returns (a
    thread cannot be stopped), so the cap counts real load; one that times out while still queued never runs."""

    def __init__(self, limits: ServeLimits) -> None:
        self.limits = limits
        self.executor = ThreadPoolExecutor(max_workers=limits.workers, thread_name_prefix="tremor-search")
        self._lock = threading.Lock()
        self.pending = 0  # submitted and not finished (running + waiting)

    async def run(self, fn: Callable[..., Any], *args) -> Any:
        """``fn(*args)`` on a worker thread; ApiError 429 when the queue is full, 408 after the timeout."""
        with self._lock:
            if self.pending >= self.limits.workers + self.limits.max_waiting:
                raise ApiError(429, f"the server is busy ({self.pending} searches running or queued); retry in a "
                                    "moment", {"retry-after": "1"})
            self.pending += 1
        abandoned = threading.Event()

        def job():
            try:
                if abandoned.is_set():
                    return None
                return fn(*args)
            finally:
                with self._lock:
                    self.pending -= 1

        future = asyncio.get_running_loop().run_in_executor(self.executor, job)
        try:
            # shielded: a cancelled future would never run its job, and the job is what releases its place
            return await asyncio.wait_for(asyncio.shield(future), self.limits.timeout_s)
        except TimeoutError:
            abandoned.set()
            raise ApiError(408, f"the search took longer than the server's limit of {self.limits.timeout_s:g} s; "
                                "ask for a smaller k or depth, fewer queries, or a cheaper search (lower query_cut, "
                                "no PRF)") from None

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
