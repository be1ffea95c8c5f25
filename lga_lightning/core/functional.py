"""Metrics of an empirical NTK by name: the lists of them and :func:`ntk_metrics`, no Lightning.

The metric functions (:func:`lga`, :func:`condition_number`, ...) live in
:mod:`lga_lightning.core.kernel_metrics` and are re-exported here; their names, needs and
directions are rows of the registry :data:`lga_lightning.core.signals.SIGNALS`, which the lists
below and :func:`ntk_metrics` read.

What a metric returns where it is undefined is said in :mod:`lga_lightning.core.kernel_metrics`.

Example:
    >>> SCALAR_METRICS
    ('lga', 'condition_number', 'frobenius_norm', 'mean', 'trace')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from lga_lightning.core.kernel_metrics import (
    NTKMetricWarning,
    condition_number,
    eigenvalues,
    frobenius_norm,
    kernel_correlation,
    kernel_distance,
    label_kernel,
    lga,
    mean,
    relative_kernel_difference,
    trace,
)
from lga_lightning.core.signals import SIGNALS, kernel_metric_names, signal_names

SCALAR_METRICS = signal_names("kernel")
"""The metrics of one kernel (the registry's ``kernel`` rows): every surface's default."""
EVOLUTION_METRICS = signal_names("evolution", needs="initial_kernel")
"""The metrics of a kernel against the initial one (``kernel_velocity`` is the meter's own)."""


def ntk_metrics(
    kernel: Tensor,
    labels: Tensor | None = None,
    *,
    metrics: Sequence[str] = SCALAR_METRICS,
    initial_kernel: Tensor | None = None,
    off_diagonal_lga: bool = False,
) -> dict[str, float]:
    """Compute several metrics of one kernel at once.

    Args:
        kernel: ``(n, n)`` NTK.
        labels: probe labels, needed for ``"lga"`` (and any metric whose row needs labels).
        metrics: names from :data:`SCALAR_METRICS` and :data:`EVOLUTION_METRICS`, or any kernel
            metric added with :func:`lga_lightning.core.signals.register`.
        initial_kernel: ``K_0``, needed for the evolution metrics.
        off_diagonal_lga: passed to :func:`lga` as ``off_diagonal``.

    Returns:
        ``{name: value}`` in the order of ``metrics``.

    Example:
        >>> import torch
        >>> K = torch.tensor([[2.0, 1.0], [1.0, 2.0]])
        >>> ntk_metrics(K, torch.tensor([0, 1]), metrics=("trace", "mean", "condition_number"))
        {'trace': 4.0, 'mean': 1.5, 'condition_number': 3.0}
    """
    known = kernel_metric_names()
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise ValueError(f"unknown NTK metrics {unknown}; choose from {list(known)}.")
    rows = [SIGNALS[m] for m in metrics]
    for row in rows:
        if row.needs_labels and labels is None:
            raise ValueError(
                f"the {row.name!r} metric needs `labels`: pass the probe batch's labels."
            )
    wants_evolution = [r.name for r in rows if "initial_kernel" in r.needs]
    if wants_evolution and initial_kernel is None:
        raise ValueError(f"{wants_evolution} need `initial_kernel` (the kernel at epoch 0).")
    lga_options: dict[str, Any] = {"off_diagonal": off_diagonal_lga}
    return {
        row.name: row.compute(
            kernel=kernel,
            labels=labels,
            initial_kernel=initial_kernel,
            **(lga_options if row.function is lga else {}),
        )
        for row in rows
    }


__all__ = [
    "EVOLUTION_METRICS",
    "SCALAR_METRICS",
    "NTKMetricWarning",
    "condition_number",
    "eigenvalues",
    "frobenius_norm",
    "kernel_correlation",
    "kernel_distance",
    "label_kernel",
    "lga",
    "mean",
    "ntk_metrics",
    "relative_kernel_difference",
    "trace",
]
