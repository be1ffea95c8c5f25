"""Image augmentation and normalisation in plain torch (torchvision is optional).

The standard CIFAR/ImageNet16 recipe of NAS-Bench-201 and the paper: random crop with zero
padding, then a random horizontal flip, then per-channel normalisation. Crops and flips draw from
torch's global RNG, which ``DataLoader`` seeds per worker (``lightning.seed_everything`` makes
runs reproducible).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def random_crop(image: Tensor, padding: int, generator: torch.Generator | None = None) -> Tensor:
    """Zero-pad a ``(C, H, W)`` image by ``padding`` pixels and crop a random ``H x W`` window.

    Example:
        >>> x = torch.arange(16.0).reshape(1, 4, 4)
        >>> random_crop(x, padding=0).equal(x)
        True
        >>> random_crop(x, padding=2).shape
        torch.Size([1, 4, 4])
    """
    if padding <= 0:
        return image
    h, w = image.shape[-2:]
    padded = F.pad(image, (padding, padding, padding, padding))
    top, left = torch.randint(0, 2 * padding + 1, (2,), generator=generator).tolist()
    return padded[..., top : top + h, left : left + w]


def random_hflip(image: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Flip an image left-right with probability ``p``.

    Example:
        >>> x = torch.tensor([[[1.0, 2.0, 3.0]]])
        >>> random_hflip(x, p=1.0).tolist()
        [[[3.0, 2.0, 1.0]]]
    """
    if torch.rand((), generator=generator).item() < p:
        return image.flip(-1)
    return image


class CropFlip:
    """Random crop with zero padding followed by a random horizontal flip.

    Args:
        padding: pixels of zero padding before cropping back to the input size (NAS-Bench-201:
            4 at 32x32, 2 at 16x16).
        flip_p: probability of the horizontal flip.

    Example:
        >>> aug = CropFlip(padding=4)
        >>> aug(torch.rand(3, 32, 32)).shape
        torch.Size([3, 32, 32])
    """

    def __init__(self, padding: int = 4, flip_p: float = 0.5) -> None:
        if padding < 0:
            raise ValueError(f"`padding` must be >= 0, got {padding}.")
        if not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"`flip_p` must be in [0, 1], got {flip_p}.")
        self.padding = padding
        self.flip_p = flip_p

    def __call__(self, image: Tensor) -> Tensor:
        """Augment one ``(C, H, W)`` image."""
        return random_hflip(random_crop(image, self.padding), self.flip_p)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(padding={self.padding}, flip_p={self.flip_p})"


class Normalize:
    """Per-channel ``(x - mean) / std`` of a ``(C, H, W)`` image.

    Example:
        >>> Normalize([0.5], [0.25])(torch.ones(1, 2, 2)).tolist()
        [[[2.0, 2.0], [2.0, 2.0]]]
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"`mean` and `std` differ in length: {list(mean)} vs {list(std)}.")
        if bool((self.std <= 0).any()):
            raise ValueError(f"`std` must be positive, got {list(std)}.")

    def __call__(self, image: Tensor) -> Tensor:
        """Normalise one ``(C, H, W)`` image."""
        return (image - self.mean) / self.std

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean.flatten().tolist()}, std=...)"
