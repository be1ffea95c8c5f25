"""Kill the search with SIGKILL part-way, twice, rerun it: the store and the leaderboard equal an
uninterrupted run's. Also: two DDP processes give the single-process leaderboard.

Run as a script (``python tests/search/test_search_resume.py ROOT [DEVICES]``) it performs the
search these tests kill and compare.
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

VOLATILE = ("seconds", "ntk_seconds", "process")


def run(root: str, devices: int = 1, progress: bool = False) -> None:
    import lightning.pytorch as pl

    from lga_lightning.data import DigitsDataModule
    from lga_lightning.search import LGASearch, SuccessiveHalving
    from lga_lightning.search.spaces import NB201Space

    search = LGASearch(
        NB201Space(C=4, N=1),
        SuccessiveHalving(num_candidates=4, eta=2),
        probe_size=16,
        progress=progress,
        verbose=False,
    )
    extra = {"strategy": "ddp_spawn", "use_distributed_sampler": False} if devices > 1 else {}
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=root,
        **extra,
    )
    trainer.fit(search, datamodule=DigitsDataModule(channels=3, batch_size=32))


def records(root: Path) -> list[dict]:
    lines = (root / "lga_search" / "results.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in VOLATILE} for x in lines[1:]]


def leaderboard(root: Path) -> list[dict]:
    rows = json.loads((root / "lga_search" / "leaderboard.json").read_text())["leaderboard"]
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


def lines(root: Path) -> int:
    path = root / "lga_search" / "results.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def start(root: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, __file__, str(root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_when(proc: subprocess.Popen, root: Path, min_lines: int, delay: float) -> int:
    """SIGKILL `proc` `delay` seconds after the store reaches `min_lines` lines."""
    deadline = time.monotonic() + 120
    while lines(root) < min_lines:
        assert proc.poll() is None, "the search ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return lines(root)


@pytest.mark.slow
def test_sigkill_twice_then_rerun_equals_uninterrupted(tmp_path):
    reference = tmp_path / "reference"
    run(str(reference))
    want = records(reference)
    assert len(want) == 7

    killed = tmp_path / "killed"
    first = kill_when(start(killed), killed, min_lines=3, delay=0.15)  # header + 2 records
    second = kill_when(start(killed), killed, min_lines=first + 2, delay=0.3)  # a survivor rung
    assert 3 <= first < second < 8, (first, second)
    run(str(killed))  # the same command, a third time: completes
    got = records(killed)
    assert got == want
    assert len({(r["candidate"], r["epoch"]) for r in got}) == len(got)  # nothing twice
    assert leaderboard(killed) == leaderboard(reference)


def test_torn_last_line_is_dropped_on_resume(tmp_path):
    reference = tmp_path / "reference"
    run(str(reference))
    torn = tmp_path / "torn"
    (torn / "lga_search").mkdir(parents=True)
    text = (reference / "lga_search" / "results.jsonl").read_text().splitlines(keepends=True)
    # a crash while writing the 4th record: 3 complete records and half a line
    (torn / "lga_search" / "results.jsonl").write_text("".join(text[:4]) + text[4][:40])
    run(str(torn))
    assert records(torn) == records(reference)


@pytest.mark.slow
@pytest.mark.ddp
def test_two_ddp_processes_give_the_single_process_leaderboard(tmp_path):
    run(str(tmp_path / "one"), devices=1)
    run(str(tmp_path / "two"), devices=2)
    assert leaderboard(tmp_path / "two") == leaderboard(tmp_path / "one")
    key = lambda r: (r["candidate"], r["epoch"])  # noqa: E731
    assert sorted(records(tmp_path / "two"), key=key) == sorted(records(tmp_path / "one"), key=key)
    used = {
        json.loads(x)["process"]
        for x in (tmp_path / "two" / "lga_search" / "results.jsonl").read_text().splitlines()[1:]
    }
    assert used == {0, 1}  # candidates were spread over both processes


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1)
