"""Rank correlations of measured quantities with ground-truth accuracy: table, CSV and plot.

Kendall tau-b and Spearman rho come from :mod:`scipy.stats` and are reported with their raw
sign. :func:`lga_lightning.core.signals.expected_sign` states the sign under which a quantity
predicts *higher* accuracy (e.g. the condition number is expected to correlate negatively), and
``signed_tau`` multiplies tau by it, so for every quantity a larger ``signed_tau`` is a better
predictor.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from lga_lightning.core.signals import expected_sign, signal_names
from recipes._files import atomic_write, atomic_write_text

BASELINES: tuple[str, ...] = (*signal_names("model"), *signal_names("training"))
"""Quantities measured on the same runs as the NTK metrics, to compare them with: the
registry's ``model`` rows (``params``, ``flops``) and ``training`` rows."""

METHOD = "percentile"
"""The interval of :func:`scipy.stats.bootstrap` used for every row and pair: the 2.5 and 97.5
percentiles of the resampled statistic, the same kind of interval as the hand-written bootstrap
it replaced. BCa is undefined for two identical rows (every paired difference is 0)."""

CSV_COLUMNS = (
    "quantity",
    "setting",
    "epoch",
    "n",
    "kendall_tau",
    "kendall_p",
    "spearman_rho",
    "spearman_p",
    "expected_sign",
    "signed_tau",
    "signed_tau_low",
    "signed_tau_high",
)


@dataclass
class Correlation:
    """Correlation of one quantity, measured with one setting at one epoch, with accuracy."""

    quantity: str
    setting: str
    epoch: int
    n: int
    kendall_tau: float
    kendall_p: float
    spearman_rho: float
    spearman_p: float
    expected_sign: int
    signed_tau: float
    signed_tau_low: float = math.nan
    signed_tau_high: float = math.nan


def correlate(
    values: Sequence[float], truth: Sequence[float], sign: int = 0
) -> tuple[int, float, float, float, float]:
    """Kendall tau-b and Spearman rho of the pairs with a ground truth.

    Undefined values (nan: a dead cell's LGA, a diverged network) of a quantity with a known
    direction (``sign`` +1 or -1) rank *worst*, like an infinite condition number does, so every
    row of a study ranks a dead cell the same way; with ``sign=0`` they are left out. ``inf``
    values are kept: they rank above every finite value. Fewer than 3 pairs, or a constant side,
    give NaN.

    Args:
        values: the quantity, one per architecture.
        truth: the accuracies, same order.
        sign: the quantity's expected sign (:func:`lga_lightning.core.signals.expected_sign`).

    Returns:
        ``(n, tau, tau_p, rho, rho_p)``.

    Example:
        >>> n, tau, _, rho, _ = correlate([1.0, 2.0, float("nan"), 3.0], [10.0, 30.0, 0.0, 20.0])
        >>> n, round(tau, 3), round(rho, 3)
        (3, 0.333, 0.5)
    """
    x = worst_ranked(values, sign)
    y = np.asarray(truth, dtype=np.float64)
    keep = ~np.isnan(x) & ~np.isnan(y)
    x, y = x[keep], y[keep]
    n = int(keep.sum())
    if n < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return n, math.nan, math.nan, math.nan, math.nan
    tau = stats.kendalltau(x, y)  # tau-b, the default variant
    rho = stats.spearmanr(x, y)
    return n, float(tau.statistic), float(tau.pvalue), float(rho.statistic), float(rho.pvalue)


