"""``SuccessiveHalving``: rungs of candidates, the best of each continuing to train."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lga_lightning.search.strategies.base import Job, Strategy, _check_positive, record_score


class SuccessiveHalving(Strategy):
    """Successive halving by the ranking signal (Jamieson & Talwalkar, 2016).

    Rung ``k`` (``k = 0, 1, ...``) holds ``n_k = num_candidates // eta**k`` candidates, each
    trained to ``e_k = min_epochs * eta**k`` epochs in total. Rung 0 is ``num_candidates``
    uniform samples; rung ``k+1`` is the best ``n_{k+1}`` of rung ``k`` by score (ties: the lower
    candidate index; failed candidates never advance), which *continue* training from their
    state at ``e_k`` epochs. Rungs stop when ``n_k`` would be 0 or ``e_k`` would exceed
    ``max_epochs``. Training epochs in total: ``sum_k n_k * (e_k - e_{k-1})`` with ``e_{-1} = 0``.

    Args:
        num_candidates: candidates in the first rung.
        eta: keep the top ``1/eta`` of each rung; survivors get ``eta`` times the epochs.
        min_epochs: epochs of the first rung.
        max_epochs: cap on the epochs of the last rung.

    Example:
        >>> s = SuccessiveHalving(num_candidates=9, eta=3, min_epochs=1)
        >>> s.rungs, s.total_epochs, s.total_evaluations
        ([(9, 1), (3, 3), (1, 9)], 21, 13)
    """

    continues_candidates = True

    def __init__(
        self,
        num_candidates: int = 9,
        eta: int = 3,
        min_epochs: int = 1,
        max_epochs: int | None = None,
    ) -> None:
        super().__init__()
        self.num_candidates = _check_positive("num_candidates", num_candidates)
        self.eta = _check_positive("eta", eta)
        if eta < 2:
            raise ValueError(f"`eta` must be at least 2, got {eta}.")
        self.min_epochs = _check_positive("min_epochs", min_epochs)
        if max_epochs is not None and max_epochs < min_epochs:
            raise ValueError(
                f"`max_epochs` ({max_epochs}) must be at least `min_epochs` ({min_epochs})."
            )
        self.max_epochs = max_epochs
        self.rungs: list[tuple[int, int]] = []
        k = 0
        while True:
            n, e = num_candidates // eta**k, min_epochs * eta**k
            if n < 1 or (max_epochs is not None and e > max_epochs):
                break
            self.rungs.append((n, e))
            k += 1
        self.total_evaluations = sum(n for n, _ in self.rungs)
        previous = [0] + [e for _, e in self.rungs[:-1]]
        self.total_epochs = sum(n * (e - p) for (n, e), p in zip(self.rungs, previous, strict=True))

    def _reset(self) -> None:
        self.rung = 0
        archs = self._sample_unique(self.num_candidates, set(), "sample")
        self._archs = dict(enumerate(archs))
        self._queue = list(range(self.num_candidates))
        self._results: dict[int, float] = {}
        self._next_candidate = self.num_candidates

    def _next(self) -> Job | None:
        if not self._queue:
            return None
        c = self._queue.pop(0)
        epochs = self.rungs[self.rung][1]
        last = self.rung == len(self.rungs) - 1
        if last and not self._queue:
            self.finished = True
        return Job(c, self._archs[c], epochs, (epochs,), keep_state=not last)

    def _finish(self, job: Job, record: Mapping[str, Any]) -> None:
        self._results[job.candidate] = record_score(record)
        if self._queue or self._pending or self.finished:
            return
        alive = [c for c, s in self._results.items() if s > -math.inf]
        alive.sort(key=lambda c: (-self._results[c], c))
        self.rung += 1
        self._queue = sorted(alive[: self.rungs[self.rung][0]])
        self._results = {}
        if not self._queue:
            self.finished = True

    def _config(self) -> dict[str, Any]:
        return {
            "num_candidates": self.num_candidates,
            "eta": self.eta,
            "min_epochs": self.min_epochs,
            "max_epochs": self.max_epochs,
        }
