"""What lga-correlate's Lightning machinery costs against a plain PyTorch loop doing the same work.

The same cells are trained for the same epochs (same data, batch size, SGD recipe) and their
kernels measured at the same epochs, once through ``recipes._study.TrainAndMeasure`` (a
``ClassificationModule`` trained by a ``Trainer`` under ``NTKMetrics``, what ``lga-correlate``
runs) and once by a hand-written loop, alternating, in this process. Printed:
the wall time of each, their ratio, and the largest difference between the LGA values the two
report (they train with different data orders, so after training they differ; at epoch 0 they
must agree).

Usage::

    python benchmarks/study_overhead.py --threads 1
    python benchmarks/study_overhead.py --data ../shared/data/cifar10_subset.npz --limit 18
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from lga_lightning.core.functional import lga
from lga_lightning.core.kernel import empirical_ntk
from lga_lightning.core.meter import NTKMeter
from lga_lightning.core.probe import draw_probe
from lga_lightning.data import ArraysDataModule, DigitsDataModule
from lga_lightning.search.spaces import NB201Space
from lga_lightning.training.module import paper_sgd
from recipes._study import TrainAndMeasure

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_3x3~0|skip_connect~1|none~2|",
]


def plain(space, data, probe, epochs, limit):
    """Train each cell with a bare loop and measure LGA at every epoch."""
    values = []
    for arch in ARCHS:
        torch.manual_seed(42)
        net = space.build(arch, num_classes=data.num_classes, in_channels=data.input_shape[0])
        optimizer = paper_sgd(net.parameters())
        loader = DataLoader(data.train_set, batch_size=data.batch_size, shuffle=True)
        row = [lga(empirical_ntk(net, probe[0]), probe[1])]
        for _ in range(epochs):
            net.train()
            for i, (x, y) in enumerate(loader):
                if limit is not None and i >= limit:
                    break
                loss = F.cross_entropy(net(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            row.append(lga(empirical_ntk(net, probe[0]), probe[1]))
        values.append(row)
    return values


def lightning(space, data, probe, epochs, limit):
    """The same work through lga-correlate's measuring half."""
    values = []
    for arch in ARCHS:
        torch.manual_seed(42)
        net = space.build(arch, num_classes=data.num_classes, in_channels=data.input_shape[0])
        meter = NTKMeter(["lga"])
        meter.set_probes([probe])
        kwargs = {"accelerator": "cpu", "limit_val_batches": 0}
        if limit is not None:
            kwargs["limit_train_batches"] = limit
        run = TrainAndMeasure(
            {"n": meter}, measure_at=list(range(epochs + 1)), trainer_kwargs=kwargs
        )
        entries = run.fit(net, data, num_classes=data.num_classes, seed=42)
        values.append([entries[e]["ntk"]["n"]["lga"] for e in range(epochs + 1)])
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help=".npz (default: digits)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="batches per epoch")
    parser.add_argument("--probe", type=int, default=32)
    parser.add_argument("--C", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data is not None and args.data.exists():
        data = ArraysDataModule(args.data, batch_size=256, val_size=0)
        source = str(args.data)
    else:
        data = DigitsDataModule(resize=16, channels=3, batch_size=128, val_size=0)
        source = "digits (16x16, 3 channels)" + (" -- --data not found" if args.data else "")
    data.setup("fit")
    probe = draw_probe(data, args.probe, seed=42)[0]
    space = NB201Space(C=args.C, N=1)
    times = {"plain loop": [], "lga-correlate": []}
    results = {}
    for _ in range(args.repeats):  # alternate, so that a busy machine hurts both alike
        for name, fn in (("plain loop", plain), ("lga-correlate", lightning)):
            start = time.perf_counter()
            results[name] = fn(space, data, probe, args.epochs, args.limit)
            times[name].append(time.perf_counter() - start)
    best = {name: min(t) for name, t in times.items()}
    print(
        f"data: {source}; {len(ARCHS)} NB201 cells C={args.C} N=1, {args.epochs} epochs, "
        f"probe {args.probe}, {torch.get_num_threads()} thread(s), best of {args.repeats}"
    )
    for name, seconds in best.items():
        print(f"{name:<14} {seconds:8.2f} s")
    print(f"ratio lga-correlate / plain loop: {best['lga-correlate'] / best['plain loop']:.3f}")
    at_init = max(
        abs(a[0] - b[0])
        for a, b in zip(results["plain loop"], results["lga-correlate"], strict=True)
    )
    print(f"largest LGA difference at epoch 0 (must be ~0): {at_init:.2e}")
    finite = [v for row in results["lga-correlate"] for v in row if math.isfinite(v)]
    print(
        f"finite LGA values from lga-correlate: {len(finite)} of {len(ARCHS) * (args.epochs + 1)}"
    )


if __name__ == "__main__":
    main()
