"""``TuneSearch``: an :class:`~lga_lightning.search.LGASearch` whose candidates are Ray Tune trials.

The search's settings (space, seed, ranking, probe, kernel, optimizer, ground truth) are those of
the given ``LGASearch``; each candidate is one trial (:mod:`lga_lightning.search.tune.trial`);
Tune's scheduler stops candidates early on the ranking signal. The outputs are the in-process
search's: ``results.jsonl``, ``leaderboard.csv``/``.json``, ``scatter.png`` and the loggers' runs,
in ``results_dir``; Tune's own experiment lives in ``results_dir/tune``, and rerunning after a crash
restores it. Details: ``docs/tune.md``.
"""

from __future__ import annotations

import copy
import os
import shutil
import statistics
from collections.abc import Sequence
from typing import Any

import ray
from lightning.pytorch.loggers import Logger
from ray import tune
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import Searcher

from lga_lightning._compat import renamed_keywords
from lga_lightning.search import LGASearch
from lga_lightning.search import leaderboard as lb
from lga_lightning.search.store import STORE_NAME, Record, ResultsStore, check_header
from lga_lightning.search.tune._checks import (
    check_rungs,
    check_strategy,
    check_trainer_options,
    check_trial_resources,
)
from lga_lightning.search.tune._schedulers import SchedulerName, make_scheduler, rung_epochs
from lga_lightning.search.tune.atomic_fs import atomic_local_filesystem
from lga_lightning.search.tune.records import SearchRecords
from lga_lightning.search.tune.searcher import IndexedSearcher, StrategySearcher, arch_param_space
from lga_lightning.search.tune.state import check_restorable
from lga_lightning.search.tune.trial import (
    SCHEDULER_METRIC,
    TrialSettings,
    candidate_trial,
    trial_name,
)
from lga_lightning.search.writer import ResultsWriter, check_ground_truth, summary_text
from lga_lightning.utils.lock import OutputLock

EXPERIMENT = "tune"
"""The name of Tune's experiment folder (inside ``results_dir`` unless ``storage`` says)."""


