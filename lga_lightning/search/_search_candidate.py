"""One candidate of :class:`~lga_lightning.search.LGASearch`: built, trained, validated, measured.

The candidate in training is a :class:`~lga_lightning.search.runner.CandidateRun`; this mixin
starts it (seeded by the search seed and its index), takes its optimizer steps and validation
counts, and turns it into a measurement record.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lga_lightning.core.functional import NTKMetricWarning
from lga_lightning.core.meter import NTKMeter
from lga_lightning.core.probe import default_batch_unpack
from lga_lightning.core.proxies.size import params
from lga_lightning.search.ranking import Ranking
from lga_lightning.search.runner import CandidateRun, StateFiles, build_candidate
from lga_lightning.search.seeding import derive_seed, seed_global
from lga_lightning.search.spaces.base import SearchSpace
from lga_lightning.search.store import Record
from lga_lightning.search.strategies import Job
from lga_lightning.training.session import MeasurementSession


class CandidateMixin:
    """The candidate this process trains: its start, its steps, its validation, its records.

    Part of :class:`~lga_lightning.search.LGASearch` (a ``LightningModule``): the training and
    validation hooks here are the search's own.
    """

    space: SearchSpace
    seed: int
    metrics: tuple[str, ...]
    proxies: tuple[str, ...]
    meter: NTKMeter
    ranking: Ranking
    probe_size: int
    probe_seed: int
    max_loss: float
    grad_clip: float | None
    build_kwargs: dict[str, Any]
    num_classes: int | None
    _run: CandidateRun | None
    _rank: int
    _states: StateFiles
    _session: MeasurementSession

    def _start(self, job: Job) -> None:
        torch.manual_seed(derive_seed(self.seed, "init", job.candidate))
        model = self._build(job.arch).to(self.device)
        model = self.trainer.precision_plugin.convert_module(model)
        model.train()
        optimizer = self.optimizer_factory(model.parameters())
        lr_scheduler = self.scheduler_factory(optimizer) if self.scheduler_factory else None
        run = CandidateRun(job, model, optimizer, lr_scheduler)
        missing = [e for e in job.measure_at if not self.dispatcher.is_stored(job.candidate, e)]
        self._states.restore(run, before=min(missing, default=job.epochs), device=self.device)
        self._run = run
        self.trainer.strategy.optimizers = [optimizer]
        if (
            run.epoch == 0
            and 0 in job.measure_at
            and not self.dispatcher.is_stored(job.candidate, 0)
        ):
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
            "params": params(run.model),  # the signal; a proxy's value when measured as one
            **values,
            "train_loss": train_loss,
            "val_acc": val_acc,
            "num_params": sum(p.numel() for p in run.model.parameters()),
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
