"""The prepared device check: the GPU tests, the kernel's speed and the callback's overhead.

One command, one results file. On a CUDA machine (the default run, about 5 minutes on one GPU):

1. ``pytest -m gpu`` (``tests/training/test_gpu.py``): every kernel implementation against the
   float64 loop on CUDA, the CUDA random stream left alone, the callback under ``bf16-mixed``, one
   search candidate;
2. ``benchmarks/ntk_speed.py --device cuda``: NB201 C=16 N=5 at n = 64 and 256, train- and
   eval-mode BatchNorm, the official loop against ``auto``, ``loop``, ``coupled`` and
   ``batched``, with the error against a float64 reference (TF32 off);
3. ``benchmarks/callback_overhead.py --accelerator gpu --precision bf16-mixed``: probe 256 of the
   coupled and the decoupled kernel against an epoch of 5,000 CIFAR-10 images (extrapolated to
   50,000).

``--smoke`` runs the same three steps on the CPU at a tiny size (a test does, in CI): the GPU
tests are then collected and skipped, which the results file says.

Usage::

    python benchmarks/gpu_check.py --out gpu_check.json
    python benchmarks/gpu_check.py --smoke --out /tmp/smoke.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

FULL = {
    "ntk_speed": ["--device", "cuda", "--sizes", "64", "256", "--C", "16", "--N", "5",
                  "--implementations", "auto", "loop", "coupled", "batched", "--memory-sizes"],
    "callback_overhead": ["--accelerator", "gpu", "--precision", "bf16-mixed", "--C", "16",
                          "--N", "5", "--train-size", "5000", "--batch-size", "256",
                          "--configs", "train:256", "eval:256"],
}  # fmt: skip
SMOKE = {
    "ntk_speed": ["--device", "cpu", "--sizes", "8", "--C", "4", "--N", "1", "--threads", "1",
                  "--implementations", "auto", "batched", "--memory-sizes"],
    "callback_overhead": ["--accelerator", "cpu", "--C", "4", "--N", "1", "--train-size", "100",
                          "--batch-size", "50", "--configs", "train:8", "--threads", "1"],
}  # fmt: skip


def run_step(name: str, command: list[str], json_path: Path | None, timeout: int) -> dict:
    """Run one step; its exit status, duration, output tail and JSON results."""
    start = time.perf_counter()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        returncode, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as err:
        returncode, output = (
            124,
            f"{err.stdout or ''}{err.stderr or ''}\ntimed out after {timeout} s",
        )
    step: dict[str, Any] = {
        "step": name,
        "command": " ".join(command),
        "returncode": returncode,
        "seconds": round(time.perf_counter() - start, 1),
        "output_tail": output[-4000:],
    }
    if json_path is not None and json_path.exists():
        step["results"] = json.loads(json_path.read_text())
    print(f"{name}: exit {returncode} in {step['seconds']} s", flush=True)
    return step


def environment() -> dict:
    """What the numbers were measured on."""
    import torch

    info = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--out", default="gpu_check.json", help="the results file")
    parser.add_argument("--timeout", type=int, default=240, help="seconds per step")
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as folder:
        scratch = Path(folder)
        steps = [
            run_step(
                "gpu tests",
                [
                    python,
                    "-m",
                    "pytest",
                    "-q",
                    "-m",
                    "gpu",
                    "-rs",
                    "-p",
                    "no:cacheprovider",
                    "tests/training/test_gpu.py",
                ],
                None,
                args.timeout,
            ),  # fmt: skip
            run_step(
                "ntk_speed",
                [
                    python,
                    str(HERE / "ntk_speed.py"),
                    *sizes["ntk_speed"],
                    "--json",
                    str(scratch / "ntk_speed.json"),
                ],
                scratch / "ntk_speed.json",
                args.timeout,
            ),  # fmt: skip
            run_step(
                "callback_overhead",
                [
                    python,
                    str(HERE / "callback_overhead.py"),
                    *sizes["callback_overhead"],
                    "--json",
                    str(scratch / "callback_overhead.json"),
                ],
                scratch / "callback_overhead.json",
                args.timeout,
            ),  # fmt: skip
        ]
    report = {"smoke": args.smoke, "environment": environment(), "steps": steps}
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, out)
    failed = [s["step"] for s in steps if s["returncode"] != 0]
    print(f"wrote {out}; {'failed: ' + ', '.join(failed) if failed else 'every step passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
