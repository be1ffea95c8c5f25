"""``NTKMetrics``: the empirical NTK and Label-Gradient Alignment at chosen epochs of any training.

Add one callback to an existing :class:`~lightning.pytorch.Trainer` and the kernel metrics of a
fixed probe batch appear in every logger, in ``callback.history`` and in ``ntk_metrics.csv``.

The class is assembled from one part per job: the schedule
(:mod:`~lga_lightning.training._callback_schedule`), the probe
(:mod:`~lga_lightning.training._callback_probe`), the checkpoint state
(:mod:`~lga_lightning.training._callback_state`), one measurement and its outputs
(:mod:`~lga_lightning.training._callback_measure`); the arguments are checked by
:mod:`~lga_lightning.training._callback_checks`. This module holds the arguments and the hooks.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from torch import Tensor
from torch.utils.data import Dataset

from lga_lightning._compat import renamed_keywords
from lga_lightning.core import evolution
from lga_lightning.core.functional import SCALAR_METRICS
from lga_lightning.core.meter import NTKMeter
from lga_lightning.core.probe import DEFAULT_PROBE_SEED, DEFAULT_PROBE_SIZE, BatchUnpack
from lga_lightning.training._callback_checks import (
    check_batch_unpack,
    check_flags,
    check_int,
    check_meter_alone,
    check_prefix,
    check_probe,
    check_schedule,
    check_siblings,
    check_state_key,
    check_strategy,
    check_submodule,
    warn_late_epochs,
)
from lga_lightning.training._callback_logging import csv_name, define_wandb_axis
from lga_lightning.training._callback_measure import MeasureMixin
from lga_lightning.training._callback_probe import ProbeMixin
from lga_lightning.training._callback_schedule import (
    ScheduleMixin,
    at_epoch_boundary,
    fractional_epoch,
)
from lga_lightning.training._callback_state import StateMixin
from lga_lightning.training._distributed import close_spawned_gloo_group
from lga_lightning.training._rundir import run_dir
from lga_lightning.training.session import MeasurementSession, check_dtype
from lga_lightning.training.sinks import Sink, check_sinks


class NTKMetrics(ScheduleMixin, ProbeMixin, StateMixin, MeasureMixin, Callback):
    r"""Measure the empirical NTK of a fixed probe batch, and its metrics, at chosen epochs.

    At each scheduled epoch the callback computes the kernel ``K = J J^T`` of a probe batch
    (:func:`~lga_lightning.core.kernel.empirical_ntk`, paper conventions by default: train-mode
    BatchNorm, gradient of the sum of the logits, every ``weight`` except the classifier's) with
    the current weights, then its metrics (:func:`~lga_lightning.core.functional.ntk_metrics`), and
    logs them. The training itself is left bit-for-bit unchanged: the kernel uses detached
    parameters and cloned buffers, restores every mode flag and the RNG state, and the probe is read
    from the dataset by index (the training dataloader's iterator and sampler are never touched).

    **When.** Epoch ``0`` is the network at initialisation (in ``on_train_start``, before any
    optimizer step); epoch ``e > 0`` is after ``e`` completed training epochs (in
    ``on_train_epoch_end``). With ``every_n_steps=k`` the kernel is also measured after every
    ``k``-th optimizer step (``trainer.global_step`` a multiple of ``k``, in
    ``on_train_batch_end``); such a row's ``epoch`` is fractional, ``current_epoch + (batch_idx +
    1) / num_training_batches`` (``nan`` for data of unknown length), and a step that ends a
    scheduled epoch is measured once, as that epoch. Nothing is measured in validation hooks
    (they run under ``torch.inference_mode``).

    **Probe batch.** Fixed for the whole run and stored in the callback's state, so a resumed run
    measures the same samples. By default it is drawn once, class-balanced and seeded
    (:func:`~lga_lightning.core.probe.class_balanced_indices`), from the training dataset
    (``trainer.train_dataloader.dataset``; a map-style dataset is required), or from
    ``trainer.datamodule.probe_batch(size=..., seed=...)`` when the datamodule offers it. The
    draw forks the RNGs (torch, numpy, random), so random transforms do not shift training.

    **Several probe batches** (``num_probes=k``): ``k`` disjoint class-balanced batches; every
    metric is their mean and ``<key>_std`` their sample standard deviation. **Multi-device**: under
    DDP every rank differentiates its shard of the kernel's rows and holds the whole kernel.
    **Cost**: ``n`` full-batch backward passes with train-mode BatchNorm (O(n^2)), one batched
    per-sample pass without (O(n)); the ``seconds`` column says what each took. Details and
    measurements: ``docs/callback.md``.

    Logged keys (``<prefix>`` defaults to ``ntk/``):

    - ``<prefix>lga``: Label-Gradient Alignment (nan, with a warning, for a one-class probe).
    - ``<prefix>condition_number``: ``lambda_max / lambda_min`` (inf for a singular kernel).
    - ``<prefix><proxy>`` for each of ``proxies``: a zero-cost proxy of the network at that
      epoch on the same probe batch (:mod:`lga_lightning.core.proxies`).
    - ``<prefix>frobenius_norm``, ``<prefix>mean``, ``<prefix>trace``: of the kernel.
    - ``<prefix>kernel_distance``, ``<prefix>kernel_correlation``,
      ``<prefix>relative_kernel_difference``: against the kernel at epoch 0 (with
      ``track_evolution=True`` or when listed in ``metrics``; 0, 1 and 0 at epoch 0).
    - ``<prefix>kernel_velocity`` (with ``kernel_velocity=True``): kernel distance between this
      measurement's kernel and the previous measurement's (``nan`` at the first measurement).
    - ``<prefix><metric>_std`` (with ``num_probes > 1``): for each metric above (velocity
      included), the sample standard deviation over the probe batches; the metric itself is then
      their mean.
    - ``<prefix>epoch``: the measurement's epoch (completed epochs, 0 = initialisation): the
      x-axis. W&B plots the metrics against it; Lightning's own ``epoch`` column holds the
      0-based index of the epoch that just ended (``<prefix>epoch - 1``) except at epoch 0.
    - ``<prefix>seconds``: wall time of the measurement on this process.
    - ``<prefix>spectrum`` and ``<prefix>history`` (tables, loggers with ``log_table`` such as
      ``WandbLogger``): the eigenvalues (``epoch, index, eigenvalue``) and every row so far.
    - ``<prefix>evolution`` (image, loggers with ``log_image`` such as ``WandbLogger``; with
      ``plot=True``, once, at the end of training): the plot of the evolution metrics (and the
      velocity) against ``epoch`` (``step`` when ``every_n_steps`` is set), also saved as
      ``ntk_evolution.png`` (``<prefix>_evolution.png``) next to ``ntk_metrics.csv``; its path is
      ``callback.plot_path``.

    Scalars after training epochs go through ``pl_module.log`` (``on_epoch=True``), so
    ``EarlyStopping`` and ``ModelCheckpoint`` can monitor ``ntk/lga``; they are logged at the
    step of the epoch's last batch. Lightning does not let a callback log from
    ``on_train_start`` into the epoch's results without merging them with the first epoch's, so
    measurements made there (epoch 0, or the first epoch of a resumed run) are written to
    ``trainer.loggers`` directly, at the current step (0 for a new run), with the same keys.
    Step-scheduled measurements are written to ``trainer.loggers`` directly too, at the step
    Lightning logs that batch's own metrics (independent of ``log_every_n_steps``).

    The full history is ``callback.history`` (a list of dicts ``{"epoch", "step", <metric>...,
    "seconds"}``) and ``ntk_metrics.csv`` (``<prefix>_metrics.csv`` for another prefix) in the
    run's own folder (:func:`lga_lightning.training._rundir.run_dir`: the CSV or TensorBoard
    logger's ``version_N`` folder, ``<save_dir>/<project>/<run id>`` for W&B, the next free
    ``<default_root_dir>/lga_runs/version_N`` without a logger), rewritten atomically by rank 0
    after each measurement. ``callback.spectra`` maps each epoch to its eigenvalues (float64,
    descending) when ``log_spectrum=True`` (whole epochs only). Under DDP, step measurements
    follow the same discipline as epoch measurements: every rank takes part in every one.

    Args:
        measure_at: epochs to measure at, e.g. ``[0, 1, 3]`` (0 = initialisation, ``e`` = after
            ``e`` completed epochs). Default: ``[0, 1]`` (the paper's protocol) unless
            ``every_n_epochs`` is given. (0.2 called it ``epochs``.)
        every_n_epochs: measure at epochs ``0, n, 2n, ...``; exclusive with ``measure_at``.
        every_n_steps: also measure after every ``k``-th optimizer step. Alone (without
            ``measure_at``/``every_n_epochs``) the epoch schedule becomes ``[0]``: the
            initialisation, then every ``k`` steps.
        probe_size: number of probe samples drawn from the training data (the paper uses 256).
            Ignored when ``probe`` holds tensors.
        probe: ``(x, y)`` tensors used as they are, or a map-style dataset to draw from; default:
            the training data.
        probe_seed: seed of the class-balanced draw (and of random transforms during it).
        num_probes: number of disjoint probe batches of ``probe_size`` to average over (see
            "Several probe batches"); the data must hold ``num_probes * probe_size`` samples.
        batch_unpack: maps one dataset item (or a datamodule's probe batch) to
            ``(inputs, labels)``; default handles ``(x, y, ...)`` tuples and dicts with keys such
            as ``x``/``image`` and ``y``/``label``.
        metrics: names from :data:`~lga_lightning.core.functional.SCALAR_METRICS` and
            :data:`~lga_lightning.core.functional.EVOLUTION_METRICS`, or registered ``kernel``
            rows (checked by :func:`~lga_lightning.core.signals.check_metrics`).
        track_evolution: also log the kernel's distance, correlation and relative difference to
            the kernel at epoch 0. If epoch 0 is not scheduled, the initial kernel is still
            computed (not logged) in ``on_train_start`` of a new run, which costs one measurement.
        kernel_velocity: also log the kernel distance between consecutive measurements
            (``<prefix>kernel_velocity``); the previous kernel is kept in the callback's state.
        log_spectrum: log the eigenvalue spectrum as a table and keep it in ``callback.spectra``.
        plot: at the end of training, plot the evolution metrics against epochs (or steps), save
            the PNG in the log dir and log it to loggers with ``log_image`` (rank 0). Nothing is
            plotted when no evolution metric or velocity was measured.
        prefix: prefix of every logged key; two instances need different prefixes.
        kernel_kwargs: options for :func:`~lga_lightning.core.kernel.ntk_jacobian`: ``output``
            (``"sum"``/``"trace"``; ``"full"`` without ``"lga"``), ``param_selection``,
            ``classifier``, ``bn_mode``, ``output_fn``, ``implementation``, ``chunk_size``.
        submodule: name of the submodule to differentiate (``pl_module.get_submodule(name)``),
            for LightningModules whose ``forward`` does not return the logits; default: the
            LightningModule itself.
        off_diagonal_lga: compute LGA over the off-diagonal entries only.
        proxies: zero-cost proxies to measure beside the kernel metrics (names from
            :data:`lga_lightning.core.proxies.PROXIES`, e.g. ``["synflow", "naswot"]``).
        state_key: key of the callback's state in checkpoints; default derived from ``prefix``.
        verbose: print a line per measurement (rank 0).
        meter: the measuring core to use (``NTKMeter(...)``), as torchmetrics' wrappers take a
            metric; then ``metrics``, ``track_evolution``, ``kernel_velocity``, ``log_spectrum``,
            ``off_diagonal_lga``, ``proxies`` and ``kernel_kwargs`` come from it (giving them
            too is refused).
        kernel_dtype: compute the kernel in this dtype (``"float64"``, ``torch.float64``);
            default: float32, or float64 for a float64 model (``docs/session.md``).
        sinks: more outputs of every history row, on rank 0 (objects with ``write(row)``, e.g.
            ``JSONLinesSink("ntk.jsonl")``; :mod:`lga_lightning.training.sinks`).
        write_csv: write ``ntk_metrics.csv`` in the run's folder.

    Raises:
        ValueError: on an invalid argument, naming the fix.

    Example:
        >>> import lightning.pytorch as pl
        >>> callback = NTKMetrics(measure_at=[0, 1, 3], probe_size=64)
        >>> trainer = pl.Trainer(max_epochs=3, callbacks=[callback], logger=False,
        ...                      enable_progress_bar=False, enable_model_summary=False)
        >>> # trainer.fit(model, datamodule)  then  callback.history[-1]["lga"]
        >>> steps = NTKMetrics(every_n_steps=50, kernel_velocity=True)  # + ntk/kernel_velocity
        >>> steps.measure_at, steps.every_n_steps
        ([0], 50)
        >>> NTKMetrics(measure_at=[-1])
        Traceback (most recent call last):
        ...
        ValueError: `measure_at` must be non-negative integers, got [-1].
    """

    @renamed_keywords("epochs")
    def __init__(
        self,
        measure_at: Sequence[int] | None = None,
        every_n_epochs: int | None = None,
        every_n_steps: int | None = None,
        probe_size: int = DEFAULT_PROBE_SIZE,
        probe: tuple[Tensor, Tensor] | Dataset | None = None,
        probe_seed: int = DEFAULT_PROBE_SEED,
        num_probes: int = 1,
        batch_unpack: BatchUnpack | None = None,
        metrics: Sequence[str] = SCALAR_METRICS,
        track_evolution: bool = True,
        kernel_velocity: bool = False,
        log_spectrum: bool = True,
        plot: bool = True,
        prefix: str = "ntk/",
        kernel_kwargs: Mapping[str, Any] | None = None,
        submodule: str | None = None,
        off_diagonal_lga: bool = False,
        proxies: Sequence[str] = (),
        state_key: str | None = None,
        verbose: bool = False,
        meter: NTKMeter | None = None,
        kernel_dtype: torch.dtype | str | None = None,
        sinks: Sequence[Sink] = (),
        write_csv: bool = True,
    ) -> None:
        super().__init__()
        self.every_n_steps = (
            None if every_n_steps is None else check_int("every_n_steps", every_n_steps, 1)
        )
        if every_n_steps is not None and measure_at is None and every_n_epochs is None:
            measure_at = [0]
        self.measure_at, self.every_n_epochs = check_schedule(measure_at, every_n_epochs)
        self.probe_size = check_int("probe_size", probe_size, minimum=2)
        self.probe_seed = check_int("probe_seed", probe_seed, minimum=None)
        self.num_probes = check_int("num_probes", num_probes, minimum=1)
        self._given_probe = check_probe(probe, self.probe_size, self.num_probes)
        self.batch_unpack = check_batch_unpack(batch_unpack)
        check_flags(
            track_evolution=track_evolution,
            kernel_velocity=kernel_velocity,
            log_spectrum=log_spectrum,
            plot=plot,
            off_diagonal_lga=off_diagonal_lga,
            verbose=verbose,
            write_csv=write_csv,
        )
        self.sinks = check_sinks(sinks, "NTKMetrics")
        self.write_csv = write_csv
        if meter is None:
            meter = NTKMeter(
                metrics,
                track_evolution=track_evolution,
                kernel_velocity=kernel_velocity,
                spectrum=log_spectrum,
                off_diagonal_lga=off_diagonal_lga,
                proxies=proxies,
                kernel_kwargs=kernel_kwargs,
            )
        else:
            check_meter_alone(
                meter,
                metrics=(metrics, SCALAR_METRICS),
                track_evolution=(track_evolution, True),
                kernel_velocity=(kernel_velocity, False),
                log_spectrum=(log_spectrum, True),
                off_diagonal_lga=(off_diagonal_lga, False),
                proxies=(tuple(proxies), ()),
                kernel_kwargs=(kernel_kwargs, None),
            )
        self.meter = meter
        self.kernel_dtype = check_dtype("kernel_dtype", kernel_dtype)
        self.kernel_kwargs = self.meter.kernel_kwargs
        self.metrics = self.meter.metrics
        self.track_evolution = self.meter.track_evolution
        self.kernel_velocity = self.meter.kernel_velocity
        self.log_spectrum = self.meter.keep_spectrum
        self.plot = plot
        self.off_diagonal_lga = self.meter.off_diagonal_lga
        self.verbose = verbose
        self.prefix = check_prefix(prefix)
        self.submodule = check_submodule(submodule)
        self._state_key = check_state_key(state_key)

        self.history: list[dict[str, Any]] = []
        self.spectra: dict[int, Tensor] = {}
        self.plot_path: str | None = None
        self._loaded_state = False
        self._warned: set[str] = set()
        self._csv_path: str | None = None
        self._run_folder: str | None = None
        self._sessions: dict[int, MeasurementSession] = {}

    # ---------------------------------------------------------------------------------------
    # hooks

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Check the trainer's configuration before anything runs."""
        if stage != "fit":
            return
        check_strategy(trainer)
        self._check_siblings(trainer)
        self._target(pl_module)
        warn_late_epochs(self.measure_at, trainer.max_epochs)
        if trainer.world_size > 1:
            # Every rank computes the same values, so they are logged without a reduction.
            warnings.filterwarnings(
                "ignore",
                message=rf"It is recommended to use `self.log\('{re.escape(self.prefix)}",
                category=PossibleUserWarning,
            )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Draw the probe, take the initial kernel and measure epoch 0 (or a resumed epoch)."""
        completed = trainer.current_epoch
        fresh = completed == 0 and trainer.global_step == 0
        if fresh and not self._loaded_state:
            self._reset()
        if self.write_csv or self.plot:
            self._run_folder = run_dir(trainer)  # a collective: every rank calls it
        if self.write_csv:
            self._csv_path = os.path.join(self._run_folder, csv_name(self.prefix))
        self._open_sinks(trainer)
        self._ensure_probe(trainer)
        if trainer.is_global_zero:
            define_wandb_axis(trainer, self.prefix, [*self.meter.keys, "seconds"])

        if fresh and self.meter.needs_initial_kernel and not self.is_scheduled(0):
            self._session(trainer).set_initial(self._target(pl_module))
        if (
            at_epoch_boundary(trainer)
            and self.is_scheduled(completed)
            and completed not in self.measured_epochs
        ):
            self._measure(trainer, pl_module, completed, from_epoch_end=False)
        missing = [e for e in range(completed) if self.is_scheduled(e)]
        missing = [e for e in missing if e not in self.measured_epochs]
        if missing:
            self._warn_once(
                f"NTKMetrics: epochs {missing} were not measured before the checkpoint this run "
                "resumes from was saved; the history continues without them."
            )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Measure after ``trainer.current_epoch + 1`` completed epochs when scheduled."""
        epoch = trainer.current_epoch + 1
        if self.is_scheduled(epoch) and epoch not in self.measured_epochs:
            self._measure(trainer, pl_module, epoch, from_epoch_end=True)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        """Measure after every ``every_n_steps``-th optimizer step.

        Every rank decides alike (the global step and the end of the epoch are the same on every
        rank), so every rank enters the kernel's collectives together.
        """
        step = trainer.global_step
        if not self.is_step_scheduled(step) or step in self.measured_steps:
            return
        last = bool(trainer.fit_loop.epoch_loop.batch_progress.is_last_batch)
        if last and self.is_scheduled(trainer.current_epoch + 1):
            return  # on_train_epoch_end measures these very weights as the epoch
        self._measure(trainer, pl_module, fractional_epoch(trainer, batch_idx, last), False)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Close a ``ddp_spawn`` gloo group on every rank in step after a fit.

        See :func:`lga_lightning.training._distributed.close_spawned_gloo_group`.
        """
        if stage == "fit":
            close_spawned_gloo_group(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Plot the evolution (rank 0); forget that the state came from a checkpoint."""
        self._loaded_state = False
        if self.plot and trainer.is_global_zero and evolution.has_evolution(self.history):
            self._plot(trainer)

    def _check_siblings(self, trainer: pl.Trainer) -> None:
        others = [c for c in trainer.callbacks if isinstance(c, NTKMetrics) and c is not self]
        check_siblings(self.prefix, self.state_key, others)
