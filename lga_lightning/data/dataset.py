"""A map-style dataset over an in-memory image tensor."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lga_lightning.data.augment import Normalize


class ImageTensorDataset(Dataset):
    """Images ``(N, C, H, W)`` and labels ``(N,)`` served as ``(float image, long label)``.

    ``uint8`` images are scaled to ``[0, 1]`` per item (so 50k CIFAR images stay 150 MB); float
    images are used as they are. Each item is then augmented (``transform``) and normalised.

    Args:
        images: ``(N, C, H, W)`` tensor, ``uint8`` or floating point.
        labels: ``(N,)`` integer labels.
        transform: applied to each ``[0, 1]`` image before normalisation (e.g. ``CropFlip``).
        normalize: applied last.

    Example:
        >>> ds = ImageTensorDataset(torch.full((2, 1, 2, 2), 255, dtype=torch.uint8),
        ...                         torch.tensor([0, 1]))
        >>> x, y = ds[1]
        >>> x.tolist(), int(y)
        ([[[1.0, 1.0], [1.0, 1.0]]], 1)
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        transform: Callable[[Tensor], Tensor] | None = None,
        normalize: Normalize | None = None,
    ) -> None:
        if images.ndim != 4:
            raise ValueError(f"`images` must be (N, C, H, W), got shape {tuple(images.shape)}.")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels.")
        self.images = images
        self.labels = torch.as_tensor(labels, dtype=torch.long)
        self.transform = transform
        self.normalize = normalize

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x = self.images[index]
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        if self.transform is not None:
            x = self.transform(x)
        if self.normalize is not None:
            x = self.normalize(x)
        return x, self.labels[index]
