"""The paper's protocol on one GPU for a fixed time: measure, join, analyse, replay.

``configs/study_paper_protocol.yaml`` is the protocol (NB201 C=16 N=5, initialisation and one
epoch of 49 steps of 1,024 images, probes of 256 training and 256 test images, the paper's
SGD). This script runs it as several worker processes that share the device, each on its own
slice of the seeded cell sample (round robin) and with its own resumable store
(``<output-dir>/part-<k>/raw.jsonl``); at the deadline the workers still running are killed
(a store keeps every finished cell; the cut cell is measured again by the next run). Then the
stores are joined into ``<output-dir>/raw.jsonl``, analysed by ``lga-correlate --analyse_only``
and replayed by ``benchmarks/replay_search.py``; one results file says what ran, the cells
per minute, the per-cell work and seconds by phase, the correlations and the replay rows.
Rerunning with the same ``--output-dir`` resumes: cells already stored are not measured again.

``--smoke`` runs the same steps on the CPU at a tiny size (C=4 N=1, 8x8 synthetic
class-sorted images, probes of 8), which a test does.

Usage::

    python benchmarks/gpu_study.py --minutes 8 --workers 6 --out gpu_study.json
    python benchmarks/gpu_study.py --smoke --output-dir /tmp/smoke --out /tmp/smoke.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from gpu_check import environment  # noqa: E402  (this script's folder is on sys.path)

from recipes._files import atomic_write_text  # noqa: E402
from recipes._store import read_store  # noqa: E402

CONFIG = ROOT / "configs" / "study_paper_protocol.yaml"
DATA = ROOT.parent / "shared" / "data" / "cifar10_subset.npz"
SMOKE: dict[str, Any] = {
    "space.init_args.C": 4, "space.init_args.N": 1, "data.init_args.batch_size": 16,
    "data.init_args.train_samples_per_epoch": 32, "probe_sizes": [8], "proxy_batch": 8,
    "accelerator": "cpu", "num_threads": 1, "bootstrap": 100,
}  # fmt: skip
"""The ``--smoke`` sizes, as dotted keys of the config."""
SMOKE_OVERRIDES = [
    word
    for key, value in SMOKE.items()
    for word in (f"--{key}", value if isinstance(value, str) else json.dumps(value))
]


def protocol(smoke: bool) -> dict[str, Any]:
    """The config as the workers run it (``--smoke``: with :data:`SMOKE` applied)."""
    import yaml

    config = yaml.safe_load(CONFIG.read_text())
    for key, value in SMOKE.items() if smoke else ():
        *parents, last = key.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        node[last] = value
    return config


def child_env() -> dict[str, str]:
    """This environment with the repository first on ``PYTHONPATH``."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


