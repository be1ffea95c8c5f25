"""NAS-Bench-201 accuracies read from the official benchmark file through ``nas_201_api``."""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from lga_lightning.search.ground_truth.base import (
    ArchNotFoundError,
    normalize_hp,
    resolve_split,
)

BENCHMARK_FILES: tuple[str, ...] = (
    "NAS-Bench-201-v1_1-096897.pth",
    "NAS-Bench-201-v1_0-e61699.pth",
)
"""Official file names, newest first (v1_1 has every dataset at both budgets)."""

WHERE_TO_GET = (
    "Download it from the NAS-Bench-201 page, https://github.com/D-X-Y/NAS-Bench-201 "
    "(README, 'Preparation and Download'), and pass its path (or the folder holding it)."
)
_REQUIRED_KEYS = ("meta_archs", "arch2infos", "evaluated_indexes")


class _SharedDict(dict):
    """A dict that ``copy.deepcopy`` returns as is.

    ``NASBench201API`` deep-copies a dict it is given; the official file holds gigabytes, so the
    loaded dict is handed over without a second in-memory copy (it is not used elsewhere).
    """

    def __deepcopy__(self, memo: dict) -> _SharedDict:
        return self


def _unsupported_global(err: Exception) -> str | None:
    """The 'Unsupported global ...' line of a refused ``weights_only`` load, if it is one."""
    if not isinstance(err, pickle.UnpicklingError):
        return None
    for line in str(err).splitlines():
        if "Unsupported global" in line:
            return line.strip()
    return None


def _short_reason(err: Exception) -> str:
    """One line saying why a load failed (torch's refusals bury it in advice)."""
    text = str(err)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(err).__name__}: {(lines or [''])[0][:200]}"


