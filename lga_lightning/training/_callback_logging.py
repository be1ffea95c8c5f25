"""How :class:`~lga_lightning.NTKMetrics` logs: scalars, tables, W&B axes and file names."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor

from lga_lightning.training import _history


def logging_step(trainer: pl.Trainer) -> int:
    """The step Lightning's own logging uses (batches that stepped the optimizer)."""
    return int(getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step))


def csv_name(prefix: str) -> str:
    """``ntk_metrics.csv`` for the default prefix; one file per prefix otherwise.

    Example:
        >>> csv_name("ntk/"), csv_name("ntk_eval/")
        ('ntk_metrics.csv', 'ntk_eval_metrics.csv')
    """
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", prefix).strip("_") or "ntk"
    return f"{stem}_metrics.csv"


def plot_name(prefix: str) -> str:
    """``ntk_evolution.png`` for the default prefix; one file per prefix otherwise.

    Example:
        >>> plot_name("ntk/"), plot_name("ntk_eval/")
        ('ntk_evolution.png', 'ntk_eval_evolution.png')
    """
    return csv_name(prefix).replace("_metrics.csv", "_evolution.png")


def log_measurement(
    trainer: pl.Trainer,
    pl_module: pl.LightningModule,
    prefix: str,
    history: Sequence[Mapping[str, Any]],
    row: Mapping[str, Any],
    spectrum: Tensor | None,
    from_epoch_end: bool,
) -> None:
    """Log one measurement of :class:`~lga_lightning.NTKMetrics`.

    Scalars go through ``pl_module.log`` after an epoch (so callbacks can monitor them) and to
    ``trainer.loggers`` directly otherwise; loggers with ``log_table`` also get the history and
    the spectrum tables (rank 0).
    """
    scalars = {f"{prefix}{k}": float(v) for k, v in row.items() if k != "step"}
    if from_epoch_end:
        # float64 keeps every digit; MPS has no float64.
        dtype = torch.float32 if pl_module.device.type == "mps" else torch.float64
        for key, value in scalars.items():
            pl_module.log(
                key,
                torch.tensor(value, dtype=dtype, device=pl_module.device),
                on_step=False,
                on_epoch=True,
                sync_dist=False,
                batch_size=1,
            )
        # Lightning logs epoch-end metrics at the step of the epoch's last batch.
        step = max(logging_step(trainer) - 1, 0)
    else:
        step = logging_step(trainer)
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        if not from_epoch_end:
            logger.log_metrics({**scalars, "epoch": trainer.current_epoch}, step=step)
            logger.save()
        if hasattr(logger, "log_table"):
            columns, data = _history.table_rows(history)
            logger.log_table(key=f"{prefix}history", columns=columns, data=data, step=step)
            if spectrum is not None:
                epoch = row["epoch"]
                logger.log_table(
                    key=f"{prefix}spectrum",
                    columns=["epoch", "index", "eigenvalue"],
                    data=[[epoch, i, float(v)] for i, v in enumerate(spectrum.tolist())],
                    step=step,
                )


def define_wandb_axis(trainer: pl.Trainer, prefix: str, keys: Sequence[str]) -> None:
    """Plot ``<prefix><key>`` against ``<prefix>epoch`` in W&B."""
    axis = f"{prefix}epoch"
    for logger in trainer.loggers:
        if not isinstance(logger, WandbLogger):
            continue
        experiment = logger.experiment
        define = getattr(experiment, "define_metric", None)
        if define is None:
            continue
        define(axis)
        for key in dict.fromkeys(keys):
            define(f"{prefix}{key}", step_metric=axis)
