"""Choosing a fixed, class-balanced probe batch.

The NTK metrics are computed on one probe batch that stays fixed for a whole run (or a whole
search), so that measurements at different epochs, and of different architectures, are comparable.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence, Sized
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, IterableDataset, Subset, TensorDataset

BatchUnpack = Callable[[Any], tuple[Tensor, Tensor]]
Labels = Sequence[int] | Tensor | np.ndarray
"""One integer class label per sample: a sequence, a 1-D tensor or a 1-D array."""

DEFAULT_PROBE_SIZE = 64
"""Probe samples every surface draws by default (the paper uses 256: ``probe_size=256``; the
train-mode kernel costs ``probe_size`` full-batch backward passes: 256 take minutes on a CPU)."""

DEFAULT_PROBE_SEED = 42
"""Seed of every surface's default probe draw (the paper's data seed)."""


def to_model(x: Tensor, model: torch.nn.Module) -> Tensor:
    """``x`` on ``model``'s device; floating inputs also in the dtype of its parameters.

    Example:
        >>> net = torch.nn.Linear(3, 1).double()
        >>> ids = torch.zeros(2, dtype=torch.long)
        >>> to_model(torch.zeros(2, 3), net).dtype, to_model(ids, net).dtype
        (torch.float64, torch.int64)
    """
    for p in model.parameters():
        if x.is_floating_point() and p.is_floating_point():
            return x.to(device=p.device, dtype=p.dtype)
        return x.to(p.device)
    return x


INPUT_KEYS = ("x", "input", "inputs", "image", "images", "pixel_values", "input_ids")
"""Keys of a batch dict that hold the inputs, in the order they are looked for (Hugging Face
style ``pixel_values`` / ``input_ids`` included)."""

LABEL_KEYS = ("y", "label", "labels", "target", "targets")
"""Keys of a batch dict that hold the labels, in the order they are looked for."""


def default_batch_unpack(batch: Any) -> tuple[Tensor, Tensor]:
    """Split a batch or a dataset item into ``(inputs, labels)``.

    Accepts ``(x, y, ...)`` tuples/lists and dicts with one key of :data:`INPUT_KEYS` and one of
    :data:`LABEL_KEYS` (e.g. ``{"pixel_values": ..., "labels": ...}``).

    Raises:
        ValueError: when no labels can be found; pass ``batch_unpack`` to say where they are.

    Example:
        >>> x, y = default_batch_unpack((torch.zeros(2, 3), torch.tensor([0, 1])))
        >>> tuple(x.shape), y.tolist()
        ((2, 3), [0, 1])
    """
    if isinstance(batch, dict):
        x = _first_key(batch, INPUT_KEYS)
        y = _first_key(batch, LABEL_KEYS)
        if x is not None and y is not None:
            return x, _as_tensor(y)
        raise ValueError(
            f"cannot find inputs and labels in a batch dict with keys {sorted(batch)}; pass "
            "`batch_unpack=lambda batch: (batch['<inputs key>'], batch['<labels key>'])`."
        )
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], _as_tensor(batch[1])
    raise ValueError(
        f"the data yields {type(batch).__name__} items without labels; the NTK probe needs "
        "(inputs, labels). Pass `batch_unpack=` a function mapping one batch to (inputs, labels)."
    )


def _first_key(batch: dict[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if key in batch:
            return batch[key]
    return None


def _as_tensor(y: Any) -> Tensor:
    return y if isinstance(y, Tensor) else torch.as_tensor(y)


def class_balanced_indices(labels: Labels, size: int, seed: int = 0) -> list[int]:
    """Pick ``size`` indices with classes as equally represented as possible.

    Classes are visited in a seeded random order; each class contributes ``size // k`` samples
    and the remainder goes to the first classes of that order (or, when a class runs out, to the
    others). The returned indices are sorted by class round-robin so any prefix is balanced too.

    Args:
        labels: one integer label per sample.
        size: how many indices to pick.
        seed: seed of the choice.

    Returns:
        A list of ``size`` distinct indices into ``labels``.

    Raises:
        ValueError: when ``size`` is not positive or exceeds the number of samples.

    Example:
        >>> idx = class_balanced_indices([0, 0, 0, 1, 1, 1, 2, 2, 2], size=6, seed=0)
        >>> sorted(np.bincount(np.asarray([0, 0, 0, 1, 1, 1, 2, 2, 2])[idx]).tolist())
        [2, 2, 2]
    """
    labels = np.asarray(torch.as_tensor(labels).cpu().numpy()).reshape(-1)
    if size <= 0:
        raise ValueError(f"`probe_size` must be a positive integer, got {size}.")
    if size > len(labels):
        raise ValueError(
            f"the data holds {len(labels)} samples, fewer than `probe_size={size}`; "
            f"lower `probe_size` to at most {len(labels)} or provide more data."
        )
    rng = np.random.default_rng(seed)
    classes = rng.permutation(np.unique(labels))
    pools = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in classes}
    chosen: list[int] = []
    while len(chosen) < size:
        for c in classes:
            if pools[c] and len(chosen) < size:
                chosen.append(int(pools[c].pop()))
    return chosen


def probe_from_dataset(
    dataset: Any,
    size: int,
    seed: int = 0,
    batch_unpack: BatchUnpack | None = None,
    labels: Labels | None = None,
) -> tuple[Tensor, Tensor]:
    """Draw a fixed, class-balanced probe batch ``(x, y)`` from a map-style dataset.

    Args:
        dataset: indexable dataset whose items unpack to ``(input, label)``.
        size: probe batch size (the paper uses 256).
        seed: seed of the choice.
        batch_unpack: maps one item to ``(input, label)``; default handles tuples and dicts.
        labels: labels of all items, when known, to avoid reading every item once.

    Returns:
        ``(x, y)`` with ``x`` stacked along a new first dimension and ``y`` a long tensor.

    Example:
        >>> data = [(torch.full((2,), float(i)), i % 2) for i in range(10)]
        >>> x, y = probe_from_dataset(data, size=4, seed=0)
        >>> x.shape, sorted(y.tolist())
        (torch.Size([4, 2]), [0, 0, 1, 1])
    """
    unpack = batch_unpack or default_batch_unpack
    n = len(dataset)
    if n == 0:
        raise ValueError("the dataset is empty: the NTK probe needs at least `probe_size` samples.")
    if labels is None:
        labels = [_class_label(unpack(dataset[i])[1]) for i in range(n)]
    idx = class_balanced_indices(labels, size, seed)
    items = [unpack(dataset[i]) for i in idx]
    x = torch.stack([torch.as_tensor(item[0]) for item in items])
    y = torch.as_tensor([_class_label(item[1]) for item in items], dtype=torch.long)
    return x, y


def _class_label(label: Any) -> int:
    """One item's label as an ``int``; one-hot or soft labels get an error naming the fix."""
    value = torch.as_tensor(label)
    if value.numel() != 1:
        raise ValueError(
            f"the NTK probe needs one integer class label per sample, got a label of shape "
            f"{tuple(value.shape)} (one-hot or soft labels?); pass `batch_unpack=lambda item: "
            "(item[0], item[1].argmax())` or another function returning the class index."
        )
    return int(value)


