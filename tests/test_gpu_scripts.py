"""The prepared device check runs end to end on the CPU (``--smoke``) and writes its results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_device_check_smoke_run_passes_and_writes_one_results_file(tmp_path):
    out = tmp_path / "check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--smoke", "--out", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    steps = {step["step"]: step for step in report["steps"]}
    assert list(steps) == ["gpu tests", "ntk_speed", "callback_overhead"]
    assert all(step["returncode"] == 0 for step in steps.values())
    if not torch.cuda.is_available():  # the GPU tests were collected and said why they skipped
        assert "needs a CUDA device" in steps["gpu tests"]["output_tail"]
    rows = steps["ntk_speed"]["results"]["rows"]
    kernels = {(row["bn_mode"], row["kernel"]) for row in rows}
    assert {("train", "official loop"), ("train", "lga_lightning batched")} <= kernels
    for row in rows:
        if row["kernel"].startswith("lga_lightning"):
            assert row["fro_err"] < 1e-5, row  # float32 against the float64 reference
    (measurement,) = steps["callback_overhead"]["results"]["measurements"]
    assert measurement["bn_mode"] == "train" and measurement["measure_s"] > 0
    assert not list(tmp_path.glob(".*.tmp"))  # the results file was written whole
