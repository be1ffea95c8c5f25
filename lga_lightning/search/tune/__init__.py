"""Architecture search on Ray Tune: a search's candidates as trials, stopped early by LGA.

Needs the ``ray`` extra: ``pip install "lga-lightning[ray]"``.

- :class:`TuneSearch` — run an :class:`~lga_lightning.search.LGASearch` on Ray Tune: one trial
  per candidate, ASHA or HyperBand rungs on the measurement epochs, the same results store and
  leaderboard, restored after a crash by rerunning;
- :class:`StrategySearcher` — a project strategy as a Tune searcher; :class:`IndexedSearcher` —
  one of Tune's searchers, its suggestions numbered as candidates;
- :func:`candidate_trial` — the trial function (one candidate, trained by a Lightning
  ``Trainer``, measured by the search's own code).

Example:
    >>> from lga_lightning.search.tune import rung_epochs
    >>> rung_epochs("asha", min_epochs=1, max_epochs=9, eta=3)
    [1, 3, 9]
"""

from __future__ import annotations

try:
    import ray  # noqa: F401
    from ray import tune  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the installation
    raise ImportError(
        f"lga_lightning.search.tune needs Ray Tune ({err}); install it with "
        '`pip install "lga-lightning[ray]"`.'
    ) from err

from lga_lightning.search.tune.driver import TuneSearch, rung_epochs
from lga_lightning.search.tune.records import SearchRecords
from lga_lightning.search.tune.searcher import IndexedSearcher, StrategySearcher, arch_param_space
from lga_lightning.search.tune.trial import SCHEDULER_METRIC, TrialSettings, candidate_trial

__all__ = [
    "SCHEDULER_METRIC",
    "IndexedSearcher",
    "SearchRecords",
    "StrategySearcher",
    "TrialSettings",
    "TuneSearch",
    "arch_param_space",
    "candidate_trial",
    "rung_epochs",
]
