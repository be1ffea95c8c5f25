"""One network trained with Lightning and measured by ``NTKMetrics`` at scheduled epochs.

A :class:`~lga_lightning.training.module.ClassificationModule` trained by a plain ``Trainer``
(the same training as ``lga-train``), with one :class:`~lga_lightning.NTKMetrics` callback per
kernel setting (its own :class:`~lga_lightning.core.meter.NTKMeter` and probe) measuring the
network at epoch 0 (``on_train_start``) and after each scheduled epoch (``on_train_epoch_end``,
after that epoch's validation), exactly as in any training run with the callback. The
per-architecture work of ``lga-correlate`` (:mod:`recipes._study`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from lga_lightning.core.meter import NTKMeter
from lga_lightning.training.callback import NTKMetrics
from lga_lightning.training.module import ClassificationModule
from lga_lightning.training.session import MeasurementSession
from recipes._probes import PROXY_SETTING


class _SecondsSink:
    """Add each measurement's time by signal (the meter's ``last_seconds``) to ``totals``."""

    def __init__(self, meter: NTKMeter, totals: dict[str, float]) -> None:
        self.meter, self.totals = meter, totals

    def write(self, record: Mapping[str, Any]) -> None:
        for name, seconds in self.meter.last_seconds.items():
            self.totals[name] = self.totals.get(name, 0.0) + seconds


class _EpochEntries(Callback):
    """After the :class:`~lga_lightning.NTKMetrics` callbacks: keep each measured epoch's entry.

    The entry holds every setting's newest history row, the epoch's training loss and the
    validation accuracy (measured after that epoch's validation, as the callbacks measure).
    """

    def __init__(self, run: TrainAndMeasure) -> None:
        self.run = run

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.run.keep(0, math.nan, self.run.initial_val_acc)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = trainer.callback_metrics
        loss = metrics.get("train/loss_epoch", metrics.get("train/loss"))
        accuracy = metrics.get("val/acc")
        self.run.keep(
            trainer.current_epoch + 1,
            train_loss=math.nan if loss is None else float(loss),
            val_acc=math.nan if accuracy is None else float(accuracy),
        )


class TrainAndMeasure:
    """Train ``network`` for ``train_epochs`` and measure it at ``measure_at``.

    Args:
        meters: one meter per kernel setting, probes already set; the meter under
            :data:`PROXY_SETTING` measures the zero-cost proxies (entry ``"proxies"``).
        measure_at: epochs to measure the NTK at (0 = initialisation).
        extra_epochs: epochs at which only the training loss and accuracy are recorded (e.g. the
            study's own ground truth).
        optimizer: ``params -> Optimizer``; default the paper's SGD.
        lr_scheduler: ``optimizer -> scheduler``, stepped once per epoch; default none.
        trainer_kwargs: extra ``Trainer`` arguments (``accelerator``, ``limit_train_batches``;
            ``callbacks`` run after the measurements).
        val_source: ``split`` (the datamodule's validation data) or ``test`` (its test data) for
            ``val_acc``.

    Example:
        >>> import torch
        >>> from lga_lightning.data import DigitsDataModule
        >>> dm = DigitsDataModule(resize=8, batch_size=64); dm.setup("fit")
        >>> meter = NTKMeter(["lga"]); meter.draw_probes(dm, size=10, seed=0)  # doctest: +ELLIPSIS
        [...]
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32),
        ...                           torch.nn.ReLU(), torch.nn.Linear(32, 10))
        >>> run = TrainAndMeasure({"n10-train": meter}, measure_at=[0, 1],
        ...                       trainer_kwargs={"limit_train_batches": 2})
        >>> entries = run.fit(net, dm, num_classes=10)
        >>> sorted(entries), sorted(entries[1])
        ([0, 1], ['ntk', 'train_loss', 'val_acc'])
    """

    def __init__(
        self,
        meters: Mapping[str, NTKMeter],
        measure_at: Sequence[int],
        extra_epochs: Sequence[int] = (),
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        trainer_kwargs: Mapping[str, Any] | None = None,
        val_source: str = "split",
    ) -> None:
        self.meters = dict(meters)
        self.val_source = val_source
        self.measure_at = sorted(set(measure_at))
        self.extra_epochs = sorted(set(extra_epochs))
        self.optimizer = optimizer
        self.lr_scheduler = lr_scheduler
        self.trainer_kwargs = dict(trainer_kwargs or {})
        self.entries: dict[int, dict[str, Any]] = {}
        self.ntk_callbacks: dict[str, NTKMetrics] = {}
        self.initial_val_acc = math.nan
        self.seconds: dict[str, float] = {}
        """Wall time by signal over the whole run: ``train`` (fit, measurements excluded),
        ``kernel`` (every setting's kernels and metrics) and each proxy."""

    @property
    def train_epochs(self) -> int:
        """Epochs the network trains for."""
        return max([*self.measure_at, *self.extra_epochs, 0])

    def callbacks(self) -> dict[str, NTKMetrics]:
        """One :class:`~lga_lightning.NTKMetrics` per setting: its meter, its probe, no files.

        Each measures the network (``submodule="model"``) at ``measure_at``; its rows stay in
        ``callback.history`` and its time by signal goes to :attr:`seconds`.
        """
        callbacks = {}
        for setting, meter in self.meters.items():
            x, y = meter.probes[0]
            callbacks[setting] = NTKMetrics(
                measure_at=self.measure_at,
                probe=(x, y),
                probe_size=len(y),
                meter=meter,
                prefix=f"{setting}/",
                submodule="model",
                plot=False,
                write_csv=False,
                sinks=[_SecondsSink(meter, self.seconds)],
            )
        return callbacks

    def fit(
        self,
        network: nn.Module,
        datamodule: pl.LightningDataModule,
        num_classes: int,
        seed: int = 0,
    ) -> dict[int, dict[str, Any]]:
        """Measure, train and measure again; ``epoch -> {"ntk", "train_loss", "val_acc"}``.

        ``seed`` seeds the data order and augmentation (``pl.seed_everything``).
        """
        self.entries, self.seconds = {}, {}
        self.ntk_callbacks = self.callbacks()
        module = ClassificationModule(
            network,
            num_classes=num_classes,
            optimizer=self.optimizer,
            lr_scheduler=self.lr_scheduler,
        )
        callbacks = [*self.ntk_callbacks.values(), _EpochEntries(self)]
        trainer = pl.Trainer(
            **{
                "accelerator": "auto",
                "devices": 1,
                "logger": False,
                "enable_checkpointing": False,
                "enable_progress_bar": False,
                "enable_model_summary": False,
                "num_sanity_val_steps": 0,
                **self.trainer_kwargs,
                "max_epochs": self.train_epochs,
                "callbacks": [*callbacks, *self.trainer_kwargs.get("callbacks", [])],
            }
        )
        self.initial_val_acc = math.nan
        if 0 in self.measure_at:
            results = trainer.validate(module, **self._val(datamodule), verbose=False)
            self.initial_val_acc = float(results[0]["val/acc"]) if results else math.nan
        if self.train_epochs == 0:  # nothing to fit: the callbacks' session measures epoch 0
            for callback in self.ntk_callbacks.values():
                session = MeasurementSession(
                    callback.meter, trainer, shard=False, sinks=callback.sinks
                )
                callback.history = [session.measure(network, 0)]
            self.keep(0, math.nan, self.initial_val_acc)
            return self.entries
        pl.seed_everything(seed, verbose=False)
        start = time.perf_counter()
        if self.val_source == "test":
            trainer.fit(
                module,
                train_dataloaders=datamodule.train_dataloader(),
                val_dataloaders=datamodule.test_dataloader(),
            )
        else:
            trainer.fit(module, datamodule=datamodule)
        measuring = sum(self.seconds.values())
        self.seconds["train"] = time.perf_counter() - start - measuring
        return self.entries

    def _val(self, datamodule: pl.LightningDataModule) -> dict[str, Any]:
        if self.val_source == "test":
            return {"dataloaders": datamodule.test_dataloader()}
        return {"datamodule": datamodule}

    def keep(self, epoch: int, train_loss: float, val_acc: float) -> None:
        """Keep ``epoch``'s entry when it is measured or recorded: every setting's newest row."""
        if epoch not in self.measure_at and epoch not in self.extra_epochs:
            return
        entry: dict[str, Any] = {"train_loss": train_loss, "val_acc": val_acc}
        if epoch in self.measure_at:
            for setting, callback in self.ntk_callbacks.items():
                row = callback.history[-1]
                if row["epoch"] != epoch:  # the callback measures every epoch of measure_at
                    raise RuntimeError(f"{setting}: no measurement at epoch {epoch}")
                kept = {k: v for k, v in row.items() if k not in ("epoch", "step", "seconds")}
                if setting == PROXY_SETTING:
                    entry["proxies"] = kept
                else:
                    entry.setdefault("ntk", {})[setting] = kept
        self.entries[epoch] = entry
