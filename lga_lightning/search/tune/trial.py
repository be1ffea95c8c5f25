"""One candidate as one Ray Tune trial: build it, train it with a Lightning ``Trainer``, report.

A trial runs :meth:`LGASearch.for_job <lga_lightning.search.LGASearch.for_job>`: the search's own
training and measuring code restricted to one job, so a trial's records are the records the
in-process search writes for the same candidate. After every measurement the trial reports the
record to Tune with a checkpoint (the candidate's store and saved state); a trial that Tune
restarts (a retry after a failure, a paused HyperBand trial, ``Tuner.restore``) continues from
its last checkpoint and trains no epoch twice.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Checkpoint
from ray import tune

from lga_lightning.search import LGASearch
from lga_lightning.search.spaces.base import SearchSpace
from lga_lightning.search.store import STORE_NAME, Record, ResultsStore
from lga_lightning.search.strategies import Job

SCHEDULER_METRIC = "rung_score"
"""The result key Tune's schedulers compare: the record's score (the ranking signal, signed so
that higher is better) with failed candidates at :data:`FAILED_SCORE`."""

FAILED_SCORE = -1e300
"""A failed candidate's ``rung_score``: lower than any real score, yet finite (a ``-inf`` makes
ASHA's percentile cutoff ``nan``, which stops nobody)."""

TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": -1,
    "logger": False,
    "enable_checkpointing": True,  # the reporting callback is a Checkpoint (see TuneReport)
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
    "devices": 1,
    "use_distributed_sampler": False,
}
"""What every trial's ``Trainer`` is given; the user's trainer options may not override it."""


@dataclass
class TrialSettings:
    """What every trial needs besides its job (sent once to the cluster's object store).

    Attributes:
        search: the search whose settings every trial copies (its strategy is not used).
        datamodule: the data every candidate trains on.
        trainer: options of each trial's ``Trainer`` (``accelerator``, ``precision``,
            ``limit_train_batches``, ...), besides :data:`TRAINER_DEFAULTS`.
        threads: torch intra-op threads per trial (the trial's CPUs).
    """

    search: LGASearch
    datamodule: Any
    trainer: dict[str, Any] = field(default_factory=dict)
    threads: int = 1


def job_config(job: Job, space: SearchSpace) -> dict[str, Any]:
    """A job as a trial's config (plain values: Tune shows and stores it).

    Example:
        >>> from lga_lightning.search.spaces import NB201Space
        >>> arch = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
        >>> job_config(Job(4, arch, 3, (1, 3)), NB201Space())["measure_at"]
        [1, 3]
    """
    return {
        "candidate": job.candidate,
        "arch": space.encode(job.arch),
        "epochs": job.epochs,
        "measure_at": list(job.measure_at),
    }


def job_from_config(config: Mapping[str, Any], space: SearchSpace) -> Job:
    """The job a trial's config describes (inverse of :func:`job_config`)."""
    return Job(
        int(config["candidate"]),
        space.decode(str(config["arch"])),
        int(config["epochs"]),
        tuple(int(e) for e in config.get("measure_at", config.get("measure", ()))),
    )


def rung_score(record: Mapping[str, Any]) -> float:
    """The value Tune's scheduler compares for ``record`` (see :data:`SCHEDULER_METRIC`).

    Example:
        >>> rung_score({"score": 0.5}), rung_score({"score": float("-inf")})
        (0.5, -1e+300)
    """
    score = record.get("score")
    if score is None or not math.isfinite(float(score)):
        return FAILED_SCORE
    return float(score)


def result_of(record: Record) -> dict[str, Any]:
    """What a trial reports for one record: the whole record, plus the scheduler's two keys.

    ``epoch`` is the schedulers' time attribute, :data:`SCHEDULER_METRIC` their metric.
    """
    return {"epoch": int(record["epoch"]), SCHEDULER_METRIC: rung_score(record), "record": record}


