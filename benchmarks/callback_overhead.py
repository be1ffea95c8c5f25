"""Overhead of ``NTKMetrics`` measuring once per epoch, against the same training without it.

Everything runs in this process on the same network, data and thread count:

1. ``baseline``: a short training without the callback; its epoch time gives the training time
   per image, which extrapolates the time of one epoch of full CIFAR-10 (50,000 images);
2. ``with callbacks``: the same training with one ``NTKMetrics`` per configuration (each under its
   own prefix), every one measuring after every epoch. Each measurement's own wall time (the
   callback's ``seconds``) is its overhead.

For each configuration it prints the measurement time, its ratio to the subset epoch, and its
share of a full CIFAR-10 epoch on this hardware; then the peak resident memory (and CUDA memory)
of both trainings. Configurations are ``<bn_mode>:<probe size>``: ``train`` is the paper's kernel
(train-mode BatchNorm couples the samples: n backward passes through the whole probe batch),
``eval`` the decoupled kernel (batched per-sample gradients).

Data: the CIFAR-10 subset in ``../shared/data/cifar10_subset.npz`` when present, else random
images (the script says which).

Usage::

    python benchmarks/callback_overhead.py                    # NB201 C=8 N=1, 1,000 images
    python benchmarks/callback_overhead.py --C 16 --N 5 --train-size 5000 --epochs 2
    python benchmarks/callback_overhead.py --configs train:64 eval:256 --accelerator gpu
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, os.path.dirname(__file__))

from _measure import measure  # noqa: E402

from lga_lightning import NTKMetrics  # noqa: E402
from lga_lightning.core.kernel import empirical_ntk, select_parameters  # noqa: E402

ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)
CIFAR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10_subset.npz")
FULL_EPOCH = 50_000


def build_network(arch: str, C: int, N: int, classes: int) -> nn.Module:  # noqa: N803
    try:
        from lga_lightning.search.spaces.nb201 import build
    except ImportError:  # a small ResNet-like CNN with BatchNorm when the NB201 space is absent
        print(
            "lga_lightning.search.spaces.nb201.build is unavailable: using a small ResNet-like CNN"
        )
        return _resnet_like(C, classes)
    return build(arch, C=C, N=N, num_classes=classes)


def _resnet_like(C: int, classes: int) -> nn.Module:  # noqa: N803
    def block(cin: int, cout: int, stride: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
        )

    return nn.Sequential(
        block(3, C, 1),
        block(C, 2 * C, 2),
        block(2 * C, 4 * C, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * C, classes),
    )


def load_data(path: str, size: int, seed: int) -> TensorDataset:
    if os.path.exists(path):
        data = np.load(path)
        x, y = data["train_x"], data["train_y"]
        idx = np.random.default_rng(seed).permutation(len(y))[:size]
        images = torch.from_numpy(x[idx]).permute(0, 3, 1, 2).float().div(255.0)
        mean = images.mean(dim=(0, 2, 3), keepdim=True)
        std = images.std(dim=(0, 2, 3), keepdim=True)
        print(f"data: {size} images of the CIFAR-10 subset {os.path.abspath(path)}")
        return TensorDataset((images - mean) / std, torch.from_numpy(y[idx]).long())
    print(f"data: {os.path.abspath(path)} is absent; using {size} random 32x32 images, 10 classes")
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(size, 3, 32, 32, generator=g), torch.arange(size) % 10)


class Classifier(pl.LightningModule):
    """The paper's training recipe: SGD lr 0.025, momentum 0.9, weight decay 3e-4."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)


