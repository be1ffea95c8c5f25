"""``SingleJob``: exactly one given job, what one Ray Tune trial trains."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lga_lightning.search.strategies.base import Job, Strategy


class SingleJob(Strategy):
    """Exactly one given job: what one Ray Tune trial trains (see :mod:`lga_lightning.search.tune`).

    Args:
        job: the job, with its candidate index (its seeds derive from it).

    Example:
        >>> from lga_lightning.search.spaces import NB201Space
        >>> arch = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
        >>> s = SingleJob(Job(7, arch, 2, (1, 2)))
        >>> s.bind(NB201Space(), seed=0)
        >>> s.propose().candidate, s.propose(), s.total_evaluations
        (7, None, 2)
    """

    decides_on_scores = False

    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job
        self.epochs = job.epochs
        self.total_evaluations = len(job.measure_at)
        self.total_epochs = job.epochs

    def _next(self) -> Job | None:
        self.finished = True
        return self.job

    def _finish(self, job: Job, record: Mapping[str, Any]) -> None:
        """Nothing to decide: the only job is over."""

    def _config(self) -> dict[str, Any]:
        job = self.job
        return {
            "candidate": job.candidate,
            "epochs": job.epochs,
            "measure_at": list(job.measure_at),
        }
