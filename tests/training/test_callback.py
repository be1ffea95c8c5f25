"""NTKMetrics in real Trainer runs: logged values against an independent reference, resume, DDP."""

from __future__ import annotations

import copy
import csv
import json
import math
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
import torchmetrics
from _ddp import comparable_loader
from _wandb import RecordingWandbLogger
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from lga_lightning import NTKMetrics
from lga_lightning.core.functional import (
    EVOLUTION_METRICS,
    SCALAR_METRICS,
    NTKMetricWarning,
    ntk_metrics,
)
from lga_lightning.core.kernel import empirical_ntk
from lga_lightning.training.sinks import JSONLinesSink

ALL_METRICS = SCALAR_METRICS + EVOLUTION_METRICS


# ---------------------------------------------------------------------------------------------
# models, data, helpers


class CNN(pl.LightningModule):
    """Conv + BatchNorm + dropout classifier; ``out`` picks the forward's output format."""

    def __init__(
        self, out: str = "tensor", lr: float = 0.1, dropout: float = 0.0, freeze: bool = False
    ) -> None:
        super().__init__()
        self.out, self.lr = out, lr
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(dropout)
        )
        self.head = nn.Sequential(nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU())
        self.classifier = nn.Linear(6, 3)
        if freeze:
            self.features.requires_grad_(False)
        self.accuracy = torchmetrics.Accuracy(task="multiclass", num_classes=3)

    def forward(self, x: torch.Tensor) -> Any:
        logits = self.classifier(self.head(self.features(x)).mean(dim=(2, 3)))
        if self.out == "dict":
            return {"logits": logits, "features": x.mean()}
        if self.out == "tuple":
            return logits.sum(), logits
        if self.out == "bad":
            return logits[:, :, None]
        return logits

    def logits(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = (batch["pixels"], batch["cls"]) if isinstance(batch, dict) else batch
        out = self(x)
        if self.out == "dict":
            out = out["logits"]
        elif self.out == "tuple":
            out = out[1]
        elif self.out == "bad":
            out = out[:, :, 0]
        return out, y

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        logits, y = self.logits(batch)
        self.accuracy(logits, y)
        return nn.functional.cross_entropy(logits, y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


class MLP(pl.LightningModule):
    """No BatchNorm: DDP training equals one process with the global batch."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.Tanh(), nn.Linear(16, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.5)


class NoisyDataset(Dataset):
    """Items drawn with the global torch RNG, like a random augmentation."""

    def __init__(self, base: TensorDataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.base[i]
        return x + 0.1 * torch.randn_like(x), y


class DictDataset(Dataset):
    def __init__(self, base: TensorDataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        x, y = self.base[i]
        return {"pixels": x, "cls": y}


class Snapshots(Callback):
    """Copies of the weights at the moments NTKMetrics measures (an independent record)."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.states.setdefault(trainer.current_epoch, copy.deepcopy(pl_module.state_dict()))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.states[trainer.current_epoch + 1] = copy.deepcopy(pl_module.state_dict())


def dataset(n: int = 48, classes: int = 3, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 3, 4, 4, generator=g), torch.arange(n) % classes)


def trainer(tmp_path: Path, **kwargs: Any) -> pl.Trainer:
    options: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "default_root_dir": tmp_path,
        "log_every_n_steps": 1,
    }
    options.update(kwargs)
    return pl.Trainer(**options)


