"""Time of every zero-cost proxy next to one coupled empirical NTK, in the same process.

One NAS-Bench-201 network (default C=16, N=5), one batch of 64 CIFAR-10 images (from the
``--data`` ``.npz`` with ``train_x``/``train_y`` when it exists, otherwise random images, which
the script says), one intra-op thread. Each proxy is timed ``--repeats`` times after one warm-up
call and the median is printed in milliseconds, then the median time of one
``empirical_ntk(model, x)`` (train mode: BatchNorm couples the samples) and the ratio of the sum
of all proxies' times to it.

Usage::

    python benchmarks/proxies_speed.py --data ../../shared/data/cifar10_subset.npz
    python benchmarks/proxies_speed.py --C 8 --N 1 --batch 32 --repeats 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import numpy as np
import torch

# the checkout this script belongs to, ahead of any installed copy
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lga_lightning.core.kernel import empirical_ntk  # noqa: E402
from lga_lightning.core.proxies import PROXIES  # noqa: E402
from lga_lightning.search.spaces import nb201  # noqa: E402

ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)
MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
STD = np.array([0.2470, 0.2435, 0.2616], dtype=np.float32)


def batch(path: str | None, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, str]:
    rng = np.random.default_rng(seed)
    if path and os.path.isfile(path):
        with np.load(path) as npz:
            pick = rng.choice(len(npz["train_y"]), size=n, replace=False)
            images = npz["train_x"][pick].astype(np.float32) / 255.0
            labels = npz["train_y"][pick].astype(np.int64)
        images = (images - MEAN) / STD
        x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        return x, torch.from_numpy(labels), f"{n} CIFAR-10 images from {path}"
    x = torch.from_numpy(rng.standard_normal((n, 3, 32, 32)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 10, n))
    where = f"{path} not found" if path else "no --data given"
    return x, y, f"{n} random N(0, 1) images ({where})"


def timed(fn, repeats: int) -> tuple[float, object]:
    value = fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="CIFAR-10 .npz (train_x uint8 NHWC, train_y)")
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--N", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = nb201.build(ARCH, C=args.C, N=args.N, num_classes=10)
    x, y, source = batch(args.data, args.batch, args.seed)
    print(f"network: NB201 C={args.C} N={args.N}, {ARCH}")
    print(f"batch: {source}; threads: {torch.get_num_threads()}; median of {args.repeats}")
    print(f"{'proxy':<12}{'ms':>10}{'value':>16}")
    total = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, proxy in PROXIES.items():
            seconds, value = timed(lambda proxy=proxy: proxy(model, x, y), args.repeats)
            total += seconds
            print(f"{name:<12}{seconds * 1e3:>10.1f}{value:>16.6g}")
    ntk_seconds, _ = timed(lambda: empirical_ntk(model, x), args.repeats)
    print(f"{'all proxies':<12}{total * 1e3:>10.1f}")
    print(f"{'NTK n=' + str(args.batch):<12}{ntk_seconds * 1e3:>10.1f}   (train-mode, coupled)")
    print(f"ratio all proxies / NTK: {total / ntk_seconds:.3f}")


if __name__ == "__main__":
    main()
