"""What every image datamodule of the package shares: splits, loaders, the probe batch."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from sklearn.model_selection import train_test_split
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, RandomSampler, Subset

from lga_lightning.core.probe import probe_from_dataset
from lga_lightning.data.augment import CropFlip, Normalize
from lga_lightning.data.dataset import ImageTensorDataset


@dataclass
class ImageArrays:
    """Images of a dataset as loaded from disk: ``(N, C, H, W)`` tensors and long labels.

    ``test_x``/``test_y`` are ``None`` when the source has no test set.
    """

    train_x: Tensor
    train_y: Tensor
    test_x: Tensor | None = None
    test_y: Tensor | None = None


def split_indices(
    labels: Tensor | np.ndarray, val_size: float | int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/validation split of ``range(len(labels))``, stratified by class when possible.

    Args:
        labels: one label per sample.
        val_size: a fraction in ``[0, 1)`` or a number of samples; ``0`` means no validation set.
        seed: seed of the split.

    Returns:
        ``(train_indices, val_indices)``, each sorted.

    Example:
        >>> tr, va = split_indices(np.array([0, 0, 0, 0, 1, 1, 1, 1]), val_size=0.5, seed=0)
        >>> len(tr), len(va), sorted(np.array([0, 0, 0, 0, 1, 1, 1, 1])[va].tolist())
        (4, 4, [0, 0, 1, 1])
    """
    labels = np.asarray(labels)
    n = len(labels)
    if isinstance(val_size, float) and not 0.0 <= val_size < 1.0:
        raise ValueError(f"`val_size` as a fraction must be in [0, 1), got {val_size}.")
    if isinstance(val_size, int) and not 0 <= val_size < n:
        raise ValueError(f"`val_size` must be in [0, {n}) samples, got {val_size}.")
    if val_size == 0:
        return np.arange(n), np.arange(0)
    indices = np.arange(n)
    try:
        train, val = train_test_split(
            indices, test_size=val_size, random_state=seed, stratify=labels
        )
    except ValueError:  # a class too small to stratify: fall back to a plain seeded split
        train, val = train_test_split(indices, test_size=val_size, random_state=seed)
    return np.sort(train), np.sort(val)


def eval_order(n: int, seed: int, stream: int) -> Tensor:
    """The fixed order of an evaluation split: a permutation of ``range(n)`` seeded by ``seed``.

    Evaluation batches must not follow the file's order: on class-sorted data (the shipped
    CIFAR-10 subset, any ImageFolder export) a batch in file order holds one or two classes,
    and a network that normalises with batch statistics in eval mode (the paper's NB201 cells,
    ``track_running_stats=False``) then scores far below its accuracy on shuffled batches.
    ``stream`` separates the splits (1: validation, 2: test).

    Example:
        >>> order = eval_order(6, seed=0, stream=1)
        >>> sorted(order.tolist()), order.equal(eval_order(6, seed=0, stream=1))
        ([0, 1, 2, 3, 4, 5], True)
    """
    rng = np.random.default_rng([seed, stream])
    return torch.as_tensor(rng.permutation(n), dtype=torch.long)


