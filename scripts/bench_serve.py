"""Load test of ``tremor serve`` on loopback: 1, 4, 16 and 64 concurrent clients, each for a bounded time, against
the same queries run in-process, in one run.

    python scripts/bench_serve.py [--data ../shared/data/beir] [--dataset scifact] [--duration 5]
                                  [--levels 1 4 16 64] [--processes 1 2] [--index exact]

The index is BM25 over the dataset's corpus (built into a temporary directory). The server is a real
``tremor serve`` subprocess, once per ``--processes`` value (one process with its search threads, the default, and
several processes sharing the port); the clients are keep-alive HTTP/1.1 connections driven by one asyncio loop in this
process (each sends POST /search {"q", "k": 10} and waits for the answer before the next). Reported per level:
requests/s, latency p50/p99 as the client sees it, errors (any status other than 200, or a broken connection), and
the server's resident memory (all its processes). In-process: ``Searcher.search(q, k=10)`` on the same queries, one
at a time, so the HTTP overhead at one client is p50(HTTP) − p50(in-process). Writes results/serve/bench.json and
bench.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def read_queries(folder: Path) -> list[str]:
    path = folder / "queries.jsonl.gz"
    opener = gzip.open if path.exists() else open
    path = path if path.exists() else folder / "queries.jsonl"
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def memory_mib(pid: int) -> dict:
    """Resident memory of a server and its worker processes, MiB: RSS summed (shared pages, such as the memory-mapped
    index, counted once per process), PSS summed (shared pages split between them), and the largest peak RSS."""
    rss = pss = peak = 0.0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text().splitlines()
            rollup = Path(f"/proc/{member}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        values = {line.partition(":")[0]: line.partition(":")[2].split() for line in status + rollup}
        rss += int(values.get("VmRSS", [0])[0]) / 1024
        pss += int(values.get("Pss", [0])[0]) / 1024
        peak = max(peak, int(values.get("VmHWM", [0])[0]) / 1024)
    return {"rss_mib": rss, "pss_mib": pss, "peak_rss_mib": peak}


def percentiles(latencies_s: list[float]) -> dict:
    ms = np.asarray(latencies_s) * 1000
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean())}


def in_process(index_dir: Path, queries: list[str], duration: float) -> dict:
    """One query at a time through the Searcher (encode, search, ids and texts), for ``duration`` seconds."""
    from tremor.search import Searcher

    searcher = Searcher.load(index_dir)
    for q in queries[:50]:
        searcher.search(q, k=10)
    latencies = []
    stop = time.perf_counter() + duration
    i = 0
    started = time.perf_counter()
    while time.perf_counter() < stop:
        t0 = time.perf_counter()
        searcher.search(queries[i % len(queries)], k=10)
        latencies.append(time.perf_counter() - t0)
        i += 1
    elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "qps": len(latencies) / elapsed, **percentiles(latencies)}


async def _client(port: int, bodies: list[bytes], start: int, stride: int, stop: float, latencies: list[float],
                  errors: list[str]) -> None:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        errors.append(f"connect: {exc}")
        return
    i = start
    try:
        while time.perf_counter() < stop:
            body = bodies[i % len(bodies)]
            i += stride
            request = (b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            t0 = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            parts = status_line.split()
            if len(parts) < 2 or parts[1] != b"200":
                errors.append(status_line.decode("latin-1").strip() or "connection closed")
                if not status_line:
                    return
    except (OSError, asyncio.IncompleteReadError) as exc:
        errors.append(f"connection: {exc!r}")
    finally:
        writer.close()


async def _level(port: int, bodies: list[bytes], clients: int, duration: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    # a short warm-up at this concurrency, not counted
    warm_stop = time.perf_counter() + min(1.0, duration / 5)
    await asyncio.gather(*(_client(port, bodies, c, clients, warm_stop, [], []) for c in range(clients)))
    started = time.perf_counter()
    stop = started + duration
    await asyncio.gather(*(_client(port, bodies, c, clients, stop, latencies, errors) for c in range(clients)))
    elapsed = time.perf_counter() - started
    return {"clients": clients, "requests": len(latencies), "qps": len(latencies) / elapsed, "errors": len(errors),
            "error_samples": sorted(set(errors))[:5], **percentiles(latencies)}


def start_server(index_dir: Path, port: int, log: Path, extra: list[str]) -> subprocess.Popen:
    with open(log, "w") as handle:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen([sys.executable, "-m", "tremor", "serve", str(index_dir), "--host", "127.0.0.1",
                                    "--port", str(port), *extra], stdout=handle, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("server did not start")


def targets_of(levels: list[dict], ip: dict) -> list:
    """The three targets of the serving issue, as (name, measured value, met)."""
    by = {r["clients"]: r for r in levels}
    targets = []
    if 64 in by:
        targets.append(("zero errors at 64 clients", f"{by[64]['errors']} errors", by[64]["errors"] == 0))
    if 1 in by:
        overhead = by[1]["p50_ms"] - ip["p50_ms"]
        targets.append(("HTTP p50 overhead over in-process at 1 client <= 1 ms", f"{overhead:.3f} ms",
                        overhead <= 1.0))
    if 1 in by and 16 in by:
        ratio = by[16]["qps"] / by[1]["qps"]
        targets.append(("QPS at 16 clients >= 1.6x QPS at 1 client", f"{ratio:.2f}x", ratio >= 1.6))
    return targets


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_markdown(report: dict, path: Path) -> None:
    ip = report["in_process"]
    lines = [
        f"# tremor serve: load on loopback ({report['dataset']}, BM25 {report['index']}, k=10)", "",
        f"{report['cores']} cores ({report['machine']}), shared with other work (load average at the end "
        f"{report['load_average_at_end'][0]:.1f}); {report['duration_s']:g} s per level after a short warm-up; "
        f"{report['queries']} distinct queries, POST /search with titles and snippets.", "",
        f"Command: `{report['command']}`", "",
        "| server | clients | requests | QPS | p50 ms | p99 ms | errors | RSS MiB (sum) | PSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in report["runs"]:
        for r in run["levels"]:
            lines.append(f"| {run['processes']} process(es) | {r['clients']} | {r['requests']} | {r['qps']:.0f} | "
                         f"{r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {r['errors']} | {r['rss_mib']:.0f} | "
                         f"{r['pss_mib']:.0f} |")
    lines += [f"| in-process `Searcher.search` | 1 | {ip['requests']} | {ip['qps']:.0f} | {ip['p50_ms']:.3f} | "
              f"{ip['p99_ms']:.3f} | – | – | – |", ""]
    for run in report["runs"]:
        lines += [f"Targets, {run['processes']} process(es):", ""]
        lines += [f"- {name}: {value} — {'met' if ok else 'NOT met'}" for name, value, ok in run["targets"]]
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "beir")
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--index", default="exact", help="index spec for the BM25 index")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per level")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2],
                        help="server process counts to measure, one server each")
    parser.add_argument("--server-arg", action="append", default=[], help="extra 'tremor serve' argument")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "serve")
    args = parser.parse_args()
    if max(args.levels) > 256 or args.duration > 60:
        raise SystemExit("at most 256 clients and 60 s per level")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    from tremor.index.builder import build_index

    folder = args.data / args.dataset
    queries = read_queries(folder)
    bodies = [json.dumps({"q": q, "k": 10}).encode() for q in queries]
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = build_index(folder, Path(tmp) / args.dataset, index=args.index, progress=False)
        ip = in_process(index_dir, queries, args.duration)
        print(f"in-process: {ip['qps']:.0f} q/s, p50 {ip['p50_ms']:.3f} ms, p99 {ip['p99_ms']:.3f} ms", flush=True)
        runs = []
        for processes in args.processes:
            port = free_port()
            server_args = [*args.server_arg, "--processes", str(processes)]
            server = start_server(index_dir, port, Path(tmp) / "server.log", server_args)
            levels = []
            try:
                time.sleep(3 if processes > 1 else 0)  # every worker process opens the index before answering
                for clients in args.levels:
                    result = asyncio.run(_level(port, bodies, clients, args.duration))
                    result.update(memory_mib(server.pid))
                    levels.append(result)
                    print(f"{processes} process(es), {clients:3d} clients: {result['qps']:.0f} q/s, p50 "
                          f"{result['p50_ms']:.3f} ms, p99 {result['p99_ms']:.3f} ms, errors {result['errors']}, "
                          f"RSS {result['rss_mib']:.0f} MiB (PSS {result['pss_mib']:.0f})", flush=True)
            finally:
                server.terminate()
                server.wait(timeout=30)
            runs.append({"processes": processes, "server_args": " ".join(server_args), "levels": levels,
                         "targets": targets_of(levels, ip)})
    report = {"dataset": args.dataset, "index": args.index, "duration_s": args.duration, "queries": len(queries),
              "cores": os.cpu_count(), "machine": f"{platform.machine()}, {platform.python_version()}",
              "load_average_at_end": os.getloadavg(), "in_process": ip, "runs": runs,
              "command": " ".join(["python", "scripts/bench_serve.py", *sys.argv[1:]])}
    (args.out / "bench.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    write_markdown(report, args.out / "bench.md")
    for run in runs:
        for name, value, ok in run["targets"]:
            print(f"{run['processes']} process(es): {name}: {value} ({'met' if ok else 'NOT met'})")


if __name__ == "__main__":
    main()
