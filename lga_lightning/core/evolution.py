"""Kernel evolution: the velocity between consecutive kernels, and the evolution plot.

The NTK of a network in the kernel (lazy) regime stays at its initial value during training; the
metrics below say how far, and how fast, it moves instead (definitions in ``docs/definitions.md``):

- ``kernel_distance`` ``1 - <K_0, K_t>_F / (||K_0||_F ||K_t||_F)`` against the initial kernel:
  0 when the kernel only changes scale, at most 1;
- ``kernel_correlation``: Pearson correlation of the entries of ``K_0`` and ``K_t``;
- ``relative_kernel_difference``: ``|| |K_0 - K_t| / (|K_0| + eps) ||_F``;
- ``kernel_velocity``: the kernel distance between *consecutive* measurements, ``d(K_{t-1}, K_t)``;
  large early in training and decaying as the kernel settles.

:func:`plot_evolution` draws a history (``NTKMetrics.history`` or any list of such rows) against
epochs or steps and writes a PNG atomically. Matplotlib's Agg canvas is used directly, so no
display and no global pyplot state are involved.

Example:
    >>> import torch
    >>> K = torch.tensor([[2.0, 1.0], [1.0, 2.0]])
    >>> [round(v, 4) for v in kernel_velocities([K, 3 * K, torch.eye(2)])]
    [nan, 0.0, 0.1056]
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from torch import Tensor

from lga_lightning.core.functional import kernel_distance
from lga_lightning.core.signals import signal_names

PLOTTED_METRICS = signal_names("evolution")
"""History columns :func:`plot_evolution` draws, when present: the registry's evolution rows."""

_PANELS = (
    (("kernel_distance", "kernel_velocity"), "kernel distance", (0.0, None)),
    (("kernel_correlation",), "kernel correlation", (None, 1.0)),
    (("relative_kernel_difference",), "relative kernel difference", (0.0, None)),
)
_LABELS = {
    "kernel_distance": "to $K_0$",
    "kernel_velocity": "velocity (to previous)",
    "kernel_correlation": "with $K_0$",
    "relative_kernel_difference": "to $K_0$",
}


def kernel_velocities(kernels: Sequence[Tensor]) -> list[float]:
    """Kernel distance between each kernel and the one before it (``nan`` for the first).

    Args:
        kernels: kernels of consecutive measurements, each ``(n, n)``.

    Returns:
        ``[nan, d(K_0, K_1), d(K_1, K_2), ...]``, ``d`` being
        :func:`~lga_lightning.core.functional.kernel_distance`.

    Example:
        >>> import torch
        >>> kernel_velocities([torch.eye(2), 2 * torch.eye(2)])
        [nan, 0.0]
    """
    values = [math.nan]
    values += [kernel_distance(a, b) for a, b in zip(kernels[:-1], kernels[1:], strict=True)]
    return values[: len(kernels)]


def has_evolution(history: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any row holds a finite value of a plotted metric.

    Example:
        >>> has_evolution([{"epoch": 0, "lga": 0.3}]), has_evolution([{"kernel_distance": 0.0}])
        (False, True)
    """
    return any(
        isinstance(row.get(key), (int, float)) and math.isfinite(row[key])
        for row in history
        for key in PLOTTED_METRICS
    )


def plot_evolution(
    history: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    x: Literal["epoch", "step"] = "epoch",
    title: str | None = None,
    dpi: int = 100,
) -> Path:
    """Plot kernel distance (and velocity), correlation and relative difference; write a PNG.

    One panel per quantity, against ``x``. Missing or non-finite values leave gaps. The file is
    written to a temporary name in the same folder and moved onto ``path`` (``os.replace``), so a
    reader never sees a partial image.

    Args:
        history: rows with ``x`` and some of :data:`PLOTTED_METRICS` (``NTKMetrics.history``).
        path: the PNG to write.
        x: the column on the horizontal axis: ``"epoch"`` (fractional between epoch ends for
            step-scheduled measurements) or ``"step"``.
        title: figure title.
        dpi: resolution.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: if ``x`` is not a column or no row holds a plotted metric.

    Example:
        >>> import tempfile
        >>> rows = [{"epoch": 0, "kernel_distance": 0.0}, {"epoch": 1, "kernel_distance": 0.2}]
        >>> png = plot_evolution(rows, Path(tempfile.mkdtemp()) / "evolution.png")
        >>> png.read_bytes()[1:4]
        b'PNG'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if x not in ("epoch", "step"):
        raise ValueError(f"`x` can be 'epoch' or 'step', got {x!r}.")
    if not has_evolution(history):
        raise ValueError(
            f"nothing to plot: no row holds any of {list(PLOTTED_METRICS)}; measure with "
            "NTKMetrics(track_evolution=True) or kernel_velocity=True."
        )
    panels = [p for p in _PANELS if any(_finite(history, key) for key in p[0])]
    figure = Figure(figsize=(3.6 * len(panels), 3.0), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, (keys, ylabel, (low, high)) in zip(axes, panels, strict=True):
        for key in keys:
            points = [
                (float(row[x]), float(row[key]))
                for row in history
                if _number(row.get(x)) and _number(row.get(key))
            ]
            if not points:
                continue
            xs, ys = zip(*sorted(points), strict=True)
            ax.plot(xs, ys, marker="o", markersize=3, label=_LABELS[key])
        ax.set_xlabel(x)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=low, top=high)
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    return _save_atomic(figure, Path(path))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _finite(history: Sequence[Mapping[str, Any]], key: str) -> bool:
    return any(_number(row.get(key)) for row in history)


def _save_atomic(figure: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        figure.savefig(tmp, format="png")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as an ordinary new file, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path
