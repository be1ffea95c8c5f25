"""The prepared device check runs end to end on the CPU (``--smoke``) and writes its results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


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


def run_gpu_study(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "study.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [
        sys.executable, str(ROOT / "benchmarks" / "gpu_study.py"), "--smoke", "--workers", "2",
        "--output-dir", str(tmp_path / "runs"), "--out", str(out), *args,
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    return done, json.loads(out.read_text())


@pytest.mark.slow
def test_the_gpu_study_smoke_run_stops_at_its_deadline_resumes_and_analyses(tmp_path):
    done, report = run_gpu_study(tmp_path, "--minutes", "0.001")  # killed before any cell
    assert done.returncode == 1 and "no cell measured" in done.stdout
    assert report["stopped_at_deadline"] and report["cells_stored"] == 0

    done, report = run_gpu_study(tmp_path, "--cells", "4", "--minutes", "10")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not report["stopped_at_deadline"] and report["cells_measured"] == 4
    assert report["work_per_cell"] == {
        "train_steps": 2, "train_images": 32, "kernel_rows": 32, "kernel_row_batch": 8,
        "proxy_batches": 18,
    }  # fmt: skip  # 32 images at batch 16; probe 8 x (train, test) x epochs (0, 1); 9 proxies
    phases = report["per_cell"]["phase_seconds"]
    assert phases["train"] > 0 and phases["kernel"] > 0 and report["cells_per_minute"] > 0
    assert (
        report["correlations_csv"].startswith("quantity,") and "lga," in report["correlations_csv"]
    )
    assert "paired bootstrap" in report["paired_csv"]
    assert any(line.startswith("k=2 lga@1: mean") for line in report["replay"])
    assert any(line.startswith("halving k=2 lga: mean") for line in report["replay"])

    done, report = run_gpu_study(tmp_path, "--cells", "6", "--minutes", "10")  # resumes
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert report["cells_stored_before"] == 4 and report["cells_measured"] == 2
    joined = [json.loads(line) for line in (tmp_path / "runs" / "raw.jsonl").open()]
    archs = [line["arch"] for line in joined[1:]]
    assert joined[0]["kind"] == "study" and len(archs) == len(set(archs)) == 6
    assert not list(tmp_path.glob(".*.tmp"))  # the results file was written whole
