"""scikit-learn's 8x8 handwritten digits: the embedded default dataset (no download)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from lga_lightning.data.base import ImageArrays, ImageDataModule, split_indices


class DigitsDataModule(ImageDataModule):
    """The 1,797 8x8 grey digits that ship with scikit-learn, as image tensors.

    Pixels (0..16) are scaled to ``[0, 1]``, optionally resized (bilinear) so that networks with
    several downsampling stages — NAS-Bench-201 halves the size twice — keep a useful spatial
    size, optionally replicated to 3 channels, and normalised with the training split's
    per-channel mean/std. A seeded, class-stratified ``test_size`` part is the test set; of the
    rest, ``val_size`` is held out for validation.

    Args:
        resize: output side length (e.g. 16 or 32); ``None`` keeps 8x8.
        channels: 1 (grey) or 3 (the grey channel replicated, for RGB networks).
        test_size: fraction (or number) of all digits used as the test set.
        batch_size, num_workers, val_size, seed, augment, crop_padding, normalize, mean, std,
            pin_memory, train_samples_per_epoch: see
            :class:`~lga_lightning.data.base.ImageDataModule`.

    Example:
        >>> dm = DigitsDataModule(resize=16, channels=3, batch_size=32)
        >>> dm.num_classes, dm.input_shape
        (10, (3, 16, 16))
        >>> x, y = dm.probe_batch(20, seed=0)
        >>> tuple(x.shape), sorted(y.bincount().tolist())
        ((20, 3, 16, 16), [2, 2, 2, 2, 2, 2, 2, 2, 2, 2])
    """

    def __init__(
        self,
        resize: int | None = None,
        channels: int = 1,
        test_size: float | int = 0.2,
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
        if channels not in (1, 3):
            raise ValueError(f"`channels` can be 1 or 3, got {channels}.")
        if resize is not None and resize < 1:
            raise ValueError(f"`resize` must be a positive side length or None, got {resize}.")
        self.resize = resize
        self.channels = channels
        self.test_size = test_size

    @property
    def num_classes(self) -> int:
        """10 digits."""
        return 10

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(channels, resize, resize)``, 8x8 without ``resize``."""
        side = self.resize or 8
        return (self.channels, side, side)

    def load_arrays(self) -> ImageArrays:
        """Load, scale, resize and split off the test set (seeded by ``seed``)."""
        digits = load_digits()
        x = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        y = torch.as_tensor(digits.target, dtype=torch.long)
        if self.resize is not None and self.resize != 8:
            x = F.interpolate(
                x, size=(self.resize, self.resize), mode="bilinear", align_corners=False
            ).clamp_(0.0, 1.0)
        if self.channels == 3:
            x = x.repeat(1, 3, 1, 1)
        rest, test = split_indices(y, self.test_size, self.seed)
        rest_t, test_t = torch.as_tensor(rest), torch.as_tensor(test)
        return ImageArrays(x[rest_t], y[rest_t], x[test_t], y[test_t])
