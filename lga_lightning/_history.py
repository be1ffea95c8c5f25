"""The measurement history of :class:`~lga_lightning.callback.NTKMetrics`: rows, CSV, tables."""

from __future__ import annotations

import contextlib
import csv
import math
import os
import tempfile
from collections.abc import Sequence
from typing import Any

Row = dict[str, Any]


def columns(history: Sequence[Row]) -> list[str]:
    """Column names in first-seen order: ``epoch``, ``step``, the metrics, ``seconds``.

    Example:
        >>> columns([{"epoch": 0, "step": 0, "lga": 0.5, "seconds": 1.0}])
        ['epoch', 'step', 'lga', 'seconds']
    """
    names: list[str] = []
    for row in history:
        names.extend(key for key in row if key not in names)
    return names


def write_csv(path: str, history: Sequence[Row]) -> None:
    """Write the history to ``path`` atomically (a temporary file, then ``os.replace``).

    A reader never sees a half-written file, and a crash keeps the previous version.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ntk_metrics.", suffix=".csv.tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns(history), restval="")
            writer.writeheader()
            writer.writerows(history)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def table_rows(history: Sequence[Row]) -> tuple[list[str], list[list[Any]]]:
    """The history as ``(columns, rows)`` for a logger table; missing cells are ``nan``."""
    names = columns(history)
    return names, [[row.get(name, math.nan) for name in names] for row in history]


def format_row(row: Row) -> str:
    """One line for a log message.

    Example:
        >>> format_row({"epoch": 1, "step": 10, "lga": 0.25, "seconds": 2.0})
        'epoch 1 (step 10): lga=0.25 (2.0 s)'
    """
    values = " ".join(
        f"{k}={v:.4g}" for k, v in row.items() if k not in ("epoch", "step", "seconds")
    )
    return f"epoch {row['epoch']} (step {row['step']}): {values} ({row['seconds']:.1f} s)"
