"""Tune's early-stopping schedulers for a search: their rungs and how they are built."""

from __future__ import annotations

from typing import Literal

from ray.tune.schedulers import (
    AsyncHyperBandScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    TrialScheduler,
)

SchedulerName = Literal["asha", "hyperband", "none"]


def rung_epochs(scheduler: str, min_epochs: int, max_epochs: int, eta: int) -> list[int]:
    """The epochs at which a scheduler compares candidates (each trial measures at these).

    ASHA: ``min_epochs * eta**k`` below ``max_epochs``; HyperBand: ``max_epochs / eta**k``
    (rounded down, at least 1); both end with ``max_epochs``; none: ``[max_epochs]``.

    Example:
        >>> rung_epochs("asha", 1, 9, 3), rung_epochs("hyperband", 1, 9, 3)
        ([1, 3, 9], [1, 3, 9])
        >>> rung_epochs("asha", 2, 10, 2), rung_epochs("none", 1, 4, 3)
        ([2, 4, 8, 10], [4])
    """
    rungs = {max_epochs}
    if scheduler == "asha":
        e = min_epochs
        while e < max_epochs:
            rungs.add(e)
            e *= eta
    elif scheduler == "hyperband":
        k = 1
        while max_epochs // eta**k >= 1:
            rungs.add(max_epochs // eta**k)
            k += 1
    return sorted(rungs)


def make_scheduler(
    scheduler: SchedulerName | TrialScheduler, max_epochs: int, min_epochs: int, eta: int
) -> TrialScheduler:
    """The Tune scheduler a :class:`~lga_lightning.search.tune.TuneSearch` names, or the given one.

    ``"asha"`` and ``"hyperband"`` compare candidates on ``epoch`` up to ``max_epochs``
    (ASHA's grace period: ``min_epochs``), keeping the top ``1/eta``; ``"none"`` runs every
    candidate to its end.

    Example:
        >>> type(make_scheduler("none", max_epochs=4, min_epochs=1, eta=2)).__name__
        'FIFOScheduler'
    """
    if not isinstance(scheduler, str):
        return scheduler
    if scheduler == "asha":
        return AsyncHyperBandScheduler(
            time_attr="epoch",
            max_t=max_epochs,
            grace_period=min_epochs,
            reduction_factor=eta,
        )
    if scheduler == "hyperband":
        return HyperBandScheduler(time_attr="epoch", max_t=max_epochs, reduction_factor=eta)
    return FIFOScheduler()
