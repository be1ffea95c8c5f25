"""Kernel evolution in real Trainer runs: step schedule, velocity, plot, resume, DDP.

Every logged value is checked against kernels recomputed from weights saved by an independent
callback, with the distance written out by hand (float64), not with the package's own function.
"""

from __future__ import annotations

import copy
import csv
import json
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from _ddp import comparable_loader
from _wandb import RecordingWandbLogger
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lga_lightning import NTKMetrics
from lga_lightning.core.evolution import kernel_velocities, plot_evolution
from lga_lightning.core.kernel import empirical_ntk

EVOLUTION = ("kernel_distance", "kernel_correlation", "relative_kernel_difference")


class Net(pl.LightningModule):
    """Conv + BatchNorm + tanh head: non-linear enough for the kernel to move."""

    def __init__(self, batchnorm: bool = True, lr: float = 0.2) -> None:
        super().__init__()
        self.lr = lr
        norm = nn.BatchNorm2d(6) if batchnorm else nn.Identity()
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), norm, nn.Tanh())
        self.classifier = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


class StepSnapshots(Callback):
    """Weights at initialisation and after every optimizer step, keyed by global step."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.states.setdefault(trainer.global_step, copy.deepcopy(pl_module.state_dict()))

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *_: Any
    ) -> None:
        self.states[trainer.global_step] = copy.deepcopy(pl_module.state_dict())


def dataset(n: int = 48, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, 4, 4, generator=g), torch.arange(n) % 3)


def trainer(root: Path, **kwargs: Any) -> pl.Trainer:
    options: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 2,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "default_root_dir": root,
        "log_every_n_steps": 50,  # step measurements must not depend on it
    }
    options.update(kwargs)
    return pl.Trainer(**options)


def distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """``1 - <A, B>_F / (||A||_F ||B||_F)`` in float64, written out."""
    a, b = a.double().flatten(), b.double().flatten()
    return float(1 - (a @ b) / (a.norm() * b.norm()))


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()))


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def kernel_at(state: dict[str, torch.Tensor], x: torch.Tensor, **model_kw: Any) -> torch.Tensor:
    model = Net(**model_kw)
    model.load_state_dict(state)
    return empirical_ntk(model, x)


# ---------------------------------------------------------------------------------------------
# pure helpers


def test_velocities_and_plot_helpers(tmp_path: Path) -> None:
    K = torch.tensor([[2.0, 1.0], [1.0, 3.0]])
    J = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    got = kernel_velocities([K, 5 * K, J])
    assert math.isnan(got[0]) and got[1] == pytest.approx(0.0, abs=1e-7)
    assert got[2] == pytest.approx(distance(5 * K, J))
    assert 0 <= got[2] <= 1
    single = kernel_velocities([K])
    assert len(single) == 1 and math.isnan(single[0])
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_evolution([{"epoch": 0, "lga": 0.1}], tmp_path / "x.png")
    with pytest.raises(ValueError, match="`x` can be"):
        plot_evolution([{"epoch": 0, "kernel_distance": 0.0}], tmp_path / "x.png", x="time")
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------------------------------------
# step schedule, values, loggers, plot


def test_step_schedule_velocity_and_plot(tmp_path: Path) -> None:
    data = dataset()  # 3 batches of 16: steps 1, 2, 3 in epoch 1; 4, 5, 6 in epoch 2
    callback = NTKMetrics(
        measure_at=[0, 1, 2],
        every_n_steps=2,
        kernel_velocity=True,
        probe_size=12,
        log_spectrum=False,
    )
    snapshots = StepSnapshots()
    csv_logger = CSVLogger(tmp_path / "csv")
    wandb_logger = RecordingWandbLogger()
    fit = trainer(tmp_path, callbacks=[callback, snapshots], logger=[csv_logger, wandb_logger])
    pl.seed_everything(0)
    fit.fit(Net(), DataLoader(data, batch_size=16, shuffle=True))

    # schedule: epochs 0, 1, 2 and steps 2, 4, 6; step 6 ends epoch 2 and is measured once
    history = callback.history
    assert [row["step"] for row in history] == [0, 2, 3, 4, 6]
    assert [row["epoch"] for row in history] == pytest.approx([0, 2 / 3, 1, 4 / 3, 2])
    assert callback.measured_epochs == [0, 1, 2]

    x, _ = callback.probe
    kernels = [kernel_at(snapshots.states[row["step"]], x) for row in history]
    assert history[0]["kernel_distance"] == pytest.approx(0.0, abs=1e-7)
    assert math.isnan(history[0]["kernel_velocity"])
    for i, row in enumerate(history):
        assert row["kernel_distance"] == pytest.approx(distance(kernels[0], kernels[i]), abs=1e-6)
        assert row["kernel_correlation"] == pytest.approx(pearson(kernels[0], kernels[i]), rel=1e-5)
        if i:
            want = distance(kernels[i - 1], kernels[i])
            assert row["kernel_velocity"] == pytest.approx(want, rel=1e-4, abs=1e-7)
            assert 0 < row["kernel_velocity"] <= 1
            assert 0 < row["kernel_distance"] <= 1

    # every measurement in the CSV logger once, steps as Lightning counts them
    logged = [r for r in read_csv(Path(csv_logger.log_dir) / "metrics.csv") if r["ntk/lga"]]
    assert [float(r["ntk/epoch"]) for r in logged] == pytest.approx([0, 2 / 3, 1, 4 / 3, 2])
    assert [int(r["step"]) for r in logged] == [0, 1, 2, 3, 5]
    velocity = [float(r["ntk/kernel_velocity"]) for r in logged[1:]]
    assert velocity == pytest.approx([row["kernel_velocity"] for row in history[1:]], rel=1e-6)
    history_csv = read_csv(Path(csv_logger.log_dir) / "ntk_metrics.csv")
    assert [int(r["step"]) for r in history_csv] == [0, 2, 3, 4, 6]

    # the plot: in the log dir, a PNG, and an image of the W&B offline run
    png = Path(csv_logger.log_dir) / "ntk_evolution.png"
    assert callback.plot_path == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(png.parent.glob(".ntk_evolution.png.*"))  # no temporary left behind
    images = [i for i in wandb_logger.images if i["key"] == "ntk/evolution"]
    assert len(images) == 1 and images[0]["images"] == [str(png)]


def test_step_schedule_with_gradient_accumulation(tmp_path: Path) -> None:
    callback = NTKMetrics(
        every_n_steps=1, kernel_velocity=True, probe_size=9, metrics=("trace",), plot=False
    )
    assert callback.measure_at == [0]
    fit = trainer(tmp_path, callbacks=[callback], accumulate_grad_batches=2)
    fit.fit(Net(), DataLoader(dataset(n=48), batch_size=12))  # 4 batches, 2 steps per epoch
    assert [row["step"] for row in callback.history] == [0, 1, 2, 3, 4]
    assert [row["epoch"] for row in callback.history] == [0, 0.5, 1, 1.5, 2]
    assert callback.plot_path is None
    assert not list(tmp_path.rglob("ntk_evolution.png"))


def test_resume_keeps_the_previous_kernel(tmp_path: Path) -> None:
    loader = DataLoader(dataset(), batch_size=16)  # 3 steps per epoch
    kwargs = {"every_n_steps": 2, "kernel_velocity": True, "probe_size": 12, "plot": False}
    full = NTKMetrics(**kwargs)
    checkpoints = ModelCheckpoint(
        tmp_path / "ckpt", filename="{step}", save_top_k=-1, every_n_train_steps=3
    )
    trainer(tmp_path / "full", callbacks=[full, checkpoints], enable_checkpointing=True).fit(
        Net(), loader
    )
    assert [row["step"] for row in full.history] == [0, 2, 4, 6]

    # saved after the last batch of epoch 1: the velocity at step 4 needs the kernel of step 2
    path = tmp_path / "ckpt" / "step=3.ckpt"
    state = torch.load(path, weights_only=True)["callbacks"][full.state_key]
    assert [row["step"] for row in state["history"]] == [0, 2]
    assert state["meter"]["previous_kernels"][0].shape == (12, 12)

    resumed = NTKMetrics(**kwargs)
    trainer(tmp_path / "resumed", callbacks=[resumed]).fit(Net(), loader, ckpt_path=path)
    assert [row["step"] for row in resumed.history] == [0, 2, 4, 6]
    for got, want in zip(resumed.history, full.history, strict=True):
        for name in (*EVOLUTION, "kernel_velocity", "lga"):
            if math.isnan(want[name]):
                assert math.isnan(got[name])
            else:
                assert got[name] == pytest.approx(want[name], rel=1e-6, abs=1e-9), name


# ---------------------------------------------------------------------------------------------
# DDP


def ddp_history(root: Path, devices: int) -> list[dict[str, float]]:
    pl.seed_everything(0)
    callback = NTKMetrics(
        measure_at=[0, 1, 2],
        every_n_steps=2,
        kernel_velocity=True,
        probe_size=12,
        log_spectrum=False,
    )
    fit = trainer(
        root,
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        precision="64-true",  # float rounding of the gradient all-reduce stays far below 1e-5
        callbacks=[callback],
        logger=CSVLogger(root),
    )
    loader = comparable_loader(dataset(), devices)
    fit.fit(Net(batchnorm=False), loader)
    log_dir = root / "lightning_logs" / "version_0"
    assert (log_dir / "ntk_evolution.png").read_bytes()[1:4] == b"PNG"
    return [{k: float(v) for k, v in r.items()} for r in read_csv(log_dir / "ntk_metrics.csv")]


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_evolution_equals_one_process(tmp_path: Path) -> None:
    single = ddp_history(tmp_path / "one", devices=1)
    double = ddp_history(tmp_path / "two", devices=2)
    assert [r["step"] for r in single] == [r["step"] for r in double] == [0, 2, 3, 4, 6]
    for one, two in zip(single, double, strict=True):
        for name in (*EVOLUTION, "kernel_velocity", "lga", "trace"):
            if math.isnan(one[name]):
                assert math.isnan(two[name]), name
            else:
                assert two[name] == pytest.approx(one[name], rel=1e-5, abs=1e-12), name
    assert single[-1]["kernel_distance"] > 1e-6  # the kernel moved: the comparison is not vacuous
    assert json.dumps(single[0]["kernel_velocity"]) == "NaN"
