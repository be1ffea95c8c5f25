"""Searchers that suggest a search's candidates to Ray Tune.

* :class:`StrategySearcher` turns a project strategy (:class:`~lga_lightning.search.RandomSearch`,
  :class:`~lga_lightning.search.Plain`, :class:`~lga_lightning.search.RegularizedEvolution`)
  into a Tune ``Searcher``: ``suggest`` is the strategy's ``propose()``, every trial result is
  passed to its ``report()``. A trial that a scheduler stops early ends its job with status
  ``stopped`` (its last score), one that fails for good with status ``failed``.
* :class:`IndexedSearcher` wraps any of Tune's own searchers (Optuna, HyperOpt, ...) whose
  config names an ``arch``: it numbers the suggestions, as the candidate index that every
  candidate's seeds derive from.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ray.tune.search import Searcher

from lga_lightning.search.spaces.base import SearchSpace
from lga_lightning.search.strategies import Job, Strategy
from lga_lightning.search.tune.state import (
    read_searcher_state,
    replay,
    strategy_record,
    write_searcher_state,
)
from lga_lightning.search.tune.trial import SCHEDULER_METRIC, job_config, record_of


class StrategySearcher(Searcher):
    """A project strategy as a Tune searcher.

    Args:
        strategy: the strategy (bound here to ``space`` and ``seed``).
        space: the search space.
        seed: the search seed.
        extra_measure_at: epochs to measure at besides the job's own (the scheduler's rungs);
            those beyond a job's ``epochs`` are ignored.

    Example:
        >>> from lga_lightning.search import RandomSearch
        >>> from lga_lightning.search.spaces import NB201Space
        >>> s = StrategySearcher(RandomSearch(2, epochs=3), NB201Space(), 0, extra_measure_at=[1])
        >>> s.suggest("t0")["measure_at"], s.suggest("t1")["candidate"], s.suggest("t2")
        ([1, 3], 1, 'FINISHED')
    """

    def __init__(
        self,
        strategy: Strategy,
        space: SearchSpace,
        seed: int,
        extra_measure_at: Sequence[int] = (),
    ) -> None:
        super().__init__(metric=SCHEDULER_METRIC, mode="max")
        self.strategy = strategy
        self.space = space
        self.extra_measure_at = tuple(sorted(set(int(e) for e in extra_measure_at)))
        self.seed = int(seed)
        strategy.bind(space, seed)
        self.jobs: dict[str, Job] = {}
        self.reported: set[tuple[int, int]] = set()
        self.events: list[list[Any]] = []
        """Every proposal and report, in order: the state :meth:`save` writes."""

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The strategy's next job as a trial config; ``None`` to wait; ``FINISHED`` at the end."""
        job = self.strategy.propose()
        if job is None:
            return Searcher.FINISHED if self.strategy.finished else None
        self.events.append(["propose", trial_id, job.candidate, self.space.encode(job.arch)])
        extra = [e for e in self.extra_measure_at if e <= job.epochs]
        measure = tuple(sorted(set(job.measure_at) | set(extra)))
        self.jobs[trial_id] = Job(job.candidate, job.arch, job.epochs, measure, job.keep_state)
        return job_config(self.jobs[trial_id], self.space)

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Report a record to the strategy (once, however often Tune delivers it)."""
        record = record_of(result)
        if record is not None and trial_id in self.jobs:
            self._report(record)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """End the trial's job: its last record, then ``stopped`` or ``failed`` if still open."""
        job = self.jobs.pop(trial_id, None)
        if job is None:
            return
        record = record_of(result or {})
        if record is not None and not error:
            self._report(record)
        if job.candidate not in {j.candidate for j in self.strategy.pending}:
            return
        last = record or {"candidate": job.candidate, "epoch": 0, "score": -math.inf}
        status = "failed" if error else "stopped"
        score = -math.inf if error else last.get("score", -math.inf)
        self._tell({**last, "status": status, "score": score})

    def _report(self, record: Mapping[str, Any]) -> None:
        key = (int(record["candidate"]), int(record["epoch"]))
        if key in self.reported:
            return
        self.reported.add(key)
        self._tell(record)

    def _tell(self, record: Mapping[str, Any]) -> None:
        record = strategy_record(record)
        self.strategy.report(record)
        self.events.append(["report", record])

    def save(self, checkpoint_path: str) -> None:
        """Save the seed and the proposals and reports, as JSON (for ``Tuner.restore``)."""
        write_searcher_state(checkpoint_path, self.seed, self.events)

    def restore(self, checkpoint_path: str) -> None:
        """Rebuild the strategy by replaying what :meth:`save` saved, checking each step.

        Raises:
            StateFileError: the file is not one :meth:`save` wrote for this search.
        """
        self.jobs, self.reported, self.events = self.check_state(checkpoint_path)

    def check_state(
        self, path: str
    ) -> tuple[dict[str, Job], set[tuple[int, int]], list[list[Any]]]:
        """Replay a state file on this searcher's strategy: open jobs, reported keys, events.

        The strategy is left in the replayed state.

        Raises:
            StateFileError: the file is not one :meth:`save` wrote for this search.
        """
        seed, events = read_searcher_state(path)
        proposed = replay(self.strategy, self.space, seed, events, path)
        reported = {(e[1]["candidate"], e[1]["epoch"]) for e in events if e[0] == "report"}
        open_candidates = {job.candidate for job in self.strategy.pending}
        jobs = {}
        for trial_id, job in proposed.items():
            if job.candidate in open_candidates:
                extra = [e for e in self.extra_measure_at if e <= job.epochs]
                measure = tuple(sorted(set(job.measure_at) | set(extra)))
                jobs[trial_id] = Job(job.candidate, job.arch, job.epochs, measure, job.keep_state)
        self.seed = seed
        return jobs, reported, events


