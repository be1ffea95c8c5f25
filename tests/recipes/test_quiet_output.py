"""The recipes' captured output: no Lightning tips, no LeafSpec deprecation, no progress bar."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOISE = ("💡 Tip", "LeafSpec", "litlogger", "litmodels")


def _run(module: str, args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout + done.stderr


@pytest.mark.slow
def test_demo_output_is_quiet(tmp_path):
    out = _run(
        "recipes.search",
        [
            "--config",
            str(ROOT / "configs" / "demo.yaml"),
            "--trainer.default_root_dir",
            str(tmp_path),
            "--model.strategy.init_args.num_candidates",
            "2",
            "--num_threads",
            "auto",
        ],
        tmp_path,
    )
    assert not [line for line in out.splitlines() if any(n in line for n in NOISE)]
    assert "\r" not in out  # no tqdm bar when the output is not a terminal
    assert "lga-search: 1 torch thread per process" in out or "torch threads" in out
    assert out.count("cand    ") == 2  # one plain line per candidate


@pytest.mark.slow
def test_study_output_is_quiet(tmp_path):
    out = _run(
        "recipes.correlate",
        [
            "--config",
            str(ROOT / "configs" / "correlate_digits.yaml"),
            *("--sample", "2", "--measure_at", "[0,1]", "--own_epochs", "2"),
            *("--limit_train_batches", "2", "--probe_sizes", "[16]", "--bn_modes", "[eval]"),
            *("--output_dir", str(tmp_path / "study"), "--plot", "false"),
        ],
        tmp_path,
    )
    assert not [line for line in out.splitlines() if any(n in line for n in NOISE)]
    assert out.splitlines()[0].startswith("lga-correlate: 1 torch thread per process")
    assert "[2/2]" in out
