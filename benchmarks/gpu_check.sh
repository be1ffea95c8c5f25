#!/usr/bin/env bash
# The prepared device check (benchmarks/gpu_check.py) on a machine with one CUDA GPU and a
# PyTorch that sees it: installs this checkout without touching that PyTorch, then runs the
# GPU tests, the kernel speed and the callback overhead into one results file.
#   bash benchmarks/gpu_check.sh [results.json]        # about 5 minutes on one GPU
#   bash benchmarks/gpu_check.sh --smoke [results.json] # the same steps, tiny, on the CPU
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=()
if [ "${1:-}" = "--smoke" ]; then smoke=(--smoke); shift; fi
out="${1:-gpu_check.json}"
python3 -c "import lga_lightning" 2>/dev/null || python3 -m pip install -q --no-deps -e .
python3 benchmarks/gpu_check.py "${smoke[@]}" --out "$out"
