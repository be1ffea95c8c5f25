"""The history of :class:`~lga_lightning.training.callback.NTKMetrics`: rows, CSV, tables."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from typing import Any

from lga_lightning.utils.files import atomic_open

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

    A reader never sees a half-written file, and a crash keeps the previous version. The file
    gets the permissions of any new file (``0o666`` less the umask).

    Example:
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "ntk_metrics.csv")
        >>> write_csv(path, [{"epoch": 0, "step": 0, "lga": 0.5}])
        >>> open(path).read().splitlines()
        ['epoch,step,lga', '0,0,0.5']
    """
    with atomic_open(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns(history), restval="")
        writer.writeheader()
        writer.writerows(history)


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
