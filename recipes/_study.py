"""The study's measurement: every architecture built per seed, trained, measured, stored.

The study's per-architecture work: each network is trained and measured by
:class:`recipes._train_and_measure.TrainAndMeasure` (a plain Lightning ``Trainer`` with one
:class:`~lga_lightning.NTKMetrics` callback per kernel setting, measuring at epoch 0 and after
each scheduled epoch); the seeds' values are averaged and the record handed to the study's sinks
(``raw.jsonl`` first, then the logger's row and the user's ``sinks``).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lga_lightning.core.init import initialize
from lga_lightning.core.meter import NTKMeter
from lga_lightning.core.probe import draw_probe
from lga_lightning.core.proxies.size import params
from lga_lightning.training.sinks import JSONLinesSink, Sink, write_all
from lga_lightning.utils.threads import Threads, choose_threads, threads_line, torch_threads
from recipes._baselines import count_flops, count_parameters
from recipes._probe_file import read_probe_file
from recipes._probes import (
    PROXY_SETTING,
    check_probe_classes,
    probe_name,
    setting_name,
    undefined_lga,
)
from recipes._study_logging import cell_sink
from recipes._train_and_measure import TrainAndMeasure

__all__ = ["StudyMeasurement", "TrainAndMeasure", "study_threads"]


class StudyMeasurement:
    """The measuring half of :class:`recipes.correlate.CorrelationStudy` (its attributes).

    For every architecture not yet in ``raw.jsonl``: build it per model seed, train it with
    :class:`TrainAndMeasure`, average the seeds, append the record.
    """

    prog = "lga-correlate"

    def _measure_missing(
        self, archs: Sequence[str], records: dict[str, dict[str, Any]], raw_path: Path
    ) -> None:
        todo = [a for a in archs if a not in records]
        if not todo:
            return
        if self.logger is not None:
            self.logger.log_hyperparams(self.fingerprint())
        status = "failed"
        try:
            with torch_threads(self.num_threads or None):
                self._measure_todo(archs, todo, records, raw_path)
            status = "success"
        finally:
            if self.logger is not None:
                self.logger.finalize(status)

    def _measure_todo(
        self,
        archs: Sequence[str],
        todo: Sequence[str],
        records: dict[str, dict[str, Any]],
        raw_path: Path,
    ) -> None:
        print(threads_line(self.prog, self.num_threads, self.threads_reason), flush=True)
        self.data.setup("fit")
        self._check_validation_source()
        probes: dict[Any, tuple[Tensor, Tensor]] = {
            (size, split): self._probe(size, split)
            for size in self.probe_sizes
            for split in self.probe_splits
        }
        if self.proxies:
            probes[PROXY_SETTING] = draw_probe(self.data, self.proxy_batch, seed=self.data_seed)[0]
        for key, (_, y) in probes.items():
            check_probe_classes(y, probe_name(key))
        # the store first: a cell is done once it is in raw.jsonl
        sinks: list[Sink] = [JSONLinesSink(raw_path)]
        if self.logger is not None:
            sinks.append(cell_sink(self.logger, archs))
        sinks.extend(self.sinks)
        done = len(archs) - len(todo)
        for arch in todo:
            start = time.perf_counter()
            record = self.measure(arch, probes)
            record["seconds"] = time.perf_counter() - start
            write_all(sinks, record)
            records[arch] = record
            done += 1
            lga = _first_value(record, "lga")
            print(
                f"[{done}/{len(archs)}] {arch}  num_params={record['num_params']}  "
                f"lga@{self.measure_at[-1]}={lga}  {record['status']}  {record['seconds']:.1f}s",
                flush=True,
            )

    def _check_validation_source(self) -> None:
        """Say once, before measuring, that there is no validation accuracy to record."""
        if not self.data.val_dataloader():
            message = (
                f"{self.prog}: the datamodule has no validation data (val_size: 0), so "
                "`val_acc` is not recorded"
            )
            if self.own_epochs:
                raise ValueError(
                    f"{message}, but `own_epochs` uses it as the ground truth; set "
                    "`--data.val_size` above 0 or give a `table`/`benchmark`."
                )
            warnings.warn(message + "; set `--data.val_size` above 0 to record it.", stacklevel=2)

    def _probe(self, size: int, split: str = "train") -> tuple[Tensor, Tensor]:
        """The probe of ``size`` images: class-balanced, from the training or the test split.

        The test probe is a seeded class-balanced draw of test images
        (:meth:`~lga_lightning.data.base.ImageDataModule.test_probe`), not "the first ``size``
        test images", which on a class-sorted file all have one class.
        """
        if self.probe_indices is not None or self.probe_file is not None:
            return self._explicit_probe(size)
        if split == "train":
            return draw_probe(self.data, size, seed=self.data_seed)[0]
        test = self.data.test_set
        if test is None or len(test) < size:
            raise ValueError(
                f"`probe_split: test` needs {size} test images, the datamodule has "
                f"{0 if test is None else len(test)}; lower `probe_sizes` or use the train split."
            )
        return self.data.test_probe(size, seed=self.data_seed)

    def _check_probe_file(self) -> tuple[Tensor, Tensor]:
        """Read and check ``probe_file`` against the datamodule (before anything is written)."""
        if self.probe_file is None:
            return torch.empty(0), torch.empty(0, dtype=torch.long)
        return read_probe_file(self.probe_file, self.data.input_shape, self.data.num_classes)

    def _explicit_probe(self, size: int) -> tuple[Tensor, Tensor]:
        """The first ``size`` samples of ``probe_indices`` (training split) or ``probe_file``."""
        if self.probe_file is not None:
            x, y = self._check_probe_file()
        else:
            train = self.data.train_set
            bad = [i for i in self.probe_indices if not 0 <= i < len(train)]
            if bad:
                raise ValueError(
                    f"`probe_indices` {bad[:5]} lie outside the training split's "
                    f"{len(train)} samples."
                )
            items = [train[i] for i in self.probe_indices]
            x = torch.stack([torch.as_tensor(item[0]) for item in items])
            y = torch.as_tensor([int(item[1]) for item in items], dtype=torch.long)
        if len(y) < size:
            raise ValueError(
                f"the explicit probe holds {len(y)} samples, fewer than the probe size {size}; "
                "give more samples or lower `probe_sizes`."
            )
        return x[:size].float(), y[:size]

    def meters(self, probes: dict[Any, tuple[Tensor, Tensor]]) -> dict[str, NTKMeter]:
        """One :class:`~lga_lightning.core.meter.NTKMeter` per setting, its probe set.

        ``probes`` maps ``(probe size, split)`` to its batch; ``probes[PROXY_SETTING]``, when
        present, is the batch of the zero-cost proxies' meter.
        """
        meters = {}
        if PROXY_SETTING in probes:
            meters[PROXY_SETTING] = NTKMeter((), proxies=self.proxies)
            meters[PROXY_SETTING].set_probes([probes[PROXY_SETTING]])
        for key, probe in probes.items():
            if key == PROXY_SETTING:
                continue
            size, split = key
            for mode in self.bn_modes:
                meter = NTKMeter(
                    self.metrics,
                    kernel_kwargs={
                        "bn_mode": mode,
                        "param_selection": self.param_selection,
                        "implementation": self.implementation,
                        "chunk_size": self.chunk_size,
                    },
                )
                meter.set_probes([probe])
                meters[setting_name(size, mode, split)] = meter
        return meters

    def measure(self, arch: str, probes: dict[Any, tuple[Tensor, Tensor]]) -> dict[str, Any]:
        """Train one architecture with the recipe and measure it at every scheduled epoch.

        With several ``model_seeds``, once per seed; the values are then averaged over the seeds.

        Returns:
            The record stored in ``raw.jsonl``: ``arch``, ``num_params`` (every parameter),
            the ``params`` and ``flops`` signals, ``status`` and
            ``epochs``, mapping each epoch (as a string) to ``{"ntk": {setting: {metric:
            value}}, "train_loss": ..., "val_acc": ...}``. With several seeds these are the
            means over the seeds, ``status`` is ``diverged`` when any seed diverged, and
            ``per_seed`` maps each seed (as a string) to its own ``{"status", "epochs"}``.
        """
        runs = [self._measure_seed(arch, probes, seed) for seed in self.model_seeds]
        if len(runs) == 1:
            return runs[0]
        record = dict(runs[0])
        statuses = {r["status"] for r in runs}
        record["status"] = next((s for s in ("diverged", "undefined") if s in statuses), "ok")
        record["epochs"] = _mean_over_seeds([r["epochs"] for r in runs])
        record["signal_seconds"] = {
            name: sum(r["signal_seconds"].get(name, 0.0) for r in runs)
            for name in runs[0]["signal_seconds"]
        }
        record["per_seed"] = {
            str(seed): {"status": r["status"], "epochs": r["epochs"]}
            for seed, r in zip(self.model_seeds, runs, strict=True)
        }
        return record

    def _measure_seed(
        self, arch: str, probes: dict[Any, tuple[Tensor, Tensor]], model_seed: int
    ) -> dict[str, Any]:
        """One architecture built with ``model_seed``, trained and measured."""
        data = self.data
        torch.manual_seed(model_seed)
        model = self.space.build(
            self.space.decode(arch), num_classes=data.num_classes, in_channels=data.input_shape[0]
        )
        initialize(model, self.init)
        record: dict[str, Any] = {
            "kind": "arch",
            "arch": arch,
            "num_params": count_parameters(model),
            "params": params(model),  # the signal
            "flops": count_flops(model, data.input_shape),
            "status": "ok",
        }
        trainer_kwargs: dict[str, Any] = {
            "accelerator": self.accelerator,
            "precision": self.precision,
        }
        if self.limit_train_batches is not None:
            trainer_kwargs["limit_train_batches"] = self.limit_train_batches
        run = TrainAndMeasure(
            self.meters(probes),
            measure_at=self.measure_at,
            extra_epochs=[self.own_epochs] if self.own_epochs else [],
            optimizer=self.optimizer,
            lr_scheduler=self.lr_scheduler,
            trainer_kwargs=trainer_kwargs,
            val_source=self.val_source,
        )
        entries = run.fit(model, data, num_classes=data.num_classes, seed=self.data_seed)
        losses = [e["train_loss"] for epoch, e in entries.items() if epoch > 0]
        if any(not math.isfinite(loss) for loss in losses):
            record["status"] = "diverged"
        elif undefined_lga(entries):
            record["status"] = "undefined"
        record["epochs"] = {str(epoch): entry for epoch, entry in sorted(entries.items())}
        record["signal_seconds"] = dict(run.seconds)
        return record


def study_threads(setting: Threads, accelerator: str) -> tuple[int | None, str]:
    """The study's thread count (one process) and why; ``"auto"`` off a CPU keeps torch's.

    Example:
        >>> study_threads(2, "cpu")
        (2, 'num_threads=2')
    """
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if setting == "auto" and not on_cpu:
        return None, "auto: not on a CPU, torch's default"
    return choose_threads(setting, processes=1)


def _mean_over_seeds(runs: Sequence[Any]) -> Any:
    """The element-wise mean of equally nested dicts of numbers (one per seed).

    Example:
        >>> _mean_over_seeds([{"0": {"lga": 0.25}}, {"0": {"lga": 0.75}}])
        {'0': {'lga': 0.5}}
    """
    first = runs[0]
    if isinstance(first, dict):
        return {key: _mean_over_seeds([run[key] for run in runs]) for key in first}
    with np.errstate(invalid="ignore"):  # inf and -inf average to nan
        return float(np.mean(np.asarray(runs, dtype=np.float64)))


def _first_value(record: dict[str, Any], metric: str) -> str:
    measured = [e for e, entry in record["epochs"].items() if "ntk" in entry]
    last = record["epochs"][max(measured, key=int)] if measured else {}
    for values in last.get("ntk", {}).values():
        if metric in values:
            return f"{values[metric]:.4f}"
    return "n/a"
