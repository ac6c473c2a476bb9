"""What the load-time structural checks cost: index load with and without them, and with full checksums.

    python scripts/bench_load_checks.py --docs 100000 --out results/load_checks

Builds an exact and a Seismic index over a seeded SPLADE-like synthetic collection (scripts/make_synthetic.py),
writes them as index directories, and times, in the same run, the best of ``--repeats`` loads (files in the page
cache): arrays memory-mapped without any check (the previous load path), ``open_index`` (structural checks), and
``open_index(verify=True)`` (checks and the sha256 of every array). Writes ``load_checks.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_synthetic import generate

from tremor.index import index_class
from tremor.index.builder import write_index
from tremor.index.storage import load_arrays, read_manifest
from tremor.search.searcher import open_index


def unchecked_load(path: Path):
    """The load path before the checks: manifest, memory-mapped arrays, the index object."""
    manifest = read_manifest(path)
    arrays = load_arrays(path, manifest["arrays"])
    cls = index_class(manifest["index_type"])
    if manifest["index_type"] == "exact":
        return cls(*(arrays[n] for n in ("doc_indptr", "doc_indices", "doc_values", "post_indptr", "post_docs",
                                         "post_values")), manifest["vocab_size"], manifest.get("vocab_id"))
    names = cls.NIBBLE_ARRAY_NAMES if "summary_table_start" in arrays else cls.ARRAY_NAMES
    return cls({n: arrays[n] for n in names}, manifest["params"], manifest["vocab_size"],
               manifest.get("vocab_id"))


def best_ms(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return 1000.0 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("results/load_checks"))
    args = parser.parse_args()
    docs, _ = generate(args.docs, 10, progress=False)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tremor-load-") as tmp:
        for spec in ("exact", "seismic"):
            index = index_class(spec).build(docs) if spec == "exact" else \
                index_class(spec).build(docs, progress=False)
            path = write_index(Path(tmp) / spec, index, None, None)
            size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
            unchecked = best_ms(lambda p=path: unchecked_load(p), args.repeats)
            checked = best_ms(lambda p=path: open_index(p), args.repeats)
            verified = best_ms(lambda p=path: open_index(p, verify=True), args.repeats)
            rows.append({"index": spec, "documents": args.docs, "postings": int(docs.nnz), "bytes": size,
                         "unchecked_ms": round(unchecked, 2), "checked_ms": round(checked, 2),
                         "verified_ms": round(verified, 2), "checked_over_unchecked": round(checked / unchecked, 1),
                         "checked_ms_per_gb": round(checked / (size / 1e9), 1)})
            print(rows[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load_checks.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| index | documents | postings | size (MB) | load, no checks (ms) | load with checks (ms) | "
             "with checksums (ms) | checks / no checks |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['index']} | {r['documents']:,} | {r['postings']:,} | {r['bytes'] / 1e6:.0f} | "
                     f"{r['unchecked_ms']} | {r['checked_ms']} | {r['verified_ms']} | {r['checked_over_unchecked']}× |")
    (args.out / "load_checks.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
