"""``lga-linearize``'s results: the non-linear advantage, its table and CSV."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

COLUMNS = (
    "name",
    "parameters",
    "acc_nonlinear",
    "acc_linear",
    "advantage",
    "normalized_advantage",
    "kernel_distance",
    "kernel_velocity",
    "seconds_nonlinear",
    "seconds_linear",
)


def advantage(acc_nonlinear: float, acc_linear: float, num_classes: int) -> tuple[float, float]:
    """The non-linear advantage and its normalised form ``advantage / (1 - 1/C)``.

    Example:
        >>> advantage(0.9, 0.6, num_classes=10)
        (0.30000000000000004, 0.33333333333333337)
    """
    gap = acc_nonlinear - acc_linear
    return gap, gap / (1.0 - 1.0 / num_classes)


def to_csv(records: Sequence[dict[str, Any]]) -> str:
    """The table as CSV text, columns :data:`COLUMNS`.

    Example:
        >>> to_csv([]).strip() == ",".join(COLUMNS)
        True
    """
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(COLUMNS), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


def format_table(records: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of the records, one line per architecture.

    Example:
        >>> print(format_table([{"name": "a", "acc_nonlinear": 0.9, "acc_linear": 0.8,
        ...                      "advantage": 0.1, "normalized_advantage": 0.111,
        ...                      "kernel_distance": 0.05}]))
        nonlinear  linear  advantage  normalized  kernel_dist  name
           0.9000  0.8000    +0.1000     +0.1110       0.0500  a
    """
    lines = ["nonlinear  linear  advantage  normalized  kernel_dist  name"]
    for r in records:
        lines.append(
            f"{r['acc_nonlinear']:9.4f}  {r['acc_linear']:6.4f}  {r['advantage']:+9.4f}  "
            f"{r['normalized_advantage']:+10.4f}  {r.get('kernel_distance', math.nan):11.4f}  "
            f"{r['name']}"
        )
    return "\n".join(lines)


def format_row(r: dict[str, Any]) -> str:
    """One record in words, as printed when its architecture is done.

    Example:
        >>> print(format_row({"acc_nonlinear": 0.9, "acc_linear": 0.8, "advantage": 0.1,
        ...                   "normalized_advantage": 0.111, "kernel_distance": 0.05,
        ...                   "seconds_nonlinear": 3.0, "seconds_linear": 2.0}))
        acc 0.9000 (network) vs 0.8000 (linearised), advantage +0.1000 (normalised +0.1110),
        kernel distance 0.0500; 3.0 s + 2.0 s
    """
    return (
        f"acc {r['acc_nonlinear']:.4f} (network) vs {r['acc_linear']:.4f} (linearised), "
        f"advantage {r['advantage']:+.4f} (normalised {r['normalized_advantage']:+.4f}), "
        f"kernel distance {r['kernel_distance']:.4f}; "
        f"{r['seconds_nonlinear']:.1f} s + {r['seconds_linear']:.1f} s"
    )
