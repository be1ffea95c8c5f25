"""When :class:`~lga_lightning.NTKMetrics` measures: the epochs and steps of its schedule."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl


class ScheduleMixin:
    """The schedule of :class:`~lga_lightning.NTKMetrics`: which epochs and steps to measure.

    Reads the callback's ``measure_at``, ``every_n_epochs``, ``every_n_steps`` and ``history``.
    """

    measure_at: list[int] | None
    every_n_epochs: int | None
    every_n_steps: int | None
    history: list[dict[str, Any]]

    def is_scheduled(self, epoch: int) -> bool:
        """Whether ``epoch`` (completed epochs, 0 = initialisation) is measured.

        Example:
            >>> from lga_lightning import NTKMetrics
            >>> NTKMetrics(every_n_epochs=2).is_scheduled(4), NTKMetrics().is_scheduled(2)
            (True, False)
        """
        if self.every_n_epochs is not None:
            return epoch % self.every_n_epochs == 0
        return epoch in self.measure_at

    @property
    def measured_epochs(self) -> list[int]:
        """Whole epochs already in the history (step measurements between epochs excluded)."""
        return [int(row["epoch"]) for row in self.history if whole(row["epoch"])]

    @property
    def measured_steps(self) -> list[int]:
        """Optimizer steps (``trainer.global_step``) at which the history holds a measurement."""
        return [int(row["step"]) for row in self.history]

    def is_step_scheduled(self, step: int) -> bool:
        """Whether ``every_n_steps`` asks for a measurement after optimizer step ``step``.

        Example:
            >>> from lga_lightning import NTKMetrics
            >>> callback = NTKMetrics(every_n_steps=5)
            >>> [s for s in range(12) if callback.is_step_scheduled(s)]
            [5, 10]
        """
        n = self.every_n_steps
        return n is not None and step > 0 and step % n == 0


def at_epoch_boundary(trainer: pl.Trainer) -> bool:
    """Whether the weights are those after exactly ``trainer.current_epoch`` epochs."""
    loop = trainer.fit_loop
    if getattr(loop, "restarted_on_epoch_end", False):
        return False
    if getattr(loop, "restarted_mid_epoch", False):
        return bool(loop.epoch_loop.batch_progress.is_last_batch)
    return True


def whole(epoch: float) -> bool:
    """Whether a history ``epoch`` is a whole number of epochs (not a step measurement's).

    Example:
        >>> whole(2), whole(2.0), whole(1.5), whole(float("nan"))
        (True, True, False, False)
    """
    return float(epoch).is_integer()


def fractional_epoch(trainer: pl.Trainer, batch_idx: int, last: bool) -> float:
    """Epochs completed after batch ``batch_idx``; ``nan`` when the epoch's length is unknown."""
    if last:
        return trainer.current_epoch + 1
    batches = trainer.num_training_batches
    if not math.isfinite(batches) or batches <= 0:
        return math.nan
    return trainer.current_epoch + (batch_idx + 1) / batches