Probes = list[tuple[Tensor, Tensor]]
"""One or several probe batches ``(x, y)``, on the CPU."""


def draw_probe(
    source: Any,
    size: int,
    seed: int = 0,
    num_probes: int = 1,
    batch_unpack: BatchUnpack | None = None,
) -> Probes:
    """Draw ``num_probes`` disjoint, class-balanced probe batches of ``size`` samples.

    The one way every surface (callback, search, study) picks its probe. The draw runs with the
    torch, numpy and ``random`` generators seeded by ``seed`` and restored afterwards, so random
    transforms applied while reading samples neither depend on nor shift the caller's RNG.

    Args:
        source: ``(x, y)`` tensors used as they are (split into ``num_probes`` equal consecutive
            parts), an object with ``probe_batch(size=, seed=)`` (the project's datamodules), or
            a map-style dataset whose items unpack to ``(input, label)``. Labels are the ones the
            items carry (a ``target_transform`` is honoured).
        size: samples per probe batch (the paper uses 256). Ignored for ``(x, y)`` tensors.
        seed: seed of the choice and of random transforms during it.
        num_probes: number of disjoint probe batches; ``num_probes * size`` samples are drawn in
            one class-balanced draw and split in draw order.
        batch_unpack: maps one item (or the datamodule's probe batch) to ``(inputs, labels)``.

    Returns:
        A list of ``num_probes`` pairs ``(x, y)``: CPU tensors, ``y`` of dtype long.

    Raises:
        ValueError: when the source holds too few samples, naming the fix.

    Example:
        >>> data = [(torch.full((2,), float(i)), i % 2) for i in range(12)]
        >>> probes = draw_probe(data, size=4, seed=0, num_probes=2)
        >>> [sorted(y.tolist()) for _, y in probes]
        [[0, 0, 1, 1], [0, 0, 1, 1]]
    """
    if isinstance(source, (tuple, list)) and len(source) == 2 and isinstance(source[0], Tensor):
        x, y = source
    else:
        total = size * num_probes
        with isolated_rng(seed):
            x, y = _draw(source, total, seed, num_probes, size, batch_unpack)
        if len(y) != total:
            raise ValueError(too_small_message(num_probes, size, len(y)))
    x, y = x.detach().cpu(), torch.as_tensor(y).detach().cpu().long()
    # Clones, not views: each probe batch is saved on its own in checkpoints.
    return [
        (xj.clone(), yj.clone())
        for xj, yj in zip(x.chunk(num_probes), y.chunk(num_probes), strict=True)
    ]


