"""Time and memory of one training step: a network against its linearisation.

A step is zero_grad + forward + cross-entropy + backward + SGD step, on the same batch, in the
same process (timing). Memory is reported two ways:

* ``saved``: bytes of the tensors autograd saves for the backward during one forward (exact,
  measured with ``torch.autograd.graph.saved_tensors_hooks``);
* ``peak rss``: peak resident set size over three steps minus the resident set size before
  them, each variant in fresh subprocesses (median of three) so that one variant's peak does not
  hide the other's. Read from ``/proc/self/status`` (``VmHWM``, ``VmRSS``), not from
  ``ru_maxrss``, which a child inherits from its parent. It includes one-time allocations
  (oneDNN workspaces, thread pools) and allocator slack, and varies from run to run.

Usage::

    python benchmarks/linearize_speed.py [--batch 64] [--steps 10] [--threads 2]

The issue's target: the linearised step costs at most about 3x the original's.
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

from lga_lightning.core.linearization import linearize


def small_cnn(num_classes: int = 10) -> nn.Module:
    def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

    return nn.Sequential(
        *block(3, 16, 1),
        *block(16, 32, 2),
        *block(32, 32, 1),
        *block(32, 64, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )


NB201_ARCH = "|".join(
    ["", "nor_conv_3x3~0", "+", "nor_conv_3x3~0", "avg_pool_3x3~1", "+"]
    + ["skip_connect~0", "nor_conv_3x3~1", "skip_connect~2", ""]
)


def nb201_builder() -> Callable[[], nn.Module] | None:
    """Return a builder of the NB201 network at C=8, N=1 if the space is available."""
    try:
        nb201 = importlib.import_module("lga_lightning.search.spaces.nb201")
    except ImportError:
        return None
    build = getattr(nb201, "build", None)
    if build is None:
        return None
    return lambda: build(NB201_ARCH, C=8, N=1, num_classes=10)


def models() -> dict[str, Callable[[], nn.Module]]:
    out: dict[str, Callable[[], nn.Module]] = {"cnn_bn": small_cnn}
    nb = nb201_builder()
    if nb is not None:
        out["nb201_C8_N1"] = nb
    return out


def make_variant(name: str, variant: str) -> nn.Module:
    torch.manual_seed(0)
    model = models()[name]()
    model.train()
    return linearize(model).train() if variant == "linearized" else model


def batch(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(size, 3, 32, 32, generator=g), torch.randint(0, 10, (size,), generator=g)


def step_fn(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], float]:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    return step


def time_interleaved(
    variants: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, steps: int, rounds: int
) -> dict[str, list[float]]:
    """Seconds per step of each variant, alternating variants round by round after a warm-up.

    Alternating spreads the load of other processes on a shared CPU over both variants.
    """
    steppers = {name: step_fn(model) for name, model in variants.items()}
    for step in steppers.values():
        for _ in range(3):
            step(x, y)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, step in steppers.items():
            for _ in range(steps):
                t0 = time.perf_counter()
                step(x, y)
                times[name].append(time.perf_counter() - t0)
    return times


def saved_bytes(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(seen.values())


def _proc_status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_kib() -> tuple[int, int]:
    """Current and peak resident set size of this process, KiB.

    The peak is ``VmHWM`` from ``/proc/self/status``: ``ru_maxrss`` of a child process starts at
    its parent's peak on Linux (it survives fork and exec), which hides the child's own peak.
    Without ``/proc``, both numbers fall back to ``ru_maxrss``.
    """
    now, peak = _proc_status_kib("VmRSS"), _proc_status_kib("VmHWM")
    if now is None or peak is None:
        now = peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return now, peak


def rss_probe(name: str, variant: str, batch_size: int) -> None:
    """Print peak RSS over a few steps minus RSS before them (run in a fresh subprocess)."""
    model = make_variant(name, variant)
    x, y = batch(batch_size)
    step = step_fn(model)
    before, _ = rss_kib()
    for _ in range(3):
        step(x, y)
    _, after = rss_kib()
    print(json.dumps({"peak_rss_growth_kib": after - before}))


def peak_rss_growth_mib(
    name: str, variant: str, batch_size: int, threads: int, repeats: int = 3
) -> float:
    """Median over ``repeats`` fresh subprocesses of the peak RSS growth (it varies run to run)."""
    cmd = [sys.executable, __file__, "--rss-probe", name, variant, "--batch", str(batch_size)]
    cmd += ["--threads", str(threads)]
    growth = []
    for _ in range(repeats):
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        growth.append(json.loads(out.strip().splitlines()[-1])["peak_rss_growth_kib"] / 1024)
    return statistics.median(growth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rss-probe", nargs=2, metavar=("MODEL", "VARIANT"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.rss_probe:
        rss_probe(*args.rss_probe, args.batch)
        return

    x, y = batch(args.batch)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch {args.batch}x3x32x32, {args.rounds} rounds x {args.steps} steps"
    )
    if nb201_builder() is None:
        print("lga_lightning.search.spaces.nb201.build not available: NB201 network skipped")
    print(
        f"{'model':<14}{'variant':<12}{'median ms':>10}{'min ms':>9}"
        f"{'saved MiB':>11}{'peak rss MiB':>14}"
    )
    for name in models():
        variants = {v: make_variant(name, v) for v in ("original", "linearized")}
        times = time_interleaved(variants, x, y, args.steps, args.rounds)
        for variant, model in variants.items():
            med, low = statistics.median(times[variant]) * 1e3, min(times[variant]) * 1e3
            saved = saved_bytes(model, x, y) / 2**20
            rss = peak_rss_growth_mib(name, variant, args.batch, args.threads)
            print(f"{name:<14}{variant:<12}{med:>10.1f}{low:>9.1f}{saved:>11.1f}{rss:>14.1f}")
        ratio_med = statistics.median(times["linearized"]) / statistics.median(times["original"])
        ratio_min = min(times["linearized"]) / min(times["original"])
        verdict = "within" if ratio_med <= 3.0 else "ABOVE"
        print(
            f"{name:<14}{'ratio':<12}{ratio_med:>10.2f}{ratio_min:>9.2f}"
            f"   ({verdict} the ~3x target)"
        )


if __name__ == "__main__":
    main()