def read_csv(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def ntk_rows(rows: list[dict[str, str]], prefix: str = "ntk/") -> dict[int, dict[str, float]]:
    """Logged rows holding NTK metrics, keyed by measurement epoch; fails on duplicates."""
    out: dict[int, dict[str, float]] = {}
    for row in rows:
        if row.get(f"{prefix}lga", "") == "":
            continue
        epoch = int(float(row[f"{prefix}epoch"]))
        assert epoch not in out, f"epoch {epoch} logged twice"
        out[epoch] = {k[len(prefix) :]: float(v) for k, v in row.items() if k.startswith(prefix)}
    return out


def reference_metrics(
    state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, state_0: dict, **model_kw
) -> tuple[dict[str, float], torch.Tensor]:
    """The metrics recomputed by hand from saved weights (``empirical_ntk`` is tested against its
    per-sample reference loop in test_kernel.py; here the same options give the same kernel)."""

    def kernel(s: dict[str, torch.Tensor]) -> torch.Tensor:
        model = CNN(**model_kw)
        model.load_state_dict(s)
        return empirical_ntk(model, x)

    K = kernel(state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NTKMetricWarning)
        return ntk_metrics(K, y, metrics=ALL_METRICS, initial_kernel=kernel(state_0)), K


# Float32 weights trained in two ways (1 vs 2 processes) differ by rounding; dividing by the
# entries of K0 (relative difference) or by the smallest eigenvalue (condition number) amplifies it.
LOOSER = {"relative_kernel_difference": 1e-3, "condition_number": 1e-4}


def assert_close(got: dict[str, float], want: dict[str, float], rtol: float) -> None:
    for name, value in want.items():
        if math.isnan(value):
            assert math.isnan(got[name]), name
        else:
            assert got[name] == pytest.approx(value, rel=rtol, abs=1e-6), name


# ---------------------------------------------------------------------------------------------
# values in every logger, at the chosen epochs only


def test_logged_values_match_an_independent_reference(tmp_path: Path) -> None:
    data = dataset()
    callback = NTKMetrics(measure_at=[0, 1, 3], probe_size=24, probe_seed=3)
    snapshots = Snapshots()
    csv_logger = CSVLogger(tmp_path / "csv")
    wandb_logger = RecordingWandbLogger()
    fit = trainer(tmp_path, max_epochs=3, callbacks=[callback, snapshots])
    fit.loggers = [csv_logger, wandb_logger]
    fit.fit(CNN(), DataLoader(data, batch_size=12, shuffle=True))

    # the probe: class-balanced, from the training data, 8 samples of each of the 3 classes
    x, y = callback.probe
    assert torch.bincount(y).tolist() == [8, 8, 8]
    index = [next(i for i in range(len(data)) if torch.equal(data[i][0], xi)) for xi in x]
    assert torch.equal(data.tensors[1][index], y)

    want, kernels = {}, {}
    for epoch in (0, 1, 3):
        want[epoch], kernels[epoch] = reference_metrics(
            snapshots.states[epoch], x, y, snapshots.states[0]
        )
    assert want[0]["kernel_distance"] == pytest.approx(0.0, abs=1e-7)

    # CSVLogger
    logged = ntk_rows(read_csv(Path(csv_logger.log_dir) / "metrics.csv"))
    assert sorted(logged) == [0, 1, 3]
    for epoch in (0, 1, 3):
        assert_close(logged[epoch], want[epoch], rtol=1e-5)
        assert logged[epoch]["seconds"] > 0
    # callback.history and ntk_metrics.csv (the csv logger comes first: its log_dir)
    assert [row["epoch"] for row in callback.history] == [0, 1, 3]
    assert [row["step"] for row in callback.history] == [0, 4, 12]
    history_csv = read_csv(Path(csv_logger.log_dir) / "ntk_metrics.csv")
    assert [int(r["epoch"]) for r in history_csv] == [0, 1, 3]
    for row, epoch in zip(history_csv, (0, 1, 3), strict=True):
        assert_close({k: float(v) for k, v in row.items()}, want[epoch], rtol=1e-5)
    # the monitorable value is the last measurement
    assert float(fit.callback_metrics["ntk/lga"]) == pytest.approx(want[3]["lga"], rel=1e-5)

    # W&B (what the logger is given): scalars, metric axis and tables
    logged_wandb = [(m, step) for m, step in wandb_logger.metrics if "ntk/lga" in m]
    scalars = {int(m["ntk/epoch"]): (m, step) for m, step in logged_wandb}
    assert sorted(scalars) == [0, 1, 3] and len(logged_wandb) == 3
    for epoch in (0, 1, 3):
        got = {k[4:]: float(v) for k, v in scalars[epoch][0].items() if k.startswith("ntk/")}
        assert_close(got, want[epoch], rtol=1e-5)
    assert wandb_logger.axes["ntk/lga"] == "ntk/epoch"
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in wandb_logger.tables:
        tables.setdefault(table["key"], []).append(table)
    assert len(tables["ntk/history"]) == 3 and len(tables["ntk/spectrum"]) == 3
    # the tables of a measurement are logged at the step of that measurement's scalars
    table_steps = [t["step"] for t in tables["ntk/spectrum"]]
    assert table_steps == [scalars[e][1] for e in (0, 1, 3)] == [0, 3, 11]
    last = tables["ntk/history"][-1]
    assert [row[last["columns"].index("epoch")] for row in last["data"]] == [0, 1, 3]
    lga = [row[last["columns"].index("lga")] for row in last["data"]]
    assert lga == pytest.approx([want[e]["lga"] for e in (0, 1, 3)], rel=1e-5)
    for table, epoch in zip(tables["ntk/spectrum"], (0, 1, 3), strict=True):
        assert table["columns"] == ["epoch", "index", "eigenvalue"]
        eig = torch.linalg.eigvalsh(kernels[epoch].double()).flip(0)
        assert [row[0] for row in table["data"]] == [epoch] * 24
        assert [row[2] for row in table["data"]] == pytest.approx(eig.tolist(), rel=1e-4, abs=1e-6)


def test_every_n_epochs_without_logger_writes_the_history_file(tmp_path: Path) -> None:
    callback = NTKMetrics(
        every_n_epochs=2, probe_size=12, metrics=("lga", "trace"), log_spectrum=False
    )
    fit = trainer(tmp_path, max_epochs=4, callbacks=[callback])
    fit.fit(CNN(), DataLoader(dataset(), batch_size=16))
    assert [row["epoch"] for row in callback.history] == [0, 2, 4]
    assert set(callback.history[0]) == {
        "epoch",
        "step",
        "lga",
        "trace",
        *EVOLUTION_METRICS,
        "seconds",
    }
    # without a logger: the run's own folder under default_root_dir, never the directory itself
    csv_path = tmp_path / "lga_runs" / "version_0" / "ntk_metrics.csv"
    assert [int(r["epoch"]) for r in read_csv(csv_path)] == [0, 2, 4]
    assert not (tmp_path / "ntk_metrics.csv").exists()
    assert callback.spectra == {}


def test_initial_kernel_is_taken_when_epoch_0_is_not_logged(tmp_path: Path) -> None:
    data = dataset()
    x, y = data.tensors[0][:12], data.tensors[1][:12]
    callback = NTKMetrics(measure_at=[1], probe=(x, y))
    snapshots = Snapshots()
    fit = trainer(tmp_path, max_epochs=1, callbacks=[callback, snapshots])
    fit.fit(CNN(), DataLoader(data, batch_size=16))
    assert [row["epoch"] for row in callback.history] == [1]
    want, _ = reference_metrics(snapshots.states[1], x, y, snapshots.states[0])
    assert_close(callback.history[0], want, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# any LightningModule


@pytest.mark.parametrize(
    ("out", "kernel_kwargs", "freeze", "batch"),
    [
        ("dict", {}, True, "tuple"),
        ("tuple", {"output_fn": lambda out: out[1], "bn_mode": "eval"}, False, "dict"),
    ],
)
def test_any_module(
    tmp_path: Path, out: str, kernel_kwargs: dict, freeze: bool, batch: str
) -> None:
    data = dataset()
    loader_data = DictDataset(data) if batch == "dict" else data
    unpack = (lambda item: (item["pixels"], item["cls"])) if batch == "dict" else None
    callback = NTKMetrics(probe_size=12, kernel_kwargs=kernel_kwargs, batch_unpack=unpack)
    snapshots = Snapshots()
    fit = trainer(tmp_path, callbacks=[callback, snapshots])
    fit.fit(CNN(out=out, freeze=freeze), DataLoader(loader_data, batch_size=16))
    assert [row["epoch"] for row in callback.history] == [0, 1]
    x, y = callback.probe
    model = CNN(out=out, freeze=freeze)
    model.load_state_dict(snapshots.states[1])
    K = empirical_ntk(model, x, **kernel_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NTKMetricWarning)
        want = ntk_metrics(K, y)
    assert_close(callback.history[1], want, rtol=1e-5)


def test_output_that_is_not_logits_names_kernel_kwargs(tmp_path: Path) -> None:
    fit = trainer(tmp_path, callbacks=[NTKMetrics(probe_size=12)])
    with pytest.raises(ValueError, match=r"kernel_kwargs=\{'output_fn'"):
        fit.fit(CNN(out="bad"), DataLoader(dataset(), batch_size=16))


def test_submodule_is_differentiated_instead_of_the_lightning_module(tmp_path: Path) -> None:
    callback = NTKMetrics(measure_at=[0], probe_size=12, submodule="net", log_spectrum=False)
    model, initial = MLP(), Snapshots()
    trainer(tmp_path, callbacks=[callback, initial]).fit(
        model, DataLoader(dataset(), batch_size=16)
    )
    model.load_state_dict(initial.states[0])
    x, y = callback.probe
    want = ntk_metrics(empirical_ntk(model.net, x), y)
    assert_close(callback.history[0], want, rtol=1e-5)
    with pytest.raises(ValueError, match=r"no such submodule; its children are \['net'\]"):
        trainer(tmp_path, callbacks=[NTKMetrics(submodule="backbone")]).fit(
            MLP(), DataLoader(dataset(), batch_size=16)
        )


# ---------------------------------------------------------------------------------------------
# out of the way


def test_training_is_bit_identical_with_and_without_the_callback(tmp_path: Path) -> None:
    def run(callbacks: list[Callback]) -> tuple[dict, dict]:
        pl.seed_everything(7)
        model = CNN(dropout=0.2)
        fit = trainer(tmp_path, max_epochs=2, deterministic=True, callbacks=callbacks)
        fit.fit(model, DataLoader(NoisyDataset(dataset()), batch_size=8, shuffle=True))
        return model.state_dict(), fit.optimizers[0].state_dict()

    weights, optimizer = run([])
    callback = NTKMetrics(every_n_epochs=1, probe_size=12)
    weights_cb, optimizer_cb = run([callback])
    assert [row["epoch"] for row in callback.history] == [0, 1, 2]
    assert weights.keys() == weights_cb.keys()
    for name in weights:  # includes BatchNorm running statistics
        assert torch.equal(weights[name], weights_cb[name]), name
    for index, state in optimizer["state"].items():
        assert torch.equal(
            state["momentum_buffer"], optimizer_cb["state"][index]["momentum_buffer"]
        )


# ---------------------------------------------------------------------------------------------
# resume


@pytest.mark.parametrize("every", ["epoch", "step"])
def test_resume_from_a_mid_run_checkpoint(tmp_path: Path, every: str) -> None:
    loader = DataLoader(dataset(), batch_size=16)  # 3 batches per epoch

    def checkpoints(directory: Path) -> ModelCheckpoint:
        if every == "epoch":  # saved after the epoch-end measurement
            return ModelCheckpoint(directory, filename="{epoch}", save_top_k=-1)
        # saved after the epoch's last batch, before the epoch-end measurement
        return ModelCheckpoint(directory, filename="{step}", save_top_k=-1, every_n_train_steps=3)

    full = NTKMetrics(every_n_epochs=1, probe_size=12)
    pl.seed_everything(0)
    trainer(
        tmp_path / "full",
        max_epochs=4,
        callbacks=[full, checkpoints(tmp_path / "ckpt")],
        enable_checkpointing=True,
    ).fit(CNN(), loader)
    assert [row["epoch"] for row in full.history] == [0, 1, 2, 3, 4]

    path = tmp_path / "ckpt" / ("epoch=1.ckpt" if every == "epoch" else "step=6.ckpt")
    state = torch.load(path, weights_only=True)["callbacks"][full.state_key]
    assert torch.equal(state["meter"]["probes_x"][0], full.probe[0])
    assert [row["epoch"] for row in state["history"]] == ([0, 1, 2] if every == "epoch" else [0, 1])

    resumed = NTKMetrics(every_n_epochs=1, probe_size=12)
    trainer(tmp_path / "resumed", max_epochs=4, callbacks=[resumed]).fit(
        CNN(), loader, ckpt_path=path
    )
    assert [row["epoch"] for row in resumed.history] == [0, 1, 2, 3, 4]
    for got, want in zip(resumed.history, full.history, strict=True):
        assert_close(got, {m: want[m] for m in ALL_METRICS}, rtol=1e-6)
    history_csv = read_csv(tmp_path / "resumed" / "lga_runs" / "version_0" / "ntk_metrics.csv")
    assert [int(r["epoch"]) for r in history_csv] == [0, 1, 2, 3, 4]


def test_resume_with_other_probe_tensors_keeps_the_checkpoint_probe_and_warns(
    tmp_path: Path,
) -> None:
    loader = DataLoader(dataset(), batch_size=16)
    x, y = dataset().tensors
    first = NTKMetrics(every_n_epochs=1, probe=(x[:12], y[:12]), log_spectrum=False)
    pl.seed_everything(0)
    trainer(
        tmp_path / "first",
        max_epochs=1,
        callbacks=[first, ModelCheckpoint(tmp_path / "ckpt", filename="last")],
        enable_checkpointing=True,
    ).fit(CNN(), loader)
    path = tmp_path / "ckpt" / "last.ckpt"

    same = NTKMetrics(every_n_epochs=1, probe=(x[:12], y[:12]), log_spectrum=False)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*differ from the probe batch.*")
        trainer(tmp_path / "same", max_epochs=2, callbacks=[same]).fit(
            CNN(), loader, ckpt_path=path
        )

    other = NTKMetrics(every_n_epochs=1, probe=(x[12:24], y[12:24]), log_spectrum=False)
    with pytest.warns(UserWarning, match="`probe` tensors differ from the probe batch"):
        trainer(tmp_path / "other", max_epochs=2, callbacks=[other]).fit(
            CNN(), loader, ckpt_path=path
        )
    assert torch.equal(other.probe[0], x[:12])
    assert [row["epoch"] for row in other.history] == [0, 1, 2]


class RelabelledImages(torch.utils.data.Dataset):
    """A torchvision-style dataset whose ``target_transform`` changes the stored ``targets``."""

    def __init__(self) -> None:
        self.data = torch.randn(48, 3, 4, 4, generator=torch.Generator().manual_seed(0))
        self.targets = [i % 4 for i in range(48)]  # four raw classes, 12 each
        self.target_transform = lambda t: int(t == 3)  # raw 0, 1, 2 -> 0; raw 3 -> 1

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.data[i], self.target_transform(self.targets[i])


def test_probe_is_balanced_on_the_labels_the_items_carry(tmp_path: Path) -> None:
    callback = NTKMetrics(measure_at=[0], probe_size=12, log_spectrum=False)
    data = RelabelledImages()
    trainer(tmp_path, callbacks=[callback]).fit(CNN(), DataLoader(data, batch_size=16))
    assert torch.bincount(callback.probe[1]).tolist() == [6, 6]


def test_two_instances_coexist(tmp_path: Path) -> None:
    paper = NTKMetrics(probe_size=12)
    decoupled = NTKMetrics(
        probe_size=12, prefix="ntk_eval/", kernel_kwargs={"bn_mode": "eval"}, state_key="eval"
    )
    fit = trainer(
        tmp_path,
        callbacks=[paper, decoupled, ModelCheckpoint(tmp_path / "ckpt", filename="last")],
        enable_checkpointing=True,
        logger=CSVLogger(tmp_path),
    )
    fit.fit(CNN(), DataLoader(dataset(), batch_size=16))
    rows = read_csv(Path(fit.logger.log_dir) / "metrics.csv")
    assert sorted(ntk_rows(rows)) == sorted(ntk_rows(rows, "ntk_eval/")) == [0, 1]
    assert paper.history[1]["lga"] != decoupled.history[1]["lga"]
    state = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)["callbacks"]
    assert state["eval"]["history"] == decoupled.history
    assert state[paper.state_key]["history"] == paper.history
    assert (Path(fit.logger.log_dir) / "ntk_eval_metrics.csv").exists()

    with pytest.raises(MisconfigurationException, match="same prefix"):
        trainer(tmp_path, callbacks=[NTKMetrics(), NTKMetrics(state_key="b")]).fit(
            CNN(), DataLoader(dataset(), batch_size=16)
        )


# ---------------------------------------------------------------------------------------------
# bad input


def test_single_class_probe_warns_once_logs_nan_and_training_continues(tmp_path: Path) -> None:
    x = dataset().tensors[0][:12]
    callback = NTKMetrics(measure_at=[0, 1, 2], probe=(x, torch.zeros(12, dtype=torch.long)))
    fit = trainer(tmp_path, max_epochs=2, callbacks=[callback], logger=CSVLogger(tmp_path))
    with pytest.warns(NTKMetricWarning, match="single class") as caught:
        fit.fit(CNN(), DataLoader(dataset(), batch_size=16))
    assert sum("single class" in str(w.message) for w in caught) == 1
    assert fit.current_epoch == 2
    logged = ntk_rows(read_csv(Path(fit.logger.log_dir) / "metrics.csv"))
    assert sorted(logged) == [0, 1, 2]
    assert all(math.isnan(row["lga"]) and row["trace"] > 0 for row in logged.values())


def test_data_without_labels_names_batch_unpack(tmp_path: Path) -> None:
    unlabelled = TensorDataset(dataset().tensors[0])
    fit = trainer(tmp_path, callbacks=[NTKMetrics(probe_size=12)])
    with pytest.raises(ValueError, match="batch_unpack"):
        fit.fit(CNN(), DataLoader(unlabelled, batch_size=16))


def test_epochs_beyond_max_epochs_warn(tmp_path: Path) -> None:
    callback = NTKMetrics(measure_at=[0, 5], probe_size=12, log_spectrum=False)
    with pytest.warns(UserWarning, match=r"\[5\] lie beyond `max_epochs=1`"):
        trainer(tmp_path, callbacks=[callback]).fit(CNN(), DataLoader(dataset(), batch_size=16))
    assert [row["epoch"] for row in callback.history] == [0]


def test_dataset_smaller_than_probe_size(tmp_path: Path) -> None:
    fit = trainer(tmp_path, callbacks=[NTKMetrics(probe_size=16)])
    with pytest.raises(ValueError, match=r"fewer than `probe_size=16`"):
        fit.fit(CNN(), DataLoader(dataset(n=10), batch_size=5))
    with pytest.raises(ValueError, match=r"holds 0 samples, fewer than `probe_size=16`"):
        NTKMetrics(probe_size=16, probe=TensorDataset(torch.zeros(0, 3), torch.zeros(0)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"measure_at": [0, -1]}, r"`measure_at` must be non-negative integers, got \[0, -1\]"),
        ({"measure_at": [1.5]}, "`measure_at` must be non-negative integers"),
        ({"measure_at": []}, "`measure_at` must be non-negative integers"),
        ({"measure_at": "0,1"}, "list of non-negative integers"),
        ({"measure_at": [0], "every_n_epochs": 2}, "not both"),
        ({"every_n_epochs": 0}, "`every_n_epochs` must be an integer >= 1"),
        ({"probe_size": 1}, "`probe_size` must be an integer >= 2"),
        ({"probe_size": True}, "`probe_size` must be an integer"),
        ({"probe": (torch.zeros(3, 2), torch.zeros(3))}, "1-D integer tensor"),
        ({"probe": (torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))}, "one label per"),
        ({"probe": [1, 2, 3]}, "tuple of tensors"),
        ({"probe": 5}, "map-style dataset"),
        ({"batch_unpack": "x"}, "`batch_unpack` must be a function"),
        ({"metrics": ("lga", "accuracy")}, r"unknown `metrics` \['accuracy'\]"),
        ({"metrics": ()}, "`metrics` is empty"),
        ({"kernel_kwargs": {"bn_mode": "frozen"}}, r"`kernel_kwargs\['bn_mode'\]` can be"),
        ({"kernel_kwargs": {"output": "full"}}, "'lga' needs an"),
        ({"kernel_kwargs": {"probe_size": 3}}, "unknown options"),
        ({"kernel_kwargs": {"chunk_size": 0}}, "chunk_size"),
        ({"kernel_kwargs": {"output_fn": 3}}, "output_fn"),
        ({"track_evolution": "yes"}, "`track_evolution` must be True or False"),
        ({"kernel_velocity": 1}, "`kernel_velocity` must be True or False"),
        ({"plot": None}, "`plot` must be True or False"),
        ({"every_n_steps": 0}, "`every_n_steps` must be an integer >= 1"),
        ({"every_n_steps": 2.5}, "`every_n_steps` must be an integer"),
        ({"prefix": None}, "`prefix` must be a string"),
        ({"submodule": ""}, "`submodule` must be the name"),
        ({"state_key": ""}, "`state_key` must be a non-empty string"),
    ],
)
def test_arguments_are_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NTKMetrics(**kwargs)


