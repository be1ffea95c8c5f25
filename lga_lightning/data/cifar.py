"""CIFAR-10 and CIFAR-100 from the official python-pickle folders (no torchvision needed)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from lga_lightning.data._files import find_folder, image_batch, load_pickle, require_files
from lga_lightning.data.base import ImageArrays, ImageDataModule


class _CIFARDataModule(ImageDataModule):
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    label_key: str
    url: str
    classes_total: int
    torchvision_name: str

    def __init__(
        self,
        root: str | os.PathLike = "data",
        download: bool = False,
        batch_size: int = 256,
        num_workers: int = 0,
        val_size: float | int = 0.1,
        seed: int = 42,
        augment: bool = True,
        crop_padding: int | None = 4,
        normalize: bool = True,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        pin_memory: bool = False,
        train_samples_per_epoch: int | None = None,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            num_workers=num_workers,
            val_size=val_size,
            seed=seed,
            augment=augment,
            crop_padding=crop_padding,
            normalize=normalize,
            mean=mean,
            std=std,
            pin_memory=pin_memory,
            train_samples_per_epoch=train_samples_per_epoch,
        )
        self.root = Path(root)
        self.download = download

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return self.classes_total

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(3, 32, 32)``."""
        return (3, 32, 32)

    @property
    def data_dir(self) -> Path:
        """The pickle folder: ``root/<folder>``, or ``root`` itself when it holds the files."""
        return find_folder(self.root, self.folder, self.test_file)

    @property
    def _what(self) -> str:
        return type(self).__name__

    @property
    def _how_to_get(self) -> str:
        files = ", ".join([*self.train_files, self.test_file])
        return (
            f"Layout: <root>/{self.folder}/{{{files}}} (the official 'python version' pickles). "
            f"Get them from {self.url} and unpack into <root>, or pass `download=True` "
            "(needs torchvision)."
        )

    def prepare_data(self) -> None:
        """Download through torchvision when ``download=True``; otherwise check the files."""
        names = [*self.train_files, self.test_file]
        if self.download and any(not (self.data_dir / n).is_file() for n in names):
            try:
                import torchvision.datasets as tvd
            except ImportError as err:
                raise ImportError(
                    f"{self._what}(download=True) needs torchvision (`pip install torchvision`). "
                    f"Without it, download {self.url} yourself and unpack it so that "
                    f"{self.root / self.folder} holds {', '.join(names)}."
                ) from err
            getattr(tvd, self.torchvision_name)(str(self.root), train=True, download=True)
        require_files(self.data_dir, names, self._what, self._how_to_get)

    def load_arrays(self) -> ImageArrays:
        """Read and check every pickle of the folder."""
        folder = self.data_dir
        require_files(folder, [*self.train_files, self.test_file], self._what, self._how_to_get)
        train = [self._read(folder / name) for name in self.train_files]
        test_x, test_y = self._read(folder / self.test_file)
        return ImageArrays(
            train_x=torch.from_numpy(np.concatenate([x for x, _ in train])),
            train_y=torch.from_numpy(np.concatenate([y for _, y in train])),
            test_x=torch.from_numpy(test_x),
            test_y=torch.from_numpy(test_y),
        )

    def _read(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        data = load_pickle(path, self._what, self._how_to_get)
        x, y = image_batch(data, path, self.label_key, 3, 32, self._what, self._how_to_get)
        if len(y) and (y.min() < 0 or y.max() >= self.classes_total):
            raise ValueError(
                f"{self._what}: {path} has labels in [{y.min()}, {y.max()}], expected "
                f"0..{self.classes_total - 1}."
            )
        return np.ascontiguousarray(x), y


class CIFAR10DataModule(_CIFARDataModule):
    """CIFAR-10 from the official python-pickle folder ``cifar-10-batches-py``.

    Reads ``data_batch_1`` ... ``data_batch_5`` (training, 50k) and ``test_batch`` (test, 10k)
    with ``pickle`` directly. Training images get the standard augmentation (random crop 32 with
    zero padding 4, horizontal flip) and all images NAS-Bench-201's normalisation. A seeded,
    class-stratified ``val_size`` part of the training set is held out for validation.

    Args:
        root: folder holding ``cifar-10-batches-py`` (or that folder itself).
        download: fetch the archive through torchvision (when installed) if files are missing.
        batch_size, num_workers, val_size, seed, augment, crop_padding, normalize, mean, std,
            pin_memory, train_samples_per_epoch: see
            :class:`~lga_lightning.data.base.ImageDataModule`.

    Example:
        >>> dm = CIFAR10DataModule("/nonexistent")
        >>> dm.num_classes, dm.input_shape
        (10, (3, 32, 32))
        >>> dm.setup()
        Traceback (most recent call last):
            ...
        FileNotFoundError: CIFAR10DataModule: missing data_batch_1, ...
    """

    folder = "cifar-10-batches-py"
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_file = "test_batch"
    label_key = "labels"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    classes_total = 10
    torchvision_name = "CIFAR10"
    # NAS-Bench-201's constants (also used by the paper's code), on the [0, 1] scale
    mean = (125.3 / 255, 123.0 / 255, 113.9 / 255)
    std = (63.0 / 255, 62.1 / 255, 66.7 / 255)


class CIFAR100DataModule(_CIFARDataModule):
    """CIFAR-100 (fine labels) from the official python-pickle folder ``cifar-100-python``.

    Reads ``train`` (50k) and ``test`` (10k); otherwise as :class:`CIFAR10DataModule`.

    Example:
        >>> CIFAR100DataModule("/nonexistent").num_classes
        100
    """

    folder = "cifar-100-python"
    train_files = ("train",)
    test_file = "test"
    label_key = "fine_labels"
    url = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
    classes_total = 100
    torchvision_name = "CIFAR100"
    mean = (129.3 / 255, 124.1 / 255, 112.4 / 255)
    std = (68.2 / 255, 65.4 / 255, 70.4 / 255)
