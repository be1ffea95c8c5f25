"""Argument checks of :class:`~lga_lightning.search.tune.TuneSearch`, each naming the fix."""

from __future__ import annotations

import inspect
from typing import Any

import lightning.pytorch as pl
from ray.tune.search import Searcher

from lga_lightning.search import LGASearch
from lga_lightning.search.strategies import Strategy
from lga_lightning.search.tune.trial import TRAINER_DEFAULTS


def check_rungs(scheduler: Any, min_epochs: int, eta: int, max_epochs: int) -> None:
    """Refuse an unknown scheduler name and rungs the strategy's epochs cannot hold."""
    if isinstance(scheduler, str) and scheduler not in ("asha", "hyperband", "none"):
        raise ValueError(
            f"trial_scheduler={scheduler!r} is not one of 'asha', 'hyperband', 'none' (or a Tune "
            "TrialScheduler)."
        )
    if not 1 <= min_epochs <= max_epochs:
        raise ValueError(
            f"min_epochs={min_epochs} must be between 1 and the strategy's epochs "
            f"({max_epochs}): the first comparison comes after min_epochs epochs."
        )
    if eta < 2:
        raise ValueError(f"eta={eta} must be at least 2 (keep the top 1/eta at each rung).")


def check_trial_resources(
    searcher: Any, num_candidates: int | None, cpu: float, gpu: float
) -> None:
    """Refuse a Tune searcher without a count of candidates, and impossible trial resources."""
    if searcher is not None and not num_candidates:
        raise ValueError("with a Tune searcher, say how many candidates: num_candidates=N.")
    if cpu <= 0 or gpu < 0:
        raise ValueError(f"resources per trial must be cpu > 0 and gpu >= 0, got {cpu}, {gpu}.")


def check_strategy(
    strategy: Strategy, searcher: Any, scheduler: Any, search: LGASearch
) -> Strategy:
    """Refuse a searcher, strategy or scheduler Tune cannot run the search with.

    The strategy says itself whether it continues candidates
    (``Strategy.continues_candidates``), so a new strategy needs no list to be accepted.
    """
    if searcher is not None and not isinstance(searcher, Searcher):
        raise ValueError(
            f"searcher must be a ray.tune.search.Searcher (Optuna, HyperOpt, ...), got "
            f"{type(searcher).__name__}; for random search or evolution set the search's "
            "strategy instead."
        )
    if strategy.continues_candidates:
        raise ValueError(
            f"{type(strategy).__name__} cannot run on Ray Tune: it continues candidates from "
            "earlier jobs. Use RandomSearch, Plain or RegularizedEvolution; successive halving "
            "is what the 'asha' scheduler does, asynchronously."
        )
    if search.ranking.combined and scheduler != "none":
        raise ValueError(
            f"rank_by={list(search.ranking.combined)} ranks candidates against each other, so a "
            "score changes as others are measured; an early-stopping scheduler compares scores "
            "as they arrive. Use trial_scheduler='none', or rank by one signal."
        )
    return strategy


def check_trainer_options(options: dict[str, Any]) -> dict[str, Any]:
    """Names only: values such as ``accelerator="gpu"`` may not work on the driver's node."""
    fixed = sorted(set(options) & {*TRAINER_DEFAULTS, "default_root_dir", "callbacks"})
    if fixed:
        raise ValueError(
            f"trainer options {fixed} are set by the trials themselves (one device each, no "
            "logger; the search stops itself); remove them."
        )
    known = inspect.signature(pl.Trainer.__init__).parameters
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"trainer options {unknown} are not arguments of lightning.pytorch.Trainer; "
            "check their spelling."
        )
    return options
