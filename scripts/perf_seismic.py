"""A steady Seismic search loop for ``perf``, plus the machine code to read its samples against.

Numba's compiled code has no symbols, so ``perf report`` shows bare addresses. This script searches a batch of
queries on one thread for a few seconds, prints where the batch kernel's code starts, and with ``--dump DIR`` writes
every anonymous executable mapping of the process (the compiled kernels, Numba's runtime) to ``DIR/<start>.bin``, so
a hot address can be disassembled in context:

    perf record -o /tmp/seismic.perf python scripts/perf_seismic.py --index C/scifact-splade-seismic \\
        --queries C/scifact-queries --dump /tmp/seismic-jit
    perf report -i /tmp/seismic.perf --no-children --sort symbol | head -40
    objdump -D -b binary -mi386:x86-64 /tmp/seismic-jit/<start>.bin | less     # offset = address - start

Reference counting shows up as samples in a 4 KB mapping whose code is ``lock incq`` / ``lock decq`` (Numba's
``NRT_incref`` / ``NRT_decref``).
"""

from __future__ import annotations

import argparse
import ctypes
import time
from pathlib import Path

import numba

from tremor.encoders.vector_files import read_vectors
from tremor.index import open_index_dir
from tremor.index import seismic_kernels as kernels


def dump_executable_mappings(out: Path, limit: int = 64 << 20) -> list[str]:
    """Write this process's anonymous executable mappings (JIT code) to ``out``; returns the file names."""
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if "x" not in fields[1] or len(fields) >= 6:  # executable and not backed by a file
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if end - start <= limit:
            name = f"{start:x}.bin"
            (out / name).write_bytes(ctypes.string_at(start, end - start))
            names.append(name)
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index", required=True, help="a Seismic index directory")
    parser.add_argument("--queries", required=True, help="query vectors (tremor encode output)")
    parser.add_argument("--query-cut", type=int, default=5)
    parser.add_argument("--heap-factor", type=float, default=0.9)
    parser.add_argument("--limit", type=int, default=600, help="queries in the batch")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to keep searching")
    parser.add_argument("--dump", type=Path, default=None, help="write the JIT code mappings here")
    args = parser.parse_args()
    numba.set_num_threads(1)
    index = open_index_dir(Path(args.index))[0]
    _, queries, _ = read_vectors(args.queries, mmap=False)
    queries = queries[:args.limit]
    params = {"query_cut": args.query_cut, "heap_factor": args.heap_factor, "approximate_threshold": 0}
    index.search(queries, 10, **params)
    rounds, started = 0, time.perf_counter()
    while time.perf_counter() - started < args.seconds:
        index.search(queries, 10, **params)
        rounds += 1
    elapsed = time.perf_counter() - started
    print(f"{rounds} batches of {len(queries)} queries: {elapsed / rounds / len(queries) * 1e3:.4f} ms a query")
    for compiled in kernels.search_serial.overloads.values():
        address = compiled.library.get_pointer_to_function(compiled.fndesc.llvm_func_name)
        print(f"search_serial code at {address:#x}")
    if args.dump is not None:
        names = dump_executable_mappings(args.dump)
        print(f"wrote {len(names)} mappings to {args.dump}")


if __name__ == "__main__":
    main()
