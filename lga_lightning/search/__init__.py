"""Architecture search ranked by Label-Gradient Alignment: :class:`LGASearch` and its parts.

- :class:`LGASearch` — the LightningModule, run by ``Trainer.fit(search, datamodule=dm)``;
- strategies — :class:`RandomSearch`, :class:`Plain` (the paper's protocol),
  :class:`RegularizedEvolution`, :class:`SuccessiveHalving`, all behind :class:`Strategy`;
- :class:`Ranking` — the signal candidates are ranked by;
- :class:`ResultsStore` — the append-only, resumable results file;
- :func:`load_results` — the leaderboard and summary a finished search wrote.

Example:
    >>> from lga_lightning.search import LGASearch, SuccessiveHalving
    >>> SuccessiveHalving(num_candidates=4, eta=2).rungs
    [(4, 1), (2, 2), (1, 4)]
"""

from __future__ import annotations

import json
import os
from typing import Any

from lga_lightning.search.module import LGASearch
from lga_lightning.search.ranking import Ranking
from lga_lightning.search.store import ResultsStore, StoreMismatchError
from lga_lightning.search.strategies import (
    Job,
    Plain,
    RandomSearch,
    RegularizedEvolution,
    SingleJob,
    Strategy,
    SuccessiveHalving,
)


def load_results(results_dir: str) -> dict[str, Any]:
    """Read ``leaderboard.json`` of a finished search: ``{"summary": ..., "leaderboard": [...]}``.

    Useful after ``ddp_spawn``, where the fitted module's attributes stay in the worker processes.
    """
    with open(os.path.join(results_dir, "leaderboard.json")) as f:
        return json.load(f)


__all__ = [
    "Job",
    "LGASearch",
    "Plain",
    "RandomSearch",
    "Ranking",
    "RegularizedEvolution",
    "ResultsStore",
    "SingleJob",
    "StoreMismatchError",
    "Strategy",
    "SuccessiveHalving",
    "load_results",
]
