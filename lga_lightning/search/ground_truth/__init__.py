"""Ground truth for architecture rankings: benchmark accuracies of architecture strings.

- :class:`NASBench201`: the official NAS-Bench-201 ``.pth`` file through ``nas_201_api``;
- :class:`NATSBenchTopology`: NATS-Bench's topology space (needs the optional ``nats_bench``);
- :class:`TableGroundTruth`: a plain CSV/JSON table (any benchmark, or your own results);
  :func:`export_table` turns any ground truth into one;
- :func:`nb201_table`: NAS-Bench-201 accuracies of all 15,625 cells, shipped in the package.

All implement :class:`GroundTruth`: ``accuracy(arch_str, dataset="cifar10", split=None,
hp="200") -> float`` and ``known_archs()``.

Example:
    >>> from lga_lightning.search.ground_truth import TableGroundTruth, GroundTruth
    >>> gt = TableGroundTruth.from_records([{"arch": "a", "cifar100/x-test/200": 70.5}])
    >>> gt.accuracy("a", dataset="cifar100", split="test")
    70.5
"""

from lga_lightning.search.ground_truth.base import (
    DATASETS,
    DEFAULT_SPLIT,
    HPS,
    SPLITS,
    ArchNotFoundError,
    GroundTruth,
    resolve_split,
)
from lga_lightning.search.ground_truth.embedded import (
    NB201_COLUMNS,
    benchmark_arch,
    benchmark_index,
    nb201_table,
    nb201_table_path,
)
from lga_lightning.search.ground_truth.nats import NATSBenchTopology
from lga_lightning.search.ground_truth.nb201 import BENCHMARK_FILES, NASBench201
from lga_lightning.search.ground_truth.table import TableGroundTruth, column_name, export_table

__all__ = [
    "BENCHMARK_FILES",
    "DATASETS",
    "DEFAULT_SPLIT",
    "HPS",
    "NB201_COLUMNS",
    "SPLITS",
    "ArchNotFoundError",
    "GroundTruth",
    "NASBench201",
    "NATSBenchTopology",
    "TableGroundTruth",
    "column_name",
    "export_table",
    "benchmark_arch",
    "benchmark_index",
    "nb201_table",
    "nb201_table_path",
    "resolve_split",
]
