"""Images from a NumPy ``.npz`` file (``train_x``, ``train_y``, ``test_x``, ``test_y``)."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lga_lightning.data.base import ImageArrays, ImageDataModule

DEFAULT_KEYS: dict[str, str] = {
    "train_x": "train_x",
    "train_y": "train_y",
    "test_x": "test_x",
    "test_y": "test_y",
}
_CHANNELS = (1, 3, 4)


def to_nchw(images: np.ndarray, layout: str = "auto") -> np.ndarray:
    """Bring ``(N, H, W)``, ``(N, H, W, C)`` or ``(N, C, H, W)`` images to ``(N, C, H, W)``.

    Args:
        images: the array.
        layout: ``"NHWC"``, ``"NCHW"`` or ``"auto"`` (channels are the axis of size 1, 3 or 4;
            ``uint8`` arrays that fit both read as ``NHWC``, float arrays as ``NCHW``).

    Example:
        >>> to_nchw(np.zeros((5, 32, 32, 3), np.uint8)).shape
        (5, 3, 32, 32)
        >>> to_nchw(np.zeros((5, 8, 8))).shape
        (5, 1, 8, 8)
    """
    if images.ndim == 3:
        return images[:, None]
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W[, C]) or (N, C, H, W), got {images.shape}.")
    if layout == "auto":
        last, second = images.shape[3] in _CHANNELS, images.shape[1] in _CHANNELS
        if last and second:
            layout = "NHWC" if images.dtype == np.uint8 else "NCHW"
        elif last or second:
            layout = "NHWC" if last else "NCHW"
        else:
            raise ValueError(
                f"cannot tell the channel axis of images with shape {images.shape}; pass "
                "`layout='NHWC'` or `layout='NCHW'`."
            )
    if layout == "NHWC":
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    if layout == "NCHW":
        return images
    raise ValueError(f"`layout` can be 'auto', 'NHWC' or 'NCHW', got {layout!r}.")


class ArraysDataModule(ImageDataModule):
    """Images and labels from an ``.npz`` file.

    ``uint8`` images (HWC as saved by most tools, or CHW) are scaled to ``[0, 1]``; float images
    are used as they are. Labels must be integers ``0..K-1``. The test arrays are optional.
    Normalisation uses ``mean``/``std`` when given, else the training split's statistics.
    For example ``../shared/data/cifar10_subset.npz`` (10k CIFAR-10 images, 32x32x3 uint8):
    ``ArraysDataModule(path, augment=True)`` gives the CIFAR recipe on it.

    Args:
        path: the ``.npz`` file.
        keys: names of the arrays, mapping ``train_x``/``train_y``/``test_x``/``test_y`` to the
            file's keys (defaults to those names).
        layout: image layout, see :func:`to_nchw`.
        num_classes: number of classes; default ``max label + 1``.
        batch_size, num_workers, val_size, seed, augment, crop_padding, normalize, mean, std,
            pin_memory, train_samples_per_epoch: see
            :class:`~lga_lightning.data.base.ImageDataModule`.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.npz"
        >>> rng = np.random.default_rng(0)
        >>> np.savez(path, train_x=rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8),
        ...          train_y=np.arange(40) % 4)
        >>> dm = ArraysDataModule(path, batch_size=8)
        >>> dm.num_classes, dm.input_shape
        (4, (3, 8, 8))
        >>> x, y = next(iter(dm.train_dataloader()))
        >>> tuple(x.shape), y.dtype
        ((8, 3, 8, 8), torch.int64)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        keys: Mapping[str, str] | None = None,
        layout: str = "auto",
        num_classes: int | None = None,
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
        unknown = set(keys or {}) - set(DEFAULT_KEYS)
        if unknown:
            raise ValueError(f"`keys` can map {sorted(DEFAULT_KEYS)}, got {sorted(unknown)}.")
        self.path = Path(path)
        self.keys = {**DEFAULT_KEYS, **(keys or {})}
        self.layout = layout
        self._num_classes = num_classes

    @property
    def num_classes(self) -> int:
        """``num_classes`` if given, else the largest label + 1."""
        if self._num_classes is None:
            a = self.arrays
            labels = [a.train_y] + ([a.test_y] if a.test_y is not None else [])
            self._num_classes = int(max(int(t.max()) for t in labels if len(t)) + 1)
        return self._num_classes

    def load_arrays(self) -> ImageArrays:
        """Read and check the arrays."""
        what = f"{type(self).__name__}: {self.path}"
        layout_help = (
            f"Expected an .npz with arrays {self.keys['train_x']!r} (N, H, W, C) uint8 or "
            f"(N, C, H, W) float, {self.keys['train_y']!r} (N,) integer labels, optionally "
            f"{self.keys['test_x']!r}/{self.keys['test_y']!r}, as written by numpy.savez."
        )
        if not self.path.is_file():
            raise FileNotFoundError(f"{what} not found. {layout_help}")
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                present = {name: npz[key] for name, key in self.keys.items() if key in npz.files}
                files = list(npz.files)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
            raise ValueError(
                f"{what} cannot be read ({type(err).__name__}: {err}); the file "
                f"is damaged or not an .npz. {layout_help}"
            ) from err
        for name in ("train_x", "train_y"):
            if name not in present:
                raise ValueError(
                    f"{what} has no array {self.keys[name]!r} (found {files}). "
                    f"{layout_help} Use `keys=` to name them."
                )
        if ("test_x" in present) != ("test_y" in present):
            raise ValueError(
                f"{what} has only one of {self.keys['test_x']!r} and {self.keys['test_y']!r}."
            )
        train_x, train_y = self._pair(present["train_x"], present["train_y"], "train", what)
        test_x = test_y = None
        if "test_x" in present:
            test_x, test_y = self._pair(present["test_x"], present["test_y"], "test", what)
            if test_x.shape[1:] != train_x.shape[1:]:
                raise ValueError(
                    f"{what}: test images {tuple(test_x.shape[1:])} differ from "
                    f"training images {tuple(train_x.shape[1:])}."
                )
        return ImageArrays(train_x, train_y, test_x, test_y)

    def _pair(self, x: np.ndarray, y: np.ndarray, split: str, what: str) -> tuple[Tensor, Tensor]:
        if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"{what}: {split} images are {x.dtype}, expected uint8 or float.")
        y = np.asarray(y).reshape(-1)
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"{what}: {split} labels are {y.dtype}, expected integers.")
        if len(y) != len(x):
            raise ValueError(f"{what}: {len(x)} {split} images but {len(y)} labels.")
        if len(y) and y.min() < 0:
            raise ValueError(f"{what}: {split} labels must be >= 0, found {y.min()}.")
        if self._num_classes is not None and len(y) and y.max() >= self._num_classes:
            raise ValueError(f"{what}: {split} label {y.max()} >= num_classes={self._num_classes}.")
        x = to_nchw(x, self.layout)
        x_t = torch.from_numpy(np.ascontiguousarray(x))
        if x_t.dtype != torch.uint8:
            x_t = x_t.float()
        return x_t, torch.from_numpy(y.astype(np.int64))
