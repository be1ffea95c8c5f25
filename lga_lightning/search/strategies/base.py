"""The strategy interface: :class:`Job`, :class:`Strategy` and what strategies share.

A strategy decides which candidate to train next, for how many epochs, and when to stop. It
talks to :class:`~lga_lightning.search.LGASearch` through three members:

* :meth:`Strategy.propose` returns the next :class:`Job` (train candidate ``c`` with
  architecture ``arch`` up to ``epochs`` epochs, recording measurements at ``measure_at``), or
  ``None`` when it must first see the results of the jobs already proposed;
* :meth:`Strategy.report` receives every measurement record (``candidate``, ``epoch``,
  ``status``, ``score``: higher is better, ``-inf`` for failed candidates); a record whose
  status is in :data:`ENDING_STATUSES` ends its job before its last epoch;
* :attr:`Strategy.done` says the search is over.

Strategies are deterministic functions of the search seed and of the records reported, and the
order of reports *within* a batch of proposals does not matter. So a strategy's state never needs
saving: replaying the results store rebuilds it (that is how a search resumes), and the
candidates are the same however many processes train them.

A new strategy is one subclass implementing :meth:`Strategy._next` and :meth:`Strategy._finish`;
its class attributes :attr:`Strategy.decides_on_scores` and
:attr:`Strategy.continues_candidates` say where it can run, so no list needs to name it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lga_lightning._compat import renamed_keywords
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
        measure_at: epochs (ascending, ending with ``epochs``) after which a record is written.
        keep_state: save the candidate's weights and optimizer after its last epoch, because a
            later job may continue it.
    """

    candidate: int
    arch: Any
    epochs: int
    measure_at: tuple[int, ...]
    keep_state: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"a job trains at least one epoch, got epochs={self.epochs}.")
        if (
            not self.measure_at
            or self.measure_at[-1] != self.epochs
            or list(self.measure_at) != sorted(set(self.measure_at))
        ):
            raise ValueError(
                f"`measure_at` must be ascending epochs ending with epochs={self.epochs}, "
                f"got {self.measure_at}."
            )


Job.__init__ = renamed_keywords("measure")(Job.__init__)  # type: ignore[method-assign]


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
