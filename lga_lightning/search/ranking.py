"""The ranking signal: which recorded quantity orders the candidates, and in which direction.

A record holds the NTK metrics (``lga``, ``condition_number``, ...), ``train_loss``,
``val_acc`` and ``params``. The signal is one of them with a direction, or a function of the
whole record. Its value, signed so that higher is better, is the record's ``score``; candidates
that diverged or whose signal is undefined (nan) get ``score = -inf`` and rank last.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, Literal

from lga_lightning.signals import direction

Mode = Literal["max", "min"]
Signal = str | Callable[[Mapping[str, Any]], float]


RECORD_QUANTITIES = ("train_loss", "val_acc", "params")
"""Quantities every record has besides the NTK metrics."""


class Ranking:
    """Turns a record into its signal value and its score.

    Args:
        rank_by: a recorded quantity (an NTK metric name or one of :data:`RECORD_QUANTITIES`), or
            a callable ``record -> float`` combining them (e.g. ``lambda r: r["lga"] -
            0.1 * r["train_loss"]``; a module-level function for the CLI).
        mode: ``"max"`` (higher is better) or ``"min"``; default from the table of signals
            (:data:`lga_lightning.signals.SIGNALS`), and
            ``"max"`` for a callable.
        available: the quantities records will hold, to check ``rank_by`` early.

    Raises:
        ValueError: for an unknown quantity, an unknown ``mode``, or a quantity whose direction
            is not obvious and no ``mode`` was given.

    Example:
        >>> r = Ranking("condition_number")
        >>> r.mode, r.score({"condition_number": 4.0, "status": "ok"})
        ('min', -4.0)
        >>> Ranking("lga").score({"lga": float("nan"), "status": "ok"})
        -inf
    """

    def __init__(
        self, rank_by: Signal = "lga", mode: Mode | None = None, available: tuple[str, ...] = ()
    ) -> None:
        if mode is not None and mode not in ("max", "min"):
            raise ValueError(f"`mode` can be 'max' or 'min', got {mode!r}.")
        if isinstance(rank_by, str):
            if available and rank_by not in available:
                raise ValueError(
                    f"cannot rank by {rank_by!r}: records hold {list(available)}. Add it to "
                    "`metrics` if it is an NTK metric, or pass a callable."
                )
            if mode is None:
                mode = direction(rank_by)
                if mode is None:
                    raise ValueError(
                        f"is a higher {rank_by!r} better or worse? Pass mode='max' or mode='min'."
                    )
        elif not callable(rank_by):
            raise ValueError(f"`rank_by` must be a quantity name or a callable, got {rank_by!r}.")
        self.rank_by = rank_by
        self.mode: Mode = mode or "max"

    @property
    def name(self) -> str:
        """The signal's name: the quantity, or the callable's qualified name."""
        if isinstance(self.rank_by, str):
            return self.rank_by
        module = getattr(self.rank_by, "__module__", "")
        return f"{module}.{getattr(self.rank_by, '__qualname__', repr(self.rank_by))}"

    def value(self, record: Mapping[str, Any]) -> float:
        """The signal's raw value (nan when undefined)."""
        if isinstance(self.rank_by, str):
            v = record.get(self.rank_by)
        else:
            try:
                v = self.rank_by(record)
            except (KeyError, TypeError, ValueError, ZeroDivisionError, ArithmeticError):
                return math.nan
        return math.nan if v is None else float(v)

    def score(self, record: Mapping[str, Any]) -> float:
        """Higher is better; ``-inf`` for failed records and undefined values."""
        if record.get("status", "ok") == "diverged":
            return -math.inf
        v = self.value(record)
        if not math.isfinite(v):
            return -math.inf
        return v if self.mode == "max" else -v
