"""Speed and memory of the NTK engine against the official-style per-sample loop.

Everything is measured in this process, on the same network, probe batch and thread count:

* ``official loop``: the paper's code pattern — ``model(x)``, then for each sample
  ``logits[i:i+1].backward(ones, retain_graph=True)`` and the ``.grad`` of every ``weight`` outside
  the classifier, ``zero_grad`` in between;
* ``floor`` (coupled mode only): one forward plus n full-batch backward passes, the least work
  any exact method needs when BatchNorm couples the samples;
* ``lga_lightning``: ``empirical_ntk(..., implementation="auto")``.

It prints wall times, ratios, the peak resident memory above the starting point, and the largest
relative difference between the kernels. A second table shows the peak memory of the batched
per-sample path as n grows, with and without ``chunk_size``.

Usage::

    python benchmarks/ntk_speed.py                      # n = 64 and 256, NB201 C=16 N=5
    python benchmarks/ntk_speed.py --sizes 32 --C 8 --N 1 --memory-sizes 64 128
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(__file__))

from _measure import measure  # noqa: E402

from lga_lightning.kernel import empirical_ntk  # noqa: E402
from lga_lightning.spaces import nb201  # noqa: E402

ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)
CIFAR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10_subset.npz")


def probe_images(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` CIFAR-10 training images (normalised), or Gaussian noise when the subset is absent."""
    if os.path.exists(CIFAR):
        x = np.load(CIFAR)["train_x"][:n].astype(np.float32) / 255.0
        t = torch.from_numpy(x).permute(0, 3, 1, 2)
        return (t - t.mean(dim=(0, 2, 3), keepdim=True)) / t.std(dim=(0, 2, 3), keepdim=True)
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 32, 32, generator=g)


def official_loop(model: nn.Module, x: torch.Tensor, bn_mode: str) -> torch.Tensor:
    """The per-sample loop as the paper's code writes it (mutates .grad, like the original)."""
    model.train()
    if bn_mode == "eval":
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
    model.zero_grad()
    logits = model(x)
    rows = []
    for i in range(len(x)):
        logits[i : i + 1].backward(torch.ones_like(logits[i : i + 1]), retain_graph=True)
        rows.append(
            torch.cat(
                [
                    p.grad.reshape(-1).detach()
                    for name, p in model.named_parameters()
                    if "weight" in name and "classifier" not in name and p.grad is not None
                ]
            )
        )
        model.zero_grad()
    grads = torch.stack(rows)
    return grads @ grads.T


def backward_floor(model: nn.Module, x: torch.Tensor) -> None:
    """One forward and n full-batch backward passes (dense cotangent) to the selected weights."""
    model.train()
    weights = [
        p for name, p in model.named_parameters() if "weight" in name and "classifier" not in name
    ]
    logits = model(x)
    ones = torch.ones_like(logits)
    for _ in range(len(x)):
        torch.autograd.grad(logits, weights, grad_outputs=ones, retain_graph=True)


def max_rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def warm_up(args: argparse.Namespace) -> None:
    """Run every method once on a tiny probe: the first call pays one-off kernel set-up costs."""
    torch.manual_seed(0)
    model = nb201.build(ARCH, C=args.C, N=args.N)
    x = probe_images(4)
    for mode in args.modes:
        empirical_ntk(model, x, bn_mode=mode)
        official_loop(model, x, mode)
    backward_floor(model, x)


def speed_table(args: argparse.Namespace) -> None:
    warm_up(args)
    threads = torch.get_num_threads()
    print(f"\n== speed: NB201 C={args.C} N={args.N} ({ARCH}), threads={threads}")
    print(
        f"   data: {'CIFAR-10 subset' if os.path.exists(CIFAR) else 'Gaussian noise (no subset)'}"
    )
    header = (
        f"{'mode':<8}{'n':>5}{'official s':>12}{'fast s':>9}{'speed-up':>10}{'floor s':>9}"
        f"{'fast/floor':>11}{'off. MB':>9}{'fast MB':>9}{'max rel diff':>14}"
    )
    print(header)
    for mode in args.modes:
        for n in args.sizes:
            torch.manual_seed(0)
            model = nb201.build(ARCH, C=args.C, N=args.N)
            x = probe_images(n)
            with measure() as fast_m:
                fast = empirical_ntk(model, x, bn_mode=mode, chunk_size=args.chunk_size)
            with measure() as off_m:
                reference = official_loop(model, x, mode)
            floor = float("nan")
            if mode == "train" and n <= args.floor_max:
                with measure() as floor_m:
                    backward_floor(model, x)
                floor = floor_m.seconds
            print(
                f"{mode:<8}{n:>5}{off_m.seconds:>12.2f}{fast_m.seconds:>9.2f}"
                f"{off_m.seconds / fast_m.seconds:>9.1f}x{floor:>9.2f}"
                f"{fast_m.seconds / floor:>11.2f}{off_m.peak_extra_mb:>9.0f}"
                f"{fast_m.peak_extra_mb:>9.0f}{max_rel_diff(fast, reference):>14.2e}",
                flush=True,
            )


def memory_table(args: argparse.Namespace) -> None:
    print(
        f"\n== memory of the decoupled (bn_mode='eval') per-sample path, NB201 C={args.C} "
        f"N={args.N}; J alone holds n x P floats"
    )
    print(f"{'n':>5}{'chunk':>7}{'seconds':>9}{'peak MB':>9}{'J MB':>7}")
    torch.manual_seed(0)
    model = nb201.build(ARCH, C=args.C, N=args.N)
    width = sum(
        p.numel()
        for name, p in model.named_parameters()
        if "weight" in name and "classifier" not in name
    )
    for n in args.memory_sizes:
        x = probe_images(n)
        for chunk in (args.memory_chunk, None):
            if chunk is None and n > args.unchunked_max:
                continue
            with measure() as m:
                empirical_ntk(model, x, bn_mode="eval", chunk_size=chunk)
            print(
                f"{n:>5}{chunk or '-':>7}{m.seconds:>9.2f}{m.peak_extra_mb:>9.0f}"
                f"{n * width * 4 / 2**20:>7.0f}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--modes", nargs="+", default=["train", "eval"], choices=["train", "eval"])
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--N", type=int, default=5)
    parser.add_argument("--chunk-size", type=int, default=32)
    parser.add_argument("--memory-sizes", type=int, nargs="*", default=[64, 256, 512])
    parser.add_argument("--memory-chunk", type=int, default=32)
    parser.add_argument("--unchunked-max", type=int, default=256)
    parser.add_argument("--floor-max", type=int, default=64, help="largest n for the floor")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    speed_table(args)
    if args.memory_sizes:
        memory_table(args)


if __name__ == "__main__":
    main()
