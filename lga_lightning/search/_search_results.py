"""The results of :class:`~lga_lightning.search.LGASearch`: the directory, the store, the end.

The search locks its ``results_dir``, opens (or resumes) the store there, reports each record,
and at the end (or when interrupted) writes the leaderboard, the summary and the plots through
its :class:`~lga_lightning.search.writer.ResultsWriter`.
"""

from __future__ import annotations

import math
import os
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lga_lightning.core.meter import NTKMeter
from lga_lightning.search import leaderboard as lb
from lga_lightning.search.dispatcher import JobDispatcher
from lga_lightning.search.progress import Progress, summary_line
from lga_lightning.search.ranking import Ranking
from lga_lightning.search.runner import StateFiles
from lga_lightning.search.spaces.base import SearchSpace
from lga_lightning.search.store import STORE_NAME, Record, ResultsStore, check_header
from lga_lightning.search.strategies import Strategy
from lga_lightning.search.writer import ResultsWriter, summary_text
from lga_lightning.training.sinks import Sink
from lga_lightning.utils.describe import describe
from lga_lightning.utils.lock import OutputLock


class ResultsMixin:
    """The results directory of :class:`~lga_lightning.search.LGASearch` and what goes in it."""

    space: SearchSpace
    strategy: Strategy
    seed: int
    ranking: Ranking
    metrics: tuple[str, ...]
    proxies: tuple[str, ...]
    meter: NTKMeter
    kernel_kwargs: dict[str, Any]
    probe_size: int
    probe_seed: int
    max_loss: float
    grad_clip: float | None
    num_classes: int | None
    build_kwargs: dict[str, Any]
    ground_truth: Any
    ground_truth_query: dict[str, Any]
    sinks: list[Sink]
    results_dir_arg: str | None
    results_dir: str | None
    keep_checkpoints: bool
    verbose: bool
    leaderboard: list[dict[str, Any]]
    summary: dict[str, Any]
    interrupted_by: str | None
    dispatcher: JobDispatcher
    _rank: int
    _world: int
    _progress: Progress | None
    _states: StateFiles
    _writer: ResultsWriter

    def _open_results(self, trainer: pl.Trainer) -> tuple[str, list[Record]]:
        """Lock ``results_dir`` and open (or resume) its store; the store's path and records."""
        self.results_dir = self.results_dir_arg or os.path.join(
            trainer.default_root_dir, "lga_search"
        )
        if self._rank == 0:
            self._lock = OutputLock(self.results_dir, option="`results_dir`")
            self._lock.acquire()  # one search per results directory
        self._states = StateFiles(os.path.join(self.results_dir, "states"))
        self._writer = ResultsWriter(
            self.results_dir,
            (*self.metrics, *self.proxies),
            self.ranking.name,
            self.ground_truth,
            self.ground_truth_query,
            sinks=self.sinks,
        )
        store_path = os.path.join(self.results_dir, STORE_NAME)
        header = self.header(getattr(trainer, "datamodule", None))
        stored_header, stored = ResultsStore(store_path).read() if self._rank == 0 else (None, [])
        stored_header, stored = trainer.strategy.broadcast((stored_header, stored), src=0)
        if stored_header is not None:
            check_header(stored_header, header, store_path)
        if self._rank == 0:
            self._writer.open(store_path, header)
        return store_path, stored

    def header(self, datamodule: Any = None) -> dict[str, Any]:
        """The store's first line: every setting that decides the records.

        A rerun with other settings must not mix its records with these (see ``check_header``).
        """
        return {
            "kind": "search",
            "version": 1,
            "space": describe(self.space),
            "strategy": describe(self.strategy),
            "seed": self.seed,
            "rank_by": self.ranking.name,
            "direction": self.ranking.direction,
            "metrics": list(self.metrics),
            "proxies": list(self.proxies),
            "probe_size": self.probe_size,
            "probe_seed": self.probe_seed,
            "kernel_kwargs": {k: describe(v) for k, v in sorted(self.kernel_kwargs.items())},
            "max_loss": self.max_loss if math.isfinite(self.max_loss) else None,
            # what candidates train on and how: a rerun with other values must not mix results
            "data": describe(datamodule),
            "num_classes": self.num_classes,
            "build_kwargs": {k: describe(v) for k, v in sorted(self.build_kwargs.items())},
            "optimizer": describe(self.optimizer_factory),
            "lr_scheduler": describe(self.scheduler_factory),
            "grad_clip": self.grad_clip,
        }

    def _report_progress(self, record: Record) -> None:
        if self._rank != 0:
            return
        if self._progress is not None:
            self._progress.update(record)
        if self.verbose:
            self._print(summary_line(record, self.ranking.name))

    def _print(self, text: str) -> None:
        if self._rank != 0:
            return
        if self._progress is not None:
            self._progress.write(text)
        else:
            print(text, flush=True)

    def _interrupted(self, exception: BaseException) -> None:
        """Write what the search has so far; remember why it stopped (for the recipe's exit)."""
        self.interrupted_by = "SIGINT" if isinstance(exception, KeyboardInterrupt) else "SIGTERM"
        if getattr(self, "dispatcher", None) is None:
            return
        self._print(
            f"the search was interrupted ({self.interrupted_by}) with {len(self.records)} "
            f"measurements stored in {self.results_dir}; the leaderboard so far is written there. "
            "Rerun the same command to continue."
        )
        self._finish()

    def _finish(self) -> None:
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        if self._rank != 0:
            self.summary = {"done": self.strategy.done}
            return
        self.ranking.rescore(self.records)  # a combination: against every candidate measured
        self.summary = self._writer.finish(
            self.records,
            self.trainer.loggers,
            done=self.strategy.done,
            num_threads=torch.get_num_threads(),
        )
        self.leaderboard = self._writer.leaderboard
        if self.strategy.done and not self.keep_checkpoints:
            self._states.clear()
        if self.verbose:
            self._print(lb.format_table(self.leaderboard, (self.ranking.name,)))
            self._print(summary_text(self.summary))

    def _release(self) -> None:
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()
            self._lock = None

    @property
    def records(self) -> list[Record]:
        """Every measurement record, in report order (stored ones replayed first)."""
        dispatcher = getattr(self, "dispatcher", None)
        return dispatcher.records if dispatcher is not None else []

    def _gather(self, records: list[Record]) -> list[Record]:
        """Every process's new records, on every process, ordered by candidate."""
        if self._world > 1 and dist.is_available() and dist.is_initialized():
            parts: list[Any] = [None] * self._world
            dist.all_gather_object(parts, records)
            records = [r for part in parts for r in part]
        return sorted(records, key=lambda r: (int(r["candidate"]), int(r["epoch"])))


class _OnException(Callback):
    """On Ctrl+C (SIGINT) or SIGTERM: write the partial leaderboard. On any failure: release.

    Lightning skips the module's ``teardown`` when a fit fails, hence the release here.
    """

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(pl_module, ResultsMixin):
            return
        try:
            if isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
                pl_module._interrupted(exception)
        finally:
            pl_module._release()
