"""Choosing a fixed, class-balanced probe batch.

The NTK metrics are computed on one probe batch that stays fixed for a whole run (or a whole
search), so that measurements at different epochs, and of different architectures, are comparable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

BatchUnpack = Callable[[Any], tuple[Tensor, Tensor]]


def default_batch_unpack(batch: Any) -> tuple[Tensor, Tensor]:
    """Split a batch or a dataset item into ``(inputs, labels)``.

    Accepts ``(x, y, ...)`` tuples/lists and dicts with keys ``x``/``input``/``inputs``/``image``
    and ``y``/``label``/``labels``/``target``/``targets``.

    Raises:
        ValueError: when no labels can be found; pass ``batch_unpack`` to say where they are.

    Example:
        >>> x, y = default_batch_unpack((torch.zeros(2, 3), torch.tensor([0, 1])))
        >>> tuple(x.shape), y.tolist()
        ((2, 3), [0, 1])
    """
    if isinstance(batch, dict):
        x = _first_key(batch, ("x", "input", "inputs", "image", "images"))
        y = _first_key(batch, ("y", "label", "labels", "target", "targets"))
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


def _first_key(batch: dict, keys: Sequence[str]) -> Any:
    for key in keys:
        if key in batch:
            return batch[key]
    return None


def _as_tensor(y: Any) -> Tensor:
    return y if isinstance(y, Tensor) else torch.as_tensor(y)


def class_balanced_indices(labels: Sequence[int] | Tensor | np.ndarray, size: int, seed: int = 0):
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
    labels: Sequence[int] | None = None,
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
