"""``MeasurementSession``: the one Trainer-aware way every surface measures a model.

The measuring core (:class:`~lga_lightning.core.meter.NTKMeter`) knows nothing of Lightning. A
session wraps one meter for one run and owns everything that depends on the ``Trainer``:

- **device and dtype**: the probe goes to the model's device and to the dtype the kernel is
  computed in;
- **precision**: the kernel and the proxies are computed in at least ``float32``, whatever the
  Trainer's precision. Under ``bf16-true`` / ``16-true`` the model's low-precision weights are
  upcast, exactly, for the measurement and cast back bit for bit afterwards; under
  ``64-true`` the kernel is computed in ``float64``; autocast (``*-mixed``) is switched off
  inside the measurement. ``kernel_dtype`` asks for another dtype explicitly;
- **DDP**: with ``shard=True`` every rank differentiates its shard of the kernel's rows and
  receives the whole kernel (a collective: every rank must measure), and the probe drawn by
  rank 0 is broadcast; with ``shard=False`` (the search, where every rank has its own
  candidate) each rank measures alone;
- **state**: mode flags, BatchNorm statistics, ``.grad``, optimizer and RNG state are left as
  they were (the kernel engine restores flags and RNG; the session swaps ``SyncBatchNorm`` for
  local statistics and gives every rank rank 0's buffers for the duration);
- **sinks**: each finished record is handed to the session's sinks
  (:class:`~lga_lightning.training.sinks.Sink`: anything with ``write(record)``), on rank 0
  only under sharding (every rank holds the same record). :class:`~lga_lightning.NTKMetrics`
  writes its ``ntk_metrics.csv`` and the user's sinks this way.

:class:`~lga_lightning.NTKMetrics`, :class:`~lga_lightning.LGASearch` (and so the Ray Tune
trial, which runs the search), the ``lga-correlate`` study and ``lga-linearize`` all measure
through a session, so one model and one probe give one record on every surface.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from lga_lightning.core.kernel import ntk_jacobian
from lga_lightning.core.meter import NTKMeter
from lga_lightning.core.probe import BatchUnpack, Probes, draw_probe, to_model
from lga_lightning.training._distributed import (
    distributed_ready,
    gather_kernel,
    local_batchnorm,
    rank_zero_buffers,
    shard_rows,
)
from lga_lightning.training.sinks import Sink, check_sinks, write_all

_LOW_PRECISION = (torch.float16, torch.bfloat16)


class MeasurementSession:
    """Measure models with one meter inside (or outside) a Lightning run.

    Args:
        meter: the meter that holds the probes, options and kept kernels.
        trainer: the run's Trainer; ``None`` measures in this process on the model's device.
        shard: under DDP, split the kernel's rows over the ranks (every rank must then measure
            the same model at the same time); ``False`` when each rank measures its own model.
        kernel_dtype: compute the kernel and the proxies in this dtype; default: ``float32``, or
            the model's own dtype when it is wider (``float64`` under ``64-true``).
        sinks: receive every record :meth:`measure` returns (on rank 0 under sharding).
        error_context: prefix of the messages of kernel errors (bad options for this model).
        error_hint: appended to those messages: how to fix them on this surface.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).double()
        >>> session = MeasurementSession(NTKMeter(metrics=["lga"]))
        >>> session.meter.set_probes([(torch.randn(6, 4), torch.tensor([0, 1] * 3))])
        >>> record = session.measure(model, epoch=0)  # float probe, float64 model: measured
        >>> sorted(record), session.compute_dtype(model)
        (['epoch', 'lga', 'seconds'], torch.float64)
    """

    def __init__(
        self,
        meter: NTKMeter,
        trainer: Any = None,
        *,
        shard: bool = True,
        kernel_dtype: torch.dtype | str | None = None,
        sinks: Sequence[Sink] = (),
        error_context: str = "",
        error_hint: str = "",
    ) -> None:
        if not isinstance(meter, NTKMeter):
            raise ValueError(f"`meter` must be an NTKMeter, got {type(meter).__name__}.")
        self.meter = meter
        self.trainer = trainer
        self.shard = bool(shard)
        self.kernel_dtype = check_dtype("kernel_dtype", kernel_dtype)
        self.sinks: list[Sink] = check_sinks(sinks, "MeasurementSession")
        self.error_context = error_context
        self.error_hint = error_hint

    # ------------------------------------------------------------------ where and how
    @property
    def world_size(self) -> int:
        """Processes that share the kernel's rows (1 without sharding)."""
        return int(getattr(self.trainer, "world_size", 1)) if self.shard else 1

    @property
    def rank(self) -> int:
        """This process's rank among :attr:`world_size`."""
        return int(getattr(self.trainer, "global_rank", 0)) if self.shard else 0

    @property
    def sharded(self) -> bool:
        """Whether measurements are collectives over several processes."""
        return distributed_ready(self.world_size)

    def compute_dtype(self, model: nn.Module) -> torch.dtype:
        """The dtype the kernel of ``model`` is computed in (see the module docstring)."""
        if self.kernel_dtype is not None:
            return self.kernel_dtype
        dtypes = [p.dtype for p in model.parameters() if p.is_floating_point()]
        widest = max(dtypes, key=lambda d: torch.finfo(d).bits, default=torch.float32)
        return torch.float64 if widest == torch.float64 else torch.float32

    # ------------------------------------------------------------------ probes
    def draw_probes(
        self,
        source: Any,
        size: int,
        seed: int,
        num_probes: int = 1,
        batch_unpack: BatchUnpack | None = None,
    ) -> Probes:
        """Draw the meter's probe batches; under sharding every rank gets rank 0's samples."""
        probes = draw_probe(source, size, seed, num_probes, batch_unpack)
        if self.sharded:
            x = torch.cat([xj for xj, _ in probes])
            y = torch.cat([yj for _, yj in probes])
            x, y = self.trainer.strategy.broadcast((x, y), src=0)
            parts = zip(x.chunk(len(probes)), y.chunk(len(probes)), strict=True)
            probes = [(xj.clone(), yj.clone()) for xj, yj in parts]
        self.meter.set_probes(probes)
        return self.meter.probes

    # ------------------------------------------------------------------ measuring
    def measure(self, model: nn.Module, epoch: float, step: int | None = None) -> dict[str, Any]:
        """The meter's record of ``model`` now, handed to the sinks.

        ``step`` (the run's optimizer step), when given, follows ``epoch`` in the record.
        """
        with self._measuring(model):
            record = self.meter.measure(model, epoch, self._kernel)
        if step is not None:
            record = {"epoch": record.pop("epoch"), "step": int(step), **record}
        if self.rank == 0:
            write_all(self.sinks, record)
        return record

    def set_initial(self, model: nn.Module) -> None:
        """Take ``model``'s kernels as the initial ones without recording anything."""
        with self._measuring(model):
            self.meter.set_initial(model, self._kernel)

    @contextlib.contextmanager
    def _measuring(self, model: nn.Module) -> Iterator[None]:
        device = _device(model)
        with (
            preserved_rng(device),
            _autocast_off(device),
            computed_in(model, self.compute_dtype(model)),
            rank_zero_buffers(model, self.world_size),
            local_batchnorm(model),
            torch.enable_grad(),
        ):
            yield

    def _kernel(self, model: nn.Module, probe_x: Tensor) -> Tensor:
        """One kernel: the probe on the model's device and dtype, rows sharded over the ranks."""
        x = to_model(probe_x, model)
        n = x.shape[0]
        rows = shard_rows(n, self.world_size, self.rank) if self.sharded else None
        kwargs = self.meter.kernel_kwargs
        try:
            jac = ntk_jacobian(model, x, rows=rows, **kwargs)
        except (ValueError, NotImplementedError) as err:
            if not (self.error_context or self.error_hint):
                raise
            hint = f" {self.error_hint}" if self.error_hint else ""
            raise type(err)(f"{self.error_context}{err}{hint}") from err
        world = self.world_size if self.sharded else 1
        return gather_kernel(jac, n, world, self.rank, kwargs.get("output", "sum"))