class EpochTimer(pl.Callback):
    """Training time of each epoch, without any epoch-end callback work."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _sync(pl_module)
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        _sync(pl_module)
        self.seconds.append(time.perf_counter() - self._start)


def _sync(module: nn.Module) -> None:
    if module.device.type == "cuda":
        torch.cuda.synchronize(module.device)


def fit(args: argparse.Namespace, data: TensorDataset, callbacks: list[pl.Callback]) -> dict:
    pl.seed_everything(args.seed, verbose=False)
    model = Classifier(build_network(args.arch, args.C, args.N, 10))
    timer = EpochTimer()
    trainer = pl.Trainer(
        accelerator=args.accelerator,
        devices=1,
        precision=args.precision,
        max_epochs=args.epochs,
        callbacks=[timer, *callbacks],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=args.out_dir,
    )
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=True, drop_last=True)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with measure() as m:
        trainer.fit(model, loader)
    cuda_mb = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {
        "epochs": timer.seconds,
        "total": m.seconds,
        "rss_mb": m.peak_extra_mb,
        "cuda_mb": cuda_mb,
    }


def warm_up(args: argparse.Namespace, data: TensorDataset) -> int:
    """First-call costs (kernel libraries, channels-last primitives) stay out of the timings."""
    device = (
        "cuda"
        if args.accelerator == "gpu" or (args.accelerator == "auto" and torch.cuda.is_available())
        else "cpu"
    )
    network = build_network(args.arch, args.C, args.N, 10).to(device)
    x = data.tensors[0][:8].to(device)
    for bn_mode in ("train", "eval"):
        empirical_ntk(network, x, bn_mode=bn_mode)
    return select_parameters(network).total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default=ARCH, help="NB201 arch string")
    parser.add_argument("--C", type=int, default=8, help="NB201 channels (benchmark: 16)")
    parser.add_argument("--N", type=int, default=1, help="NB201 cells per stage (benchmark: 5)")
    parser.add_argument("--train-size", type=int, default=1000, help="training images")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=1, help="epochs; one measurement each")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["train:64", "train:256", "eval:256"],
        help="NTKMetrics configurations <bn_mode>:<probe size>",
    )
    parser.add_argument("--data", default=CIFAR)
    parser.add_argument("--accelerator", default="cpu", help="cpu, gpu or auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=None, help="where ntk_*_metrics.csv go (temporary)")
    parser.add_argument("--precision", default="32-true", help="the Trainer's precision")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = [(c.split(":")[0], int(c.split(":")[1])) for c in args.configs]
    args.out_dir = args.out_dir or tempfile.mkdtemp(prefix="callback_overhead_")

    data = load_data(args.data, args.train_size, args.seed)
    n_params = warm_up(args, data)
    print(
        f"network: NB201 C={args.C} N={args.N}, {n_params} kernel parameters; "
        f"{args.epochs} epoch(s) of {args.train_size} images, batch {args.batch_size}; "
        f"{torch.get_num_threads()} threads; accelerator {args.accelerator}"
    )

    baseline = fit(args, data, [])
    epoch_s = float(np.mean(baseline["epochs"]))
    per_image = epoch_s / (args.train_size - args.train_size % args.batch_size)
    full_epoch = per_image * FULL_EPOCH
    callbacks = [
        NTKMetrics(
            measure_at=list(range(1, args.epochs + 1)),
            probe_size=size,
            prefix=f"ntk_{mode}_{size}/",
            kernel_kwargs={"bn_mode": mode},
            track_evolution=False,
            log_spectrum=False,
        )
        for mode, size in configs
    ]
    with_cb = fit(args, data, callbacks)

    print(
        f"\nbaseline epoch {epoch_s:.1f} s ({per_image * 1e3:.2f} ms/image); "
        f"full CIFAR-10 epoch extrapolated: {full_epoch:.0f} s"
    )
    print(f"{'kernel':<22}{'probe':>6}{'measure s':>11}{'/ subset epoch':>16}{'/ full epoch':>14}")
    rows = []
    for (mode, size), callback in zip(configs, callbacks, strict=True):
        seconds = float(np.mean([row["seconds"] for row in callback.history]))
        rows.append({"bn_mode": mode, "probe": size, "measure_s": seconds})
        name = "coupled (BN train)" if mode == "train" else "decoupled (BN eval)"
        print(
            f"{name:<22}{size:>6}{seconds:>11.1f}{seconds / epoch_s:>15.1%} "
            f"{seconds / full_epoch:>13.1%}"
        )
    print(
        f"\nfit without callbacks {baseline['total']:.1f} s, with them {with_cb['total']:.1f} s; "
        f"peak RSS above start: {baseline['rss_mb']:.0f} MB without, {with_cb['rss_mb']:.0f} MB "
        f"with (J of the largest probe: {max(s for _, s in configs) * n_params * 4 / 2**20:.0f} MB)"
    )
    if baseline["cuda_mb"] is not None:
        print(
            f"peak CUDA memory: {baseline['cuda_mb']:.0f} MB without, "
            f"{with_cb['cuda_mb']:.0f} MB with"
        )
    if args.json:
        summary = {
            "precision": args.precision,
            "accelerator": args.accelerator,
            "C": args.C,
            "N": args.N,
            "epoch_s": epoch_s,
            "full_epoch_s": full_epoch,
            "measurements": [
                {**row, "share_of_full_epoch": row["measure_s"] / full_epoch} for row in rows
            ],
            "baseline": baseline,
            "with_callbacks": with_cb,
        }
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
