#!/usr/bin/env bash
# GPU check: the encoder and training tests with CUDA visible, then encoding throughput on splade-tiny and the
# MiniLM backbone (tremor on CUDA fp32 and bf16 autocast, against sentence-transformers' SparseEncoder and the bare
# transformers loop, and the same on the CPU), written as JSON + Markdown under $OUT (default results/gpu).
# Sized for under 8 minutes on one H100/H200. Run from the repository root:
#
#     OUT=/some/folder bash scripts/gpu_check.sh
#
# It installs tremor with its dev extra first when `import tremor` fails (that needs the package index).
set -uo pipefail

OUT="${OUT:-results/gpu}"
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY="${PYTHON:-python}"
DATA="${BEIR_DATA:-../shared/data/beir}"
started=$(date +%s)

if ! "$PY" -c "import tremor, cognition" 2>/dev/null; then
    "$PY" -m pip install -q -e ".[dev]" || { echo "install failed" >&2; exit 1; }
fi

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/nvidia-smi.csv" 2>&1
"$PY" - <<'EOF' > "$OUT/environment.json"
import json, platform, torch
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
                  "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                  "bf16": torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
                  "python": platform.python_version()}, indent=2))
EOF
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "CUDA is not available to torch here (a CPU-only torch wheel?): see $OUT/environment.json" >&2
    exit 2
fi

# 1. tests with CUDA visible: device="auto" resolves to CUDA in the encoders and the trainer
timeout 240 "$PY" -m pytest -q -x tests/test_encoders.py tests/test_models.py tests/test_dense.py \
    tests/test_training.py tests/test_training_losses.py --junitxml="$OUT/tests.xml" > "$OUT/tests.log" 2>&1
tests_rc=$?

# 2. throughput: splade-tiny and the MiniLM backbone, CUDA fp32 / CUDA bf16 / CPU
runs=()
for model in splade-tiny minilm-mlm; do
    for setting in "cuda fp32" "cuda bf16" "cpu fp32"; do
        set -- $setting
        name="bench_${model//-/_}_$1_$2"
        docs=512; rounds=3
        if [ "$1" = cpu ]; then docs=128; fi
        timeout 150 "$PY" scripts/bench_encoders.py --model "$model" --device "$1" --precision "$2" \
            --dataset "$DATA/scifact" --docs "$docs" --queries 50 --rounds "$rounds" --batch-size 64 \
            --out "$OUT/$name" > "$OUT/$name.log" 2>&1
        runs+=("$name:$?")
    done
done

# 3. the report
"$PY" - "$OUT" "$tests_rc" "$started" "${runs[@]}" <<'EOF'
import json, sys, time
from pathlib import Path

out, tests_rc, started, runs = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
report = {"environment": json.loads((out / "environment.json").read_text()), "tests_exit_code": tests_rc,
          "tests_tail": (out / "tests.log").read_text().splitlines()[-3:], "benchmarks": {},
          "seconds": round(time.time() - started)}
lines = ["# GPU check", "", f"Device: {report['environment']['device']}, torch {report['environment']['torch']} "
         f"(CUDA {report['environment']['cuda']}). Tests (encoders, models, dense, training) exit code {tests_rc}: "
         + " / ".join(report["tests_tail"]), "",
         "| model | device | precision | tremor docs/s | sentence-transformers docs/s | bare docs/s | tremor / ST | "
         "tremor one query ms |", "|---|---|---|---|---|---|---|---|"]
for entry in runs:
    name, rc = entry.rsplit(":", 1)
    path = out / f"{name}.json"
    if not path.is_file():
        report["benchmarks"][name] = {"exit_code": int(rc)}
        lines.append(f"| {name} | failed (exit {rc}, see {name}.log) | | | | | | |")
        continue
    r = json.loads(path.read_text())
    report["benchmarks"][name] = r
    rate = r["docs_per_s"]
    device, precision = name.rsplit("_", 2)[1:]
    lines.append(f"| {r['model']} | {device} | {precision} | {rate['tremor']:.0f} | "
                 f"{rate['sentence-transformers']:.0f} | {rate['bare']:.0f} | "
                 f"{r['tremor_speedup_over']['sentence-transformers']:.2f}× | "
                 f"{r['one_query_latency']['tremor']['mean_ms']:.2f} |")
lines += ["", f"Total {report['seconds']} s. sentence-transformers and the bare loop run in fp32; tremor's precision "
          "is the column's."]
(out / "gpu_check.json").write_text(json.dumps(report, indent=2))
(out / "gpu_check.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
