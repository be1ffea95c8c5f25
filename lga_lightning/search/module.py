"""``LGASearch``: architecture search that trains candidates briefly and ranks them by LGA.

Every candidate trains a few epochs and is ranked by Label-Gradient Alignment (or any recorded
quantity); the search is run by a plain ``Trainer.fit``.

How a search runs, how it uses several devices and how it resumes: ``docs/search.md``. The
pieces: :mod:`~lga_lightning.search.dispatcher` (which process trains what),
:mod:`~lga_lightning.search.runner` (the candidate in training and its state files),
:mod:`~lga_lightning.search.writer` (the store, the leaderboard, the loggers), and the shared
measuring core :class:`~lga_lightning.core.meter.NTKMeter`. The class itself is assembled from
its arguments and hooks (here), one candidate's training and measuring
(:mod:`~lga_lightning.search._search_candidate`), the results directory and the end of a search
(:mod:`~lga_lightning.search._search_results`) and its checks
(:mod:`~lga_lightning.search._search_checks`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn
from torch.optim import Optimizer

from lga_lightning._compat import renamed_keywords
from lga_lightning.core.meter import NTKMeter
from lga_lightning.core.probe import DEFAULT_PROBE_SEED, DEFAULT_PROBE_SIZE
from lga_lightning.search._search_candidate import CandidateMixin
from lga_lightning.search._search_checks import (
    DEFAULT_METRICS,
    ChecksMixin,
    check_combination,
    check_measurement,
)
from lga_lightning.search._search_results import ResultsMixin, _OnException
from lga_lightning.search.dispatcher import JobDispatcher
from lga_lightning.search.progress import Progress
from lga_lightning.search.ranking import (
    RECORD_QUANTITIES,
    CombineBy,
    Direction,
    Ranking,
    Signal,
)
from lga_lightning.search.runner import CandidateRun
from lga_lightning.search.spaces.base import SearchSpace
from lga_lightning.search.store import Record
from lga_lightning.search.strategies import Job, RandomSearch, SingleJob, Strategy
from lga_lightning.search.writer import check_ground_truth
from lga_lightning.training._callback_checks import check_strategy
from lga_lightning.training._distributed import close_spawned_gloo_group
from lga_lightning.training.module import paper_sgd
from lga_lightning.training.session import MeasurementSession
from lga_lightning.training.sinks import Sink, check_sinks
from lga_lightning.utils.threads import Threads, choose_threads, threads_line

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], Any]


class LGASearch(CandidateMixin, ResultsMixin, ChecksMixin, pl.LightningModule):
    """Search a space of architectures, training each candidate briefly and ranking it by LGA.

    Args:
        space: the :class:`~lga_lightning.search.spaces.SearchSpace`; default NAS-Bench-201
            (C=16, N=5).
        strategy: a :class:`~lga_lightning.search.strategies.Strategy`; default
            ``RandomSearch(num_candidates=10, epochs=1)``.
        seed: the search seed: architectures, initialisations and data order derive from it.
        rank_by: the ranking signal: ``"lga"`` (default), another NTK metric in ``metrics``,
            ``"train_loss"``, ``"val_acc"``, ``"params"``, a proxy in ``proxies``, a list of
            several combined by rank (e.g. ``["lga", "params"]``; with ``RandomSearch`` or
            ``Plain``, whose choices do not depend on scores), or a callable ``record -> float``.
        direction: ``"max"`` or ``"min"``; default from :data:`lga_lightning.core.signals.SIGNALS`.
        combine_by: how a list ``rank_by`` combines ranks: ``"log_ranks"`` (AZ-NAS) or
            ``"ranks"``.
        metrics: NTK metrics recorded for every measurement: names of the ``kernel`` rows of
            :data:`lga_lightning.core.signals.SIGNALS` (default
            :data:`lga_lightning.core.functional.SCALAR_METRICS`; registered ones too).
        proxies: zero-cost proxies recorded beside them, on the same probe batch (names from
            :data:`lga_lightning.core.proxies.PROXIES`); ``rank_by`` can name any of them.
        probe_size: samples in the probe batch (the paper: 256). The kernel costs ``probe_size``
            backward passes through the whole probe batch with train-mode BatchNorm.
        probe_seed: seed of the probe choice (``datamodule.probe_batch(size, seed)``).
        kernel_kwargs: options of :func:`lga_lightning.empirical_ntk` (``output``, ``bn_mode``,
            ``implementation``, ...); the paper's conventions by default.
        optimizer: ``params -> Optimizer``, called for each candidate; default
            :func:`~lga_lightning.training.module.paper_sgd`.
        lr_scheduler: ``optimizer -> LR scheduler``, stepped after each candidate epoch; default
            none (constant learning rate, as in the paper).
        build_kwargs: extra arguments of ``space.build`` (``in_channels`` is taken from the
            datamodule's ``input_shape`` when ``build`` accepts it).
        num_classes: classifier outputs; default ``datamodule.num_classes``.
        results_dir: where the store, leaderboard and plots go; default
            ``<trainer.default_root_dir>/lga_search`` (stable across reruns, unlike
            ``trainer.log_dir``, so that rerunning resumes).
        ground_truth: a :class:`~lga_lightning.search.ground_truth.GroundTruth` giving true
            accuracies.
        ground_truth_dataset: dataset queried in the ground truth.
        ground_truth_split: split queried (``None``: the benchmark's test accuracy).
        ground_truth_hp: training schedule queried (``"200"`` or ``"12"`` for NAS-Bench-201).
        max_loss: a training loss above this (or nan/inf) marks the candidate ``diverged``.
        grad_clip: clip the candidates' gradient norm to this value (none by default).
        keep_checkpoints: keep candidates' saved states (used to continue successive-halving
            survivors) after the search; deleted by default.
        progress: show a progress bar over candidates (rank 0).
        verbose: print one summary line per measurement and the final leaderboard (rank 0).
        meter: the measuring core to use, e.g. ``NTKMeter(["lga"], kernel_kwargs=...)``; then
            ``metrics``, ``proxies`` and ``kernel_kwargs`` come from it (giving them too is
            refused). The meter's evolution options are not used: each candidate is measured
            on its own.
        num_threads: torch's intra-op CPU threads during the fit, per process: ``"auto"`` (on a
            CPU, one thread below 4 cores per process, else cores // processes; see
            :mod:`lga_lightning.utils.threads`), a count, or ``None`` (leave torch's setting). The
            choice is printed first and stored in the summary; the previous count is restored
            after the fit.
        sinks: more outputs of every stored record, on rank 0 (objects with ``write(record)``;
            :mod:`lga_lightning.training.sinks`); a ``TuneSearch`` writes its search's sinks.

    Attributes after ``fit`` (in the fitting process; with ``ddp_spawn`` read the files with
    :func:`lga_lightning.search.load_results`):
        records: every measurement record, in report order.
        leaderboard: one row per candidate, best first (see
            :mod:`lga_lightning.search.leaderboard`).
        summary: the chosen architecture, its true accuracy and regrets when a ground truth is set.
        results_dir: the run directory.

    Files in ``results_dir``: ``results.jsonl`` (the store), ``leaderboard.csv``,
    ``leaderboard.json`` (``{"summary": ..., "leaderboard": [...]}``), ``scatter.png``, and
    ``states/`` (candidate states while the search runs).

    Logged (rank 0, every logger): ``candidate/<cccc>/<quantity>`` for each measurement (the NTK
    metrics, ``train_loss``, ``val_acc``, ``score``; step = the candidate's epoch),
    ``candidate/<cccc>/train_loss_step`` (step = the candidate's optimizer step),
    ``search/evaluations`` and ``search/best_score`` (step = evaluations so far) and, at the end,
    ``search/best_true_acc``, ``search/regret_evaluated``, ``search/regret_space`` when known.
    W&B also gets ``search/leaderboard`` (a ``wandb.Table``) and ``search/scatter`` (an image).

    Example:
        >>> import lightning.pytorch as pl
        >>> from lga_lightning.data import DigitsDataModule
        >>> from lga_lightning.search import LGASearch, RandomSearch
        >>> from lga_lightning.search.spaces import NB201Space
        >>> import tempfile
        >>> search = LGASearch(NB201Space(C=4, N=1), RandomSearch(num_candidates=2),
        ...                    probe_size=10, progress=False, verbose=False)
        >>> trainer = pl.Trainer(max_epochs=-1, logger=False, enable_checkpointing=False,
        ...                      enable_progress_bar=False, enable_model_summary=False,
        ...                      limit_train_batches=2, default_root_dir=tempfile.mkdtemp())
        >>> trainer.fit(search, datamodule=DigitsDataModule(channels=3, batch_size=64))
        >>> len(search.leaderboard), search.leaderboard[0]["rank"]
        (2, 1)
    """

    @renamed_keywords("mode", scheduler="lr_scheduler")
    def __init__(
        self,
        space: SearchSpace | None = None,
        strategy: Strategy | None = None,
        seed: int = 0,
        rank_by: Signal = "lga",
        direction: Direction | None = None,
        combine_by: CombineBy = "log_ranks",
        metrics: Sequence[str] = DEFAULT_METRICS,
        proxies: Sequence[str] = (),
        probe_size: int = DEFAULT_PROBE_SIZE,
        probe_seed: int = DEFAULT_PROBE_SEED,
        kernel_kwargs: dict[str, Any] | None = None,
        optimizer: OptimizerFactory | None = None,
        lr_scheduler: SchedulerFactory | None = None,
        build_kwargs: dict[str, Any] | None = None,
        num_classes: int | None = None,
        results_dir: str | None = None,
        ground_truth: Any | None = None,
        ground_truth_dataset: str = "cifar10",
        ground_truth_split: str | None = None,
        ground_truth_hp: str = "200",
        max_loss: float = math.inf,
        grad_clip: float | None = None,
        keep_checkpoints: bool = False,
        progress: bool = True,
        verbose: bool = True,
        meter: NTKMeter | None = None,
        num_threads: Threads = "auto",
        sinks: Sequence[Sink] = (),
    ) -> None:
        super().__init__()
        if space is None:
            from lga_lightning.search.spaces import NB201Space

            space = NB201Space()
        metrics, proxies, kernel_kwargs = check_measurement(
            metrics, proxies, kernel_kwargs, probe_size, meter
        )
        self.space = space
        self.strategy = strategy if strategy is not None else RandomSearch()
        self.seed = int(seed)
        self.metrics = tuple(metrics)
        self.ranking = Ranking(
            rank_by,
            direction,
            available=(*self.metrics, *proxies, *RECORD_QUANTITIES),
            combine_by=combine_by,
        )
        check_combination(self.ranking, self.strategy)
        self.probe_size = probe_size
        self.probe_seed = probe_seed
        self.meter = meter or NTKMeter(self.metrics, kernel_kwargs=kernel_kwargs, proxies=proxies)
        self.proxies = self.meter.proxies
        self.kernel_kwargs = self.meter.kernel_kwargs
        self.optimizer_factory = optimizer or paper_sgd
        self.scheduler_factory = lr_scheduler
        self.build_kwargs = dict(build_kwargs or {})
        self.num_classes = num_classes
        self.results_dir_arg = results_dir
        self.ground_truth = ground_truth
        self.ground_truth_query = {
            "dataset": ground_truth_dataset,
            "split": ground_truth_split,
            "hp": ground_truth_hp,
        }
        self.max_loss = max_loss
        self.grad_clip = grad_clip
        self.keep_checkpoints = keep_checkpoints
        self.progress = progress
        self.verbose = verbose
        choose_threads(num_threads)  # a bad value fails here, not after the Trainer started
        self.num_threads = num_threads
        self.sinks = check_sinks(sinks, "LGASearch")
        self._threads_before: int | None = None
        self.automatic_optimization = False
        # DDP needs one trainable parameter to wrap; candidates are trained outside it.
        self._ddp_anchor = nn.Parameter(torch.zeros(()))
        self.leaderboard: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        self.results_dir: str | None = None
        self._run: CandidateRun | None = None
        self.interrupted_by: str | None = None
        self._progress: Progress | None = None

    # ------------------------------------------------------------------ Lightning hooks
    def configure_optimizers(self) -> Optimizer:
        """A placeholder; each candidate gets a fresh optimizer from ``optimizer``."""
        return torch.optim.SGD([self._ddp_anchor], lr=0.0)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of the candidate this process is training."""
        if self._run is None:
            raise RuntimeError("no candidate is being trained on this process right now.")
        return self._run.model(x)

    def setup(self, stage: str) -> None:
        """Refuse, before any model is wrapped, a strategy that shards the parameters."""
        check_strategy(self.trainer, surface="LGASearch")

    def on_fit_start(self) -> None:
        """Open (or resume) the store, replay it into the strategy, start the first jobs."""
        trainer = self.trainer
        self._world, self._rank = trainer.world_size, trainer.global_rank
        self._apply_threads(trainer)
        self.check_data(getattr(trainer, "datamodule", None))
        check_ground_truth(self.ground_truth, self.ground_truth_query)
        store_path, stored = self._open_results(trainer)
        self.dispatcher = JobDispatcher(self.strategy, self.space, self.seed, self._world, stored)
        self.leaderboard, self.summary = [], {}
        self.meter.set_probes([])
        # Every process trains its own candidate, so kernels are never sharded across ranks.
        self._session = MeasurementSession(
            self.meter, trainer, shard=False, error_context="LGASearch: "
        )
        self._run = None
        self._warn_epoch_limit()
        self._schedule()
        if self._rank == 0 and self.progress:
            self._progress = Progress(self.strategy.total_evaluations, initial=len(self.records))
        if stored and self._rank == 0 and self.verbose:
            self._print(f"resuming {store_path}: {len(stored)} stored measurements")
        self._begin_epoch()

    def on_train_start(self) -> None:
        """Refuse data sharding: every process must see the whole training set."""
        self.check_unsharded(self.trainer.train_dataloader)

    def on_train_epoch_start(self) -> None:
        """Seed the coming epoch (the first epoch was seeded in ``on_fit_start``)."""
        if self.trainer.current_epoch > 0:
            self._begin_epoch()

    def on_train_epoch_end(self) -> None:
        """Measure, record, gather, let the strategy decide, and start the next jobs."""
        new: list[Record] = []
        run = self._run
        if run is not None:
            if run.initial is not None:
                new.append(run.initial)
                run.initial = None
            run.epoch += 1
            finished = run.diverged or run.epoch >= run.job.epochs
            if run.lr_scheduler is not None and not finished:
                run.lr_scheduler.step()
            stored = self.dispatcher.is_stored(run.job.candidate, run.epoch)
            if run.diverged or (run.epoch in run.job.measure_at and not stored):
                record = self._measure(run)
                if finished and run.job.keep_state and not run.diverged:
                    self._states.save(run)
                new.append(record)
            if finished:
                self._run = None
                self.trainer.strategy.optimizers = [self.configure_optimizers()]
        for record in self._gather(new):
            curve = record.pop("_curve", [])
            step0 = record.pop("_step0", 0)
            if self._rank == 0:
                self._writer.append(record)
            self.dispatcher.add(record)
            self.ranking.rescore(self.dispatcher.records)
            self._report_progress(self.dispatcher.records[-1])
            if self._rank == 0 and self.trainer.loggers:
                self._writer.log_record(
                    self.trainer.loggers, record, curve, step0, self.dispatcher.records
                )
        self._schedule()

    def on_fit_end(self) -> None:
        """Write the leaderboard, the summary and the plots; close the store."""
        if not self.strategy.done:
            self._print(
                f"the Trainer stopped before the search finished ({len(self.records)} "
                "measurements stored); rerun the same command with a larger `max_epochs` "
                "(or -1) to continue."
            )
        self._finish()

    def teardown(self, stage: str) -> None:
        """Release the results directory; close a ``ddp_spawn`` gloo group in step.

        See :func:`lga_lightning.training._distributed.close_spawned_gloo_group`.
        """
        self._release()
        if self._threads_before is not None:
            torch.set_num_threads(self._threads_before)
            self._threads_before = None
        close_spawned_gloo_group(self._trainer)

    def _apply_threads(self, trainer: Any) -> None:
        """Set ``num_threads`` for the fit and say so (rank 0)."""
        setting = self.num_threads
        on_cpu = isinstance(trainer.accelerator, CPUAccelerator)
        if setting == "auto" and not on_cpu:
            threads, reason = None, "auto: not on a CPU, torch's default"
        else:
            threads, reason = choose_threads(setting, processes=trainer.num_devices)
        if threads is not None and threads != torch.get_num_threads():
            self._threads_before = torch.get_num_threads()
            torch.set_num_threads(threads)
        if self._rank == 0 and self.verbose:
            self._print(threads_line("lga-search", threads, reason))

    def configure_callbacks(self) -> list[Callback]:
        """The search's own callback: a partial leaderboard when the fit is interrupted."""
        return [_OnException()]

    # ------------------------------------------------------------------ scheduling
    def for_job(self, job: Job, results_dir: str) -> LGASearch:
        """A copy of this search that trains only ``job`` and writes to ``results_dir``.

        Everything that decides the numbers (seed, ranking, probe, kernel, optimizer) is kept, so
        the job's records equal those this search writes for the same candidate; nothing is
        printed. One Ray Tune trial runs such a copy (:mod:`lga_lightning.search.tune`).

        Example:
            >>> from lga_lightning.search.spaces import NB201Space
            >>> search = LGASearch(NB201Space(C=4, N=1), probe_size=8)
            >>> arch = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
            >>> one = search.for_job(Job(3, arch, 1, (1,)), "/tmp/cand3")
            >>> one.strategy, one.probe_size, one.verbose
            (SingleJob(candidate=3, epochs=1, measure_at=[1]), 8, False)
        """
        clone = copy.deepcopy(self)
        clone.strategy = SingleJob(job)
        clone.results_dir_arg = results_dir
        clone.progress = clone.verbose = False
        clone.num_threads = None  # the job's runner sets the threads
        clone.sinks = []  # the driver's writer hands the job's records to the sinks
        return clone

    def _schedule(self) -> None:
        """Fill free processes with the strategy's next jobs; stop the Trainer when done."""
        assigned = self.dispatcher.fill()
        if self._rank in assigned:
            self._start(assigned[self._rank])
        if self.dispatcher.finished:
            self.trainer.should_stop = True
