"""``Plain``: the paper's protocol, every candidate trained and measured after each epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lga_lightning.search.strategies.base import Job, Strategy, _check_positive


class Plain(Strategy):
    """The paper's protocol: every candidate trained ``epochs`` epochs, measured after each.

    Candidates are ``archs`` in the given order, or ``num_candidates`` architectures sampled
    uniformly (distinct canonical forms). Records are written after every epoch in
    ``measure_at`` (default: each epoch ``1..epochs``), so the metrics' evolution is kept.

    Args:
        archs: architecture strings to evaluate, decoded with the space.
        num_candidates: how many to sample when ``archs`` is not given.
        epochs: training epochs per candidate (the paper: 1).
        measure_at: epochs after which to measure; must end with ``epochs``.

    Example:
        >>> from lga_lightning.search.spaces import NB201Space
        >>> s = Plain(num_candidates=2, epochs=2)
        >>> s.bind(NB201Space(), seed=0)
        >>> job = s.propose()
        >>> job.candidate, job.epochs, job.measure_at, s.total_evaluations
        (0, 2, (1, 2), 4)
    """

    decides_on_scores = False

    def __init__(
        self,
        archs: Sequence[str] | None = None,
        num_candidates: int = 10,
        epochs: int = 1,
        measure_at: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.archs = list(archs) if archs is not None else None
        self.num_candidates = len(self.archs) if self.archs is not None else num_candidates
        _check_positive("num_candidates", self.num_candidates)
        self.epochs = _check_positive("epochs", epochs)
        self.measure_at = tuple(measure_at) if measure_at else tuple(range(1, epochs + 1))
        Job(0, None, self.epochs, self.measure_at)  # validates measure_at
        self.total_evaluations = self.num_candidates * len(self.measure_at)
        self.total_epochs = self.num_candidates * self.epochs

    def _reset(self) -> None:
        assert self.space is not None
        if self.archs is not None:
            self._queue = [self.space.decode(a) for a in self.archs]
        else:
            self._queue = self._sample_unique(self.num_candidates, set(), "sample")

    def _next(self) -> Job | None:
        if self._next_candidate >= len(self._queue):
            self.finished = True
            return None
        c = self._new_candidate()
        if self._next_candidate >= len(self._queue):
            self.finished = True
        return Job(c, self._queue[c], self.epochs, self.measure_at)

    def _finish(self, job: Job, record: Mapping[str, Any]) -> None:
        pass

    def _config(self) -> dict[str, Any]:
        return {
            "archs": self.archs,
            "num_candidates": self.num_candidates,
            "epochs": self.epochs,
            "measure_at": list(self.measure_at),
        }
