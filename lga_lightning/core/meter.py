"""``NTKMeter``: the one measurement core behind the callback, the search and the study.

A meter owns everything that makes two measurements comparable: the probe batches, the kernel
options, the metrics, the kernels kept for evolution (the initial and the previous one, per probe
batch), the averaging over several probe batches, and the warnings a measurement raised. It knows
nothing of Lightning: the :class:`~lga_lightning.NTKMetrics` callback, the
:class:`~lga_lightning.LGASearch` module and the ``lga-correlate`` study each hold one and call
:meth:`NTKMeter.measure` with a model, so the same model and probe give the same record
everywhere.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from torch import Tensor, nn

from lga_lightning._compat import refuse_renamed
from lga_lightning.core.functional import (
    SCALAR_METRICS,
    NTKMetricWarning,
    eigenvalues,
    ntk_metrics,
)
from lga_lightning.core.kernel import BN_MODES, CHOICES, OUTPUTS, empirical_ntk
from lga_lightning.core.probe import BatchUnpack, Probes, draw_probe, to_model
from lga_lightning.core.signals import SIGNALS, check_metrics, check_proxies, signal_names

KernelFn = Callable[[nn.Module, Tensor], Tensor]
"""``(model, probe inputs) -> kernel``: how a meter computes one kernel (e.g. sharded by DDP)."""

KERNEL_OPTIONS = (
    "output",
    "param_selection",
    "classifier",
    "bn_mode",
    "output_fn",
    "implementation",
    "chunk_size",
)
"""Keyword arguments of :func:`~lga_lightning.core.kernel.empirical_ntk` a meter passes on."""

STATE_VERSION = 2


class NTKMeter:
    r"""Measure the NTK metrics of a model on fixed probe batches.

    Args:
        metrics: names from :data:`~lga_lightning.core.functional.SCALAR_METRICS` and
            :data:`~lga_lightning.core.functional.EVOLUTION_METRICS`.
        track_evolution: also compute every evolution metric against the first kernel measured
            (or :meth:`set_initial`), i.e. the kernel at initialisation.
        kernel_velocity: also compute ``kernel_velocity``, the kernel distance between this
            measurement's kernel and the previous one's (``nan`` at the first).
        spectrum: keep the first probe batch's eigenvalues (descending) in :attr:`spectrum`.
        off_diagonal_lga: LGA over the off-diagonal entries only.
        kernel_kwargs: options of :func:`~lga_lightning.core.kernel.empirical_ntk` (``output``,
            ``param_selection``, ``classifier``, ``bn_mode``, ``output_fn``, ``implementation``,
            ``chunk_size``); the paper's conventions by default.
        proxies: zero-cost proxies measured on the same probe batches and model: the
            ``proxy`` and ``model`` rows of :data:`lga_lightning.core.signals.SIGNALS`
            (:data:`lga_lightning.core.proxies.PROXIES`), registered ones included. With
            ``metrics=()`` only the proxies are measured (no kernel).

    With several probe batches each metric is the mean over them and ``<metric>_std`` their
    sample standard deviation (``ddof=1``); evolution and velocity compare each probe batch's
    kernel with that batch's own earlier kernel.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
        >>> meter = NTKMeter(metrics=["lga", "trace"], track_evolution=True)
        >>> meter.set_probes([(torch.randn(6, 4), torch.tensor([0, 1] * 3))])
        >>> record = meter.measure(model, epoch=0)
        >>> sorted(record)  # doctest: +NORMALIZE_WHITESPACE
        ['epoch', 'kernel_correlation', 'kernel_distance', 'lga',
         'relative_kernel_difference', 'seconds', 'trace']
        >>> record["kernel_distance"]
        0.0
    """

    def __init__(
        self,
        metrics: Sequence[str] = SCALAR_METRICS,
        track_evolution: bool = False,
        kernel_velocity: bool = False,
        spectrum: bool = False,
        off_diagonal_lga: bool = False,
        kernel_kwargs: Mapping[str, Any] | None = None,
        proxies: Sequence[str] = (),
    ) -> None:
        self.kernel_kwargs = check_kernel_kwargs(kernel_kwargs)
        self.proxies = check_proxies(proxies)
        if self.proxies and not metrics:
            self.metrics: tuple[str, ...] = ()
        else:
            self.metrics = check_metrics(metrics, self.kernel_kwargs.get("output", "sum"))
        self.track_evolution = bool(track_evolution)
        self.kernel_velocity = bool(kernel_velocity)
        self.keep_spectrum = bool(spectrum)
        self.off_diagonal_lga = bool(off_diagonal_lga)
        self.probes: Probes = []
        self.initial_kernels: list[Tensor] = []
        self.previous_kernels: list[Tensor] = []
        self.spectrum: Tensor | None = None
        self.last_seconds: dict[str, float] = {}
        """Wall time of the last measurement by signal: ``kernel`` (kernels and their metrics)
        and each proxy, summed over the probe batches."""
        self._warned: set[str] = set()
        self._new_warnings: list[str] = []

    # ------------------------------------------------------------------ configuration
    @property
    def evolution_metrics(self) -> tuple[str, ...]:
        """The evolution metrics this meter computes."""
        evolution = signal_names("evolution", needs="initial_kernel")
        return (
            evolution if self.track_evolution else tuple(m for m in self.metrics if m in evolution)
        )

    @property
    def needs_kernel(self) -> bool:
        """Whether a measurement computes kernels (not for proxies alone)."""
        return bool(self.metrics or self.kernel_velocity or self.keep_spectrum)

    @property
    def needs_initial_kernel(self) -> bool:
        """Whether the initial kernel is needed and not yet known."""
        return bool(self.evolution_metrics) and not self.initial_kernels

    @property
    def keys(self) -> list[str]:
        """The value keys of a record (besides ``epoch`` and ``seconds``)."""
        velocity = ["kernel_velocity"] if self.kernel_velocity else []
        names = [m for m in self.metrics if m not in self.evolution_metrics]
        keys = list(dict.fromkeys([*names, *self.evolution_metrics, *velocity, *self.proxies]))
        if len(self.probes) > 1:
            keys += [f"{key}_std" for key in keys]
        return keys

    # ------------------------------------------------------------------ probes
    def draw_probes(
        self,
        source: Any,
        size: int,
        seed: int = 0,
        num_probes: int = 1,
        batch_unpack: BatchUnpack | None = None,
    ) -> Probes:
        """Draw and keep the probe batches (see :func:`~lga_lightning.core.probe.draw_probe`)."""
        self.set_probes(draw_probe(source, size, seed, num_probes, batch_unpack))
        return self.probes

    def set_probes(self, probes: Probes) -> None:
        """Use these probe batches; forget kernels measured on others."""
        self.probes = [(x.detach().cpu(), y.detach().cpu().long()) for x, y in probes]
        self.reset_kernels()

    def reset_kernels(self) -> None:
        """Forget the initial and previous kernels (a new network is measured next)."""
        self.initial_kernels, self.previous_kernels, self.spectrum = [], [], None

    # ------------------------------------------------------------------ measuring
    def kernels(self, model: nn.Module, kernel_fn: KernelFn | None = None) -> list[Tensor]:
        """The kernel of every probe batch, computed with ``kernel_fn`` (default: one process)."""
        if not self.probes:
            raise RuntimeError("the meter has no probe batch: call draw_probes() or set_probes().")
        compute = kernel_fn or self._kernel
        return [compute(model, x) for x, _ in self.probes]

    def set_initial(self, model: nn.Module, kernel_fn: KernelFn | None = None) -> None:
        """Take ``model``'s kernels as the initial ones without recording anything."""
        self.initial_kernels = [_keep(k) for k in self.kernels(model, kernel_fn)]

    def measure(
        self, model: nn.Module, epoch: float, kernel_fn: KernelFn | None = None
    ) -> dict[str, Any]:
        """Measure ``model`` now: ``{"epoch", <metric>..., "seconds"}``.

        At ``epoch == 0`` the kernels become the initial ones when evolution is tracked and none
        were set.
        """
        start = time.perf_counter()
        self.last_seconds = {}
        measured = self.kernels(model, kernel_fn) if self.needs_kernel else []
        kernels: list[Tensor | None] = [*measured]
        if not self.needs_kernel:
            kernels = [None] * len(self.probes)
        if epoch == 0 and self.needs_initial_kernel:
            self.initial_kernels = [_keep(k) for k in measured]
        if self.needs_kernel:
            self.last_seconds["kernel"] = time.perf_counter() - start
        values = _mean_and_std([self._values(model, k, j) for j, k in enumerate(kernels)])
        if self.kernel_velocity:
            self.previous_kernels = [_keep(k) for k in measured]
        return {"epoch": epoch, **values, "seconds": time.perf_counter() - start}

    def pop_warnings(self) -> list[str]:
        """Warnings raised by measurements since the last call, each message once per meter."""
        new, self._new_warnings = self._new_warnings, []
        return new

    def _kernel(self, model: nn.Module, x: Tensor) -> Tensor:
        return empirical_ntk(model, to_model(x, model), **self.kernel_kwargs)

    def _values(self, model: nn.Module, kernel: Tensor | None, index: int) -> dict[str, float]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = time.perf_counter()
            values = {} if kernel is None else self._kernel_values(kernel, index)
            if kernel is not None:
                self._add_seconds("kernel", time.perf_counter() - start)
            if self.proxies:
                x, y = self.probes[index]
                x = to_model(x, model)
                y = y.to(x.device)
                for name in self.proxies:
                    start = time.perf_counter()
                    values[name] = float(SIGNALS[name].compute(model=model, batch=x, labels=y))
                    self._add_seconds(name, time.perf_counter() - start)
        for w in caught:
            if issubclass(w.category, NTKMetricWarning):
                self._warn(str(w.message))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return values

    def _kernel_values(self, kernel: Tensor, index: int) -> dict[str, float]:
        labels = self.probes[index][1].to(kernel.device)
        initial = _item(self.initial_kernels, index)
        previous = _item(self.previous_kernels, index)
        names = [m for m in self.metrics if m not in self.evolution_metrics]
        if self.evolution_metrics:
            if initial is None:
                self._warn(
                    "the kernel at initialisation is unknown (the run resumed without it), so "
                    "the kernel-evolution metrics are not computed."
                )
            else:
                names += list(self.evolution_metrics)
        values = (
            ntk_metrics(
                kernel,
                labels,
                metrics=names,
                initial_kernel=None if initial is None else initial.to(kernel),
                off_diagonal_lga=self.off_diagonal_lga,
            )
            if names
            else {}
        )
        if self.kernel_velocity:
            velocity = SIGNALS["kernel_velocity"]
            values[velocity.name] = (
                math.nan
                if previous is None
                else velocity.compute(kernel=kernel, previous_kernel=previous.to(kernel))
            )
        if self.keep_spectrum and index == 0:
            self.spectrum = eigenvalues(kernel).flip(0).cpu()
        return values

    def _add_seconds(self, name: str, seconds: float) -> None:
        self.last_seconds[name] = self.last_seconds.get(name, 0.0) + seconds

    def _warn(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self._new_warnings.append(message)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Tensors and lists only: loadable with ``torch.load(weights_only=True)``."""
        return {
            "version": STATE_VERSION,
            "probes_x": [x for x, _ in self.probes],
            "probes_y": [y for _, y in self.probes],
            "initial_kernels": list(self.initial_kernels),
            "previous_kernels": list(self.previous_kernels),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the probe batches and the kept kernels.

        Raises:
            ValueError: for a state of another version.
        """
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"this NTK meter state has version {state.get('version')!r}; this version of "
                f"lga-lightning reads version {STATE_VERSION}. Start a new run."
            )
        self.probes = list(zip(state["probes_x"], state["probes_y"], strict=True))
        self.initial_kernels = list(state.get("initial_kernels") or [])
        self.previous_kernels = list(state.get("previous_kernels") or [])


