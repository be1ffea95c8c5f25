"""LightningDataModules for the NTK metrics and the search.

Every datamodule has ``num_classes``, ``input_shape`` ``(C, H, W)``, a seeded, class-stratified
train/validation split, ``batch_size``/``num_workers``, and ``probe_batch(size, seed)``: the
fixed, class-balanced batch of training images the NTK metrics are computed on.

- :class:`DigitsDataModule`: scikit-learn's 8x8 digits, the embedded default (no download);
- :class:`ArraysDataModule`: images from an ``.npz`` file;
- :class:`CIFAR10DataModule`, :class:`CIFAR100DataModule`: the official python-pickle folders;
- :class:`ImageNet16DataModule`: ImageNet16-120 as NAS-Bench-201 uses it.

Example:
    >>> from lga_lightning.data import DigitsDataModule
    >>> dm = DigitsDataModule(resize=16)
    >>> x, y = dm.probe_batch(10, seed=0)
    >>> tuple(x.shape), sorted(y.tolist())
    ((10, 1, 16, 16), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
"""

from lga_lightning.data.arrays import ArraysDataModule, to_nchw
from lga_lightning.data.augment import CropFlip, Normalize, random_crop, random_hflip
from lga_lightning.data.base import ImageArrays, ImageDataModule, split_indices
from lga_lightning.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from lga_lightning.data.dataset import ImageTensorDataset
from lga_lightning.data.digits import DigitsDataModule
from lga_lightning.data.imagenet16 import ImageNet16DataModule

__all__ = [
    "ArraysDataModule",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "CropFlip",
    "DigitsDataModule",
    "ImageArrays",
    "ImageDataModule",
    "ImageNet16DataModule",
    "ImageTensorDataset",
    "Normalize",
    "random_crop",
    "random_hflip",
    "split_indices",
    "to_nchw",
]
