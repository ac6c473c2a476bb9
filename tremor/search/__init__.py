"""Searching indexes with text: the Searcher, and (in their own modules) fusion and feedback stages."""

from tremor.search.searcher import Hit, Searcher, open_index

__all__ = ["Hit", "Searcher", "open_index"]
