#!/usr/bin/env bash
# The paper's protocol on one CUDA GPU for a fixed time (benchmarks/gpu_study.py): several
# worker processes share the device, each measuring its slice of a seeded sample of NB201 cells
# at C=16 N=5 into its own resumable store; then the stores are joined, analysed and replayed.
# Installs this checkout without touching the machine's PyTorch.
#   bash benchmarks/gpu_study.sh [results.json] [--minutes 8 --workers 6 --data PATH ...]
#   bash benchmarks/gpu_study.sh --smoke [results.json]   # the same steps, tiny, on the CPU
# The data file defaults to ../shared/data/cifar10_subset.npz (the 10,000-image subset).
set -euo pipefail
cd "$(dirname "$0")/.."
smoke=()
if [ "${1:-}" = "--smoke" ]; then smoke=(--smoke); shift; fi
out="gpu_study.json"
if [ -n "${1:-}" ] && [ "${1#--}" = "$1" ]; then out="$1"; shift; fi
python3 -c "import lga_lightning" 2>/dev/null || python3 -m pip install -q --no-deps -e .
python3 benchmarks/gpu_study.py "${smoke[@]}" --out "$out" "$@"