# ---------------------------------------------------------------------------------------------
# option checks, shared by every surface


def check_kernel_kwargs(kernel_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate kernel options, naming the fix.

    Example:
        >>> check_kernel_kwargs({"bn_mode": "eval"})
        {'bn_mode': 'eval'}
        >>> check_kernel_kwargs({"bn": "eval"})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: `kernel_kwargs` got unknown options ['bn']; the kernel accepts [...
        >>> check_kernel_kwargs({"params": "all"})
        Traceback (most recent call last):
        ...
        ValueError: `params` was renamed to `param_selection` in 0.3.
    """
    if kernel_kwargs is None:
        return {}
    if not isinstance(kernel_kwargs, Mapping):
        raise ValueError(f"`kernel_kwargs` must be a dict, got {type(kernel_kwargs).__name__}.")
    refuse_renamed(kernel_kwargs, ["params"], ValueError)
    unknown = sorted(set(kernel_kwargs) - set(KERNEL_OPTIONS))
    if unknown:
        raise ValueError(
            f"`kernel_kwargs` got unknown options {unknown}; the kernel accepts "
            f"{list(KERNEL_OPTIONS)} (the probe batch is set with `probe`/`probe_size`)."
        )
    for name, choices in (
        ("output", OUTPUTS),
        ("bn_mode", BN_MODES),
        ("implementation", CHOICES),  # the implementation table's names, and "auto"
    ):
        if name in kernel_kwargs and kernel_kwargs[name] not in choices:
            raise ValueError(
                f"`kernel_kwargs['{name}']` can be {', '.join(map(repr, choices))}; "
                f"got {kernel_kwargs[name]!r}."
            )
    output_fn = kernel_kwargs.get("output_fn")
    if output_fn is not None and not callable(output_fn):
        raise ValueError(
            "`kernel_kwargs['output_fn']` must be a function picking the logits out of the model "
            f"output, got {type(output_fn).__name__}."
        )
    chunk = kernel_kwargs.get("chunk_size")
    if chunk is not None and (
        isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1
    ):
        raise ValueError(f"`kernel_kwargs['chunk_size']` must be an integer >= 1, got {chunk!r}.")
    return dict(kernel_kwargs)


def _keep(kernel: Tensor) -> Tensor:
    return kernel.detach().cpu().clone()


def _item(items: Sequence[Tensor], index: int) -> Tensor | None:
    return items[index] if index < len(items) else None


def _mean_and_std(values: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Aggregate the values of the probe batches.

    One probe batch's values are returned as they are; for several, ``<key>`` is the mean and
    ``<key>_std`` the sample standard deviation (``ddof=1``; ``nan`` when a value is infinite).

    Example:
        >>> _mean_and_std([{"lga": 0.25}])
        {'lga': 0.25}
        >>> _mean_and_std([{"lga": 0.25}, {"lga": 0.75}])
        {'lga': 0.5, 'lga_std': 0.3535533905932738}
    """
    if len(values) == 1:
        return dict(values[0])
    out: dict[str, float] = {}
    for key in values[0]:
        column = np.asarray([float(v[key]) for v in values], dtype=np.float64)
        with np.errstate(invalid="ignore"):
            out[key] = float(np.mean(column))
            out[f"{key}_std"] = float(np.std(column, ddof=1))
    return out
