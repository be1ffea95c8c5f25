"""Paired comparisons of two rows of a study: the difference in signed tau, with its interval.

"Is LGA after one epoch better than LGA at initialisation, or than the parameter count?" asks
about two rankings of the *same* cells. The difference ``signed_tau(A) - signed_tau(B)`` is
bootstrapped over cells with the two rows resampled jointly (the same cell indices for both),
so the noise the two share cancels; its 95% interval is :func:`scipy.stats.bootstrap`'s
percentile interval of that difference (seeded, 1,000 resamples by default). Two rows whose
per-row intervals overlap can still differ clearly here.

Pairs are written ``"lga@1 - lga@0"`` or ``"lga[n64-train-test]@1 - params"`` (a row's
quantity, optionally its setting in brackets, optionally its epoch; default the first setting
that has the quantity and the study's last epoch).
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import stats

from lga_lightning.core.signals import expected_sign, signal_names
from recipes._files import atomic_write_text
from recipes._rank import METHOD, correlate, kendall_rows, resampled_interval, worst_ranked

Key = tuple[str, str, int]
Columns = Mapping[Key, Sequence[float]]


PAIRED_COLUMNS = (
    "a_quantity",
    "a_setting",
    "a_epoch",
    "b_quantity",
    "b_setting",
    "b_epoch",
    "n",
    "a_signed_tau",
    "b_signed_tau",
    "difference",
    "low",
    "high",
    "method",
)
EPOCH_FREE = signal_names("model")
"""Quantities of the network alone, the same at every epoch: the registry's ``model`` rows."""


