"""ImageNet16-120: 16x16 downsampled ImageNet as NAS-Bench-201 uses it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from lga_lightning.data._files import find_folder, image_batch, load_pickle, require_files
from lga_lightning.data.base import ImageArrays, ImageDataModule

TRAIN_FILES: tuple[str, ...] = tuple(f"train_data_batch_{i}" for i in range(1, 11))
VAL_FILE = "val_data"
HOW_TO_GET = (
    "Layout: <root>/ImageNet16/{train_data_batch_1..10, val_data}, the pickles of the 16x16 "
    "'Downsampled ImageNet' (Chrabaszcz et al., 2017; Imagenet16_train and Imagenet16_val from "
    "https://image-net.org/download-images.php), as NAS-Bench-201 uses them "
    "(https://github.com/D-X-Y/NAS-Bench-201)."
)


class ImageNet16DataModule(ImageDataModule):
    """ImageNet16-120 in NAS-Bench-201's format.

    Reads ``train_data_batch_1`` ... ``train_data_batch_10`` (training) and ``val_data`` (used as
    the test set, as NAS-Bench-201 does); each a pickle with ``data`` (``N x 3*16*16`` uint8, CHW
    order) and 1-based ``labels``. Like NAS-Bench-201, only samples with label
    ``<= num_classes`` are kept (the first 120 classes), and labels become 0-based. Training
    images get a random crop 16 with zero padding 2 and a horizontal flip.

    Args:
        root: folder holding ``ImageNet16`` (or that folder itself).
        num_classes: keep the classes ``1..num_classes`` of the files (120 in NAS-Bench-201).
        batch_size, num_workers, val_size, seed, augment, crop_padding, normalize, mean, std,
            pin_memory, train_samples_per_epoch: see
            :class:`~lga_lightning.data.base.ImageDataModule`.

    Example:
        >>> dm = ImageNet16DataModule("/nonexistent")
        >>> dm.num_classes, dm.input_shape
        (120, (3, 16, 16))
    """

    folder = "ImageNet16"
    mean = (122.68 / 255, 116.66 / 255, 104.01 / 255)
    std = (63.22 / 255, 61.26 / 255, 65.09 / 255)

    def __init__(
        self,
        root: str | os.PathLike = "data",
        num_classes: int = 120,
        batch_size: int = 256,
        num_workers: int = 0,
        val_size: float | int = 0.1,
        seed: int = 42,
        augment: bool = True,
        crop_padding: int | None = 2,
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
        if not 1 <= num_classes <= 1000:
            raise ValueError(f"`num_classes` must be in 1..1000, got {num_classes}.")
        self.root = Path(root)
        self._num_classes = num_classes

    @property
    def num_classes(self) -> int:
        """Number of classes kept."""
        return self._num_classes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(3, 16, 16)``."""
        return (3, 16, 16)

    @property
    def data_dir(self) -> Path:
        """The pickle folder: ``root/ImageNet16``, or ``root`` itself when it holds the files."""
        return find_folder(self.root, self.folder, VAL_FILE)

    def prepare_data(self) -> None:
        """Check that every file is present (there is no automatic download)."""
        require_files(self.data_dir, [*TRAIN_FILES, VAL_FILE], type(self).__name__, HOW_TO_GET)

    def load_arrays(self) -> ImageArrays:
        """Read every pickle, keeping labels ``1..num_classes`` (made 0-based)."""
        self.prepare_data()
        parts = [self._read(self.data_dir / name) for name in TRAIN_FILES]
        test_x, test_y = self._read(self.data_dir / VAL_FILE)
        return ImageArrays(
            train_x=torch.from_numpy(np.concatenate([x for x, _ in parts])),
            train_y=torch.from_numpy(np.concatenate([y for _, y in parts])),
            test_x=torch.from_numpy(test_x),
            test_y=torch.from_numpy(test_y),
        )

    def _read(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        what = type(self).__name__
        x, y = image_batch(
            load_pickle(path, what, HOW_TO_GET), path, "labels", 3, 16, what, HOW_TO_GET
        )
        if len(y) and (y.min() < 1 or y.max() > 1000):
            raise ValueError(
                f"{what}: {path} has labels in [{y.min()}, {y.max()}], expected the 1-based "
                "labels 1..1000 of downsampled ImageNet."
            )
        keep = y <= self._num_classes
        return np.ascontiguousarray(x[keep]), y[keep] - 1
