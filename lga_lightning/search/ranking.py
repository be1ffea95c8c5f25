"""The ranking signal: which recorded quantity orders the candidates, and in which direction.

A record holds the NTK metrics (``lga``, ``condition_number``, ...), ``train_loss``,
``val_acc`` and ``params``. The signal is one of them with a direction, or a function of the
whole record. Its value, signed so that higher is better, is the record's ``score``; candidates
that diverged or whose signal is undefined (nan) get ``score = -inf`` and rank last.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from lga_lightning._compat import renamed_keywords
from lga_lightning.core.rank_combination import sum_of_log_ranks, sum_of_ranks
from lga_lightning.core.signals import direction as signal_direction
from lga_lightning.core.signals import expected_sign, signal_names

Direction = Literal["max", "min"]
Signal = str | list[str] | Callable[[Mapping[str, Any]], float]
CombineBy = Literal["log_ranks", "ranks"]


RECORD_QUANTITIES = (*signal_names("training"), "params")
"""Quantities every record has besides the NTK metrics: the registry's training rows and
``params``."""


class Ranking:
    """Turns a record into its signal value and its score.

    Args:
        rank_by: a recorded quantity (an NTK metric name or one of :data:`RECORD_QUANTITIES`), a
            list of several combined by rank (``["lga", "params"]``: each ranked over the
            candidates measured at the same epoch, best highest, then ``combine_by``), or a
            callable ``record -> float`` combining them (e.g. ``lambda r: r["lga"] -
            0.1 * r["train_loss"]``; a module-level function for the CLI).
        direction: ``"max"`` (higher is better) or ``"min"``; default from the table of signals
            (:data:`lga_lightning.core.signals.SIGNALS`), and
            ``"max"`` for a callable.
        available: the quantities records will hold, to check ``rank_by`` early.
        combine_by: for a list: ``"log_ranks"`` (sum of log(rank / N), as AZ-NAS) or
            ``"ranks"`` (sum of ranks).

    Raises:
        ValueError: for an unknown quantity, an unknown ``direction``, or a quantity whose
            direction is not obvious and no ``direction`` was given.
        TypeError: for the 0.2 keyword ``mode``, naming ``direction``.

    Example:
        >>> r = Ranking("condition_number")
        >>> r.direction, r.score({"condition_number": 4.0, "status": "ok"})
        ('min', -4.0)
        >>> Ranking("lga").score({"lga": float("nan"), "status": "ok"})
        -inf
    """

    @renamed_keywords("mode")
    def __init__(
        self,
        rank_by: Signal = "lga",
        direction: Direction | None = None,
        available: tuple[str, ...] = (),
        combine_by: CombineBy = "log_ranks",
    ) -> None:
        if direction is not None and direction not in ("max", "min"):
            raise ValueError(f"`direction` can be 'max' or 'min', got {direction!r}.")
        self.combined: tuple[str, ...] = ()
        self.combine_by = combine_by
        if isinstance(rank_by, (list, tuple)):
            self.combined = _check_combination(rank_by, available, direction, combine_by)
            rank_by, direction = "+".join(self.combined), "max"
        elif isinstance(rank_by, str):
            if available and rank_by not in available:
                raise ValueError(
                    f"cannot rank by {rank_by!r}: records hold {list(available)}. Add it to "
                    "`metrics` if it is an NTK metric, or pass a callable."
                )
            if direction is None:
                direction = signal_direction(rank_by)
                if direction is None:
                    raise ValueError(
                        f"is a higher {rank_by!r} better or worse? Pass direction='max' or "
                        "direction='min'."
                    )
        elif not callable(rank_by):
            raise ValueError(f"`rank_by` must be a quantity name or a callable, got {rank_by!r}.")
        self.rank_by = rank_by
        self.direction: Direction = direction or "max"

    def rescore(self, records: Sequence[dict[str, Any]]) -> None:
        """Give a combined ranking's records their ``signal`` and ``score``, in place.

        Each signal is ranked over the records of the same epoch (best highest; failed or
        undefined values worst), then the ranks are combined; failed records score ``-inf``.
        The scores depend on every record, so they change as candidates are added.
        """
        if not self.combined:
            return
        by_epoch: dict[int, list[dict[str, Any]]] = {}
        for record in records:
            by_epoch.setdefault(int(record["epoch"]), []).append(record)
        combine = sum_of_log_ranks if self.combine_by == "log_ranks" else sum_of_ranks
        for group in by_epoch.values():
            columns = [
                [_finite_or_nan(r.get(name)) if r.get("status") != "diverged" else math.nan
                 for r in group]
                for name in self.combined
            ]  # fmt: skip
            signs = [expected_sign(name) for name in self.combined]
            for record, value in zip(group, combine(columns, signs).tolist(), strict=True):
                failed = record.get("status") == "diverged" or any(
                    math.isnan(_finite_or_nan(record.get(name))) for name in self.combined
                )
                record["signal"] = float(value)
                record["score"] = -math.inf if failed else float(value)

    @property
    def name(self) -> str:
        """The signal's name: the quantity, or the callable's qualified name."""
        if isinstance(self.rank_by, str):
            return self.rank_by
        module = getattr(self.rank_by, "__module__", "")
        return f"{module}.{getattr(self.rank_by, '__qualname__', repr(self.rank_by))}"

    def value(self, record: Mapping[str, Any]) -> float:
        """The signal's raw value (nan when undefined).

        A combination's value depends on the other candidates: :meth:`rescore` sets it.
        """
        if self.combined:
            v = record.get("signal")
        elif isinstance(self.rank_by, str):
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
        return v if self.direction == "max" else -v


def _check_combination(
    names: Sequence[str], available: Sequence[str], direction: Direction | None, combine_by: str
) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(names))
    if len(names) < 2:
        raise ValueError(
            f"`rank_by` as a list combines at least two signals, got {list(names)}; pass one "
            "name as a string to rank by a single signal."
        )
    if direction is not None:
        raise ValueError(
            "`direction` does not apply to a combination: higher combined rank is better."
        )
    if combine_by not in ("log_ranks", "ranks"):
        raise ValueError(f"`combine_by` can be 'log_ranks' or 'ranks', got {combine_by!r}.")
    for name in names:
        if available and name not in available:
            raise ValueError(f"cannot rank by {name!r}: records hold {list(available)}.")
        if signal_direction(name) is None:
            raise ValueError(
                f"{name!r} has no known direction (better = higher or lower), so it cannot be "
                "combined by rank; combine signals such as lga, condition_number, params, "
                "train_loss, val_acc or a zero-cost proxy."
            )
    return names


def _finite_or_nan(value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan
