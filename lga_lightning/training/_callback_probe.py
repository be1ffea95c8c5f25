"""The probe batches of :class:`~lga_lightning.NTKMetrics` and the kernels kept for them.

The probe is drawn once per run (or restored from a checkpoint) and held by the callback's
:class:`~lga_lightning.core.meter.NTKMeter`; this mixin reads it and draws it.
"""

from __future__ import annotations

import lightning.pytorch as pl
from torch import Tensor
from torch.utils.data import Dataset

from lga_lightning.core.meter import NTKMeter
from lga_lightning.core.probe import BatchUnpack
from lga_lightning.training._callback_checks import same_samples, train_dataset


class ProbeMixin:
    """The probe batches of :class:`~lga_lightning.NTKMetrics`, their kept kernels, their draw.

    Draws through the callback's ``_session`` and warns through its ``_warn_once``
    (:class:`~lga_lightning.training._callback_measure.MeasureMixin`).
    """

    meter: NTKMeter
    probe_size: int
    probe_seed: int
    num_probes: int
    batch_unpack: BatchUnpack | None
    _given_probe: tuple[Tensor, Tensor] | Dataset | None

    @property
    def probes(self) -> list[tuple[Tensor, Tensor]]:
        """The probe batches ``(x, y)`` (one unless ``num_probes > 1``), empty before fit."""
        return self.meter.probes

    @property
    def initial_kernels(self) -> list[Tensor]:
        """Each probe batch's kernel at epoch 0 (when evolution is tracked)."""
        return self.meter.initial_kernels

    @property
    def previous_kernels(self) -> list[Tensor]:
        """Each probe batch's kernel at the previous measurement (with ``kernel_velocity``)."""
        return self.meter.previous_kernels

    @property
    def probe(self) -> tuple[Tensor, Tensor] | None:
        """The (first) probe batch ``(x, y)``; all of them are in ``probes``."""
        return self.probes[0] if self.probes else None

    @property
    def initial_kernel(self) -> Tensor | None:
        """The (first) probe batch's kernel at epoch 0; all of them are in ``initial_kernels``."""
        return self.initial_kernels[0] if self.initial_kernels else None

    @property
    def previous_kernel(self) -> Tensor | None:
        """The (first) probe batch's previous kernel; all of them are in ``previous_kernels``."""
        return self.previous_kernels[0] if self.previous_kernels else None

    @property
    def evolution_metrics(self) -> tuple[str, ...]:
        """The kernel-evolution metrics this callback computes."""
        return self.meter.evolution_metrics

    def _ensure_probe(self, trainer: pl.Trainer) -> None:
        """Keep a checkpoint's probe batches (saying how they differ), or draw new ones."""
        if self.probes:
            for message in checkpoint_probe_warnings(
                self.probes, self._given_probe, self.probe_size, self.num_probes
            ):
                self._warn_once(message)
            return
        given = self._given_probe
        source = given if given is not None else getattr(trainer, "datamodule", None)
        if not callable(getattr(source, "probe_batch", None)) and given is None:
            source = train_dataset(trainer)
        # every rank measures rank 0's samples
        self._session(trainer).draw_probes(
            source, self.probe_size, self.probe_seed, self.num_probes, self.batch_unpack
        )


def checkpoint_probe_warnings(
    probes: list[tuple[Tensor, Tensor]],
    given: tuple[Tensor, Tensor] | Dataset | None,
    probe_size: int,
    num_probes: int,
) -> list[str]:
    """How a checkpoint's probe batches differ from the arguments; they are measured anyway.

    Example:
        >>> import torch
        >>> probes = [(torch.zeros(4, 2), torch.tensor([0, 1, 0, 1]))]
        >>> checkpoint_probe_warnings(probes, None, probe_size=4, num_probes=1)
        []
        >>> len(checkpoint_probe_warnings(probes, None, probe_size=8, num_probes=2))
        2
    """
    messages = []
    if given is None and len(probes[0][1]) != probe_size:
        messages.append(
            f"NTKMetrics: measuring the checkpoint's probe batch of "
            f"{len(probes[0][1])} samples, not `probe_size={probe_size}`, so "
            "the history stays comparable."
        )
    if isinstance(given, tuple) and not same_samples(given, probes):
        messages.append(
            "NTKMetrics: the `probe` tensors differ from the probe batch in the checkpoint "
            "this run resumes from; measuring the checkpoint's, so the history stays "
            "comparable. Start a new run to measure the new probe."
        )
    if len(probes) != num_probes:
        messages.append(
            f"NTKMetrics: measuring the checkpoint's {len(probes)} probe batch(es), "
            f"not `num_probes={num_probes}`, so the history stays comparable."
        )
    return messages
