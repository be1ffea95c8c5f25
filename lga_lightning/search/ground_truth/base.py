"""The ground-truth interface and the dataset/split names of NAS-Bench-201.

A *ground truth* answers one question: how accurate is architecture ``arch_str`` on ``dataset``
(evaluated on ``split``, after the training budget ``hp``)? NAS-Bench-201, NATS-Bench and plain
tables implement it, so correlation recipes and searches work with any of them.

Splits follow the official NAS-Bench-201 API (``ArchResults.get_metrics``):

=================  ======================================================  ================
dataset            splits (official names)                                 default split
=================  ======================================================  ================
``cifar10-valid``  ``train`` (25k train half), ``x-valid`` (other 25k of   ``x-valid``
                   the train set), ``ori-test`` (the 10k test set)
``cifar10``        ``train`` (all 50k), ``ori-test`` (10k test set)        ``ori-test``
``cifar100``       ``train``, ``x-valid`` (5k of the test set), ``x-test`` ``x-test``
                   (the other 5k), ``ori-test`` (all 10k)
``ImageNet16-120`` as ``cifar100`` (``x-valid``/``x-test`` are 3k halves   ``x-test``
                   of the 6k validation images)
=================  ======================================================  ================

The short names ``valid`` and ``test`` are accepted too and mapped as the official
``remap_dataset_set_names`` does: ``("cifar10", "valid")`` reads ``cifar10-valid``/``x-valid``
(``cifar10`` itself has no validation set), ``("cifar10", "test")`` reads ``ori-test``, and for
CIFAR-100/ImageNet16-120 ``valid``/``test`` mean ``x-valid``/``x-test``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

DATASETS: tuple[str, ...] = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")
"""Datasets of NAS-Bench-201, as the official API names them."""

HPS: tuple[str, ...] = ("12", "200")
"""Training budgets (epochs) of NAS-Bench-201."""

SPLITS: dict[str, tuple[str, ...]] = {
    "cifar10-valid": ("train", "x-valid", "ori-test"),
    "cifar10": ("train", "ori-test"),
    "cifar100": ("train", "x-valid", "x-test", "ori-test"),
    "ImageNet16-120": ("train", "x-valid", "x-test", "ori-test"),
}
"""Official split names available per dataset."""

DEFAULT_SPLIT: dict[str, str] = {
    "cifar10-valid": "x-valid",
    "cifar10": "ori-test",
    "cifar100": "x-test",
    "ImageNet16-120": "x-test",
}
"""The split read when ``split=None``: the test accuracy the NAS literature reports."""


class ArchNotFoundError(LookupError):
    """An architecture the ground truth knows nothing about."""


@runtime_checkable
class GroundTruth(Protocol):
    """Anything that gives the accuracy of an architecture string.

    Example:
        >>> from lga_lightning.search.ground_truth import TableGroundTruth
        >>> table = TableGroundTruth.from_records([{"arch": "a", "cifar10": 93.5}])
        >>> isinstance(table, GroundTruth)
        True
        >>> table.check_query("cifar100")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        LookupError: <records>: no accuracy column for dataset='cifar100', split=None, hp='200'...
    """

    def accuracy(
        self, arch_str: str, dataset: str = "cifar10", split: str | None = None, hp: str = "200"
    ) -> float:
        """Accuracy (in percent, as the benchmark stores it) of ``arch_str``."""
        ...

    def known_archs(self) -> list[str]:
        """Architecture strings with at least one stored result."""
        ...

    def check_query(
        self, dataset: str = "cifar10", split: str | None = None, hp: str = "200"
    ) -> None:
        """Raise ``LookupError``/``ValueError``, naming the fix, for a query it cannot answer.

        Called before a search trains anything, so a typo fails at once, not as nan accuracies.
        """
        ...


def resolve_split(dataset: str, split: str | None = None) -> tuple[str, str]:
    """Map a ``(dataset, split)`` request to the official ``(dataset, set name)``.

    Args:
        dataset: one of :data:`DATASETS`.
        split: an official set name, ``"valid"``/``"test"``, or ``None`` for the default split.

    Returns:
        ``(dataset, set_name)`` as ``ArchResults.get_metrics`` expects them.

    Raises:
        ValueError: for an unknown dataset, or a split the dataset does not have.

    Example:
        >>> resolve_split("cifar10")
        ('cifar10', 'ori-test')
        >>> resolve_split("cifar10", "valid")
        ('cifar10-valid', 'x-valid')
        >>> resolve_split("ImageNet16-120", "valid")
        ('ImageNet16-120', 'x-valid')
    """
    if dataset not in DATASETS:
        raise ValueError(f"`dataset` can be one of {list(DATASETS)}, got {dataset!r}.")
    if split is None:
        return dataset, DEFAULT_SPLIT[dataset]
    if split == "valid":
        if dataset == "cifar10":
            return "cifar10-valid", "x-valid"
        split = "x-valid"
    elif split == "test":
        split = "ori-test" if dataset in ("cifar10", "cifar10-valid") else "x-test"
    if split not in SPLITS[dataset]:
        raise ValueError(
            f"dataset {dataset!r} has the splits {list(SPLITS[dataset])} (or 'valid'/'test'), "
            f"got split={split!r}."
        )
    return dataset, split


def normalize_hp(hp: str | int) -> str:
    """Return the training budget as the string key NAS-Bench-201 uses.

    Example:
        >>> normalize_hp(200)
        '200'
    """
    key = str(hp)
    if key not in HPS:
        raise ValueError(f"`hp` can be one of {list(HPS)} (training epochs), got {hp!r}.")
    return key