class NASBench201:
    """Ground truth from the official NAS-Bench-201 ``.pth`` file.

    The file (``NAS-Bench-201-v1_1-096897.pth``, about 4.7 GB, or the older
    ``NAS-Bench-201-v1_0-e61699.pth``) is loaded lazily, on the first query, and read through the
    official ``nas_201_api.NASBench201API``. Accuracies are in percent and averaged over all
    trials (seeds) of an architecture unless ``seed`` is given. See
    :mod:`lga_lightning.search.ground_truth.base` for the datasets and the meaning of each split.

    Args:
        path: the ``.pth`` file, or a folder holding one of :data:`BENCHMARK_FILES`.
        trust_file: the file is read with ``torch.load(weights_only=True)``; if it holds objects
            beyond plain data and tensors, loading stops with an explanation. Set ``True`` to
            unpickle it fully — only for a file from a source you trust (the official one).

    Example:
        >>> gt = NASBench201("/nonexistent/NAS-Bench-201-v1_1-096897.pth")  # nothing read yet
        >>> gt.accuracy("|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|")
        Traceback (most recent call last):
            ...
        FileNotFoundError: NAS-Bench-201 benchmark file not found: ...
    """

    def __init__(self, path: str | os.PathLike, trust_file: bool = False) -> None:
        self.path = Path(path)
        self.trust_file = trust_file
        self._api: Any = None

    def __getstate__(self) -> dict[str, Any]:
        """A pickled copy (a spawned process) reads the file again on first use."""
        return {**self.__dict__, "_api": None}

    # ------------------------------------------------------------------ loading
    def _resolve_path(self) -> Path:
        path = self.path
        if path.is_dir():
            for name in BENCHMARK_FILES:
                if (path / name).is_file():
                    return path / name
            raise FileNotFoundError(
                f"NAS-Bench-201 benchmark file not found in the folder {path}: expected "
                f"{' or '.join(BENCHMARK_FILES)} there. {WHERE_TO_GET}"
            )
        if not path.is_file():
            raise FileNotFoundError(
                f"NAS-Bench-201 benchmark file not found: {path}. Expected the official file "
                f"{BENCHMARK_FILES[0]} (or {BENCHMARK_FILES[1]}). {WHERE_TO_GET}"
            )
        return path

    def load(self) -> NASBench201:
        """Read the benchmark file now (otherwise the first query does); returns ``self``."""
        if self._api is not None:
            return self
        from nas_201_api import NASBench201API

        path = self._resolve_path()
        try:
            data = torch.load(path, map_location="cpu", weights_only=not self.trust_file)
        except Exception as err:  # a damaged pickle can fail in many ways; all mean the same
            unsafe = _unsupported_global(err)
            if unsafe and not self.trust_file:
                raise ValueError(
                    f"{path} holds Python objects that a safe load refuses ({unsafe}). If the "
                    "file comes from a source you trust (the official NAS-Bench-201 download), "
                    "pass `trust_file=True`."
                ) from err
            raise self._corrupt(path, _short_reason(err)) from err
        if not isinstance(data, dict) or any(key not in data for key in _REQUIRED_KEYS):
            found = list(data) if isinstance(data, dict) else type(data).__name__
            raise self._corrupt(
                path, f"expected a dict with keys {list(_REQUIRED_KEYS)}, found {found}"
            )
        try:
            self._api = NASBench201API(_SharedDict(data), verbose=False)
        except (AssertionError, KeyError, TypeError, ValueError, AttributeError) as err:
            raise self._corrupt(path, err) from err
        return self

    @staticmethod
    def _corrupt(path: Path, reason: object) -> ValueError:
        return ValueError(
            f"cannot read {path} as a NAS-Bench-201 benchmark file ({reason}). The file may be "
            f"truncated or not the official one: download {BENCHMARK_FILES[0]} again. "
            f"{WHERE_TO_GET}"
        )

    @property
    def api(self) -> Any:
        """The underlying ``nas_201_api.NASBench201API`` (loads the file on first use)."""
        return self.load()._api

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return len(self.api)

    def check_query(
        self, dataset: str = "cifar10", split: str | None = None, hp: str = "200"
    ) -> None:
        """Raise before any search trains: a missing or damaged file, or a query it lacks.

        The file is read here (once; later queries reuse it), so a truncated or foreign file
        stops a search before its first candidate trains, not after its last.

        Raises:
            FileNotFoundError: the benchmark file is not there (naming where to get it).
            ValueError: a dataset, split or budget the benchmark does not have, or a file that
                is not a readable NAS-Bench-201 benchmark.
        """
        self._resolve_path()
        resolve_split(dataset, split)
        normalize_hp(hp)
        self.load()

    def known_archs(self) -> list[str]:
        """Architecture strings with stored results, in benchmark index order."""
        api = self.api
        return [api.meta_archs[i] for i in api.evaluated_indexes]

    def index(self, arch_str: str) -> int:
        """Benchmark index of ``arch_str``.

        Raises:
            ArchNotFoundError: when the string is not one of the benchmark's architectures.
        """
        index = self.api.archstr2index.get(arch_str.strip(), -1)
        if index < 0:
            raise ArchNotFoundError(
                f"architecture {arch_str!r} is not in the NAS-Bench-201 file {self.path.name} "
                f"({len(self.api)} architectures). Strings must match the benchmark's exactly, "
                "e.g. '|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|"
                "nor_conv_3x3~1|skip_connect~2|'."
            )
        return index

    def metrics(
        self,
        arch_str: str,
        dataset: str = "cifar10",
        split: str | None = None,
        hp: str | int = "200",
        seed: int | None = None,
        epoch: int | None = None,
    ) -> dict[str, Any]:
        """All metrics the benchmark stores for one query (``loss``, ``accuracy``, times...).

        Args:
            arch_str: architecture string.
            dataset: ``cifar10``, ``cifar10-valid``, ``cifar100`` or ``ImageNet16-120``.
            split: official set name, ``valid``/``test``, or ``None`` for the default split.
            hp: training budget, ``"12"`` or ``"200"`` epochs.
            seed: one trial's seed; ``None`` averages all trials (``is_random=False``).
            epoch: 0-based epoch of the metric; ``None`` is the last epoch.
        """
        dataset, set_name = resolve_split(dataset, split)
        hp = normalize_hp(hp)
        index = self.index(arch_str)
        infos = self.api.arch2infos_dict.get(index)
        if infos is None or hp not in infos:
            raise ArchNotFoundError(
                f"architecture {arch_str!r} (index {index}) has no stored results for hp={hp} "
                f"in {self.path.name}."
            )
        results = infos[hp]
        if dataset not in results.get_dataset_names():
            raise ArchNotFoundError(
                f"architecture {arch_str!r} (index {index}) was not trained on {dataset!r} with "
                f"hp={hp} in {self.path.name}; available: {results.get_dataset_names()}. "
                f"(The v1_0 file has only cifar10-valid at hp=12; use {BENCHMARK_FILES[0]}.)"
            )
        try:
            return results.get_metrics(
                dataset, set_name, iepoch=epoch, is_random=False if seed is None else int(seed)
            )
        except KeyError as err:
            raise ArchNotFoundError(
                f"architecture {arch_str!r} has no {set_name!r} results on {dataset!r} with "
                f"hp={hp} in {self.path.name} (missing {err})."
            ) from err

    def accuracy(
        self,
        arch_str: str,
        dataset: str = "cifar10",
        split: str | None = None,
        hp: str | int = "200",
        seed: int | None = None,
        epoch: int | None = None,
    ) -> float:
        """Top-1 accuracy in percent; arguments as in :meth:`metrics`."""
        return float(self.metrics(arch_str, dataset, split, hp, seed, epoch)["accuracy"])

    def table(
        self,
        dataset: str = "cifar10",
        split: str | None = None,
        hp: str | int = "200",
        archs: Iterable[str] | None = None,
    ) -> dict[str, float]:
        """Accuracies of many architectures at once: ``{arch_str: accuracy}``."""
        archs = self.known_archs() if archs is None else list(archs)
        return {arch: self.accuracy(arch, dataset, split, hp) for arch in archs}

    def __repr__(self) -> str:
        state = "loaded" if self._api is not None else "not loaded"
        return f"{type(self).__name__}({str(self.path)!r}, {state})"
