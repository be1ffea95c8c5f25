"""NAS-Bench-201 accuracies of all 15,625 cells, shipped inside the package.

:func:`nb201_table` serves the gzipped table ``data/nb201_accuracies.csv.gz`` (0.5 MB; sources
and licences in ``data/LICENSE-NB201.txt``: NAS-Bench-201 and NATS-Bench, Dong et al., MIT) as
a :class:`~lga_lightning.search.ground_truth.table.TableGroundTruth`, so correlation studies need
neither the multi-gigabyte benchmark file nor a download. The file's columns are renamed to the
``dataset/split/hp`` convention of tables (:data:`NB201_COLUMNS`), so the usual queries work:

- ``cifar10_test_200ep`` -> ``cifar10/ori-test/200`` (``accuracy(arch)``, ``split=None`` or
  ``"test"``); ``cifar100_test_200ep`` and ``imagenet16_test_200ep`` -> ``cifar100/x-test/200``
  and ``ImageNet16-120/x-test/200``;
- ``*_test_12ep`` -> the same test columns with ``hp="12"``;
- ``cifar10_valid_12ep`` -> ``cifar10-valid/x-valid/12`` (``split="valid", hp="12"``), and
  ``cifar100_valid_12ep``/``imagenet16_valid_12ep`` -> ``<dataset>/x-valid/12``.

There is no validation accuracy at 200 epochs; such a query raises :class:`LookupError`. The
benchmark's own architecture index stays available as ``row(arch)["index"]``; note that it is
not the enumeration order of :mod:`lga_lightning.search.spaces.nb201`.

Example:
    >>> gt = nb201_table()
    >>> len(gt), gt.accuracy(gt.known_archs()[1]), gt.accuracy(gt.known_archs()[1], hp="12")
    (15625, 93.66, 88.22)
"""

from __future__ import annotations

import csv
import gzip
import io
from functools import lru_cache
from importlib import resources
from pathlib import Path

from lga_lightning.search.ground_truth.table import TableGroundTruth

NB201_FILE = "nb201_accuracies.csv.gz"
"""Name of the embedded table inside ``lga_lightning/search/ground_truth/data``."""

NB201_COLUMNS: dict[str, str] = {
    "cifar10_test_200ep": "cifar10/ori-test/200",
    "cifar100_test_200ep": "cifar100/x-test/200",
    "imagenet16_test_200ep": "ImageNet16-120/x-test/200",
    "cifar10_test_12ep": "cifar10/ori-test/12",
    "cifar10_valid_12ep": "cifar10-valid/x-valid/12",
    "cifar100_test_12ep": "cifar100/x-test/12",
    "cifar100_valid_12ep": "cifar100/x-valid/12",
    "imagenet16_test_12ep": "ImageNet16-120/x-test/12",
    "imagenet16_valid_12ep": "ImageNet16-120/x-valid/12",
}
"""Column of the embedded file -> the table column (``dataset/split/hp``) it becomes."""


def nb201_table_path() -> Path:
    """Path of the embedded gzipped CSV (read it with :mod:`gzip` and :mod:`csv` if you like).

    Example:
        >>> nb201_table_path().name
        'nb201_accuracies.csv.gz'
    """
    return Path(
        str(resources.files("lga_lightning.search.ground_truth").joinpath("data", NB201_FILE))
    )


@lru_cache(maxsize=1)
def nb201_table() -> TableGroundTruth:
    """The embedded NAS-Bench-201 ground truth (read on the first call, then cached).

    Returns:
        A :class:`~lga_lightning.search.ground_truth.table.TableGroundTruth` over the 15,625 cells
        with the columns of :data:`NB201_COLUMNS` and ``index``; ``accuracy(arch, dataset, split,
        hp)`` answers in percent. Share it read-only: every call returns the same object.

    Example:
        >>> nb201_table().find_column("cifar10", "valid", hp="12")
        'cifar10-valid/x-valid/12'
    """
    path = nb201_table_path()
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(io.StringIO(f.read()))
        header = [NB201_COLUMNS.get(name, name) for name in next(reader)]
        rows = [dict(zip(header, cells, strict=True)) for cells in reader]
    return TableGroundTruth.from_records(rows, arch_column="arch", source=str(path))


def benchmark_index(arch: str) -> int:
    """NAS-Bench-201's own index of a cell (its row in the benchmark), from the embedded table.

    Raises:
        ArchNotFoundError: not a NAS-Bench-201 arch string.

    Example:
        >>> benchmark_index(benchmark_arch(123))
        123
    """
    return int(float(nb201_table().row(arch)["index"]))


def benchmark_arch(index: int) -> str:
    """The arch string of NAS-Bench-201's cell ``index`` (0..15624).

    Raises:
        IndexError: outside 0..15624.

    Example:
        >>> benchmark_arch(0) == nb201_table().known_archs()[0]
        True
    """
    archs = nb201_table().known_archs()
    if not 0 <= int(index) < len(archs):
        raise IndexError(f"NAS-Bench-201 indices are 0..{len(archs) - 1}, got {index}.")
    return archs[int(index)]
