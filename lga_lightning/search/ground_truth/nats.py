"""NATS-Bench topology search space (``tss``) through the optional ``nats_bench`` package."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lga_lightning.search.ground_truth.base import ArchNotFoundError, normalize_hp, resolve_split

NATS_TSS_NAME = "NATS-tss-v1_0-3ffb9-simple"
"""Official NATS-Bench topology benchmark (a folder of per-architecture pickles)."""

# Which key of NATS-Bench's ``get_more_info`` holds each official set, per dataset.
_INFO_KEY: dict[tuple[str, str], str] = {
    ("cifar10-valid", "train"): "train-accuracy",
    ("cifar10-valid", "x-valid"): "valid-accuracy",
    ("cifar10-valid", "ori-test"): "test-accuracy",
    ("cifar10", "train"): "train-accuracy",
    ("cifar10", "ori-test"): "test-accuracy",
}
for _data in ("cifar100", "ImageNet16-120"):
    _INFO_KEY.update(
        {
            (_data, "train"): "train-accuracy",
            (_data, "x-valid"): "valid-accuracy",
            (_data, "x-test"): "test-accuracy",
            (_data, "ori-test"): "valtest-accuracy",
        }
    )


class NATSBenchTopology:
    """Ground truth from NATS-Bench's topology search space (the NAS-Bench-201 cells).

    Needs the ``nats_bench`` package (``pip install nats_bench``), imported only when the
    benchmark is first queried, and the benchmark folder ``NATS-tss-v1_0-3ffb9-simple`` from
    https://github.com/D-X-Y/NATS-Bench. Datasets, splits and ``hp`` are as for
    :class:`~lga_lightning.search.ground_truth.NASBench201`.

    Args:
        path: the NATS-Bench topology benchmark (folder or ``.pickle.pbz2`` file).
        fast_mode: let ``nats_bench`` read per-architecture files on demand.
    """

    def __init__(self, path: str | os.PathLike, fast_mode: bool = True) -> None:
        self.path = Path(path)
        self.fast_mode = fast_mode
        self._api: Any = None

    @property
    def api(self) -> Any:
        """The ``nats_bench`` API object (created on first use)."""
        if self._api is None:
            try:
                import nats_bench
            except ImportError as err:
                raise ImportError(
                    "NATSBenchTopology needs the optional package `nats_bench`: "
                    "`pip install nats_bench`. For the NAS-Bench-201 file use "
                    "lga_lightning.search.ground_truth.NASBench201 instead."
                ) from err
            if not self.path.exists():
                raise FileNotFoundError(
                    f"NATS-Bench topology benchmark not found: {self.path}. Expected the "
                    f"official {NATS_TSS_NAME} folder (or its .tar file unpacked); download it "
                    "from https://github.com/D-X-Y/NATS-Bench and pass its path."
                )
            self._api = nats_bench.create(
                str(self.path), "tss", fast_mode=self.fast_mode, verbose=False
            )
        return self._api

    def check_query(
        self, dataset: str = "cifar10", split: str | None = None, hp: str = "200"
    ) -> None:
        """Raise ``ValueError`` for a dataset, split or budget the benchmark does not have."""
        resolve_split(dataset, split)
        normalize_hp(hp)

    def known_archs(self) -> list[str]:
        """All architecture strings of the topology space, in benchmark index order."""
        return [self.api[i] for i in range(len(self.api))]

    def accuracy(
        self,
        arch_str: str,
        dataset: str = "cifar10",
        split: str | None = None,
        hp: str | int = "200",
    ) -> float:
        """Top-1 accuracy in percent, averaged over trials (see ``NASBench201.accuracy``)."""
        dataset, set_name = resolve_split(dataset, split)
        hp = normalize_hp(hp)
        index = self.api.query_index_by_arch(arch_str.strip())
        if index is None or index < 0:
            raise ArchNotFoundError(
                f"architecture {arch_str!r} is not in NATS-Bench ({self.path})."
            )
        info = self.api.get_more_info(index, dataset, iepoch=None, hp=hp, is_random=False)
        key = _INFO_KEY[(dataset, set_name)]
        if info.get(key) is None:
            raise ArchNotFoundError(
                f"NATS-Bench has no {set_name!r} accuracy for {arch_str!r} on {dataset!r} "
                f"with hp={hp}."
            )
        return float(info[key])
