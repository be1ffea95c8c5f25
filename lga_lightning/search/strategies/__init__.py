"""Search strategies: which candidate to train next, for how many epochs, and when to stop.

The interface and what strategies share live in :mod:`~lga_lightning.search.strategies.base`
(:class:`Job`, :class:`Strategy`, :func:`record_score`, :data:`ENDING_STATUSES`); each strategy
has its own module: :class:`Plain`, :class:`RandomSearch`, :class:`SingleJob`,
:class:`RegularizedEvolution`, :class:`SuccessiveHalving`. Every name is importable from here,
e.g. ``class_path: lga_lightning.search.strategies.Plain`` in a config.

Example:
    >>> from lga_lightning.search.strategies import RandomSearch, Strategy
    >>> isinstance(RandomSearch(num_candidates=3), Strategy)
    True
"""

from __future__ import annotations

from lga_lightning.search.strategies.base import ENDING_STATUSES, Job, Strategy, record_score
from lga_lightning.search.strategies.evolution import RegularizedEvolution
from lga_lightning.search.strategies.plain import Plain
from lga_lightning.search.strategies.random_search import RandomSearch
from lga_lightning.search.strategies.single_job import SingleJob
from lga_lightning.search.strategies.successive_halving import SuccessiveHalving

__all__ = [
    "ENDING_STATUSES",
    "Job",
    "Plain",
    "RandomSearch",
    "RegularizedEvolution",
    "SingleJob",
    "Strategy",
    "SuccessiveHalving",
    "record_score",
]
