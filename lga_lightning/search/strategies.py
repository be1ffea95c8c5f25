"""Search strategies: which candidate to train next, for how many epochs, and when to stop.

A strategy talks to :class:`~lga_lightning.search.LGASearch` through three members:

* :meth:`Strategy.propose` returns the next :class:`Job` (train candidate ``c`` with
  architecture ``arch`` up to ``epochs`` epochs, recording measurements at ``measure``), or
  ``None`` when it must first see the results of the jobs already proposed;
* :meth:`Strategy.report` receives every measurement record (``candidate``, ``epoch``,
  ``status``, ``score``: higher is better, ``-inf`` for failed candidates); a record whose
  status is in :data:`ENDING_STATUSES` ends its job before its last epoch;
* :attr:`Strategy.done` says the search is over.

Strategies are deterministic functions of the search seed and of the records reported, and the
order of reports *within* a batch of proposals does not matter. So a strategy's state never needs
saving: replaying the results store rebuilds it (that is how a search resumes), and the
candidates are the same however many processes train them.

A new strategy is one subclass implementing :meth:`Strategy._next` and :meth:`Strategy._finish`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lga_lightning.search.seeding import python_rng
from lga_lightning.search.spaces.base import SearchSpace

ENDING_STATUSES = ("diverged", "stopped", "failed")
"""Statuses that end a job early: the candidate diverged, a scheduler stopped it (Ray Tune's
ASHA), or its training failed for good."""


@dataclass(frozen=True)
class Job:
    """Train one candidate.

    Attributes:
        candidate: the candidate's index; its weights' seed derives from it. A job that continues
            a candidate (successive halving) reuses the index.
        arch: the architecture, as the space represents it.
        epochs: train until the candidate has this many epochs.
        measure: epochs (ascending, ending with ``epochs``) after which a record is written.
        keep_state: save the candidate's weights and optimizer after its last epoch, because a
            later job may continue it.
    """

    candidate: int
    arch: Any
    epochs: int
    measure: tuple[int, ...]
    keep_state: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"a job trains at least one epoch, got epochs={self.epochs}.")
        if (
            not self.measure
            or self.measure[-1] != self.epochs
            or list(self.measure) != sorted(set(self.measure))
        ):
            raise ValueError(
                f"`measure` must be ascending epochs ending with epochs={self.epochs}, "
                f"got {self.measure}."
            )


def record_score(record: Mapping[str, Any]) -> float:
    """A record's score for comparisons: ``-inf`` when missing or not finite.

    Example:
        >>> record_score({"score": 0.5}), record_score({"score": float("nan")})
        (0.5, -inf)
    """
    score = record.get("score")
    if score is None or not math.isfinite(score):
        return -math.inf
    return float(score)


class Strategy:
    """Base class: bookkeeping of proposed and reported jobs.

    Subclasses implement :meth:`_next` (the next job, or ``None`` to wait for results) and
    :meth:`_finish` (a job's final record arrived), and set :attr:`total_evaluations`.
    """

    def __init__(self) -> None:
        self.space: SearchSpace | None = None
        self.seed = 0
        self._pending: dict[int, Job] = {}
        self._next_candidate = 0
        self.finished = False

    # ---------------------------------------------------------------- interface
    def bind(self, space: SearchSpace, seed: int) -> None:
        """Attach the space and the search seed and reset the state (called once per fit)."""
        self.space = space
        self.seed = int(seed)
        self._pending = {}
        self._next_candidate = 0
        self.finished = False
        self._reset()

    def propose(self) -> Job | None:
        """The next job, or ``None`` while the strategy waits for results (or is done)."""
        if self.space is None:
            raise RuntimeError("call Strategy.bind(space, seed) before propose().")
        if self.finished:
            return None
        job = self._next()
        if job is not None:
            self._pending[job.candidate] = job
        return job

    def report(self, record: Mapping[str, Any]) -> None:
        """Receive one measurement record; a job ends with its last epoch or an ending status."""
        job = self._pending.get(int(record["candidate"]))
        if job is None:
            raise ValueError(f"record for candidate {record['candidate']} that has no job.")
        self._on_record(job, record)
        if int(record["epoch"]) >= job.epochs or record.get("status") in ENDING_STATUSES:
            del self._pending[job.candidate]
            self._finish(job, record)

    @property
    def done(self) -> bool:
        """Whether the search is over: nothing pending and nothing left to propose."""
        return self.finished and not self._pending

    @property
    def pending(self) -> list[Job]:
        """Jobs proposed and not finished, by candidate."""
        return [self._pending[c] for c in sorted(self._pending)]

    total_evaluations: int | None = None
    """Records the search will write when no candidate fails (the progress bar's total)."""

    total_epochs: int | None = None
    """Training epochs the search takes when no candidate fails."""

    decides_on_scores: bool = True
    """Whether a score steers what is proposed next (evolution, halving). Such a strategy cannot
    rank by a combination (``rank_by=[...]``), whose scores change as other candidates arrive;
    one that only proposes and waits (random search, a fixed list) can."""

    continues_candidates: bool = False
    """Whether a job may continue a candidate an earlier job trained (successive halving).
    Such a strategy cannot run on Ray Tune, where every trial starts its candidate afresh."""

    # ---------------------------------------------------------------- for subclasses
    def _reset(self) -> None:
        """Clear the subclass's state."""

    def _next(self) -> Job | None:
        raise NotImplementedError

    def _on_record(self, job: Job, record: Mapping[str, Any]) -> None:
        """Any record (intermediate ones included)."""

    def _finish(self, job: Job, record: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _new_candidate(self) -> int:
        c = self._next_candidate
        self._next_candidate += 1
        return c

    def _sample_unique(self, count: int, seen: set[str], tag: str) -> list[Any]:
        """``count`` architectures sampled uniformly, distinct by canonical form when possible."""
        assert self.space is not None
        archs = []
        for i in range(count):
            for attempt in range(100):
                arch = self.space.sample(python_rng(self.seed, tag, i, attempt))
                key = self.space.canonical(arch)
                if key not in seen:
                    break
            seen.add(key)
            archs.append(arch)
        return archs

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._config().items())
        return f"{type(self).__name__}({args})"

    def _config(self) -> dict[str, Any]:
        return {}


def _check_positive(name: str, value: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return value


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
        >>> job.candidate, job.epochs, job.measure, s.total_evaluations
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
        self.total_evaluations = len(job.measure)
        self.total_epochs = job.epochs

    def _next(self) -> Job | None:
        self.finished = True
        return self.job

    def _finish(self, job: Job, record: Mapping[str, Any]) -> None:
        """Nothing to decide: the only job is over."""

    def _config(self) -> dict[str, Any]:
        job = self.job
        return {"candidate": job.candidate, "epochs": job.epochs, "measure": list(job.measure)}


class RandomSearch(Plain):
    """Random search: ``num_candidates`` uniform samples, each trained ``epochs`` epochs.

    One record per candidate, after its last epoch. Samples have distinct canonical forms while
    the space allows it.

    Args:
        num_candidates: architectures to evaluate.
        epochs: training epochs per candidate.

    Example:
        >>> from lga_lightning.search.spaces import NB201Space
        >>> s = RandomSearch(num_candidates=3)
        >>> s.bind(NB201Space(), seed=0)
        >>> [s.propose().candidate for _ in range(3)], s.propose(), s.done
        ([0, 1, 2], None, False)
    """

    def __init__(self, num_candidates: int = 10, epochs: int = 1) -> None:
        super().__init__(None, num_candidates, epochs, (epochs,))

    def _config(self) -> dict[str, Any]:
        return {"num_candidates": self.num_candidates, "epochs": self.epochs}


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