def signed_tau(values: Sequence[float], truth: Sequence[float], sign: int) -> float:
    """Kendall tau-b times the expected sign (undefined values rank worst, as in the table)."""
    tau = correlate(values, truth, sign)[1]
    return tau * sign if sign else tau


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    truth: Sequence[float],
    signs: tuple[int, int],
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``signed_tau(a) - signed_tau(b)`` and its paired 95% bootstrap interval over cells.

    Both rows are resampled with the same cell indices (:func:`recipes._rank.resampled_interval`).
    Undefined values rank worst in each row, as in the table; cells without ground truth are
    left out.

    Example:
        >>> truth = np.arange(30.0)
        >>> d, low, high = paired_difference(truth, truth, truth, (1, 1), resamples=100)
        >>> d, low, high
        (0.0, 0.0, 0.0)
    """
    t = np.asarray(truth, dtype=np.float64)
    keep = ~np.isnan(t)
    x = stats.rankdata(worst_ranked(a, signs[0])[keep]) * (signs[0] or 1)
    y = stats.rankdata(worst_ranked(b, signs[1])[keep]) * (signs[1] or 1)
    t = t[keep]

    def difference(idx: np.ndarray) -> np.ndarray:
        return kendall_rows(x[idx], t[idx]) - kendall_rows(y[idx], t[idx])

    value = float(difference(np.arange(len(t))[None])[0])
    low, high = resampled_interval(difference, len(t), resamples, seed)
    return value, low, high


def default_pairs(columns: Columns) -> list[tuple[Key, Key]]:
    """Each row after training vs the same row at initialisation, and each row vs ``params``.

    Example:
        >>> cols = {("lga", "s", 0): [1], ("lga", "s", 1): [2], ("params", "-", 0): [3],
        ...         ("params", "-", 1): [3]}
        >>> default_pairs(cols)  # doctest: +NORMALIZE_WHITESPACE
        [(('lga', 's', 1), ('lga', 's', 0)), (('lga', 's', 0), ('params', '-', 0)),
         (('lga', 's', 1), ('params', '-', 1))]
    """
    pairs = []
    for key in columns:
        quantity, setting, epoch = key
        fixed = quantity in EPOCH_FREE or quantity.startswith("benchmark_")
        if epoch > 0 and not fixed and (quantity, setting, 0) in columns:
            pairs.append((key, (quantity, setting, 0)))
    for key in columns:
        quantity, _, epoch = key
        if quantity != "params" and ("params", "-", epoch) in columns:
            pairs.append((key, ("params", "-", epoch)))
    return pairs


def parse_pair(text: str, columns: Columns, epochs: Sequence[int]) -> tuple[Key, Key]:
    """``"lga[n64-train]@1 - params"`` -> the two row keys; an unknown row gets a clear error.

    Example:
        >>> cols = {("lga", "n8", 1): [1], ("params", "-", 1): [2]}
        >>> parse_pair("lga@1 - params", cols, [0, 1])
        (('lga', 'n8', 1), ('params', '-', 1))
    """
    sides = [s.strip() for s in str(text).split(" - ")]
    if len(sides) != 2 or not all(sides):
        raise ValueError(
            f"`pairs` entry {text!r}: write two rows as 'A - B', e.g. 'lga@1 - lga@0'."
        )
    keys = []
    for side in sides:
        match = re.fullmatch(r"([\w.+@]+?)(?:\[([^\]]+)\])?(?:@(\d+))?", side)
        if not match:
            raise ValueError(f"`pairs` entry {text!r}: cannot read the row {side!r}.")
        quantity, setting, at = match.groups()
        epoch = int(at) if at else max(epochs)
        found = [
            k
            for k in columns
            if k[0] == quantity and k[2] == epoch and (setting is None or k[1] == setting)
        ]
        if not found:
            raise ValueError(
                f"`pairs` entry {text!r}: the study has no row {side!r} (epoch {epoch}); name "
                "a measured quantity, a setting in brackets and a measured epoch."
            )
        keys.append(found[0])
    return keys[0], keys[1]


def paired_table(
    columns: Columns,
    truth: Sequence[float],
    pairs: Sequence[tuple[Key, Key]],
    signs: Mapping[str, int] | None = None,
    resamples: int = 1000,
) -> list[dict]:
    """One row per pair: both signed taus, their difference and its paired interval."""
    rows = []
    for a, b in pairs:
        sa, sb = ((signs or {}).get(k[0], expected_sign(k[0])) for k in (a, b))
        diff, low, high = paired_difference(columns[a], columns[b], truth, (sa, sb), resamples)
        n = int(np.sum(~np.isnan(np.asarray(truth, dtype=np.float64))))
        rows.append(
            {
                "a_quantity": a[0],
                "a_setting": a[1],
                "a_epoch": a[2],
                "b_quantity": b[0],
                "b_setting": b[1],
                "b_epoch": b[2],
                "n": n,
                "a_signed_tau": signed_tau(columns[a], truth, sa),
                "b_signed_tau": signed_tau(columns[b], truth, sb),
                "difference": diff,
                "low": low,
                "high": high,
                "method": f"paired bootstrap over cells, {METHOD}, {resamples} resamples",
            }
        )
    return rows


def write_paired_csv(rows: Sequence[dict], path: str | os.PathLike) -> Path:
    """Write the paired rows atomically as CSV (columns :data:`PAIRED_COLUMNS`)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=PAIRED_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buffer.getvalue())


def format_paired(rows: Sequence[dict]) -> str:
    """A plain-text table of the pairs; ``*`` marks an interval that excludes 0.

    Example:
        >>> print(format_paired([{"a_quantity": "lga", "a_setting": "s", "a_epoch": 1,
        ...     "b_quantity": "lga", "b_setting": "s", "b_epoch": 0, "a_signed_tau": 0.5,
        ...     "b_signed_tau": 0.3, "difference": 0.2, "low": 0.1, "high": 0.3}]))
        ... # doctest: +NORMALIZE_WHITESPACE
        A           B           tau A  tau B  A - B  95% interval
        lga [s] @1  lga [s] @0  0.500  0.300  0.200  [0.100, 0.300] *
    """

    def name(row: dict, side: str) -> str:
        setting = row[f"{side}_setting"]
        shown = "" if setting == "-" else f" [{setting}]"
        return f"{row[f'{side}_quantity']}{shown} @{row[f'{side}_epoch']}"

    lines = [["A", "B", "tau A", "tau B", "A - B", "95% interval"]]
    for row in rows:
        low, high = row["low"], row["high"]
        marked = math.isfinite(low) and (low > 0 or high < 0)
        interval = f"[{low:.3f}, {high:.3f}]" + (" *" if marked else "")
        lines.append(
            [
                name(row, "a"),
                name(row, "b"),
                f"{row['a_signed_tau']:.3f}",
                f"{row['b_signed_tau']:.3f}",
                f"{row['difference']:.3f}",
                interval,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )
