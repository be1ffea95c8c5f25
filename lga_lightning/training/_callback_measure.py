"""One measurement of :class:`~lga_lightning.NTKMetrics`: the kernel, its row, its outputs."""

from __future__ import annotations

import os
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn
from torch import Tensor, nn

from lga_lightning.core import evolution
from lga_lightning.core.functional import NTKMetricWarning
from lga_lightning.core.meter import NTKMeter
from lga_lightning.training import _history
from lga_lightning.training._callback_logging import log_measurement, plot_name
from lga_lightning.training._callback_schedule import whole
from lga_lightning.training.session import MeasurementSession
from lga_lightning.training.sinks import CSVSink, Sink

KERNEL_HINT = (
    "NTKMetrics passes kernel options through `kernel_kwargs`, e.g. "
    "`NTKMetrics(kernel_kwargs={'output_fn': lambda out: out['logits']})`, and differentiates "
    "another submodule of the LightningModule with `submodule='<attribute name>'`."
)


class MeasureMixin:
    """Measure, record and log one row of :class:`~lga_lightning.NTKMetrics`.

    A measurement appends its row to ``history`` (and its spectrum to ``spectra``) and logs it;
    the session hands the row to the sinks on rank 0 (the history CSV, then the user's); the
    plot of the evolution is written at the end.
    """

    meter: NTKMeter
    kernel_dtype: Any
    prefix: str
    submodule: str | None
    verbose: bool
    every_n_steps: int | None
    history: list[dict[str, Any]]
    spectra: dict[int, Tensor]
    plot_path: str | None
    _warned: set[str]
    _csv_path: str | None
    _run_folder: str | None
    sinks: list[Sink]
    _sessions: dict[int, MeasurementSession]

    def _measure(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        epoch: float,
        from_epoch_end: bool,
    ) -> None:
        # ``{"epoch", "step", <metric>..., "seconds"}``, already in the CSV and the user's sinks
        row = self._session(trainer).measure(
            self._target(pl_module), epoch, step=trainer.global_step
        )
        for message in self.meter.pop_warnings():
            self._warn_once(f"NTKMetrics: {message}", NTKMetricWarning)
        self.history.append(row)
        spectrum = self.meter.spectrum
        if spectrum is not None and whole(epoch):
            self.spectra[int(epoch)] = spectrum
        self._log(trainer, pl_module, row, spectrum, from_epoch_end)
        if self.verbose and trainer.is_global_zero:
            rank_zero_info(f"NTKMetrics: {_history.format_row(row)}")

    def _open_sinks(self, trainer: pl.Trainer) -> None:
        """Point the run's session at this run's outputs: the history CSV, then the user's sinks.

        A resumed run's CSV starts from the checkpoint's history.
        """
        own = [] if self._csv_path is None else [CSVSink(self._csv_path, rows=self.history)]
        self._session(trainer).sinks = [*own, *self.sinks]

    def _session(self, trainer: pl.Trainer) -> MeasurementSession:
        """The run's measurement session: rows sharded over the ranks, kernel >= float32."""
        session = self._sessions.get(id(trainer))
        if session is None:
            session = MeasurementSession(
                self.meter,
                trainer,
                shard=True,
                kernel_dtype=self.kernel_dtype,
                error_context="NTKMetrics could not compute the NTK: ",
                error_hint=KERNEL_HINT,
            )
            self._sessions = {id(trainer): session}
        return session

    def _target(self, pl_module: pl.LightningModule) -> nn.Module:
        if self.submodule is None:
            return pl_module
        try:
            return pl_module.get_submodule(self.submodule)
        except AttributeError as err:
            names = [name for name, _ in pl_module.named_children()]
            raise ValueError(
                f"NTKMetrics(submodule={self.submodule!r}): {type(pl_module).__name__} has no "
                f"such submodule; its children are {names}."
            ) from err

    def _log(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        row: dict[str, Any],
        spectrum: Tensor | None,
        from_epoch_end: bool,
    ) -> None:
        log_measurement(
            trainer, pl_module, self.prefix, self.history, row, spectrum, from_epoch_end
        )

    def _plot(self, trainer: pl.Trainer) -> None:
        """Write the evolution PNG atomically next to the history CSV; log it as an image."""
        directory = self._run_folder or trainer.default_root_dir
        x = "step" if self.every_n_steps is not None else "epoch"
        probes = f"{len(self.meter.probes)} x " if len(self.meter.probes) > 1 else ""
        size = len(self.meter.probes[0][1])
        title = f"NTK evolution ({self.prefix.rstrip('/') or 'ntk'}, probe {probes}{size})"
        path = evolution.plot_evolution(
            self.history, os.path.join(directory, plot_name(self.prefix)), x=x, title=title
        )
        self.plot_path = str(path)
        for logger in trainer.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key=f"{self.prefix}evolution", images=[self.plot_path])

    def _warn_once(self, message: str, category: type[Warning] = UserWarning) -> None:
        if message not in self._warned:
            self._warned.add(message)
            rank_zero_warn(message, category=category)
