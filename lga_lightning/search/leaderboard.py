"""The leaderboard: one row per candidate, ranked; printed, saved (CSV/JSON) and plotted.

A candidate's row is its last measurement (its highest epoch). Rows are ordered by: status
``ok`` first; then more epochs first (candidates that survived more successive-halving rungs
rank above those stopped earlier); then higher score; then lower candidate index. Diverged and
undefined candidates come last.

With a ground truth (a benchmark table), every row gets ``true_acc`` and the summary gives the
chosen (top) candidate's true accuracy and two regrets, in accuracy points:

* ``regret_evaluated`` = best true accuracy *among the evaluated candidates* - chosen's;
* ``regret_space`` = best true accuracy *the ground truth knows* (its whole table, e.g. all of
  NAS-Bench-201) - chosen's.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from lga_lightning.search.strategies import record_score
from lga_lightning.utils.files import atomic_open, atomic_temp_path, named

Row = dict[str, Any]

FIRST_COLUMNS = ("rank", "candidate", "status", "epoch", "signal", "score")
LAST_COLUMNS = ("num_params", "seconds", "true_acc", "canonical", "arch")


def build(
    records: Iterable[Mapping[str, Any]],
    true_accuracy: Callable[[str], float] | None = None,
) -> list[Row]:
    """Rank candidates from their measurement records.

    Args:
        records: measurement records (any order); ``seconds`` are summed per candidate.
        true_accuracy: ``arch string -> accuracy`` (nan when unknown), adds ``true_acc``.

    Returns:
        Rows in rank order, each with ``rank`` (1-based) and the candidate's last record's fields.

    Example:
        >>> rows = build([
        ...     {"candidate": 0, "epoch": 1, "status": "ok", "score": 0.2, "arch": "a"},
        ...     {"candidate": 1, "epoch": 1, "status": "diverged", "score": -math.inf, "arch": "b"},
        ...     {"candidate": 2, "epoch": 1, "status": "ok", "score": 0.7, "arch": "c"}])
        >>> [(r["rank"], r["arch"]) for r in rows]
        [(1, 'c'), (2, 'a'), (3, 'b')]
    """
    last: dict[int, Row] = {}
    seconds: dict[int, float] = {}
    for rec in records:
        c = int(rec["candidate"])
        seconds[c] = seconds.get(c, 0.0) + float(rec.get("seconds", 0.0) or 0.0)
        if c not in last or int(rec["epoch"]) >= int(last[c]["epoch"]):
            last[c] = dict(rec)
    for row in last.values():
        if row.get("status", "ok") == "ok" and "signal" in row and not _finite(row["signal"]):
            # a stored record whose signal is nan or inf cannot be ranked: say so
            warnings.warn(
                f"candidate {row['candidate']} ({row.get('arch')}): its signal is "
                f"{row.get('signal')!r} at epoch {row['epoch']}; it ranks last as 'undefined'.",
                stacklevel=2,
            )
            row["status"] = "undefined"
            row["score"] = -math.inf
    rows = sorted(last.values(), key=_order)
    for i, row in enumerate(rows, start=1):
        row.pop("kind", None)
        row["rank"] = i
        row["seconds"] = seconds[int(row["candidate"])]
        if true_accuracy is not None:
            row["true_acc"] = true_accuracy(str(row["arch"]))
    return [_ordered(row) for row in rows]


def _order(row: Mapping[str, Any]) -> tuple:
    ok = row.get("status") == "ok"
    return (not ok, -int(row["epoch"]) if ok else 0, -record_score(row), int(row["candidate"]))


def _ordered(row: Row) -> Row:
    first = {k: row[k] for k in FIRST_COLUMNS if k in row}
    last = {k: row[k] for k in LAST_COLUMNS if k in row}
    middle = {k: v for k, v in row.items() if k not in first and k not in last}
    return {**first, **middle, **last}


def summary(
    rows: Sequence[Row], best_known: float | None = None, signal: str = "lga"
) -> dict[str, Any]:
    """The chosen architecture and, with true accuracies, its regrets (see the module doc).

    Args:
        rows: the leaderboard.
        best_known: best true accuracy the ground truth knows (for ``regret_space``).
        signal: the ranking signal's name.

    Example:
        >>> s = summary([{"rank": 1, "arch": "a", "canonical": "a", "status": "ok",
        ...               "true_acc": 90.0}, {"rank": 2, "arch": "b", "true_acc": 93.0}])
        >>> s["best_arch"], s["regret_evaluated"]
        ('a', 3.0)
        >>> "best_arch" in summary([{"rank": 1, "arch": "a", "status": "diverged"}])
        False
    """
    out: dict[str, Any] = {"signal": signal, "candidates": len(rows)}
    ok = [r for r in rows if r.get("status") == "ok"]
    for status in ("failed", "diverged", "undefined", "stopped"):
        out[status] = sum(1 for r in rows if r.get("status") == status)
    if not ok:  # nothing to choose: every candidate diverged or has no defined signal
        return out
    best = ok[0]
    out.update(
        best_candidate=best.get("candidate"),
        best_arch=best.get("arch"),
        best_canonical=best.get("canonical"),
        best_status=best.get("status"),
        best_score=best.get("score"),
    )
    if "true_acc" in best:
        accs = [r["true_acc"] for r in rows if _finite(r.get("true_acc"))]
        out["best_true_acc"] = best["true_acc"]
        out["best_evaluated_true_acc"] = max(accs) if accs else math.nan
        out["regret_evaluated"] = out["best_evaluated_true_acc"] - best["true_acc"]
        if best_known is not None:
            out["best_known_true_acc"] = best_known
            out["regret_space"] = best_known - best["true_acc"]
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def columns(rows: Sequence[Row]) -> list[str]:
    """Column names in first-seen order."""
    names: list[str] = []
    for row in rows:
        names.extend(k for k in row if k not in names)
    return names


def format_table(rows: Sequence[Row], metrics: Sequence[str] = ("lga",)) -> str:
    """A fixed-width text table for the terminal.

    Example:
        >>> print(format_table([{"rank": 1, "candidate": 0, "status": "ok", "epoch": 1,
        ...                      "lga": 0.5, "arch": "a"}]))
        rank  cand  status    epoch  lga     arch
        1     0     ok        1      0.5000  a
    """
    shown = [
        "rank",
        "candidate",
        "status",
        "epoch",
        *metrics,
        "val_acc",
        "train_loss",
        "num_params",
    ]
    if any("true_acc" in r for r in rows):
        shown.append("true_acc")
    shown = [c for c in shown if any(c in r for r in rows)]
    header = {"candidate": "cand"}
    cells = [[header.get(c, c) for c in shown] + ["arch"]]
    for r in rows:
        cells.append([_cell(r.get(c)) for c in shown] + [str(r.get("arch", ""))])
    widths = [max(len(row[i]) for row in cells) for i in range(len(shown))]
    widths = [max(w, 4) for w in widths]
    if cells and len(shown) > 2:
        widths[2] = max(widths[2], 8)
    lines = [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in cells
    ]
    return "\n".join(line.rstrip() for line in lines)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}" if abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-3) else f"{v:.4f}"
    return str(v)


def write_csv(path: str, rows: Sequence[Row]) -> None:
    """Write the leaderboard as CSV atomically (temporary file, then ``os.replace``)."""

    def dump(f: Any) -> None:
        writer = csv.DictWriter(f, fieldnames=columns(rows), restval="")
        writer.writeheader()
        writer.writerows(rows)

    _atomic(path, dump, newline="")


def write_json(path: str, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    _atomic(path, lambda f: json.dump(obj, f, indent=2))


def _atomic(path: str, dump: Callable[[Any], None], newline: str | None = None) -> None:
    with atomic_open(path, newline=newline) as f:
        dump(f)


def scatter(path: str, rows: Sequence[Row], signal: str) -> str | None:
    """Save a PNG of the signal against validation accuracy (and true accuracy when known).

    Uses matplotlib's Agg backend (no display needed). Returns the path, or ``None`` when no
    candidate has a finite signal.
    """
    fig = figure(rows, signal)
    if fig is None:
        return None
    tmp = atomic_temp_path(path)
    try:
        fig.savefig(tmp, dpi=100, format="png")
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise named(err, path) from err
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return path


def figure(rows: Sequence[Row], signal: str) -> Any:
    """The scatter plot's matplotlib ``Figure``, or ``None`` when no signal is finite."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    pairs = [("val_acc", "validation accuracy")]
    if any(_finite(r.get("true_acc")) for r in rows):
        pairs.append(("true_acc", "true accuracy"))
    points = [r for r in rows if _finite(r.get("signal"))]
    if not points:
        return None
    fig = Figure(figsize=(4.5 * len(pairs), 4))
    for i, (key, label) in enumerate(pairs):
        ax = fig.add_subplot(1, len(pairs), i + 1)
        xs = [r["signal"] for r in points if _finite(r.get(key))]
        ys = [r[key] for r in points if _finite(r.get(key))]
        ax.scatter(xs, ys, s=18)
        ax.set_xlabel(signal)
        ax.set_ylabel(label)
        ax.set_title(f"{signal} vs {label} ({len(xs)} candidates)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
