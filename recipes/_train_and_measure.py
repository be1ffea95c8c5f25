"""One network trained with Lightning and measured with NTK meters at scheduled epochs.

A :class:`~lga_lightning.training.module.ClassificationModule` trained by a plain ``Trainer``
(the same training as ``lga-train``), with one :class:`~lga_lightning.core.meter.NTKMeter` per
kernel setting measuring the network at epoch 0 (before ``fit``) and after each scheduled epoch
(a callback in ``on_train_epoch_end``, after that epoch's validation). The per-architecture work
of ``lga-correlate`` (:mod:`recipes._study`).
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
from lga_lightning.training.module import ClassificationModule
from lga_lightning.training.session import MeasurementSession
from recipes._probes import PROXY_SETTING


class _EpochMeasurements(Callback):
    """Record the meters' values, the epoch's training loss and the validation accuracy."""

    def __init__(self, study: TrainAndMeasure) -> None:
        self.study = study

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Epoch 0 inside the fit: the weights before any step, in the Trainer's precision, as
        # NTKMetrics measures them.
        if self.study.measure_at_start:
            self.study.trainer = trainer
            self.study.record(pl_module.model, 0, math.nan, self.study.initial_val_acc)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        self.study.trainer = trainer
        metrics = trainer.callback_metrics
        loss = metrics.get("train/loss_epoch", metrics.get("train/loss"))
        accuracy = metrics.get("val/acc")
        self.study.record(
            pl_module.model,
            epoch,
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
        self.trainer: pl.Trainer | None = None
        self.measure_at_start = False
        self.initial_val_acc = math.nan
        self.seconds: dict[str, float] = {}
        """Wall time by signal over the whole run: ``train`` (fit, measurements excluded),
        ``kernel`` (every setting's kernels and metrics) and each proxy."""

    @property
    def train_epochs(self) -> int:
        """Epochs the network trains for."""
        return max([*self.measure_at, *self.extra_epochs, 0])

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
        for meter in self.meters.values():
            meter.reset_kernels()
        module = ClassificationModule(
            network,
            num_classes=num_classes,
            optimizer=self.optimizer,
            lr_scheduler=self.lr_scheduler,
        )
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
                "callbacks": [_EpochMeasurements(self), *self.trainer_kwargs.get("callbacks", [])],
            }
        )
        self.trainer, self.measure_at_start = None, False
        if 0 in self.measure_at or any(m.evolution_metrics for m in self.meters.values()):
            accuracy = math.nan
            if 0 in self.measure_at:
                results = trainer.validate(module, **self._val(datamodule), verbose=False)
                accuracy = float(results[0]["val/acc"]) if results else math.nan
            self.initial_val_acc = accuracy
            self.measure_at_start = self.train_epochs > 0
            if not self.measure_at_start:
                self.record(network, 0, train_loss=math.nan, val_acc=accuracy)
        if self.train_epochs > 0:
            pl.seed_everything(seed, verbose=False)
            start, measuring = time.perf_counter(), sum(self.seconds.values())
            if self.val_source == "test":
                trainer.fit(
                    module,
                    train_dataloaders=datamodule.train_dataloader(),
                    val_dataloaders=datamodule.test_dataloader(),
                )
            else:
                trainer.fit(module, datamodule=datamodule)
            elapsed = time.perf_counter() - start
            self.seconds["train"] = elapsed - (sum(self.seconds.values()) - measuring)
        return self.entries

    def _val(self, datamodule: pl.LightningDataModule) -> dict[str, Any]:
        if self.val_source == "test":
            return {"dataloaders": datamodule.test_dataloader()}
        return {"datamodule": datamodule}

    def record(self, network: nn.Module, epoch: int, train_loss: float, val_acc: float) -> None:
        """Measure at ``epoch`` when scheduled and keep the entry."""
        entry: dict[str, Any] = {"train_loss": train_loss, "val_acc": val_acc}
        if epoch in self.measure_at or epoch == 0:
            values = {}
            for setting, meter in self.meters.items():
                session = MeasurementSession(meter, self.trainer, shard=False)
                values[setting] = session.measure(network, epoch)
                for name, seconds in meter.last_seconds.items():
                    self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            if epoch in self.measure_at:
                for setting, record in values.items():
                    kept = {k: v for k, v in record.items() if k not in ("epoch", "seconds")}
                    part = "proxies" if setting == PROXY_SETTING else "ntk"
                    if part == "proxies":
                        entry["proxies"] = kept
                    else:
                        entry.setdefault("ntk", {})[setting] = kept
        if epoch in self.measure_at or epoch in self.extra_epochs:
            self.entries[epoch] = entry
