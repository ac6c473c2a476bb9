"""Random byte flips in every file of a small index: a load never crashes, fails only with a TremorError, and with
verification (checksums of every file) either fails or answers exactly as the undamaged index.

Without verification a flip that keeps the structure valid (a weight's low bits, a letter of a stored text) can go
unnoticed; the test counts those and checks they never crash or raise anything but a TremorError (the README states
this contract)."""

import json
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tremor

ROOT = Path(__file__).resolve().parents[1]
FLIPS = 200

WORKER = textwrap.dedent("""
    import json, shutil, sys
    from pathlib import Path
    from tremor.errors import TremorError
    from tremor.search import Searcher

    pristine, scratch, flips = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
    queries = ["cat on a mat", "seismic waves through rock", "quiet park pond", "earthquakes shake"]

    def answer(path, verify):
        try:
            searcher = Searcher.load(path, verify=verify)
            hits = searcher.batch_search(queries, k=4)
            return [[(h.id, h.score, h.title, h.text) for h in row] for row in hits]
        except TremorError as exc:
            return "error"
        except Exception as exc:
            return f"raw {type(exc).__name__}: {exc}"

    reference = answer(pristine, True)
    assert isinstance(reference, list), reference
    for i, (name, offset, mask) in enumerate(flips):
        print(json.dumps({"start": i}), flush=True)  # a crash leaves this as the last line
        if scratch.exists():
            shutil.rmtree(scratch)
        shutil.copytree(pristine, scratch)
        path = scratch / name
        data = bytearray(path.read_bytes())
        data[offset] ^= mask
        path.write_bytes(bytes(data))
        outcomes = {}
        for verify in (False, True):
            got = answer(scratch, verify)
            outcomes["verify" if verify else "default"] = got if isinstance(got, str) else \\
                "equal" if got == reference else "different"
        print(json.dumps({"flip": i, "file": name, **outcomes}), flush=True)
""")


def flips_for(index: Path, count: int, seed: int) -> list:
    """``count`` (file, offset, xor mask) flips spread over every file of the index in turn."""
    rng = random.Random(seed)
    files = sorted(str(p.relative_to(index)) for p in index.rglob("*") if p.is_file())
    out = []
    for i in range(count):
        name = files[i % len(files)]
        size = (index / name).stat().st_size
        out.append((name, rng.randrange(size), rng.randrange(1, 256)))
    return out


@pytest.mark.parametrize("spec", ["exact", "seismic,lambda=inf,knn=2"])
def test_random_byte_flips_never_crash_nor_pass_verification_with_a_different_answer(tmp_path, tiny_corpus, spec):
    index = tremor.build_index(tiny_corpus, tmp_path / "idx", index=spec, progress=False)
    flips = flips_for(index, FLIPS, seed=7)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.run([sys.executable, "-c", WORKER, str(index), str(tmp_path / "scratch"), json.dumps(flips)],
                            capture_output=True, text=True, env=env, timeout=600)
    lines = [json.loads(line) for line in worker.stdout.splitlines()]
    results = [line for line in lines if "flip" in line]
    last = lines[-1] if lines else None
    where = flips[last["start"]] if last and "start" in last else ""
    assert worker.returncode == 0, (f"worker died with {worker.returncode} at {last}: {where}", worker.stderr[-3000:])
    assert len(results) == FLIPS
    raw = [r for r in results if r["default"].startswith("raw") or r["verify"].startswith("raw")]
    assert raw == [], sorted({(r['file'], r['default'][:120], r['verify'][:120]) for r in raw})
    assert {r["verify"] for r in results} <= {"error", "equal"}
    assert {r["default"] for r in results} <= {"error", "equal", "different"}
    # every file was damaged at least once, and verification refused the damage wherever it changed an answer
    assert {r["file"] for r in results} == {str(p.relative_to(index)) for p in index.rglob("*") if p.is_file()}
    # without verification only damage to stored values can go unnoticed: weights, texts in the document store, or
    # the encoder's settings (a changed stop word or k1 digit still parses)
    values = {"arrays/post_values.npy", "arrays/doc_values.npy", "arrays/block_min.npy", "arrays/block_scale.npy",
              "arrays/list_max.npy", "docstore.sqlite", "encoder/encoder.json"}
    assert {r["file"] for r in results if r["default"] == "different"} <= values
    counts = {key: sum(r["default"] == key for r in results) for key in ("error", "equal", "different")}
    print(f"{spec}: {FLIPS} flips, default load {counts}, verified load "
          f"{ {key: sum(r['verify'] == key for r in results) for key in ('error', 'equal')} }; undetected without "
          f"verification in {sorted({r['file'] for r in results if r['default'] == 'different'})}")
