"""The HTTP search service: ``create_app`` (FastAPI), its limits, term-level explanations, and the web page."""

from tremor.serve.app import create_app
from tremor.serve.limits import ServeLimits

__all__ = ["ServeLimits", "create_app"]
