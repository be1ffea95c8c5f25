"""The in-process search against Ray Tune with 2 workers, on the same 24 digits candidates.

Three runs of one search (NAS-Bench-201 C=8 N=1 cells on the embedded digits, 64-image probe,
``RandomSearch(24, epochs)``), in this process, one after the other:

1. ``LGASearch`` under one ``Trainer`` in this process (one torch thread): the baseline;
2. ``TuneSearch`` with ``trial_scheduler="none"`` on a local Ray with 2 CPUs, one CPU (one
   thread) per trial: the same work as 1, two candidates at a time;
3. ``TuneSearch`` with ASHA (``min_epochs=1, eta=3``): the same candidates, stopped early by LGA.

Printed per run: wall time (from the call to the leaderboard written; Ray's start-up included
for 2 and 3), its ratio to 1, candidate-epochs trained and kernels measured, the driver's peak
resident memory, and for the Ray runs the median and largest start-up of a trial (to its first
training batch, from its worker process's start for a new worker, from the trial function's
start for a reused one). Run 2's records are compared with run 1's: the
largest difference of any recorded value (they must be equal: the same code, seeds and thread
count).

Usage::

    python benchmarks/tune_speed.py            # 24 candidates, 3 epochs each
    python benchmarks/tune_speed.py --candidates 8 --epochs 1
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import tempfile
import time

import lightning.pytorch as pl
import ray
import torch

from lga_lightning.data import DigitsDataModule
from lga_lightning.search import LGASearch, RandomSearch
from lga_lightning.search.spaces import NB201Space
from lga_lightning.search.tune import TuneSearch

TIMING = {"seconds", "ntk_seconds", "process"}


def make_search(candidates: int, epochs: int) -> LGASearch:
    return LGASearch(
        NB201Space(C=8, N=1),
        RandomSearch(num_candidates=candidates, epochs=epochs),
        probe_size=64,
        progress=False,
        verbose=False,
    )


def data() -> DigitsDataModule:
    return DigitsDataModule(resize=16, channels=3, batch_size=64)


def in_process(candidates: int, epochs: int, folder: str) -> tuple[float, LGASearch]:
    start = time.perf_counter()
    search = make_search(candidates, epochs)
    trainer = pl.Trainer(
        max_epochs=-1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=folder,
    )
    trainer.fit(search, datamodule=data())
    return time.perf_counter() - start, search


def on_ray(candidates: int, epochs: int, folder: str, scheduler: str) -> tuple[float, TuneSearch]:
    start = time.perf_counter()
    tuned = TuneSearch(
        make_search(candidates, epochs),
        data(),
        trial_scheduler=scheduler,
        min_epochs=1,
        eta=3,
        cpu=1,
        num_cpus=2,
        trainer={"accelerator": "cpu"},
        results_dir=folder,
        verbose=False,
    )
    tuned.fit()
    return time.perf_counter() - start, tuned


def largest_difference(a: list[dict], b: list[dict]) -> float:
    """The largest absolute difference of any numeric value of records with the same key."""
    left = {(r["candidate"], r["epoch"]): r for r in a}
    right = {(r["candidate"], r["epoch"]): r for r in b}
    if left.keys() != right.keys():
        return math.inf
    worst = 0.0
    for key, record in left.items():
        for name, value in record.items():
            other = right[key][name]
            if name in TIMING or not isinstance(value, (int, float)):
                if name not in TIMING and value != other:
                    return math.inf
                continue
            if math.isnan(value) and math.isnan(other):
                continue
            worst = max(worst, abs(value - other))
    return worst


def epochs_trained(records: list[dict]) -> int:
    reached: dict[int, int] = {}
    for r in records:
        reached[r["candidate"]] = max(reached.get(r["candidate"], 0), r["epoch"])
    return sum(reached.values())


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        base_seconds, base = in_process(args.candidates, args.epochs, f"{folder}/in_process")
        rows.append(("in-process, 1 process", base_seconds, base.records, None, peak_mb()))
        for scheduler in ("none", "asha"):
            target = f"{folder}/{scheduler}"
            seconds, tuned = on_ray(args.candidates, args.epochs, target, scheduler)
            startup = None
            if tuned.startup_seconds:
                startup = (statistics.median(tuned.startup_seconds), max(tuned.startup_seconds))
            label = f"Ray Tune, 2 workers, trial_scheduler={scheduler}"
            rows.append((label, seconds, tuned.records, startup, peak_mb()))
            if scheduler == "none":
                difference = largest_difference(base.records, tuned.records)
        ray.shutdown()
    print(
        f"{args.candidates} candidates (NB201 C=8 N=1, digits 16x16, probe 64), "
        f"up to {args.epochs} epochs each; one torch thread per process"
    )
    print(
        f"{'run':<40} {'wall s':>8} {'ratio':>6} {'epochs':>7} {'kernels':>8} "
        f"{'start-up s, median/max':>23} {'peak MB':>8}"
    )
    for label, seconds, records, startup, peak in rows:
        start_text = f"{startup[0]:.2f} / {startup[1]:.2f}" if startup is not None else "-"
        print(
            f"{label:<40} {seconds:8.1f} {seconds / base_seconds:6.2f} "
            f"{epochs_trained(records):7d} {len(records):8d} {start_text:>23} {peak:8.0f}"
        )
    print(f"largest difference, Ray (none) vs in-process records: {difference:.3g}")


if __name__ == "__main__":
    main()
