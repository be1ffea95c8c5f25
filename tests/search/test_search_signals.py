"""lga-search stopped by SIGTERM or Ctrl+C, and two searches into one directory: nothing lost.

The searches run as the console command does (``python -m recipes.search``) in subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VOLATILE = ("seconds", "ntk_seconds", "process")
CONFIG = {
    "num_threads": 1,
    "model": {
        "space": {
            "class_path": "lga_lightning.search.spaces.NB201Space",
            "init_args": {"C": 4, "N": 1},
        },
        "strategy": {
            "class_path": "lga_lightning.search.RandomSearch",
            "init_args": {"num_candidates": 4, "epochs": 2},
        },
        "probe_size": 8,
        "progress": False,
    },
    "data": {
        "class_path": "lga_lightning.data.DigitsDataModule",
        "init_args": {"resize": 8, "channels": 3, "batch_size": 16},
    },
    "trainer": {"accelerator": "cpu", "devices": 1, "default_root_dir": "runs"},
}
"""Four NB201 cells (C=4, N=1) of two epochs on the digits: a few seconds each."""


def start(cwd: Path, candidates: int = 4) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    config = json.loads(json.dumps(CONFIG))
    config["model"]["strategy"]["init_args"]["num_candidates"] = candidates
    (cwd / "search.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    return subprocess.Popen(
        [sys.executable, "-m", "recipes.search", "--config", "search.yaml"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def store(cwd: Path) -> Path:
    return cwd / "runs" / "lga_search" / "results.jsonl"


def records(cwd: Path) -> list[dict]:
    lines = store(cwd).read_text().splitlines()[1:]
    return [{k: v for k, v in json.loads(x).items() if k not in VOLATILE} for x in lines]


def leaderboard(cwd: Path) -> list[dict]:
    text = (cwd / "runs" / "lga_search" / "leaderboard.json").read_text()
    return [
        {k: v for k, v in r.items() if k not in VOLATILE} for r in json.loads(text)["leaderboard"]
    ]


def wait_for_records(proc: subprocess.Popen, cwd: Path, count: int) -> None:
    deadline = time.monotonic() + 240
    while not store(cwd).exists() or len(store(cwd).read_text().splitlines()) < count + 1:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the search made no progress"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("reference")
    proc = start(cwd)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return cwd


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_writes_the_partial_leaderboard_and_a_rerun_completes(
    uninterrupted, tmp_path, sig, code
):
    proc = start(tmp_path)
    wait_for_records(proc, tmp_path, 1)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err
    assert "Rerun the same command to continue" in out
    partial = leaderboard(tmp_path)  # written on the way out
    assert 1 <= len(partial) < 4
    assert not (tmp_path / "runs" / "lga_search" / ".lock").exists()  # released

    rerun = start(tmp_path)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert records(tmp_path) == records(uninterrupted)  # each candidate once, same numbers
    assert leaderboard(tmp_path) == leaderboard(uninterrupted)


@pytest.mark.slow
def test_a_second_search_into_the_same_directory_is_refused(tmp_path):
    first = start(tmp_path, candidates=12)
    wait_for_records(first, tmp_path, 1)
    second = start(tmp_path, candidates=12)
    _, err = second.communicate(timeout=300)
    assert first.poll() is None, "the first search ended too soon for this test"
    assert second.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert f"in use by process {first.pid}" in lines[0] and ".lock" in lines[0]
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    keys = [(r["candidate"], r["epoch"]) for r in records(tmp_path)]
    assert len(keys) == len(set(keys)) == 12  # every candidate trained and stored once