def record_of(result: Mapping[str, Any]) -> Record | None:
    """The record inside a Tune result (as reported, or flattened to ``record/<key>``).

    Example:
        >>> record_of({"record": {"candidate": 1}}), record_of({"record/candidate": 1})
        ({'candidate': 1}, {'candidate': 1})
        >>> record_of({"done": True}) is None
        True
    """
    nested = result.get("record")
    if isinstance(nested, Mapping):
        return dict(nested)
    flat = {k[len("record/") :]: v for k, v in result.items() if k.startswith("record/")}
    return flat or None


class TuneReport(Checkpoint):
    """Report each new record of the search to Tune, with a checkpoint to continue from.

    A :class:`~lightning.pytorch.callbacks.Checkpoint` because Lightning runs checkpoint
    callbacks' ``on_train_epoch_end`` after the module's, where the search writes its records.

    Args:
        known: records already reported (those restored from the checkpoint).
    """

    def __init__(self, known: int = 0, started_at: float | None = None) -> None:
        self.known = known
        self.started_at = started_at
        self.startup_seconds: float | None = None
        self._told = False

    def on_train_batch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        """Note when training starts (the trial's start-up ends there)."""
        if self.startup_seconds is None and self.started_at is not None:
            self.startup_seconds = time.time() - self.started_at

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Report the records the search wrote in this epoch (the last with a checkpoint)."""
        assert isinstance(pl_module, LGASearch)
        new = pl_module.records[self.known :]
        self.known = len(pl_module.records)
        if not new:
            return
        pl_module.save_state()  # no-op when the job has ended
        results = [result_of(record) for record in new]
        if not self._told and self.startup_seconds is not None:
            results[0]["startup_seconds"] = self.startup_seconds
            self._told = True
        for result in results[:-1]:
            tune.report(result)
        with tempfile.TemporaryDirectory(prefix="lga-checkpoint-") as folder:
            _copy_results(str(pl_module.results_dir), folder)
            tune.report(results[-1], checkpoint=tune.Checkpoint.from_directory(folder))


def candidate_trial(config: dict[str, Any], settings: TrialSettings) -> None:
    """The Tune function trainable: train the job in ``config`` and report its records.

    Args:
        config: the job (:func:`job_config`), suggested by the search's searcher.
        settings: everything shared by the trials.
    """
    started_at = _start_time()
    torch.set_num_threads(max(1, int(settings.threads)))
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    template = settings.search
    job = job_from_config(config, template.space)
    # The candidate's files live outside the trial folder, which Tune uploads as it changes;
    # what must survive a restart travels in the checkpoint.
    with tempfile.TemporaryDirectory(prefix=f"lga-cand{job.candidate:05d}-") as folder:
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            checkpoint.to_directory(folder)
        search = template.for_job(job, folder)
        trainer = pl.Trainer(
            **TRAINER_DEFAULTS,
            **settings.trainer,
            default_root_dir=folder,
            callbacks=[TuneReport(known=_stored_records(folder), started_at=started_at)],
        )
        trainer.fit(search, datamodule=settings.datamodule)


_trials_in_this_process = 0


def _start_time() -> float:
    """When this trial started, for its start-up time.

    For a worker process's first trial: the process's start (a new worker pays for starting
    Python and importing torch and Lightning); for the next trials of a reused worker: now.
    """
    global _trials_in_this_process
    _trials_in_this_process += 1
    if _trials_in_this_process == 1:
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open("/proc/self/stat") as f:
                ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: start time
            with open("/proc/stat") as f:
                boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
            return boot + ticks / os.sysconf("SC_CLK_TCK")
    return time.time()


def _stored_records(folder: str) -> int:
    """Records in the candidate's store restored from a checkpoint (0 without one)."""
    return len(ResultsStore(os.path.join(folder, STORE_NAME)).read()[1])


def _copy_results(source: str, target: str) -> None:
    """The candidate's store and its latest saved state (not the lock or leaderboard files)."""
    shutil.copy2(os.path.join(source, STORE_NAME), os.path.join(target, STORE_NAME))
    states = os.path.join(source, "states")
    if os.path.isdir(states):
        shutil.copytree(states, os.path.join(target, "states"))


def trial_name(trial: Any) -> str:
    """A trial's name and folder: its candidate and Tune's id, e.g. ``cand00003_5f2c1_00003``."""
    return f"cand{int(trial.config['candidate']):05d}_{trial.trial_id}"