class ImageDataModule(LightningDataModule):
    """Base of the image datamodules: seeded split, augmentation, normalisation, probe batch.

    Subclasses implement :meth:`load_arrays` (read the files, return :class:`ImageArrays`) and
    may set ``mean``/``std`` class attributes (per-channel constants on the ``[0, 1]`` scale);
    without them the statistics of the training split are used.

    Validation and test loaders yield their split in a seeded permutation fixed once
    (:func:`eval_order`, seeded by ``seed``), so their batches are class-mixed on class-sorted
    files and a batch-statistics network is scored as on shuffled data; the datasets themselves
    (``val_set``, ``test_set``) keep the file's order.

    Args:
        batch_size: batch size of every dataloader.
        num_workers: dataloader worker processes.
        val_size: fraction (``float``) or number (``int``) of training samples held out for
            validation, stratified by class; ``0`` disables validation.
        seed: seed of the train/validation split.
        augment: random crop with zero padding + horizontal flip on the training split.
        crop_padding: padding of the random crop; default ``H // 8`` (4 at 32x32, 2 at 16x16).
        normalize: per-channel normalisation with ``mean``/``std``.
        mean: per-channel means overriding the dataset's constants / training statistics.
        std: per-channel standard deviations, likewise.
        pin_memory: passed to the dataloaders.
        train_samples_per_epoch: draw this many training samples per epoch (seeded by the
            global RNG, like ``shuffle=True``; every pass over the split is a fresh permutation,
            so a number above the split's size repeats each image as evenly as possible);
            default one pass over the split. For example ``49 * 1024`` on the 9,000 training
            images of the shipped CIFAR-10 subset gives one CIFAR-10-sized epoch of 49 steps
            at batch size 1,024.
    """

    _repr_omit_at_default = {"train_samples_per_epoch": None}
    """Arguments newer than stored results: left out of ``repr`` at their default, so the
    stores written before them still match."""

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __init__(
        self,
        batch_size: int = 256,
        num_workers: int = 0,
        val_size: float | int = 0.1,
        seed: int = 42,
        augment: bool = False,
        crop_padding: int | None = None,
        normalize: bool = True,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        pin_memory: bool = False,
        train_samples_per_epoch: int | None = None,
    ) -> None:
        super().__init__()
        if batch_size <= 0:
            raise ValueError(f"`batch_size` must be a positive integer, got {batch_size}.")
        if num_workers < 0:
            raise ValueError(f"`num_workers` must be >= 0, got {num_workers}.")
        if train_samples_per_epoch is not None and train_samples_per_epoch <= 0:
            raise ValueError(
                "`train_samples_per_epoch` must be a positive integer (or None for one pass "
                f"over the training split), got {train_samples_per_epoch}."
            )
        if (mean is None) != (std is None):
            raise ValueError("pass both `mean` and `std`, or neither.")
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_size = val_size
        self.seed = seed
        self.augment = augment
        self.crop_padding = crop_padding
        self.normalize = normalize
        if mean is not None:
            self.mean, self.std = tuple(mean), tuple(std)
        self._given_stats = (self.mean, self.std)
        self.pin_memory = pin_memory
        self.train_samples_per_epoch = train_samples_per_epoch
        self._arrays: ImageArrays | None = None
        self._ready = False

    # ------------------------------------------------------------------ for subclasses
    def load_arrays(self) -> ImageArrays:
        """Read the dataset; raise a clear error naming the expected files when they are bad."""
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        """Number of classes (the classifier's output size)."""
        raise NotImplementedError

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape ``(C, H, W)`` of one input image."""
        return tuple(self.arrays.train_x.shape[1:])  # type: ignore[return-value]

    # ------------------------------------------------------------------ data
    @property
    def arrays(self) -> ImageArrays:
        """The loaded images (read once, on first use)."""
        if self._arrays is None:
            self._arrays = self.load_arrays()
        return self._arrays

    def setup(self, stage: str | None = None) -> None:
        """Split the training data and build the datasets (idempotent)."""
        if self._ready:
            return
        arrays = self.arrays
        train_idx, val_idx = split_indices(arrays.train_y, self.val_size, self.seed)
        train_idx_t, val_idx_t = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
        train_x, train_y = arrays.train_x[train_idx_t], arrays.train_y[train_idx_t]
        norm = self._normalizer(train_x)
        aug = None
        if self.augment:
            padding = self.crop_padding
            padding = max(1, train_x.shape[-2] // 8) if padding is None else padding
            aug = CropFlip(padding)
        self.train_set = ImageTensorDataset(train_x, train_y, aug, norm)
        self.probe_set = ImageTensorDataset(train_x, train_y, None, norm)
        self.val_set = ImageTensorDataset(
            arrays.train_x[val_idx_t], arrays.train_y[val_idx_t], None, norm
        )
        self.test_set = (
            ImageTensorDataset(arrays.test_x, arrays.test_y, None, norm)
            if arrays.test_x is not None and arrays.test_y is not None
            else None
        )
        self.val_order = eval_order(len(self.val_set), self.seed, stream=1)
        self.test_order = (
            None if self.test_set is None else eval_order(len(self.test_set), self.seed, stream=2)
        )
        self._ready = True

    def _normalizer(self, train_x: Tensor) -> Normalize | None:
        if not self.normalize:
            return None
        if self.mean is None or self.std is None:
            x = train_x.double()
            if train_x.dtype == torch.uint8:
                x = x / 255.0
            dims = (0, 2, 3)
            mean, std = x.mean(dim=dims), x.std(dim=dims).clamp_min(1e-6)
            self.mean, self.std = tuple(mean.tolist()), tuple(std.tolist())
        if len(self.mean) != train_x.shape[1]:
            raise ValueError(
                f"`mean`/`std` have {len(self.mean)} channels, the images {train_x.shape[1]}."
            )
        return Normalize(self.mean, self.std)

    # ------------------------------------------------------------------ loaders
    def _loader(
        self, dataset: Dataset, shuffle: bool, num_samples: int | None = None
    ) -> DataLoader:
        sampler = None
        if num_samples is not None:  # full permutations back to back, then part of one more
            sampler, shuffle = RandomSampler(dataset, num_samples=num_samples), False
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled, augmented (if ``augment``) training split; ``train_samples_per_epoch`` long."""
        self.setup()
        return self._loader(self.train_set, shuffle=True, num_samples=self.train_samples_per_epoch)

    def val_dataloader(self) -> DataLoader | list:
        """Held-out part of the training data; an empty list when ``val_size=0``.

        Its batches follow :attr:`val_order`, a seeded permutation of the split fixed once in
        :meth:`setup` (see :func:`eval_order`): every epoch sees the same class-mixed batches,
        whatever the order of the file.
        """
        self.setup()
        if not len(self.val_set):
            return []
        return self._loader(Subset(self.val_set, self.val_order.tolist()), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """The test set in :attr:`test_order`, a seeded permutation fixed once (class-mixed)."""
        self.setup()
        if self.test_set is None:
            raise RuntimeError(f"{type(self).__name__}: this data source has no test set.")
        return self._loader(Subset(self.test_set, self.test_order.tolist()), shuffle=False)

    def test_probe(self, size: int = 256, seed: int = 42) -> tuple[Tensor, Tensor]:
        """A fixed, class-balanced batch ``(x, y)`` of test images (the after-training probe).

        The paper's after-training probe is "the first test batch" of a shuffled test set; on
        class-sorted files the first ``size`` images have one class, so the probe is drawn
        like :meth:`probe_batch`, class-balanced and deterministic in ``seed``.
        """
        self.setup()
        if self.test_set is None:
            raise RuntimeError(f"{type(self).__name__}: this data source has no test set.")
        return probe_from_dataset(self.test_set, size, seed, labels=self.test_set.labels)

    # ------------------------------------------------------------------ probe
    def probe_batch(self, size: int = 256, seed: int = 42) -> tuple[Tensor, Tensor]:
        """A fixed, class-balanced batch ``(x, y)`` from the training split, for NTK metrics.

        Deterministic in ``seed``, never augmented, normalised like every batch. Class counts
        differ by at most one (see :func:`lga_lightning.core.probe.class_balanced_indices`).
        """
        self.setup()
        return probe_from_dataset(self.probe_set, size, seed, labels=self.probe_set.labels)

    def __repr__(self) -> str:
        """Every argument that changes the data, e.g. ``DigitsDataModule(resize=16, ...)``.

        Results stores use it to tell two data configurations apart, so it names every
        ``__init__`` argument except those that only say where the files are or how fast they
        load (``root``, ``download``, ``num_workers``, ``pin_memory``); ``mean``/``std`` are the
        values passed (or the class constants), not statistics computed from the data.
        ``train_samples_per_epoch`` appears only when set, so stores written before it match.

        Example:
            >>> from lga_lightning.data import DigitsDataModule
            >>> repr(DigitsDataModule(resize=16, channels=3))  # doctest: +ELLIPSIS
            'DigitsDataModule(resize=16, channels=3, test_size=0.2, batch_size=256, ...)'
        """
        skip = {"self", "root", "download", "num_workers", "pin_memory"}
        given = dict(zip(("mean", "std"), self._given_stats, strict=True))
        attrs = vars(self)
        parts = []
        for name, param in inspect.signature(type(self).__init__).parameters.items():
            if name in skip or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            omit = self._repr_omit_at_default
            if name in omit and attrs.get(name) == omit[name]:
                continue
            if name in given:
                value = given[name]
            elif name in attrs:
                value = attrs[name]
            elif "_" + name in attrs:
                value = attrs["_" + name]
            else:
                continue
            parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"
