"""``LGASearch``: architecture search that trains candidates briefly and ranks them by LGA.

Every candidate trains a few epochs and is ranked by Label-Gradient Alignment (or any recorded
quantity); the search is run by a plain ``Trainer.fit``.

How a search runs, how it uses several devices and how it resumes: ``docs/search.md``. The
pieces: :mod:`~lga_lightning.search.scheduler` (which process trains what),
:mod:`~lga_lightning.search.runner` (the candidate in training and its state files),
:mod:`~lga_lightning.search.writer` (the store, the leaderboard, the loggers), and the shared
measuring core :class:`~lga_lightning.core.meter.NTKMeter`.
"""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import Tensor, nn
from torch.optim import Optimizer

from lga_lightning.core.functional import SCALAR_METRICS, NTKMetricWarning
from lga_lightning.core.meter import NTKMeter
from lga_lightning.core.probe import DEFAULT_PROBE_SEED, DEFAULT_PROBE_SIZE, default_batch_unpack
from lga_lightning.search import leaderboard as lb
from lga_lightning.search.progress import Progress, summary_line
from lga_lightning.search.ranking import RECORD_QUANTITIES, CombineBy, Mode, Ranking, Signal
from lga_lightning.search.runner import CandidateRun, StateFiles, build_candidate, is_sharded
from lga_lightning.search.scheduler import Scheduler
from lga_lightning.search.seeding import derive_seed, seed_global
from lga_lightning.search.spaces.base import SearchSpace
from lga_lightning.search.store import STORE_NAME, Record, ResultsStore, check_header
from lga_lightning.search.strategies import Job, RandomSearch, SingleJob, Strategy
from lga_lightning.search.writer import ResultsWriter, check_ground_truth, summary_text
from lga_lightning.training._distributed import close_spawned_gloo_group
from lga_lightning.training.module import paper_sgd
from lga_lightning.training.session import MeasurementSession
from lga_lightning.utils.describe import describe
from lga_lightning.utils.lock import OutputLock
from lga_lightning.utils.threads import Threads, choose_threads, threads_line

OptimizerFactory = Callable[[Iterable[nn.Parameter]], Optimizer]
SchedulerFactory = Callable[[Optimizer], Any]

DEFAULT_METRICS = SCALAR_METRICS  # the registry's kernel metrics (lga_lightning.core.signals)


