"""Argument and trainer checks of :class:`~lga_lightning.NTKMetrics`, each naming the fix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from lga_lightning.core.meter import NTKMeter
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
    measure_at: Sequence[int] | None, every_n_epochs: int | None
) -> tuple[list[int] | None, int | None]:
    if measure_at is not None and every_n_epochs is not None:
        raise ValueError(
            f"pass either `measure_at` (a list such as [0, 1, 3]) or `every_n_epochs`, not both; "
            f"got measure_at={measure_at!r} and every_n_epochs={every_n_epochs!r}."
        )
    if every_n_epochs is not None:
        return None, check_int("every_n_epochs", every_n_epochs, minimum=1)
    if measure_at is None:
        return list(DEFAULT_EPOCHS), None
    if isinstance(measure_at, (str, bytes)) or not isinstance(measure_at, Iterable):
        raise ValueError(
            f"`measure_at` must be a list of non-negative integers such as [0, 1, 3], "
            f"got {measure_at!r}."
        )
    values = list(measure_at)
    bad = [
        e for e in values if isinstance(e, bool) or not isinstance(e, (int, np.integer)) or e < 0
    ]
    if bad or not values:
        raise ValueError(f"`measure_at` must be non-negative integers, got {values!r}.")
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


def check_strategy(trainer: pl.Trainer, surface: str = "NTKMetrics") -> None:
    """Refuse strategies that shard the parameters (FSDP, DeepSpeed, model parallelism).

    The kernel needs every parameter on the rank that measures; DDP keeps a full copy per rank.
    ``surface`` names who refuses (``NTKMetrics``, ``LGASearch``) in the one-line error.
    """
    from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy

    sharding = (DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy)
    name = type(trainer.strategy).__name__
    if isinstance(trainer.strategy, sharding) or any(
        s in name for s in ("FSDP", "DeepSpeed", "ModelParallel")
    ):
        raise MisconfigurationException(
            f"{surface} needs every rank to hold the full model, but {name} shards the "
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


def check_flags(**flags: Any) -> None:
    """Refuse a boolean option given as anything but ``True`` or ``False``.

    Example:
        >>> check_flags(plot=True, verbose=False)
        >>> check_flags(plot="yes")
        Traceback (most recent call last):
        ...
        ValueError: `plot` must be True or False, got 'yes'.
    """
    for name, flag in flags.items():
        if not isinstance(flag, bool):
            raise ValueError(f"`{name}` must be True or False, got {flag!r}.")


def check_batch_unpack(batch_unpack: Any) -> Any:
    if batch_unpack is not None and not callable(batch_unpack):
        raise ValueError(
            "`batch_unpack` must be a function mapping one dataset item to (inputs, labels), "
            f"got {type(batch_unpack).__name__}."
        )
    return batch_unpack


def check_prefix(prefix: Any) -> str:
    if not isinstance(prefix, str):
        raise ValueError(f"`prefix` must be a string such as 'ntk/', got {prefix!r}.")
    return prefix


def check_submodule(submodule: Any) -> str | None:
    if submodule is not None and (not isinstance(submodule, str) or not submodule):
        raise ValueError(
            "`submodule` must be the name of a submodule of the LightningModule "
            f"(as in `pl_module.named_modules()`), or None; got {submodule!r}."
        )
    return submodule


def check_state_key(state_key: Any) -> str | None:
    if state_key is not None and (not isinstance(state_key, str) or not state_key):
        raise ValueError(f"`state_key` must be a non-empty string or None, got {state_key!r}.")
    return state_key


def check_meter_alone(meter: NTKMeter, **given: tuple[Any, Any]) -> NTKMeter:
    """With ``meter=``, the meter's own options rule: refuse the keywords that would be ignored.

    ``given`` maps each keyword to ``(value, default)``.
    """
    if not isinstance(meter, NTKMeter):
        raise ValueError(f"`meter` must be an NTKMeter, got {type(meter).__name__}.")
    clashing = [name for name, (value, default) in given.items() if _differs(value, default)]
    if clashing:
        raise ValueError(
            f"NTKMetrics(meter=...) takes the measurement's options from the meter, but "
            f"{clashing} were given too; pass them to NTKMeter(...) instead."
        )
    return meter


def _differs(value: Any, default: Any) -> bool:
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return tuple(value) != tuple(default)
    return value != default


def check_siblings(prefix: str, state_key: str, others: Sequence[Any]) -> None:
    """Refuse other ``NTKMetrics`` callbacks of the same trainer with this prefix or state key."""
    for other in others:
        if other.prefix == prefix:
            raise MisconfigurationException(
                f"two NTKMetrics callbacks log under the same prefix {prefix!r}; give "
                "each its own `prefix` (and `state_key`), e.g. prefix='ntk_eval/'."
            )
        if other.state_key == state_key:
            raise MisconfigurationException(
                f"two NTKMetrics callbacks share the state_key {state_key!r}; give each "
                "its own `state_key` so checkpoints keep both."
            )


def warn_late_epochs(epochs: Sequence[int] | None, max_epochs: int | None) -> None:
    """Warn about scheduled epochs beyond ``max_epochs``: they would never be measured."""
    if epochs is None or max_epochs is None or max_epochs < 0:
        return
    late = [e for e in epochs if e > max_epochs]
    if late:
        rank_zero_warn(
            f"NTKMetrics: `measure_at` {late} lie beyond `max_epochs={max_epochs}` and will "
            f"never be measured; raise `max_epochs` or drop them from `measure_at`.",
            category=UserWarning,
        )