def test_state_dict_round_trip_under_weights_only(tmp_path: Path) -> None:
    callback = NTKMetrics(measure_at=[0], probe_size=12)
    trainer(tmp_path, callbacks=[callback]).fit(CNN(), DataLoader(dataset(), batch_size=16))
    torch.save(callback.state_dict(), tmp_path / "state.pt")
    restored = NTKMetrics(measure_at=[0], probe_size=12)
    restored.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert restored.history == callback.history
    assert torch.equal(restored.probe[0], callback.probe[0])
    assert torch.equal(restored.initial_kernel, callback.initial_kernel)
    assert torch.equal(restored.spectra[0], callback.spectra[0])


# ---------------------------------------------------------------------------------------------
# DDP


def ddp_run(tmp_path: Path, devices: int) -> dict[int, dict[str, float]]:
    pl.seed_everything(0)
    rows = JSONLinesSink(tmp_path / "rows.jsonl")  # pickled to each spawned rank
    callback = NTKMetrics(
        measure_at=[0, 1, 2], probe_size=15, kernel_kwargs={"output": "trace"}, sinks=[rows]
    )
    fit = trainer(
        tmp_path,
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        max_epochs=2,
        callbacks=[callback],
        logger=CSVLogger(tmp_path),
    )
    loader = comparable_loader(dataset(), devices)
    fit.fit(MLP(), loader)
    log_dir = tmp_path / "lightning_logs" / "version_0"
    history = read_csv(log_dir / "ntk_metrics.csv")
    assert [int(r["epoch"]) for r in history] == [0, 1, 2]
    written = [json.loads(line) for line in Path(rows.path).read_text().splitlines()]
    assert [r["epoch"] for r in written] == [0, 1, 2]  # rank 0 alone writes the sinks
    assert [r["lga"] for r in written] == [float(r["lga"]) for r in history]
    return ntk_rows(read_csv(log_dir / "metrics.csv"))


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_logs_the_values_of_one_process(tmp_path: Path) -> None:
    single = ddp_run(tmp_path / "one", devices=1)
    double = ddp_run(tmp_path / "two", devices=2)
    assert sorted(single) == sorted(double) == [0, 1, 2]
    for epoch in single:
        for name in ALL_METRICS:
            # After training steps the weights themselves differ by float rounding (gradients are
            # summed in another order across processes); the relative kernel difference divides
            # by near-zero entries of K0 and amplifies that. At epoch 0 everything is within 1e-5.
            tol = 1e-5 if epoch == 0 else max(1e-5, LOOSER.get(name, 0.0))
            assert double[epoch][name] == pytest.approx(single[epoch][name], rel=tol, abs=1e-7)


def test_runs_without_a_versioning_logger_do_not_overwrite_each_other(tmp_path):
    # W&B keeps everything in one save_dir, and no logger means default_root_dir: each run
    # gets its own folder there, so a second run leaves the first run's CSV as it was
    def run(logger):
        callback = NTKMetrics(measure_at=[0, 1], probe_size=8, plot=False)
        trainer(tmp_path, max_epochs=1, callbacks=[callback], logger=logger).fit(
            MLP(), DataLoader(dataset(n=32), batch_size=16)
        )
        return callback

    first, second = run(False), run(False)
    assert first._csv_path != second._csv_path
    assert Path(first._csv_path).parent.name == "version_0"
    assert Path(second._csv_path).parent.name == "version_1"
    assert len(read_csv(Path(first._csv_path))) == 2  # untouched by the second run
    logger = RecordingWandbLogger(project="p", save_dir=str(tmp_path / "wb"))
    folder = Path(run(logger)._csv_path).parent
    assert folder == tmp_path / "wb" / "p" / "recorded-run"  # project / run id
    assert (folder / "ntk_metrics.csv").exists()