def _draw(
    source: Any, total: int, seed: int, num_probes: int, size: int, batch_unpack: BatchUnpack | None
) -> tuple[Tensor, Tensor]:
    probe_batch = getattr(source, "probe_batch", None)
    if callable(probe_batch):
        unpack = batch_unpack or default_batch_unpack
        try:
            x, y = unpack(probe_batch(size=total, seed=seed))
        except ValueError as err:
            if num_probes == 1:
                raise
            raise ValueError(f"{too_small_message(num_probes, size, None)} ({err})") from err
        return torch.as_tensor(x), torch.as_tensor(y).long()
    if isinstance(source, IterableDataset) or not (
        hasattr(source, "__len__") and hasattr(source, "__getitem__")
    ):
        raise ValueError(
            "the probe is read from a dataset by index, but got "
            f"{type(source).__name__}, not a map-style dataset; pass `probe=(x, y)` tensors or "
            "a map-style dataset."
        )
    if num_probes > 1 and len(source) < total:
        raise ValueError(too_small_message(num_probes, size, len(source)))
    labels = known_labels(source) if batch_unpack is None else None
    return probe_from_dataset(source, total, seed, batch_unpack, labels)


def too_small_message(num_probes: int, probe_size: int, available: int | None) -> str:
    """The error for data too small for ``num_probes`` disjoint probe batches.

    Example:
        >>> too_small_message(3, 16, 40)[:72]
        '`num_probes=3` disjoint probe batches of `probe_size=16` need 3 x 16 = 4'
    """
    holds = "" if available is None else f", but the data holds {available}"
    return (
        f"`num_probes={num_probes}` disjoint probe batches of `probe_size={probe_size}` need "
        f"{num_probes} x {probe_size} = {num_probes * probe_size} samples{holds}; lower "
        "`num_probes` or `probe_size`, or provide more data."
    )


def known_labels(dataset: Dataset[Any]) -> Labels | None:
    """Labels of every item without reading the items, for the common dataset types.

    ``None`` when they cannot be known so (the items are then read), e.g. when a
    ``target_transform`` may change the labels the items carry.
    """
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) >= 2:
        labels = dataset.tensors[1]
        return labels if labels.dim() == 1 and not labels.is_floating_point() else None
    if isinstance(dataset, Subset):
        parent = known_labels(dataset.dataset)
        return None if parent is None else [int(parent[i]) for i in dataset.indices]
    targets = getattr(dataset, "targets", None)
    if getattr(dataset, "target_transform", None) is not None:
        return None
    if (
        isinstance(targets, (list, Tensor, np.ndarray))
        and isinstance(dataset, Sized)
        and len(targets) == len(dataset)
    ):
        return targets
    return None


@contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Seed torch, numpy and random inside the block; restore all three afterwards.

    Example:
        >>> before = torch.rand(1); _ = torch.manual_seed(0); a = torch.rand(1)
        >>> _ = torch.manual_seed(0)
        >>> with isolated_rng(5):
        ...     _ = torch.rand(3)
        >>> bool(torch.rand(1) == a)
        True
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            random.seed(seed)
            np.random.seed(seed % 2**32)
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
