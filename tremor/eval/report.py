"""Reports of evaluated systems: Markdown tables, JSON files, TREC run files and an nDCG@10 bar plot."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

from tremor.errors import TremorError
from tremor.eval.metrics import label
from tremor.eval.runs import write_run
from tremor.eval.systems import SystemResult


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write a text file through a temporary file renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path


def safe_name(name: str) -> str:
    """A file-name-safe form of a system or dataset name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "system"


def _mib(n: int | None) -> str:
    return "–" if n is None else f"{n / 2**20:.1f}"


def _num(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_table(results: Sequence[SystemResult], measures: Sequence[str] | None = None,
                   latency: bool = True) -> str:
    """One row per (dataset, system): the measures, then ms per query (batch; and one at a time where measured),
    index size without document texts, and build time."""
    if not results:
        raise TremorError("no results to report")
    measures = list(measures or results[0].evaluation.measures)
    several = len({r.dataset for r in results}) > 1
    timed = latency and any(r.latency_ms is not None for r in results)
    head = (["dataset"] if several else []) + ["system"] + [label(m) for m in measures]
    head += ["ms/query, batch"] + (["ms/query, one at a time (k=10)"] if timed else []) + ["index MiB", "build s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = ([r.dataset] if several else []) + [r.system]
        cells += [_num(r.evaluation.aggregate[m], 4) for m in measures]
        cells += [_num(r.batch_ms_per_query, 2)] + ([_num(r.latency_ms, 2)] if timed else [])
        cells += [_mib(r.index_bytes), _num(r.build_seconds, 1)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_system_outputs(out_dir: str | Path, result: SystemResult) -> dict[str, Path]:
    """Write ``<system>.run`` (TREC), ``<system>.metrics.json`` (aggregate and per-query metrics, timings)."""
    out_dir = Path(out_dir)
    stem = safe_name(result.system)
    run_path = write_run(out_dir / f"{stem}.run", result.run, tag=stem)
    metrics = {**result.summary(), "per_query": result.evaluation.per_query}
    metrics_path = write_text_atomic(out_dir / f"{stem}.metrics.json", json.dumps(metrics, indent=2) + "\n")
    return {"run": run_path, "metrics": metrics_path}


def bar_plot(results: Sequence[SystemResult], path: str | Path, measure: str = "nDCG@10",
             title: str | None = None) -> Path:
    """A grouped bar chart of ``measure``: one group per dataset, one bar per system, written as PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TremorError("plots need matplotlib: pip install 'tremor[plot]'") from None
    datasets = list(dict.fromkeys(r.dataset for r in results))
    systems = list(dict.fromkeys(r.system for r in results))
    values = {(r.dataset, r.system): r.evaluation.aggregate[measure] for r in results}
    width = 0.8 / max(len(systems), 1)
    figure, axes = plt.subplots(figsize=(max(4.0, 1.6 * len(datasets) * max(1, len(systems)) / 2 + 2), 3.6))
    for j, system in enumerate(systems):
        xs = [i + (j - (len(systems) - 1) / 2) * width for i in range(len(datasets))]
        ys = [values.get((d, system), 0.0) for d in datasets]
        bars = axes.bar(xs, ys, width=width * 0.95, label=system)
        axes.bar_label(bars, labels=[f"{y:.3f}" for y in ys], fontsize=7, padding=1)
    axes.set_xticks(range(len(datasets)), datasets)
    axes.set_ylabel(label(measure))
    axes.set_title(title or f"{label(measure)} on BEIR test sets")
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=min(len(systems), 4),
                frameon=False)
    axes.set_ylim(0, min(1.0, max(values.values(), default=1.0) * 1.18 + 0.02))
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    figure.savefig(temporary, dpi=120)
    plt.close(figure)
    os.replace(temporary, path)
    return path
