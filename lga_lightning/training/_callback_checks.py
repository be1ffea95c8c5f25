"""Argument and trainer checks of :class:`~lga_lightning.NTKMetrics`, each naming the fix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from lga_lightning.core.probe import too_small_message

DEFAULT_EPOCHS = (0, 1)


def same_samples(given: tuple[Tensor, Tensor], probes: Sequence[tuple[Tensor, Tensor]]) -> bool:
    """Whether given ``(x, y)`` tensors are the samples of the stored probe batches."""
    x = torch.cat([xj for xj, _ in probes])
    y = torch.cat([yj for _, yj in probes])
    gx, gy = given[0].detach().cpu(), given[1].detach().cpu().long()
    return gx.shape == x.shape and torch.equal(gy, y) and torch.equal(gx.to(x.dtype), x)


def check_int(name: str, value: Any, minimum: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"`{name}` must be an integer, got {value!r}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_schedule(
    epochs: Sequence[int] | None, every_n_epochs: int | None
) -> tuple[list[int] | None, int | None]:
    if epochs is not None and every_n_epochs is not None:
        raise ValueError(
            f"pass either `epochs` (a list such as [0, 1, 3]) or `every_n_epochs`, not both; "
            f"got epochs={epochs!r} and every_n_epochs={every_n_epochs!r}."
        )
    if every_n_epochs is not None:
        return None, check_int("every_n_epochs", every_n_epochs, minimum=1)
    if epochs is None:
        return list(DEFAULT_EPOCHS), None
    if isinstance(epochs, (str, bytes)) or not isinstance(epochs, Iterable):
        raise ValueError(
            f"`epochs` must be a list of non-negative integers such as [0, 1, 3], got {epochs!r}."
        )
    values = list(epochs)
    bad = [
        e for e in values if isinstance(e, bool) or not isinstance(e, (int, np.integer)) or e < 0
    ]
    if bad or not values:
        raise ValueError(f"`epochs` must be non-negative integers, got {values!r}.")
    return sorted({int(e) for e in values}), None


def check_probe(
    probe: tuple[Tensor, Tensor] | Dataset | None, probe_size: int, num_probes: int = 1
) -> tuple[Tensor, Tensor] | Dataset | None:
    if probe is None:
        return None
    if isinstance(probe, (tuple, list)):
        if len(probe) != 2 or not all(isinstance(t, Tensor) for t in probe):
            raise ValueError(
                "`probe` must be a tuple of tensors (x, y) or a map-style dataset, got a "
                f"{type(probe).__name__} of {[type(t).__name__ for t in probe]}."
            )
        x, y = probe
        if y.dim() != 1 or y.is_floating_point() or y.is_complex():
            raise ValueError(
                f"`probe` labels must be a 1-D integer tensor, got dtype {y.dtype} and shape "
                f"{tuple(y.shape)}."
            )
        if x.dim() == 0 or x.shape[0] != y.shape[0] or y.shape[0] < 2:
            raise ValueError(
                "`probe=(x, y)` needs at least 2 samples and one label per sample, got x of shape "
                f"{tuple(x.shape)} and y of shape {tuple(y.shape)}."
            )
        if num_probes > 1 and (len(y) % num_probes or len(y) // num_probes < 2):
            raise ValueError(
                f"`probe=(x, y)` with `num_probes={num_probes}` is split into {num_probes} equal "
                f"probe batches of at least 2 samples, but it holds {len(y)} samples; pass a "
                f"multiple of {num_probes} samples (at least {2 * num_probes})."
            )
        return x.detach().cpu().clone(), y.detach().cpu().clone().long()
    if isinstance(probe, IterableDataset) or not (
        hasattr(probe, "__len__") and hasattr(probe, "__getitem__")
    ):
        raise ValueError(
            f"`probe` must be (x, y) tensors or a map-style dataset (with __len__ and "
            f"__getitem__), got {type(probe).__name__}."
        )
    if num_probes > 1 and len(probe) < num_probes * probe_size:
        raise ValueError(
            f"the `probe` dataset: {too_small_message(num_probes, probe_size, len(probe))}"
        )
    if len(probe) < probe_size:
        raise ValueError(
            f"the `probe` dataset holds {len(probe)} samples, fewer than "
            f"`probe_size={probe_size}`; lower `probe_size` or pass more samples."
        )
    return probe


def check_strategy(trainer: pl.Trainer) -> None:
    """Refuse strategies that shard the parameters (FSDP, DeepSpeed, model parallelism).

    The kernel needs every parameter on the rank that measures; DDP keeps a full copy per rank.
    """
    from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy

    sharding = (DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy)
    name = type(trainer.strategy).__name__
    if isinstance(trainer.strategy, sharding) or any(
        s in name for s in ("FSDP", "DeepSpeed", "ModelParallel")
    ):
        raise MisconfigurationException(
            f"NTKMetrics needs every rank to hold the full model, but {name} shards the "
            "parameters; use a DDP strategy (e.g. strategy='ddp') or a single device."
        )


def train_dataset(trainer: pl.Trainer) -> Dataset:
    loaders = trainer.train_dataloader
    flat = flatten_loaders(loaders)
    if len(flat) != 1:
        raise ValueError(
            f"NTKMetrics draws its probe from the training data, but found {len(flat)} training "
            "dataloaders; pass `probe=(x, y)` tensors or a dataset to choose."
        )
    loader = flat[0]
    dataset = loader.dataset if isinstance(loader, DataLoader) else None
    if (
        dataset is None
        or isinstance(dataset, IterableDataset)
        or not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__"))
    ):
        raise ValueError(
            "NTKMetrics reads its probe from the training dataset by index, but the training "
            f"data is {type(dataset if dataset is not None else loader).__name__}, not a "
            "map-style dataset; pass `probe=(x, y)` tensors or a map-style dataset."
        )
    return dataset


def flatten_loaders(loaders: Any) -> list[Any]:
    if loaders is None:
        return []
    if isinstance(loaders, Mapping):
        return [x for v in loaders.values() for x in flatten_loaders(v)]
    if isinstance(loaders, (list, tuple)):
        return [x for v in loaders for x in flatten_loaders(v)]
    return [loaders]