def synthetic_images(path: Path, per_class: int = 12, side: int = 8) -> Path:
    """A tiny class-sorted ``.npz`` of 10 classes whose mean colour is the class (smoke data)."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), per_class)
    base = (labels[:, None, None, None] * 25).astype(np.int64)
    train = np.clip(base + rng.integers(0, 40, (len(labels), side, side, 3)), 0, 255)
    test = np.clip(base[::2] + rng.integers(0, 40, (len(labels) // 2, side, side, 3)), 0, 255)
    np.savez(
        path,
        train_x=train.astype(np.uint8),
        train_y=labels,
        test_x=test.astype(np.uint8),
        test_y=labels[::2],
    )
    return path


def study_command(data: Path, output_dir: Path, smoke: bool, extra: list[str]) -> list[str]:
    """The ``lga-correlate`` command of the protocol on ``data`` into ``output_dir``."""
    command = [
        sys.executable, "-c", "from recipes.correlate import main; main()",
        "--config", str(CONFIG), "--data.init_args.path", str(data),
        "--output_dir", str(output_dir),
    ]  # fmt: skip
    return command + (SMOKE_OVERRIDES if smoke else []) + extra


def cell_sample(cells: int) -> list[str]:
    """The seeded sample of ``cells`` architectures the protocol measures, in study order."""
    from lga_lightning.search.spaces import NB201Space
    from recipes._archs import study_architectures

    # cell strings and the sample do not depend on the network's width or depth
    return study_architectures(NB201Space(C=4, N=1), sample=cells, arch_seed=0)


def run_workers(
    commands: list[list[str]], logs: list[Path], deadline: float
) -> tuple[list[int | None], bool]:
    """Start every worker, wait until all end or ``deadline``; kill those still running.

    Returns:
        each worker's exit status (``None``: killed at the deadline) and whether any was.
    """
    env = child_env()
    procs = []
    for command, log in zip(commands, logs, strict=True):
        with log.open("a") as out:  # the child keeps its own handle
            procs.append(
                subprocess.Popen(
                    command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )  # fmt: skip
    while any(p.poll() is None for p in procs) and time.time() < deadline:
        time.sleep(0.5)
    killed = False
    for p in procs:
        if p.poll() is None:  # a finished cell is in its store; the cut one is measured next run
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            killed = True
    return [None if p.returncode == -signal.SIGKILL else p.returncode for p in procs], killed


def join_stores(parts: list[Path], joined: Path) -> list[dict[str, Any]]:
    """Write the parts' header and every record into one store (atomically); the records.

    Raises:
        ValueError: when the parts were measured with different settings.
    """
    header, records = None, {}
    for part in parts:
        lines = read_store(part)
        if not lines:
            continue
        if header is not None and lines[0] != header:
            raise ValueError(f"{part} was measured with other settings than {parts[0]}.")
        header = lines[0]
        records.update({r["arch"]: r for r in lines[1:]})
    if header is None:
        return []
    text = "".join(json.dumps(line, sort_keys=True) + "\n" for line in [header, *records.values()])
    atomic_write_text(joined, text)
    return list(records.values())


def per_cell(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean seconds per cell, in all and by phase (training, kernels, each proxy)."""
    if not records:
        return {"cells": 0}
    phases = sorted({name for r in records for name in r.get("signal_seconds", {})})
    return {
        "cells": len(records),
        "status": {
            s: sum(r["status"] == s for r in records) for s in {r["status"] for r in records}
        },
        "seconds": float(np.mean([r["seconds"] for r in records])),
        "phase_seconds": {
            name: float(np.mean([r.get("signal_seconds", {}).get(name, 0.0) for r in records]))
            for name in phases
        },
    }


def work_per_cell(config: dict[str, Any]) -> dict[str, int]:
    """What one cell of ``config`` computes: training steps and images, kernel rows, proxies."""
    data = config["data"]["init_args"]
    batch, samples = data["batch_size"], data["train_samples_per_epoch"]
    probe = config["probe_sizes"][0]
    epochs = config["measure_at"]
    splits = config["probe_split"]
    return {
        "train_steps": max(epochs) * samples // batch,
        "train_images": max(epochs) * samples,
        "kernel_rows": probe * len(splits) * len(epochs),  # one backward pass each
        "kernel_row_batch": probe,  # train-mode BatchNorm: each row is a pass over the probe
        "proxy_batches": len(config["proxies"]) * len(epochs),
    }


def step(name: str, command: list[str], timeout: int) -> dict[str, Any]:
    """Run one after-step; its exit status, duration and output tail."""
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=timeout
    )
    out = done.stdout + done.stderr
    print(f"{name}: exit {done.returncode} in {time.perf_counter() - start:.1f} s", flush=True)
    return {
        "step": name,
        "returncode": done.returncode,
        "seconds": round(time.perf_counter() - start, 1),
        "output_tail": out[-6000:],
        "stdout": done.stdout,
    }


