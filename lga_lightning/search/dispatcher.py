"""Which process trains which candidate next: the search's bookkeeping, in plain Python.

The :class:`JobDispatcher` fills free process slots with the strategy's jobs, replays records
already in the results store (so a rerun continues where the last run stopped and trains nothing
twice), and passes every record to the strategy. It knows nothing of Lightning or torch, so it is
tested on its own; :class:`~lga_lightning.search.LGASearch` drives it from its hooks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lga_lightning.search.spaces.base import SearchSpace
from lga_lightning.search.strategies import Job, Strategy

Record = dict[str, Any]


class JobDispatcher:
    """Assign jobs to processes; replay stored records; report every record to the strategy.

    Args:
        strategy: the search strategy (bound to ``space`` and ``seed`` here).
        space: the search space.
        seed: the search seed.
        processes: number of processes training candidates at once.
        stored: records already in the results store (replayed instead of trained again).

    Example:
        >>> from lga_lightning.search import Plain
        >>> from lga_lightning.search.spaces import NB201Space
        >>> s = JobDispatcher(Plain(num_candidates=3), NB201Space(C=4, N=1), seed=0, processes=2)
        >>> sorted(s.fill())  # processes that got a job
        [0, 1]
        >>> s.add({"candidate": 0, "epoch": 1, "status": "ok", "score": 0.5, "process": 0})
        >>> [job.candidate for job in s.fill().values()]  # process 0 is free again
        [2]
    """

    def __init__(
        self,
        strategy: Strategy,
        space: SearchSpace,
        seed: int,
        processes: int = 1,
        stored: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.strategy = strategy
        self.strategy.bind(space, seed)
        self.stored: dict[tuple[int, int], Record] = {
            (int(r["candidate"]), int(r["epoch"])): dict(r) for r in stored
        }
        self.records: list[Record] = []
        self.slots: list[Job | None] = [None] * processes
        self._reported: set[tuple[int, int]] = set()

    @property
    def finished(self) -> bool:
        """Whether the strategy is done and no process trains anything."""
        return self.strategy.done and all(job is None for job in self.slots)

    def is_stored(self, candidate: int, epoch: int) -> bool:
        """Whether the store already holds this candidate's record at ``epoch``."""
        return (candidate, epoch) in self.stored

    def fill(self) -> dict[int, Job]:
        """Give every free process the strategy's next job; ``{process: job}`` of new ones.

        Jobs whose records are all stored are replayed (reported again) instead of assigned.

        Raises:
            RuntimeError: the strategy proposed nothing while nothing is training (a strategy
                bug: the search could never finish).
        """
        assigned: dict[int, Job] = {}
        while True:
            free = [p for p, job in enumerate(self.slots) if job is None]
            if not free:
                break
            job = self.strategy.propose()
            if job is None:
                break
            if self._replay(job):
                continue
            self.slots[free[0]] = assigned[free[0]] = job
        if not self.strategy.done and all(job is None for job in self.slots):
            raise RuntimeError(
                f"{self.strategy!r} proposed nothing while no candidate is training; a "
                "strategy must propose a job whenever it has no pending one."
            )
        return assigned

    def add(self, record: Mapping[str, Any]) -> None:
        """Keep a new record, free its process's slot if its job ended, report it.

        The record comes from process ``record["process"]``.
        """
        record = dict(record)
        candidate, epoch = int(record["candidate"]), int(record["epoch"])
        self.stored[(candidate, epoch)] = record
        process = int(record["process"])
        job = self.slots[process]
        ends = record.get("status") == "diverged" or (job is not None and epoch >= job.epochs)
        if job is not None and job.candidate == candidate and ends:
            self.slots[process] = None
        self._accept(record)

    def _replay(self, job: Job) -> bool:
        """Report the stored records of ``job``; whether they complete it."""
        stored = sorted(
            (e, r)
            for (c, e), r in self.stored.items()
            if c == job.candidate and e <= job.epochs and (c, e) not in self._reported
        )
        for epoch, record in stored:
            self._accept(record)
            if record.get("status") == "diverged" or epoch >= job.epochs:
                return True
        return False

    def _accept(self, record: Record) -> None:
        self._reported.add((int(record["candidate"]), int(record["epoch"])))
        self.records.append(record)
        self.strategy.report(record)