def kendall_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall tau-b of each row pair ``(x[b], y[b])`` at once (nan where a row is constant).

    The same statistic as :func:`scipy.stats.kendalltau` (ties counted as tau-b does), for the
    ``(resamples, n)`` arrays of a bootstrap: one call measures 1,000 resamples of 100 cells in
    a fraction of a second. Values must be finite or ``inf`` (rank them first).

    Example:
        >>> x = np.array([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 2.0, 3.0]])
        >>> y = np.array([[1.0, 3.0, 2.0, 4.0], [4.0, 3.0, 2.0, 1.0]])
        >>> np.round(kendall_rows(x, y), 4).tolist()
        [0.6667, -0.9129]
    """
    x, y = np.atleast_2d(x), np.atleast_2d(y)
    out = np.empty(len(x))
    n = x.shape[1]
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    for start in range(0, len(x), 64):
        xs, ys = x[start : start + 64], y[start : start + 64]
        dx = np.sign(xs[:, :, None] - xs[:, None, :])[:, upper]
        dy = np.sign(ys[:, :, None] - ys[:, None, :])[:, upper]
        concordance = (dx * dy).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            denominator = np.sqrt((dx != 0).sum(axis=1) * (dy != 0).sum(axis=1).astype(float))
            out[start : start + 64] = np.where(denominator > 0, concordance / denominator, np.nan)
    return out


def worst_ranked(values: Sequence[float], sign: int) -> np.ndarray:
    """``values`` with undefined entries (nan) set to rank worst, as :func:`correlate` ranks."""
    x = np.asarray(values, dtype=np.float64).copy()
    if sign and not np.all(np.isnan(x)):
        x[np.isnan(x)] = -np.inf if sign > 0 else np.inf
    return x


def resampled_interval(statistic, n: int, resamples: int, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of ``statistic(indices)`` over cells resampled with replacement.

    :func:`scipy.stats.bootstrap` (``method="percentile"``, seeded) resamples the cell indices:
    one sample, so every column the statistic reads is resampled jointly (a paired bootstrap).
    ``statistic`` maps a ``(resamples, n)`` array of indices to one value per resample.
    Resamples where it is undefined (nan) are left out while at least half are defined.

    Example:
        >>> x = np.arange(10.0)
        >>> low, high = resampled_interval(lambda i: x[i].mean(axis=-1), 10, 200)
        >>> 2.0 < low < 4.5 < high < 7.0
        True
    """
    if resamples <= 0 or n < 3:
        return math.nan, math.nan
    result = stats.bootstrap(
        (np.arange(n),),
        lambda idx, axis=-1: statistic(np.asarray(idx, dtype=np.intp)),
        n_resamples=resamples,
        vectorized=True,
        method=METHOD,
        rng=np.random.default_rng(seed),
    )
    dist = np.asarray(result.bootstrap_distribution, dtype=np.float64)
    finite = dist[np.isfinite(dist)]
    if len(finite) < resamples // 2:
        return math.nan, math.nan
    if len(finite) == len(dist):
        low, high = result.confidence_interval
    else:
        low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def bootstrap_tau(
    values: Sequence[float], truth: Sequence[float], sign: int = 0, resamples: int = 1000
) -> tuple[float, float]:
    """95% percentile interval of Kendall tau-b over architectures resampled with replacement.

    :func:`resampled_interval` (:func:`scipy.stats.bootstrap`, seeded: the same numbers give
    the same interval); ``(nan, nan)`` for ``resamples=0`` or too few pairs.

    Example:
        >>> low, high = bootstrap_tau(range(20), [v + (v % 3) for v in range(20)], resamples=200)
        >>> 0.5 < low <= high <= 1.0
        True
    """
    x, y = worst_ranked(values, sign), np.asarray(truth, dtype=np.float64)
    keep = ~np.isnan(x) & ~np.isnan(y)
    x, y = stats.rankdata(x[keep]), y[keep]
    return resampled_interval(lambda i: kendall_rows(x[i], y[i]), len(x), resamples)


def correlation_table(
    columns: Mapping[tuple[str, str, int], Sequence[float]],
    truth: Sequence[float],
    signs: Mapping[str, int] | None = None,
    bootstrap: int = 0,
) -> list[Correlation]:
    """Correlate every ``(quantity, setting, epoch)`` column with ``truth``.

    Args:
        columns: ``(quantity, setting, epoch) -> values``, one value per architecture.
        truth: the accuracies, same order.
        signs: expected signs of quantities the table of signals does not know (e.g. combined
            rankings, ``+1``).
        bootstrap: resamples of the 95% interval of ``signed_tau`` (0: none).

    Example:
        >>> rows = correlation_table({("lga", "n8-train", 1): [1, 2, 3]}, [1.0, 2.0, 3.0])
        >>> rows[0].kendall_tau, rows[0].signed_tau
        (1.0, 1.0)
    """
    rows = []
    for (quantity, setting, epoch), values in columns.items():
        sign = (signs or {}).get(quantity, expected_sign(quantity))
        n, tau, tau_p, rho, rho_p = correlate(values, truth, sign)
        signed = tau * sign if sign else tau
        low, high = bootstrap_tau(values, truth, sign, bootstrap)
        if sign < 0:
            low, high = -high, -low  # the interval of signed_tau
        rows.append(
            Correlation(
                quantity, setting, epoch, n, tau, tau_p, rho, rho_p, sign, signed, low, high
            )
        )
    return rows