def analyse_and_replay(data: Path, out_dir: Path, cells: int, smoke: bool) -> list[dict]:
    """``lga-correlate --analyse_only`` on the joined store, then the replayed searches."""
    analyse = study_command(
        data, out_dir, smoke, ["--analyse_only", "true", "--sample", str(cells)]
    )
    replay = [
        sys.executable, str(HERE / "replay_search.py"), "--store", str(out_dir / "raw.jsonl"),
        "--k", *(["2"] if smoke else ["10", "25"]),
        "--images-per-epoch",
        str(protocol(smoke)["data"]["init_args"]["train_samples_per_epoch"]),
    ]  # fmt: skip
    return [step("analyse", analyse, 600), step("replay", replay, 600)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--out", type=Path, default=Path("gpu_study.json"), help="results file")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "results" / "gpu_study")
    parser.add_argument("--data", type=Path, default=None, help=f"the .npz (default {DATA})")
    parser.add_argument("--minutes", type=float, default=8.0, help="measuring time")
    parser.add_argument("--workers", type=int, default=6, help="processes sharing the device")
    parser.add_argument("--cells", type=int, default=None, help="the sample (default 1000)")
    args = parser.parse_args(argv)
    if args.workers < 1 or args.minutes <= 0:
        parser.error("`--workers` must be >= 1 and `--minutes` > 0.")
    args.output_dir = args.output_dir.resolve()
    args.output_dir.mkdir(parents=True, exist_ok=True)
    args.cells = args.cells or (4 if args.smoke else 1000)
    if args.data is None:
        args.data = synthetic_images(args.output_dir / "smoke.npz") if args.smoke else DATA
    if not args.data.is_file():
        parser.error(f"no data file {args.data}; pass --data PATH to the CIFAR-10 subset .npz.")
    args.data = args.data.resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure for ``--minutes``, join, analyse, replay; write one results file."""
    args = parse_args(argv)
    out_dir, data, cells = args.output_dir, args.data, args.cells
    archs = cell_sample(cells)
    slices = [s for s in (archs[k :: args.workers] for k in range(args.workers)) if s]
    parts = [out_dir / f"part-{k}" for k in range(len(slices))]
    stores = [p / "raw.jsonl" for p in parts]
    before = len(join_stores(stores, out_dir / "raw.jsonl"))
    for part in parts:
        part.mkdir(exist_ok=True)
    commands = [
        study_command(data, part, args.smoke, ["--sample", "null", "--archs", json.dumps(s)])
        for part, s in zip(parts, slices, strict=True)
    ]
    print(f"{len(slices)} workers, {cells} cells ({before} stored), {args.minutes} min", flush=True)
    start = time.time()
    logs = [p / "worker.log" for p in parts]
    codes, killed = run_workers(commands, logs, start + 60 * args.minutes)
    measuring_s = time.time() - start
    records = join_stores(stores, out_dir / "raw.jsonl")
    steps = analyse_and_replay(data, out_dir, cells, args.smoke) if records else []
    failed = [k for k, code in enumerate(codes) if code not in (0, None)]
    new = len(records) - before
    report = {
        "smoke": args.smoke,
        "environment": environment(),
        "config": str(CONFIG.relative_to(ROOT)),
        "overrides": SMOKE_OVERRIDES if args.smoke else [],
        "data": str(data),
        "workers": len(slices),
        "minutes": args.minutes,
        "measuring_seconds": round(measuring_s, 1),
        "stopped_at_deadline": killed,
        "failed_workers": failed,
        "cells_sampled": cells,
        "cells_stored_before": before,
        "cells_measured": new,
        "cells_stored": len(records),
        "cells_per_minute": round(60 * new / measuring_s, 3),
        "work_per_cell": work_per_cell(protocol(args.smoke)),
        "per_cell": per_cell(records),
        "correlations_csv": _read(out_dir / "correlations.csv"),
        "paired_csv": _read(out_dir / "paired.csv"),
        "replay": [
            line for s in steps if s["step"] == "replay" for line in s["stdout"].splitlines()
        ],
        "steps": [{k: v for k, v in s.items() if k != "stdout"} for s in steps],
    }
    atomic_write_text(args.out, json.dumps(report, indent=1))
    bad = [f"worker {k}" for k in failed] + [s["step"] for s in steps if s["returncode"] != 0]
    bad += [] if records else ["no cell measured"]
    print(
        f"wrote {args.out}: {new} new cells in {measuring_s / 60:.1f} min "
        f"({report['cells_per_minute']} per minute), {len(records)} stored; "
        + (f"failed: {', '.join(bad)}" if bad else "every step passed")
    )
    return 1 if bad else 0


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


if __name__ == "__main__":
    sys.exit(main())