def check_dtype(name: str, value: torch.dtype | str | None) -> torch.dtype | None:
    """A floating dtype given as ``torch.float64`` or ``"float64"`` (configs); ``None`` passes.

    Example:
        >>> check_dtype("kernel_dtype", "float64"), check_dtype("kernel_dtype", None)
        (torch.float64, None)
        >>> check_dtype("kernel_dtype", "int8")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: `kernel_dtype` must be a floating dtype such as 'float32' ..., got 'int8'.
    """
    if value is None:
        return None
    dtype = getattr(torch, value.removeprefix("torch."), None) if isinstance(value, str) else value
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(
            f"`{name}` must be a floating dtype such as 'float32' or 'float64', got {value!r}."
        )
    return dtype


@contextlib.contextmanager
def computed_in(model: nn.Module, dtype: torch.dtype) -> Iterator[None]:
    """Upcast ``model``'s narrower floating parameters and buffers to ``dtype`` inside the block.

    Casting back is exact (every ``bfloat16``/``float16`` value is a ``float32`` value), so the
    model leaves the block bit for bit as it entered; the Parameter objects (and so optimizer
    references) stay the same. Wider tensors are never narrowed.

    Example:
        >>> lin = nn.Linear(2, 2).bfloat16()
        >>> before = lin.weight.clone()
        >>> with computed_in(lin, torch.float32):
        ...     lin.weight.dtype
        torch.float32
        >>> lin.weight.dtype, bool(torch.equal(lin.weight, before))
        (torch.bfloat16, True)
    """
    bits = torch.finfo(dtype).bits
    changed: list[tuple[Tensor, torch.dtype]] = []
    owners: list[tuple[nn.Module, str, torch.dtype]] = []
    for module in model.modules():
        for param in module._parameters.values():
            if param is not None and _narrower(param, bits):
                changed.append((param, param.dtype))
        for name, buffer in module._buffers.items():
            if buffer is not None and _narrower(buffer, bits):
                owners.append((module, name, buffer.dtype))
    seen: set[int] = set()
    try:
        with torch.no_grad():
            for param, _ in changed:
                if id(param) not in seen:
                    seen.add(id(param))
                    param.data = param.data.to(dtype)
            for module, name, _ in owners:
                module._buffers[name] = module._buffers[name].to(dtype)
        yield
    finally:
        with torch.no_grad():
            restored: set[int] = set()
            for param, original in changed:
                if id(param) not in restored:
                    restored.add(id(param))
                    param.data = param.data.to(original)
            for module, name, original in owners:
                module._buffers[name] = module._buffers[name].to(original)


@contextlib.contextmanager
def preserved_rng(device: torch.device) -> Iterator[None]:
    """Leave torch's (CPU and ``device``'s), numpy's and Python's RNG states as they were.

    A measurement inside a seeded run (a proxy that draws random inputs, say) must not shift
    the data order or the augmentation of the training that follows.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> with preserved_rng(torch.device("cpu")):
        ...     _ = torch.rand(3)
        >>> bool(torch.equal(torch.rand(1), torch.manual_seed(0) and torch.rand(1)))
        True
    """
    devices = [device] if device.type == "cuda" else []
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def _narrower(tensor: Tensor, bits: int) -> bool:
    return tensor.is_floating_point() and torch.finfo(tensor.dtype).bits < bits


def _device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def _autocast_off(device: torch.device) -> Iterator[None]:
    """No autocast inside a measurement: the kernel is computed in the chosen dtype."""
    if device.type not in ("cpu", "cuda", "xpu", "mps"):
        yield
        return
    with torch.autocast(device.type, enabled=False):
        yield