class TuneSearch:
    """Run a search's candidates as Ray Tune trials, early-stopped by the ranking signal.

    Args:
        search: the search to run (space, strategy, seed, ranking, probe, kernel, optimizer).
        datamodule: the data every candidate trains on.
        trial_scheduler: ``"asha"`` (asynchronous successive halving, default), ``"hyperband"``,
            ``"none"`` (every candidate trains its full budget), or a Tune ``TrialScheduler``.
        min_epochs: epochs before the first comparison (ASHA's grace period).
        eta: keep the top ``1/eta`` at each rung; rungs are ``eta`` times apart.
        searcher: one of Tune's searchers (Optuna, HyperOpt, ...) instead of the strategy; its
            parameter space is ``param_space`` (default: every architecture of the space).
        param_space: Tune's parameter space, with an ``arch`` (architecture string).
        num_candidates: trials a Tune searcher suggests (default: the strategy's).
        cpu: CPUs per trial (also its torch threads).
        gpu: GPUs per trial; a fraction (``0.25``) packs trials on one GPU.
        max_concurrent_trials: trials at once (default: as many as the cluster's resources
            allow when the search starts; set it for a cluster that grows).
        max_failures: retries of a failed trial (from its last checkpoint) before it ranks last.
        reuse_processes: a worker process trains trial after trial (Tune's ``reuse_actors``).
        address: the Ray cluster (``"auto"``: the running one; default: start a local Ray).
        num_cpus: CPUs of the local Ray (default: all).
        num_gpus: GPUs of the local Ray (default: all).
        trainer: each trial's ``Trainer`` options (``accelerator``, ``precision``, ...).
        loggers: Lightning loggers of the search (one run): every record, the leaderboard table.
        results_dir: where the store and the leaderboard go, on the driver (default: the
            search's ``results_dir``, else ``lga_runs/tune``).
        storage: where Tune keeps the experiment and the trials' checkpoints, seen by every
            node (default: ``results_dir``; a shared folder or ``s3://bucket/path`` on a cluster
            whose nodes do not share the results folder).
        verbose: print one line per record and the final leaderboard.

    Example:
        >>> from lga_lightning.data import DigitsDataModule
        >>> from lga_lightning.search import RandomSearch
        >>> from lga_lightning.search.spaces import NB201Space
        >>> tuner = TuneSearch(LGASearch(NB201Space(C=4, N=1), RandomSearch(8, epochs=4)),
        ...                    DigitsDataModule(), trial_scheduler="asha", min_epochs=1, eta=2)
        >>> tuner.rungs
        [1, 2, 4]
    """

    @renamed_keywords(scheduler="trial_scheduler")
    def __init__(
        self,
        search: LGASearch,
        datamodule: Any,
        trial_scheduler: SchedulerName | TrialScheduler = "asha",
        min_epochs: int = 1,
        eta: int = 3,
        searcher: Searcher | None = None,
        param_space: dict[str, Any] | None = None,
        num_candidates: int | None = None,
        cpu: float = 1.0,
        gpu: float = 0.0,
        max_concurrent_trials: int | None = None,
        max_failures: int = 1,
        reuse_processes: bool = True,
        address: str | None = None,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        trainer: dict[str, Any] | None = None,
        loggers: Sequence[Logger] = (),
        results_dir: str | None = None,
        storage: str | None = None,
        verbose: bool = True,
    ) -> None:
        self.search = search
        self.datamodule = datamodule
        self.strategy = check_strategy(search.strategy, searcher, trial_scheduler, search)
        self.max_epochs = int(getattr(self.strategy, "epochs", 1))
        named = isinstance(trial_scheduler, str)
        self.scheduler_name = trial_scheduler if named else type(trial_scheduler).__name__
        check_rungs(trial_scheduler, min_epochs, eta, self.max_epochs)
        self.min_epochs, self.eta = int(min_epochs), int(eta)
        name = trial_scheduler if named else "none"
        self.rungs = rung_epochs(name, self.min_epochs, self.max_epochs, self.eta)
        self.trial_scheduler = trial_scheduler
        self.searcher = searcher
        self.param_space = param_space
        self.num_candidates = num_candidates or getattr(self.strategy, "num_candidates", None)
        check_trial_resources(searcher, self.num_candidates, cpu, gpu)
        self.cpu, self.gpu = float(cpu), float(gpu)
        self.max_concurrent_trials = max_concurrent_trials
        self.max_failures = int(max_failures)
        self.reuse_processes = bool(reuse_processes)
        self.address = address
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self.trainer = check_trainer_options(dict(trainer or {}))
        self.loggers = list(loggers)
        self.results_dir = os.path.abspath(
            results_dir or search.results_dir_arg or os.path.join("lga_runs", "tune")
        )
        self.storage = storage or self.results_dir
        if "://" not in self.storage:
            self.storage = os.path.abspath(self.storage)
        self.experiment = f"{self.storage.rstrip('/')}/{EXPERIMENT}"
        """Tune's experiment: a folder, or a URI such as ``s3://bucket/path/tune``."""
        # a local folder gets every file whole (no killed copy leaves one cut short)
        self.filesystem = None if "://" in self.storage else atomic_local_filesystem()
        self.verbose = verbose
        self.leaderboard: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        self.records: list[Record] = []
        self.startup_seconds: list[float] = []
        """Seconds from each trial's start to its first training batch (see SearchRecords)."""
        self._callback: SearchRecords | None = None

    # ------------------------------------------------------------------ the run
    def fit(self) -> dict[str, Any]:
        """Run (or, after a crash, restore and finish) the search; write the leaderboard.

        Returns:
            The summary (chosen architecture, its true accuracy and regrets when known).
        """
        search = self.search
        search.check_data(self.datamodule)
        check_ground_truth(search.ground_truth, search.ground_truth_query)
        os.makedirs(self.results_dir, exist_ok=True)
        with OutputLock(self.results_dir, option="`results_dir`"):
            # a restored experiment keeps its own settings: refuse other ones now
            store = os.path.join(self.results_dir, STORE_NAME)
            stored, _ = ResultsStore(store).read()
            if stored is not None:
                check_header(stored, self.header(), store)
                if not self._can_restore():
                    raise ValueError(
                        f"{store} holds measurements but {self.experiment} holds no Tune "
                        "experiment to restore them with; give this search another "
                        "`results_dir` (or delete that one to start afresh)."
                    )
            if self._can_restore():
                strategy = self._searcher() if self.searcher is None else None
                check_restorable(self.experiment, strategy, self.results_dir)
            started = self._start_ray()
            try:
                results = self._tuner().fit()
            finally:
                if started:
                    ray.shutdown()  # the local Ray this search started
            self._report_errors(results)
            terminal = results.num_terminated + results.num_errors
            done = terminal == len(results) and len(results) >= int(self.num_candidates)
            return self._finish(done)

    def header(self) -> dict[str, Any]:
        """The store's header: the search's settings, the backend and the scheduler's rungs."""
        header = self.search.header(self.datamodule)
        header.update(
            backend="ray",
            trial_scheduler=self.scheduler_name,
            rungs=self.rungs,
            searcher=type(self.searcher).__name__ if self.searcher is not None else None,
        )
        return header

    def _start_ray(self) -> bool:
        """Connect to Ray, starting a local one unless it runs; whether this started one."""
        # an experiment snapshot follows every trial checkpoint: no warning about it per report
        os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
        if ray.is_initialized():
            return False
        if self.address:
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        else:
            ray.init(
                num_cpus=self.num_cpus,
                num_gpus=self.num_gpus,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        if self.verbose:
            resources = ray.cluster_resources()
            print(
                f"ray: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs; "
                f"each trial {self.cpu:g} CPU, {self.gpu:g} GPU",
                flush=True,
            )
        return True

    def _tuner(self) -> tune.Tuner:
        experiment = self.experiment
        # Trials need no ground truth (records do not depend on it); the NB201 table would add
        # 3 MB to what every trial fetches and copies.
        template = copy.copy(self.search)
        template.ground_truth = None
        settings = TrialSettings(
            template, self.datamodule, self.trainer, threads=max(1, int(self.cpu))
        )
        trainable = tune.with_resources(
            tune.with_parameters(candidate_trial, settings=settings),
            {"cpu": self.cpu, "gpu": self.gpu},
        )
        if self._can_restore():
            if self.verbose:
                print(f"restoring the Tune experiment in {experiment}", flush=True)
            tuner = tune.Tuner.restore(
                experiment,
                trainable,
                resume_unfinished=True,
                resume_errored=False,
                storage_filesystem=self.filesystem,
            )
            self._attach_loggers(tuner)
            return tuner
        scheduler = self._scheduler()
        records = SearchRecords(
            self._writer(),
            self.header(),
            self.search.ranking.name,
            (*self.search.metrics, *self.search.proxies),
            self.search.space.canonical,
            scheduler=scheduler,
            verbose=self.verbose,
        )
        records.loggers = self.loggers
        self._callback = records
        return tune.Tuner(
            trainable,
            param_space=self._param_space(),
            tune_config=tune.TuneConfig(
                metric=SCHEDULER_METRIC,
                mode="max",
                scheduler=scheduler,
                search_alg=self._searcher(),
                num_samples=int(self.num_candidates),
                max_concurrent_trials=self.max_concurrent_trials or self._slots(),
                trial_name_creator=trial_name,
                trial_dirname_creator=trial_name,
                reuse_actors=self.reuse_processes,
            ),
            run_config=tune.RunConfig(
                name=EXPERIMENT,
                storage_path=self.storage,
                storage_filesystem=self.filesystem,
                callbacks=[records],
                failure_config=tune.FailureConfig(max_failures=self.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                verbose=0,
            ),
        )

    def _can_restore(self) -> bool:
        return tune.Tuner.can_restore(self.experiment, storage_filesystem=self.filesystem)

    def _slots(self) -> int:
        """Trials the cluster's resources run at once.

        Without a limit Tune keeps one trial of a custom searcher pending at a time, so short
        trials would run one after the other.
        """
        resources = ray.cluster_resources()
        slots = int(resources.get("CPU", 1) // self.cpu)
        if self.gpu > 0:
            slots = min(slots, int(resources.get("GPU", 0) // self.gpu))
        return max(1, slots)

    def _scheduler(self) -> TrialScheduler:
        return make_scheduler(self.trial_scheduler, self.max_epochs, self.min_epochs, self.eta)

    def _searcher(self) -> Searcher:
        if self.searcher is None:
            return StrategySearcher(
                self.strategy, self.search.space, self.search.seed, extra_measure_at=self.rungs
            )
        measure_at = sorted({*self.rungs, self.max_epochs})
        return IndexedSearcher(self.searcher, self.max_epochs, measure_at, int(self.num_candidates))

    def _param_space(self) -> dict[str, Any] | None:
        if self.searcher is None:
            return None
        return self.param_space or arch_param_space(self.search.space)

    def _writer(self) -> ResultsWriter:
        s = self.search
        metrics = (*s.metrics, *s.proxies)
        return ResultsWriter(
            self.results_dir, metrics, s.ranking.name, s.ground_truth, s.ground_truth_query, s.sinks
        )

    def _attach_loggers(self, tuner: tune.Tuner) -> None:
        """Give the restored experiment's record callback this process's loggers."""
        run_config = getattr(getattr(tuner, "_local_tuner", None), "get_run_config", None)
        for callback in (run_config().callbacks or []) if run_config else []:
            if isinstance(callback, SearchRecords):
                callback.loggers = self.loggers
                callback.verbose = self.verbose
                self._callback = callback

    def _delete_trial_checkpoints(self) -> None:
        """The search is over: its trials' last checkpoints (weights, optimizer) go."""
        experiment = self.experiment
        if not os.path.isdir(experiment):
            return  # a URI: the storage's own retention applies
        for trial in os.listdir(experiment):
            folder = os.path.join(experiment, trial)
            if not os.path.isdir(folder):
                continue
            for name in os.listdir(folder):
                if name.startswith("checkpoint_"):
                    shutil.rmtree(os.path.join(folder, name), ignore_errors=True)

    def _report_errors(self, results: Any) -> None:
        errors = [r for r in results if r.error is not None]
        if errors and self.verbose:
            print(
                f"{len(errors)} trial(s) failed after {self.max_failures} retries; they rank "
                f"last. Their logs: {self.experiment}",
                flush=True,
            )

    def _finish(self, done: bool) -> dict[str, Any]:
        _, records = ResultsStore(os.path.join(self.results_dir, STORE_NAME)).read()
        self.records = records
        search = self.search
        search.ranking.rescore(records)
        writer = self._writer()
        self.summary = writer.finish(records, self.loggers, done=done)
        self.leaderboard = writer.leaderboard
        if done and not search.keep_checkpoints:
            self._delete_trial_checkpoints()
        if not done:
            print(
                f"the search was interrupted with {len(records)} measurements stored in "
                f"{self.results_dir}; the leaderboard so far is written there. Rerun the same "
                "command to continue.",
                flush=True,
            )
        if self._callback is not None:
            self.startup_seconds = list(self._callback.startup_seconds)
            self._callback.close()
        if self.verbose:
            print(lb.format_table(self.leaderboard, (search.ranking.name,)), flush=True)
            print(summary_text(self.summary), flush=True)
            if self.startup_seconds:
                print(
                    f"trial start-up (to the first batch; a new worker from its process start): "
                    f"median "
                    f"{statistics.median(self.startup_seconds):.2f} s over "
                    f"{len(self.startup_seconds)} trial starts",
                    flush=True,
                )
        return self.summary
