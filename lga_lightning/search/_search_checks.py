"""Argument and data checks of :class:`~lga_lightning.search.LGASearch`, each naming the fix."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

from lga_lightning.core.functional import SCALAR_METRICS
from lga_lightning.core.meter import NTKMeter
from lga_lightning.core.signals import check_metrics
from lga_lightning.search.ranking import Ranking
from lga_lightning.search.runner import is_sharded
from lga_lightning.search.strategies import Strategy

DEFAULT_METRICS = SCALAR_METRICS  # the built-in kernel metrics; registered ones are accepted too


def check_measurement(
    metrics: Sequence[str],
    proxies: Sequence[str],
    kernel_kwargs: dict[str, Any] | None,
    probe_size: int,
    meter: NTKMeter | None,
) -> tuple[Sequence[str], Sequence[str], dict[str, Any] | None]:
    """Check what is measured; with ``meter=``, take its metrics, proxies and kernel options.

    ``metrics`` are checked as the meter checks them
    (:func:`~lga_lightning.core.signals.check_metrics`), against the registry's ``kernel`` rows,
    registered ones included; the evolution metrics are refused, as each candidate is measured
    on its own.

    Example:
        >>> check_measurement(["lga", "lga"], (), None, probe_size=8, meter=None)
        (('lga',), (), None)
        >>> check_measurement(["lga"], (), None, probe_size=1, meter=None)
        Traceback (most recent call last):
        ...
        ValueError: `probe_size` must be at least 2, got 1.
    """
    if metrics or not proxies:  # proxies alone measure no kernel
        output = (kernel_kwargs or {}).get("output", "sum")
        metrics = check_metrics(metrics, output, evolution=False)
    if probe_size < 2:
        raise ValueError(f"`probe_size` must be at least 2, got {probe_size}.")
    if meter is None:
        return metrics, proxies, kernel_kwargs
    given = [
        name
        for name, value, default in (
            ("metrics", tuple(metrics), DEFAULT_METRICS),
            ("proxies", tuple(proxies), ()),
            ("kernel_kwargs", kernel_kwargs, None),
        )
        if value != default
    ]
    if not isinstance(meter, NTKMeter) or given:
        raise ValueError(
            "LGASearch(meter=...) takes the metrics, proxies and kernel options from an "
            f"NTKMeter; got a {type(meter).__name__} with {given} given too: pass them to "
            "NTKMeter(...) instead."
        )
    return meter.metrics, meter.proxies, meter.kernel_kwargs


def check_combination(ranking: Ranking, strategy: Strategy) -> None:
    """Refuse a combined ranking with a strategy that decides on scores as they arrive.

    The strategy says so itself (``Strategy.decides_on_scores``), so a new strategy needs no
    list to be accepted.
    """
    if ranking.combined and strategy.decides_on_scores:
        raise ValueError(
            f"rank_by={list(ranking.combined)} ranks candidates against each other, so "
            f"a candidate's score changes as others are measured; "
            f"{type(strategy).__name__} decides on scores as they arrive. Use it with "
            "RandomSearch or Plain, or rank by one signal."
        )


class ChecksMixin:
    """The checks of :class:`~lga_lightning.search.LGASearch` that need the data or the Trainer."""

    strategy: Strategy
    num_classes: int | None
    _rank: int
    _world: int

    def check_data(self, datamodule: Any) -> None:
        """Refuse data the search cannot train on, before anything is built or trained.

        ``num_classes`` must match the data's labels: fewer crash the loss, more are never seen.

        Raises:
            ValueError: naming both numbers and the fix.
        """
        found = getattr(datamodule, "num_classes", None)
        if self.num_classes is not None and isinstance(found, int) and found != self.num_classes:
            raise ValueError(
                f"LGASearch(num_classes={self.num_classes}) but the data has {found} classes; "
                f"set num_classes to {found} or leave it unset to take the data's."
            )

    def check_unsharded(self, dataloader: Any) -> None:
        """Refuse a Trainer that shards the data: every process trains on the whole set."""
        if self._world > 1 and is_sharded(dataloader):
            raise RuntimeError(
                "LGASearch spreads candidates over processes and each trains on the whole "
                "training set, but the Trainer shards the data across processes. Pass "
                "`Trainer(use_distributed_sampler=False)`."
            )

    def _warn_epoch_limit(self) -> None:
        need = self.strategy.total_epochs
        limit = self.trainer.max_epochs
        if need is None or limit is None or limit < 0 or self._rank != 0:
            return
        if limit < math.ceil(need / self._world):
            warnings.warn(
                f"the search needs about {need} candidate epochs but the Trainer stops after "
                f"max_epochs={limit}; pass `max_epochs=-1` (the search stops the Trainer itself).",
                UserWarning,
                stacklevel=2,
            )