class IndexedSearcher(Searcher):
    """One of Tune's searchers, its suggestions numbered as candidates.

    The wrapped searcher's config must hold ``arch`` (an architecture string of the space, e.g.
    from :func:`arch_param_space`); this adds ``candidate`` (0, 1, ... in suggestion order),
    ``epochs`` and ``measure_at``.

    Args:
        searcher: a ``ray.tune.search.Searcher``.
        epochs: training epochs of every candidate.
        measure_at: epochs to measure at (ascending, ending with ``epochs``).
        num_candidates: suggestions in all.
    """

    def __init__(
        self, searcher: Searcher, epochs: int, measure_at: Sequence[int], num_candidates: int
    ) -> None:
        super().__init__(metric=SCHEDULER_METRIC, mode="max")
        self.searcher = searcher
        self.epochs = int(epochs)
        self.measure_at = sorted(set(int(e) for e in measure_at))
        self.num_candidates = int(num_candidates)
        self.count = 0

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any
    ) -> bool:
        """Pass the metric, mode and parameter space on to the wrapped searcher."""
        super().set_search_properties(metric, mode, config, **spec)
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        """The wrapped searcher's next config, numbered."""
        if self.count >= self.num_candidates:
            return Searcher.FINISHED
        config = self.searcher.suggest(trial_id)
        if not isinstance(config, dict):
            return config
        if "arch" not in config:
            raise ValueError(
                f"the searcher's config {sorted(config)} has no 'arch'; give the searcher a "
                "parameter space with an architecture string (lga_lightning.search.tune."
                "arch_param_space)."
            )
        config = {**config, "candidate": self.count, "epochs": self.epochs}
        config["measure_at"] = list(self.measure_at)
        self.count += 1
        return config

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Forward to the wrapped searcher."""
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        """Forward to the wrapped searcher."""
        self.searcher.on_trial_complete(trial_id, result, error)

    def get_state(self) -> dict[str, Any]:
        """The numbering (Tune saves the wrapped searcher itself, through its ``save``)."""
        return {"count": self.count}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`get_state` returned."""
        self.count = int(state["count"])


def arch_param_space(space: SearchSpace) -> dict[str, Any]:
    """Tune's parameter space of every architecture of ``space``: ``{"arch": tune.choice(...)}``.

    Example:
        >>> from lga_lightning.search.spaces import NB201Space
        >>> len(arch_param_space(NB201Space())["arch"].categories)
        15625
    """
    from ray import tune

    return {"arch": tune.choice([space.encode(a) for a in space.enumerate()])}
