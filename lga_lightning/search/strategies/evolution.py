"""``RegularizedEvolution``: regularised (aging) evolution by tournament and mutation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lga_lightning.search.seeding import python_rng
from lga_lightning.search.strategies.base import Job, Strategy, _check_positive, record_score


class RegularizedEvolution(Strategy):
    """Regularised (aging) evolution (Real et al., 2019).

    The first ``population_size`` candidates are uniform samples. Then, in batches of
    ``batch_size`` children: each child's parent is the best of ``sample_size`` members drawn
    from the population (ties: the lower candidate index), mutated once by the space; when the
    whole batch is measured its children join the population in candidate order and the oldest
    members leave. ``batch_size=1`` is the classic sequential algorithm; a larger batch lets
    several processes train children at once (results depend on ``batch_size``, never on the
    number of processes).

    Args:
        num_candidates: total candidates, initial population included.
        population_size: members kept alive.
        sample_size: tournament size.
        epochs: training epochs per candidate.
        batch_size: children proposed before their results are needed.

    Example:
        >>> from lga_lightning.search.spaces import NB201Space
        >>> s = RegularizedEvolution(num_candidates=5, population_size=2, sample_size=2)
        >>> s.bind(NB201Space(), seed=0)
        >>> [s.propose().candidate for _ in range(2)], s.propose()  # waits for the population
        ([0, 1], None)
    """

    def __init__(
        self,
        num_candidates: int = 20,
        population_size: int = 10,
        sample_size: int = 3,
        epochs: int = 1,
        batch_size: int = 1,
    ) -> None:
        super().__init__()
        self.num_candidates = _check_positive("num_candidates", num_candidates)
        self.population_size = _check_positive("population_size", population_size)
        self.sample_size = _check_positive("sample_size", sample_size)
        self.epochs = _check_positive("epochs", epochs)
        self.batch_size = _check_positive("batch_size", batch_size)
        if sample_size > population_size:
            raise ValueError(
                f"`sample_size` ({sample_size}) cannot exceed `population_size` "
                f"({population_size})."
            )
        self.total_evaluations = num_candidates
        self.total_epochs = num_candidates * epochs

    def _reset(self) -> None:
        self.population: list[tuple[int, Any, float]] = []  # (candidate, arch, score), oldest first
        self._initial = self._sample_unique(
            min(self.population_size, self.num_candidates), set(), "sample"
        )
        self._population_ready = False
        self._batch: list[int] = []
        self._batch_target = 0
        self._results: dict[int, tuple[Any, float]] = {}

    def _next(self) -> Job | None:
        c = self._next_candidate
        if c < len(self._initial):
            arch = self._initial[c]
        elif not self._population_ready or len(self._batch) >= self.batch_size:
            return None  # wait for the population / the current batch of children
        else:
            if not self._batch:
                self._batch_target = min(self.batch_size, self.num_candidates - c)
            arch = self._child(c)
            self._batch.append(c)
        self._new_candidate()
        if self._next_candidate >= self.num_candidates:
            self.finished = True
        return Job(c, arch, self.epochs, (self.epochs,))

    def _child(self, c: int) -> Any:
        assert self.space is not None
        rng = python_rng(self.seed, "evolve", c)
        members = rng.sample(range(len(self.population)), self.sample_size)
        parent = max((self.population[i] for i in members), key=lambda m: (m[2], -m[0]))
        return self.space.mutate(parent[1], rng)

    def _finish(self, job: Job, record: Mapping[str, Any]) -> None:
        self._results[job.candidate] = (job.arch, record_score(record))
        if not self._population_ready:
            if all(c in self._results for c in range(len(self._initial))):
                self._admit(range(len(self._initial)))
                self._population_ready = True
        elif len(self._batch) == self._batch_target and all(
            c in self._results for c in self._batch
        ):
            self._admit(self._batch)
            self._batch = []

    def _admit(self, candidates: Sequence[int]) -> None:
        for c in sorted(candidates):
            arch, score = self._results[c]
            self.population.append((c, arch, score))
        while len(self.population) > self.population_size:
            self.population.pop(0)

    def _config(self) -> dict[str, Any]:
        return {
            "num_candidates": self.num_candidates,
            "population_size": self.population_size,
            "sample_size": self.sample_size,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
        }
