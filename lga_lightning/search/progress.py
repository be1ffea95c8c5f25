"""The search's progress bar over candidates (with an ETA) and its one-line summaries."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

from tqdm.auto import tqdm


class Progress:
    """A ``tqdm`` bar counting measurements; its ETA is tqdm's, from the measured rate.

    The bar is drawn only when standard error is a terminal; redirected to a file, the output
    holds the summary lines (:meth:`write`) and nothing else.

    Args:
        total: measurements the search will make (``None`` when unknown).
        initial: measurements already stored (a resumed search).
    """

    def __init__(self, total: int | None, initial: int = 0) -> None:
        self.best = -math.inf
        self._bar = tqdm(
            total=total,
            initial=initial,
            desc="candidates",
            unit="cand",
            dynamic_ncols=True,
            file=sys.stderr,
            leave=True,
            disable=None,  # a bar on a terminal only; in a log file the summary lines alone
        )

    def update(self, record: Mapping[str, Any]) -> None:
        """Count one measurement and show the best score so far."""
        score = record.get("score")
        if isinstance(score, (int, float)) and score > self.best:
            self.best = float(score)
        if self._bar.total is not None and self._bar.n >= self._bar.total:
            self._bar.total = self._bar.n + 1
        self._bar.update(1)
        self._bar.set_postfix(best=f"{self.best:.4g}")

    def write(self, text: str) -> None:
        """Print above the bar."""
        self._bar.write(text, file=sys.stdout)

    def close(self) -> None:
        """Finish the bar."""
        self._bar.close()


def summary_line(record: Mapping[str, Any], signal: str) -> str:
    """One line describing a measurement.

    Example:
        >>> summary_line({"candidate": 3, "epoch": 1, "status": "ok", "lga": 0.25,
        ...               "val_acc": 0.5, "train_loss": 1.0, "num_params": 1234, "seconds": 2.0,
        ...               "arch": "a"}, "lga")
        'cand    3  ep 1  ok         lga=0.25  val_acc=0.5  loss=1  num_params=1234  2.0s  a'
    """
    value = record.get(signal, record.get("signal"))
    return (
        f"cand {int(record['candidate']):4d}  ep {record['epoch']}  {record['status']:<9}  "
        f"{signal}={_g(value)}  val_acc={_g(record.get('val_acc'))}  "
        f"loss={_g(record.get('train_loss'))}  num_params={record.get('num_params')}  "
        f"{float(record.get('seconds', 0.0)):.1f}s  {record.get('arch')}"
    )


def _g(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, (int, float)) else str(v)