def write_csv(rows: Sequence[Correlation], path: str | os.PathLike) -> Path:
    """Write the correlations atomically as CSV (columns :data:`CSV_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    return atomic_write_text(path, buffer.getvalue())


def format_table(rows: Sequence[Correlation]) -> str:
    """A plain-text table: one line per quantity and setting, tau and rho per epoch.

    Example:
        >>> rows = correlation_table({("lga", "n8-train", 0): [1, 2, 3],
        ...                           ("lga", "n8-train", 1): [1, 3, 2]}, [1.0, 2.0, 3.0])
        >>> print(format_table(rows))  # doctest: +NORMALIZE_WHITESPACE
        quantity  setting   sign  n  epoch 0 tau  rho    epoch 1 tau  rho
        lga       n8-train  +     3        1.000  1.000        0.333  0.500
    """
    epochs = sorted({r.epoch for r in rows})
    groups: dict[tuple[str, str], dict[int, Correlation]] = {}
    for r in rows:
        groups.setdefault((r.quantity, r.setting), {})[r.epoch] = r
    header = ["quantity", "setting", "sign", "n"]
    for epoch in epochs:
        header += [f"epoch {epoch} tau", "rho"]
    lines = [header]
    for (quantity, setting), by_epoch in groups.items():
        sign = {1: "+", -1: "-", 0: "?"}[next(iter(by_epoch.values())).expected_sign]
        n = max(r.n for r in by_epoch.values())
        line = [quantity, setting, sign, str(n)]
        for epoch in epochs:
            r = by_epoch.get(epoch)
            line += [_fmt(r.kendall_tau), _fmt(r.spearman_rho)] if r else ["", ""]
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for line in lines:
        cells = [
            cell.ljust(w) if i < 4 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def plot(rows: Sequence[Correlation], path: str | os.PathLike, title: str = "") -> Path:
    """Plot Kendall tau against the epoch, one line per quantity and setting, as a PNG.

    Lines are spread a little along the epoch axis and each has its own marker, so quantities
    with equal values (parameters and FLOPs often rank cells alike) stay visible; epoch-free
    quantities are dashed; 95% bootstrap intervals are drawn when the rows have them. The title
    is wrapped to the figure's width and the legend sits beside the axes.
    """
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple[str, str], list[Correlation]] = {}
    for r in rows:
        groups.setdefault((r.quantity, r.setting), []).append(r)
    drawn = [
        (key, sorted((r for r in group if not math.isnan(r.kendall_tau)), key=lambda r: r.epoch))
        for key, group in groups.items()
    ]
    drawn = [(key, group) for key, group in drawn if group]
    fig, ax = plt.subplots(figsize=(10, 5.5))
    markers = "os^vD<>pPhX*"
    colors = plt.get_cmap("tab20").colors
    spread = 0.3 / max(len(drawn), 1)
    for i, ((quantity, setting), group) in enumerate(drawn):
        label = quantity if setting == "-" else f"{quantity} [{setting}]"
        offset = (i - (len(drawn) - 1) / 2) * spread
        x = [r.epoch + offset for r in group]
        y = [r.kendall_tau for r in group]
        style = (
            "--" if quantity in signal_names("model") or quantity.startswith("benchmark_") else "-"
        )
        color = colors[i % len(colors)]
        ax.plot(x, y, style, marker=markers[i % len(markers)], color=color, label=label)
        low = [r.signed_tau_low * (r.expected_sign or 1) for r in group]
        high = [r.signed_tau_high * (r.expected_sign or 1) for r in group]
        if all(math.isfinite(v) for v in low + high):
            bottom = [min(a, b) for a, b in zip(low, high, strict=True)]
            top = [max(a, b) for a, b in zip(low, high, strict=True)]
            ax.vlines(x, bottom, top, color=color, alpha=0.35, linewidth=1)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("epoch (0 = initialisation)")
    ax.set_ylabel("Kendall tau with accuracy")
    text = title or "Rank correlation with ground-truth accuracy"
    ax.set_title("\n".join(textwrap.wrap(text, 90)), fontsize=10)
    ax.set_xticks(sorted({r.epoch for r in rows}))
    if drawn:
        ax.legend(
            fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=1 + len(drawn) // 24
        )
    fig.tight_layout()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    finally:
        plt.close(fig)