class LGASearch(pl.LightningModule):
    """Search a space of architectures, training each candidate briefly and ranking it by LGA.

    Args:
        space: the :class:`~lga_lightning.search.spaces.SearchSpace`; default NAS-Bench-201 (C=16,
        N=5). strategy: a :class:`~lga_lightning.search.strategies.Strategy`; default
            ``RandomSearch(num_candidates=10, epochs=1)``.
        seed: the search seed: architectures, initialisations and data order derive from it.
        rank_by: the ranking signal: ``"lga"`` (default), another NTK metric in ``metrics``,
            ``"train_loss"``, ``"val_acc"``, ``"params"``, a proxy in ``proxies``, a list of
            several combined by rank (e.g. ``["lga", "params"]``; with ``RandomSearch`` or
            ``Plain``, whose choices do not depend on scores), or a callable ``record -> float``.
        mode: ``"max"`` or ``"min"``; default from :data:`lga_lightning.core.signals.SIGNALS`.
        combine_by: how a list ``rank_by`` combines ranks: ``"log_ranks"`` (AZ-NAS) or
            ``"ranks"``.
        metrics: NTK metrics recorded for every measurement (names from
            :data:`lga_lightning.core.functional.SCALAR_METRICS`).
        proxies: zero-cost proxies recorded beside them, on the same probe batch (names from
            :data:`lga_lightning.core.proxies.PROXIES`); ``rank_by`` can name any of them.
        probe_size: samples in the probe batch (the paper: 256). The kernel costs ``probe_size``
            backward passes through the whole probe batch with train-mode BatchNorm.
        probe_seed: seed of the probe choice (``datamodule.probe_batch(size, seed)``).
        kernel_kwargs: options of :func:`lga_lightning.empirical_ntk` (``output``, ``bn_mode``,
            ``implementation``, ...); the paper's conventions by default.
        optimizer: ``params -> Optimizer``, called for each candidate; default
            :func:`~lga_lightning.training.module.paper_sgd`.
        scheduler: ``optimizer -> LR scheduler``, stepped after each candidate epoch; default
            none (constant learning rate, as in the paper).
        build_kwargs: extra arguments of ``space.build`` (``in_channels`` is taken from the
            datamodule's ``input_shape`` when ``build`` accepts it).
        num_classes: classifier outputs; default ``datamodule.num_classes``.
        results_dir: where the store, leaderboard and plots go; default
            ``<trainer.default_root_dir>/lga_search`` (stable across reruns, unlike
            ``trainer.log_dir``, so that rerunning resumes).
        ground_truth: a :class:`~lga_lightning.search.ground_truth.GroundTruth` giving true
        accuracies. ground_truth_dataset: dataset queried in the ground truth.
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

    def __init__(
        self,
        space: SearchSpace | None = None,
        strategy: Strategy | None = None,
        seed: int = 0,
        rank_by: Signal = "lga",
        mode: Mode | None = None,
        combine_by: CombineBy = "log_ranks",
        metrics: Sequence[str] = DEFAULT_METRICS,
        proxies: Sequence[str] = (),
        probe_size: int = DEFAULT_PROBE_SIZE,
        probe_seed: int = DEFAULT_PROBE_SEED,
        kernel_kwargs: dict[str, Any] | None = None,
        optimizer: OptimizerFactory | None = None,
        scheduler: SchedulerFactory | None = None,
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
    ) -> None:
        super().__init__()
        if space is None:
            from lga_lightning.search.spaces import NB201Space

            space = NB201Space()
        unknown = [m for m in metrics if m not in SCALAR_METRICS]
        if unknown:
            raise ValueError(f"unknown NTK metrics {unknown}; choose from {list(SCALAR_METRICS)}.")
        if probe_size < 2:
            raise ValueError(f"`probe_size` must be at least 2, got {probe_size}.")
        if meter is not None:
            given = [
                name
                for name, value, default in (
                    ("metrics", tuple(metrics), DEFAULT_METRICS),
                    ("proxies", tuple(proxies), ()),
                    ("kernel_kwargs", kernel_kwargs, None),
                )
                if value != default
            ]
            if not isinstance(meter, NTKMeter) or given:
                raise ValueError(
                    "LGASearch(meter=...) takes the metrics, proxies and kernel options from an "
                    f"NTKMeter; got a {type(meter).__name__} with {given} given too: pass them to "
                    "NTKMeter(...) instead."
                )
            metrics, proxies, kernel_kwargs = meter.metrics, meter.proxies, meter.kernel_kwargs
        self.space = space
        self.strategy = strategy if strategy is not None else RandomSearch()
        self.seed = int(seed)
        self.metrics = tuple(metrics)
        self.ranking = Ranking(
            rank_by,
            mode,
            available=(*self.metrics, *proxies, *RECORD_QUANTITIES),
            combine_by=combine_by,
        )
        if self.ranking.combined and self.strategy.decides_on_scores:
            raise ValueError(
                f"rank_by={list(self.ranking.combined)} ranks candidates against each other, so "
                f"a candidate's score changes as others are measured; "
                f"{type(self.strategy).__name__} decides on scores as they arrive. Use it with "
                "RandomSearch or Plain, or rank by one signal."
            )
        self.probe_size = probe_size
        self.probe_seed = probe_seed
        self.meter = meter or NTKMeter(self.metrics, kernel_kwargs=kernel_kwargs, proxies=proxies)
        self.proxies = self.meter.proxies
        self.kernel_kwargs = self.meter.kernel_kwargs
        self.optimizer_factory = optimizer or paper_sgd
        self.scheduler_factory = scheduler
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

    def on_fit_start(self) -> None:
        """Open (or resume) the store, replay it into the strategy, start the first jobs."""
        trainer = self.trainer
        self._world, self._rank = trainer.world_size, trainer.global_rank
        self._apply_threads(trainer)
        self.check_data(getattr(trainer, "datamodule", None))
        check_ground_truth(self.ground_truth, self.ground_truth_query)
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
        )
        store_path = os.path.join(self.results_dir, STORE_NAME)
        header = self.header(getattr(trainer, "datamodule", None))
        stored_header, stored = ResultsStore(store_path).read() if self._rank == 0 else (None, [])
        stored_header, stored = trainer.strategy.broadcast((stored_header, stored), src=0)
        if stored_header is not None:
            check_header(stored_header, header, store_path)
        if self._rank == 0:
            self._writer.open(store_path, header)
        self.scheduler = Scheduler(self.strategy, self.space, self.seed, self._world, stored)
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
        if self._world > 1 and is_sharded(self.trainer.train_dataloader):
            raise RuntimeError(
                "LGASearch spreads candidates over processes and each trains on the whole "
                "training set, but the Trainer shards the data across processes. Pass "
                "`Trainer(use_distributed_sampler=False)`."
            )

    def on_train_epoch_start(self) -> None:
        """Seed the coming epoch (the first epoch was seeded in ``on_fit_start``)."""
        if self.trainer.current_epoch > 0:
            self._begin_epoch()

    def training_step(self, batch: Any, batch_idx: int) -> None:
        """One optimizer step of this process's candidate (skipped when idle or diverged)."""
        run = self._run
        if run is None or run.diverged:
            return None
        x, y = default_batch_unpack(batch)
        loss = F.cross_entropy(run.model(x), y)
        value = float(loss.detach())
        if not math.isfinite(value) or value > self.max_loss:
            run.diverged, run.last_loss = True, value
            return None
        optimizer = self.optimizers()
        optimizer.zero_grad()
        self.manual_backward(loss)
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), self.grad_clip)
        optimizer.step()
        n = int(y.shape[0])
        run.loss_sum = run.loss_sum + loss.detach() * n
        run.count += n
        run.curve.append(loss.detach())
        run.steps += 1
        run.last_loss = value
        return None

    def on_validation_epoch_start(self) -> None:
        """Put the candidate in eval mode and reset its accuracy counters."""
        run = self._run
        if run is not None and not self.trainer.sanity_checking:
            run.val_correct, run.val_total, run.val_ran = 0, 0, True
        if run is not None:
            run.model.eval()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Count the candidate's correct predictions on the validation data."""
        run = self._run
        if run is None or run.diverged or self.trainer.sanity_checking:
            return None
        x, y = default_batch_unpack(batch)
        run.val_correct = run.val_correct + (run.model(x).argmax(dim=1) == y).sum()
        run.val_total += int(y.numel())
        return None

    def on_validation_epoch_end(self) -> None:
        """Back to train mode."""
        if self._run is not None:
            self._run.model.train()

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
            if run.scheduler is not None and not finished:
                run.scheduler.step()
            stored = self.scheduler.is_stored(run.job.candidate, run.epoch)
            if run.diverged or (run.epoch in run.job.measure and not stored):
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
            self.scheduler.add(record)
            self.ranking.rescore(self.scheduler.records)
            self._report_progress(self.scheduler.records[-1])
            if self._rank == 0 and self.trainer.loggers:
                self._writer.log_record(
                    self.trainer.loggers, record, curve, step0, self.scheduler.records
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

    def _release(self) -> None:
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()
            self._lock = None

    def configure_callbacks(self) -> list[Callback]:
        """The search's own callback: a partial leaderboard when the fit is interrupted."""
        return [_OnException()]

    # ------------------------------------------------------------------ scheduling
    @property
    def records(self) -> list[Record]:
        """Every measurement record, in report order (stored ones replayed first)."""
        scheduler = getattr(self, "scheduler", None)
        return scheduler.records if scheduler is not None else []

    def save_state(self) -> bool:
        """Save the state of the candidate this process trains, to continue it after a restart.

        Returns:
            Whether a state was saved (not when no candidate is training or it diverged).
        """
        run = self._run
        if run is None or run.diverged:
            return False
        self._states.save(run)
        return True

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
            (SingleJob(candidate=3, epochs=1, measure=[1]), 8, False)
        """
        clone = copy.deepcopy(self)
        clone.strategy = SingleJob(job)
        clone.results_dir_arg = results_dir
        clone.progress = clone.verbose = False
        clone.num_threads = None  # the job's runner sets the threads
        return clone

    def _schedule(self) -> None:
        """Fill free processes with the strategy's next jobs; stop the Trainer when done."""
        assigned = self.scheduler.fill()
        if self._rank in assigned:
            self._start(assigned[self._rank])
        if self.scheduler.finished:
            self.trainer.should_stop = True

    def _report_progress(self, record: Record) -> None:
        if self._rank != 0:
            return
        if self._progress is not None:
            self._progress.update(record)
        if self.verbose:
            self._print(summary_line(record, self.ranking.name))

    # ------------------------------------------------------------------ one candidate
    def _start(self, job: Job) -> None:
        torch.manual_seed(derive_seed(self.seed, "init", job.candidate))
        model = self._build(job.arch).to(self.device)
        model = self.trainer.precision_plugin.convert_module(model)
        model.train()
        optimizer = self.optimizer_factory(model.parameters())
        scheduler = self.scheduler_factory(optimizer) if self.scheduler_factory else None
        run = CandidateRun(job, model, optimizer, scheduler)
        missing = [e for e in job.measure if not self.scheduler.is_stored(job.candidate, e)]
        self._states.restore(run, before=min(missing, default=job.epochs), device=self.device)
        self._run = run
        self.trainer.strategy.optimizers = [optimizer]
        if run.epoch == 0 and 0 in job.measure and not self.scheduler.is_stored(job.candidate, 0):
            run.epoch_start = time.perf_counter()
            run.initial = self._measure(run)  # the network at initialisation, before any step

    def _begin_epoch(self) -> None:
        run = self._run
        if run is None:
            return
        run.loss_sum, run.count, run.curve = 0.0, 0, []
        run.val_correct, run.val_total, run.val_ran = 0, 0, False
        run.epoch_start = time.perf_counter()
        seed_global(derive_seed(self.seed, "data", run.job.candidate, run.epoch + 1))

    def _build(self, arch: Any) -> nn.Module:
        dm = getattr(self.trainer, "datamodule", None)
        return build_candidate(self.space, arch, self.build_kwargs, self.num_classes, dm)

    def _measure(self, run: CandidateRun) -> Record:
        start = time.perf_counter()
        values = dict.fromkeys((*self.metrics, *self.proxies), math.nan)
        if not run.diverged:
            self._ensure_probe()
            measured = self._session.measure(run.model, run.epoch)
            values = {name: measured[name] for name in values}
            for message in self.meter.pop_warnings():
                warnings.warn(
                    f"LGASearch (first seen at candidate {run.job.candidate}, epoch {run.epoch}): "
                    f"{message}",
                    NTKMetricWarning,
                    stacklevel=2,
                )
        ntk_seconds = time.perf_counter() - start
        train_loss = float(run.loss_sum / run.count) if run.count else math.nan
        if run.diverged:
            train_loss = run.last_loss
        val_acc = math.nan
        if run.val_ran and run.val_total:
            val_acc = float(run.val_correct) / run.val_total
        record: Record = {
            "kind": "measurement",
            "candidate": run.job.candidate,
            "arch": self.space.encode(run.job.arch),
            "canonical": self.space.canonical(run.job.arch),
            "epoch": run.epoch,
            **values,
            "train_loss": train_loss,
            "val_acc": val_acc,
            "params": sum(p.numel() for p in run.model.parameters()),
        }
        signal = self.ranking.value(record)
        status = "diverged" if run.diverged else ("ok" if math.isfinite(signal) else "undefined")
        record.update(status=status, signal=signal)
        record["score"] = self.ranking.score(record)
        now = time.perf_counter()
        run.since_record += now - run.epoch_start
        record.update(
            seconds=run.since_record, ntk_seconds=ntk_seconds, process=self._rank, steps=run.steps
        )
        run.since_record = 0.0
        record["_curve"] = [float(v) for v in run.curve]
        record["_step0"] = run.steps - len(run.curve)
        return record

    def _ensure_probe(self) -> None:
        """Draw the probe once per search, from the datamodule or the training dataset."""
        if self.meter.probes:
            return
        source = getattr(self.trainer, "datamodule", None)
        if not callable(getattr(source, "probe_batch", None)):
            source = self.trainer.train_dataloader.dataset
        self._session.draw_probes(source, self.probe_size, self.probe_seed)

    # ------------------------------------------------------------------ collectives, output
    def _gather(self, records: list[Record]) -> list[Record]:
        """Every process's new records, on every process, ordered by candidate."""
        if self._world > 1 and dist.is_available() and dist.is_initialized():
            parts: list[Any] = [None] * self._world
            dist.all_gather_object(parts, records)
            records = [r for part in parts for r in part]
        return sorted(records, key=lambda r: (int(r["candidate"]), int(r["epoch"])))

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
            "mode": self.ranking.mode,
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
            "scheduler": describe(self.scheduler_factory),
            "grad_clip": self.grad_clip,
        }

    def _interrupted(self, exception: BaseException) -> None:
        """Write what the search has so far; remember why it stopped (for the recipe's exit)."""
        self.interrupted_by = "SIGINT" if isinstance(exception, KeyboardInterrupt) else "SIGTERM"
        if getattr(self, "scheduler", None) is None:
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

    def check_data(self, datamodule: Any) -> None:
        """Refuse data the search cannot train on, before anything is built or trained.

        ``num_classes`` must match the data's labels: fewer crash the loss, more are never seen.

        Raises:
            ValueError: naming both numbers and the fix.
        """
        found = getattr(datamodule, "num_classes", None)
        if self.num_classes is not None and isinstance(found, int) and found != self.num_classes:
            raise ValueError(
                f"LGASearch(num_classes={self.num_classes}) but the data has {found} classes; "
                f"set num_classes to {found} or leave it unset to take the data's."
            )

    def _warn_epoch_limit(self) -> None:
        need = self.strategy.total_epochs
        limit = self.trainer.max_epochs
        if need is None or limit is None or limit < 0 or self._rank != 0:
            return
        if limit < math.ceil(need / self._world):
            warnings.warn(
                f"the search needs about {need} candidate epochs but the Trainer stops after "
                f"max_epochs={limit}; pass `max_epochs=-1` (the search stops the Trainer itself).",
                UserWarning,
                stacklevel=2,
            )

    def _print(self, text: str) -> None:
        if self._rank != 0:
            return
        if self._progress is not None:
            self._progress.write(text)
        else:
            print(text, flush=True)


class _OnException(Callback):
    """On Ctrl+C (SIGINT) or SIGTERM: write the partial leaderboard. On any failure: release.

    Lightning skips the module's ``teardown`` when a fit fails, hence the release here.
    """

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(pl_module, LGASearch):
            return
        try:
            if isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
                pl_module._interrupted(exception)
        finally:
            pl_module._release()
