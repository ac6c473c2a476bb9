"""Whether the Hugging Face hub can be reached, found out once and quickly.

Without this, a model name that is neither a local directory nor cached waits through the hub client's retries
(about 25 seconds offline) before failing; with it, offline machines fail at once with the usual message.
"""

from __future__ import annotations

import functools
import os
import socket
import threading
from urllib.parse import urlparse

PROBE_SECONDS = 2.0


def hub_offline_setting() -> bool:
    """HF_HUB_OFFLINE (or huggingface_hub's own reading of it) is set."""
    try:
        import huggingface_hub.constants

        if huggingface_hub.constants.HF_HUB_OFFLINE:
            return True
    except ImportError:
        pass
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


@functools.cache
def hub_reachable(timeout: float = PROBE_SECONDS) -> bool:
    """A TCP connection to the hub's endpoint (HF_ENDPOINT or huggingface.co, port 443) opens within ``timeout``
    seconds, name lookup included. Cached for the process."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (80 if endpoint.scheme == "http" else 443)
    result = {"ok": False}

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result["ok"] = True
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)  # name lookup has no timeout of its own
    thread.start()
    thread.join(timeout)
    return result["ok"]


def downloads_possible() -> bool:
    """Downloads are allowed and the hub answers."""
    return not hub_offline_setting() and hub_reachable()
