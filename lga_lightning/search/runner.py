"""One candidate in training, and the files that let it continue after a crash or a promotion.

:class:`CandidateRun` is the candidate a process trains (network, optimizer, counters of the
current epoch); :class:`StateFiles` owns ``<results_dir>/states/``: the saved weights, optimizer
and scheduler of candidates that a later job continues (successive halving) or that a rerun
resumes.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import math
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.utils.data import DistributedSampler

from lga_lightning.search.strategies import Job
from lga_lightning.utils.files import named


@dataclass
class CandidateRun:
    """The candidate this process trains, and what its current epoch has counted so far."""

    job: Job
    model: nn.Module
    optimizer: Optimizer
    lr_scheduler: Any
    epoch: int = 0
    steps: int = 0
    diverged: bool = False
    last_loss: float = math.nan
    loss_sum: Tensor | float = 0.0
    count: int = 0
    curve: list[Tensor] = field(default_factory=list)
    val_correct: Tensor | int = 0
    val_total: int = 0
    val_ran: bool = False
    since_record: float = 0.0
    epoch_start: float = 0.0
    initial: dict[str, Any] | None = None
    """The record at initialisation (epoch 0), waiting to be gathered with the first epoch's."""


class StateFiles:
    """Saved candidate states, ``cand<ccccc>-ep<eeee>.pt``, one (the latest) per candidate.

    Args:
        directory: the folder of the state files (created on the first save).

    Example:
        >>> import tempfile
        >>> files = StateFiles(tempfile.mkdtemp())
        >>> files.saved_epochs(0), files.path(3, 2)[-19:]
        ([], 'cand00003-ep0002.pt')
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def path(self, candidate: int, epoch: int) -> str:
        """The file of ``candidate``'s state after ``epoch`` epochs."""
        return os.path.join(self.directory, f"cand{candidate:05d}-ep{epoch:04d}.pt")

    def save(self, run: CandidateRun) -> None:
        """Write ``run``'s state atomically; delete its older states."""
        os.makedirs(self.directory, exist_ok=True)
        path = self.path(run.job.candidate, run.epoch)
        state = {
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.lr_scheduler.state_dict() if run.lr_scheduler is not None else {},
            "epoch": run.epoch,
            "steps": run.steps,
        }
        try:
            torch.save(state, path + ".tmp")
            os.replace(path + ".tmp", path)
        except (OSError, RuntimeError) as err:
            with contextlib.suppress(OSError):
                os.remove(path + ".tmp")
            if isinstance(err, OSError):
                raise named(err, path) from err
            if shutil.disk_usage(self.directory).free < 16 * 2**20:  # torch's writer says only
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path) from err
            raise
        for epoch in self.saved_epochs(run.job.candidate):
            if epoch < run.epoch:
                os.remove(self.path(run.job.candidate, epoch))

    def saved_epochs(self, candidate: int) -> list[int]:
        """Epochs after which a state of ``candidate`` is saved, ascending."""
        prefix = f"cand{candidate:05d}-ep"
        if not os.path.isdir(self.directory):
            return []
        return sorted(
            int(name[len(prefix) : -3])
            for name in os.listdir(self.directory)
            if name.startswith(prefix) and name.endswith(".pt")
        )

    def restore(self, run: CandidateRun, before: int, device: torch.device | str) -> None:
        """Continue ``run`` from its latest state saved before epoch ``before``, if any."""
        usable = [e for e in self.saved_epochs(run.job.candidate) if e < before]
        if not usable:
            return
        path = self.path(run.job.candidate, usable[-1])
        try:  # weights_only: tensors and plain data, nothing that runs
            state = torch.load(path, map_location=device, weights_only=True)
            run.model.load_state_dict(state["model"])
            run.optimizer.load_state_dict(state["optimizer"])
            if run.lr_scheduler is not None and state["scheduler"]:
                run.lr_scheduler.load_state_dict(state["scheduler"])
            run.epoch, run.steps = int(state["epoch"]), int(state["steps"])
        except Exception as err:  # a damaged or foreign file fails in many ways
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise ValueError(
                f"refused the candidate state {path} ({type(err).__name__}: {first[:200]}); "
                "nothing in it was run. Delete it to train that candidate afresh from its "
                "previous state."
            ) from None

    def clear(self) -> None:
        """Delete every state file (the search is over)."""
        if os.path.isdir(self.directory):
            for name in os.listdir(self.directory):
                os.remove(os.path.join(self.directory, name))


def build_candidate(
    space: Any, arch: Any, build_kwargs: dict[str, Any], num_classes: int | None, datamodule: Any
) -> nn.Module:
    """Build ``arch`` with the data's number of classes and input channels.

    Raises:
        ValueError: the number of classes is known neither from ``num_classes`` nor the data.
    """
    kwargs = dict(build_kwargs)
    num_classes = num_classes or getattr(datamodule, "num_classes", None)
    if num_classes is None:
        raise ValueError(
            "LGASearch needs the number of classes: pass `num_classes=` or a datamodule "
            "with a `num_classes` attribute."
        )
    shape = getattr(datamodule, "input_shape", None)
    if shape is not None and "in_channels" not in kwargs and _accepts(space.build, "in_channels"):
        kwargs["in_channels"] = int(shape[0])
    return space.build(arch, num_classes=int(num_classes), **kwargs)


def is_sharded(loaders: Any) -> bool:
    """Whether a training dataloader shards the data across processes (a DistributedSampler)."""
    items = (
        loaders.values()
        if isinstance(loaders, Mapping)
        else (loaders if isinstance(loaders, (list, tuple)) else [loaders])
    )
    for loader in items:
        sampler = getattr(loader, "sampler", None)
        batch_sampler = getattr(loader, "batch_sampler", None)
        inner = getattr(batch_sampler, "sampler", None)
        if isinstance(sampler, DistributedSampler) or isinstance(inner, DistributedSampler):
            return True
    return False


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
