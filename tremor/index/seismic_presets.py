"""Named Seismic search settings: ``preset="recall95"`` instead of choosing query_cut and heap_factor by hand.

Each preset is the fastest (query_cut, heap_factor) found to reach its recall@10 target (against exact search) for
an index built with the default parameters (λ 3500, β 0.1, α 0.4), tuned on splade-tiny vectors of scifact and
nfcorpus with their real queries (scripts/tune_seismic_presets.py, results/seismic_presets.md). Other collections,
encoders or build parameters may need other settings: measure recall there before relying on a preset.
"""

from __future__ import annotations

from tremor.errors import QueryError

PRESETS: dict[str, dict[str, int | float]] = {
    "recall90": {"query_cut": 4, "heap_factor": 0.9},
    "recall95": {"query_cut": 5, "heap_factor": 0.8},
    "recall99": {"query_cut": 8, "heap_factor": 0.7},
}


def preset_params(name: str | None) -> dict[str, int | float]:
    """The search parameters of preset ``name`` ({} for None), or QueryError naming the known presets."""
    if name is None:
        return {}
    if name not in PRESETS:
        raise QueryError(f"unknown seismic preset {name!r}; known: {', '.join(PRESETS)}")
    return dict(PRESETS[name])
