"""Ground truth from a plain CSV or JSON table (any benchmark, or your own results).

A table has one row per architecture: an architecture column (``arch``, ``arch_str`` or
``architecture``, or name it with ``arch_column``) and accuracy columns. Accuracy columns are
named ``<dataset>``, ``<dataset>/<split>`` or ``<dataset>/<split>/<hp>``; any other columns
(parameters, FLOPs, your own metrics) are kept and readable with :meth:`TableGroundTruth.row`.

``accuracy(arch, dataset, split, hp)`` looks for the most specific column first:

- with a ``split``: ``dataset/split/hp``, ``dataset/split`` (also under the official names of
  :func:`~lga_lightning.search.ground_truth.base.resolve_split`, so ``cifar100/test`` finds
  ``cifar100/x-test/200``);
- without: ``dataset/<default split>/hp``, ``dataset/<default split>``, ``dataset/hp``,
  ``dataset``.

:func:`export_table` writes a NAS-Bench-201 (or any ground truth) query to such a table, so the
multi-gigabyte benchmark file is read once and a small CSV serves every later run.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lga_lightning.search.ground_truth.base import (
    DATASETS,
    ArchNotFoundError,
    GroundTruth,
    resolve_split,
)
from lga_lightning.utils.files import atomic_open

ARCH_COLUMNS: tuple[str, ...] = ("arch", "arch_str", "architecture")
"""Column names recognised as the architecture column, in this order."""


def column_name(dataset: str, split: str | None = None, hp: str | int | None = None) -> str:
    """The column that holds an accuracy in a table (``dataset[/split][/hp]``).

    Example:
        >>> column_name("cifar100", "x-test", 200)
        'cifar100/x-test/200'
    """
    parts = [dataset] + ([split] if split else []) + ([str(hp)] if hp is not None else [])
    return "/".join(parts)


def _candidate_columns(dataset: str, split: str | None, hp: str | int | None) -> list[str]:
    names: list[str] = []
    official: tuple[str, str] | None = None
    if dataset in DATASETS:
        try:
            official = resolve_split(dataset, split)
        except ValueError:
            official = None
    hps = [str(hp)] if hp is not None else []
    if split is not None:
        names += [column_name(dataset, split, h) for h in hps] + [column_name(dataset, split)]
    if official is not None:
        names += [column_name(*official, h) for h in hps] + [column_name(*official)]
    if split is None:
        names += [column_name(dataset, None, h) for h in hps] + [dataset]
    return list(dict.fromkeys(names))


def _parse_value(value: Any) -> Any:
    """CSV cells arrive as strings: numbers become floats, empty cells ``None``."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return text


class TableGroundTruth:
    """Accuracies from a table of rows ``{arch column: arch string, column: value, ...}``.

    Args:
        path: a ``.csv`` (or ``.tsv``) file with a header row, or a ``.json`` file holding either
            a list of row objects or an object mapping each architecture to its row.
        arch_column: the architecture column; by default the first of :data:`ARCH_COLUMNS`.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be parsed, has no architecture column, or repeats an
            architecture.

    Example:
        >>> table = TableGroundTruth.from_records([
        ...     {"arch": "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        ...      "cifar10": 10.0, "params": 0.07},
        ... ])
        >>> table.accuracy("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|")
        10.0
    """

    def __init__(self, path: str | os.PathLike, arch_column: str | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"ground-truth table not found: {path}. Expected a CSV with a header row "
                f"(an architecture column {list(ARCH_COLUMNS)} and accuracy columns such as "
                "'cifar10') or a JSON list of such rows; `export_table` writes one from "
                "NAS-Bench-201."
            )
        try:
            records = self._read(path)
        except (ValueError, UnicodeDecodeError, csv.Error) as err:
            raise ValueError(f"cannot parse the ground-truth table {path}: {err}") from err
        self._init(records, arch_column, str(path))

    @classmethod
    def from_records(
        cls,
        records: Iterable[Mapping[str, Any]],
        arch_column: str | None = None,
        source: str = "<records>",
    ) -> TableGroundTruth:
        """Build a table from in-memory rows (dicts), e.g. the results of your own runs."""
        table = cls.__new__(cls)
        table._init(list(records), arch_column, source)
        return table

    @staticmethod
    def _read(path: Path) -> list[dict[str, Any]]:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                rows = []
                for arch, row in data.items():
                    if not isinstance(row, dict):
                        raise ValueError(
                            "a JSON object must map each architecture string to a row object, "
                            f"got {type(row).__name__} for {arch!r}"
                        )
                    rows.append({ARCH_COLUMNS[0]: arch, **row})
                return rows
            if isinstance(data, list) and all(isinstance(row, dict) for row in data):
                return data
            raise ValueError("expected a list of row objects or an object of rows")
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            rows = [dict(row) for row in reader]
            if reader.fieldnames is None:
                raise ValueError("the file is empty (no header row)")
        for i, row in enumerate(rows):
            if None in row:
                raise ValueError(f"row {i + 2} has more cells than the header")
        return rows

    def _init(self, records: list[Mapping[str, Any]], arch_column: str | None, source: str) -> None:
        self.source = source
        columns: list[str] = list(dict.fromkeys(key for row in records for key in row))
        if arch_column is None:
            arch_column = next((c for c in ARCH_COLUMNS if c in columns), None)
            if arch_column is None:
                raise ValueError(
                    f"{source}: no architecture column; expected one of {list(ARCH_COLUMNS)}, "
                    f"found {columns}. Pass `arch_column=`."
                )
        elif records and arch_column not in columns:
            raise ValueError(f"{source}: no column {arch_column!r}; found {columns}.")
        self.arch_column = arch_column
        self.columns = [c for c in columns if c != arch_column]
        self._rows: dict[str, dict[str, Any]] = {}
        for i, row in enumerate(records):
            arch = str(row.get(arch_column) or "").strip()
            if not arch:
                raise ValueError(f"{source}: row {i} has no architecture in {arch_column!r}.")
            if arch in self._rows:
                raise ValueError(f"{source}: architecture {arch!r} appears twice (row {i}).")
            self._rows[arch] = {k: _parse_value(v) for k, v in row.items() if k != arch_column}

    def __len__(self) -> int:
        return len(self._rows)

    def known_archs(self) -> list[str]:
        """Architecture strings in table order."""
        return list(self._rows)

    def row(self, arch_str: str) -> dict[str, Any]:
        """Every stored value of one architecture (numbers as floats)."""
        try:
            return dict(self._rows[arch_str.strip()])
        except KeyError:
            raise ArchNotFoundError(
                f"architecture {arch_str!r} is not in the table {self.source} "
                f"({len(self)} architectures)."
            ) from None

    def find_column(
        self, dataset: str = "cifar10", split: str | None = None, hp: str | int | None = "200"
    ) -> str:
        """The column :meth:`accuracy` reads for this query.

        Raises:
            LookupError: no column matches; the message lists the names tried and those present.
        """
        candidates = _candidate_columns(dataset, split, hp)
        for name in candidates:
            if name in self.columns:
                return name
        raise LookupError(
            f"{self.source}: no accuracy column for dataset={dataset!r}, split={split!r}, "
            f"hp={hp!r}; tried {candidates}, the table has {self.columns}."
        )

    def check_query(
        self, dataset: str = "cifar10", split: str | None = None, hp: str | int | None = "200"
    ) -> None:
        """Raise ``LookupError`` when no column answers the query (see :meth:`find_column`)."""
        self.find_column(dataset, split, hp)

    def accuracy(
        self,
        arch_str: str,
        dataset: str = "cifar10",
        split: str | None = None,
        hp: str | int | None = "200",
    ) -> float:
        """The accuracy stored for ``arch_str`` in the column :meth:`find_column` picks."""
        column = self.find_column(dataset, split, hp)
        value = self.row(arch_str).get(column)
        if value is None or isinstance(value, str):
            raise ArchNotFoundError(
                f"{self.source}: architecture {arch_str!r} has no numeric value in column "
                f"{column!r} (found {value!r})."
            )
        return float(value)

    def table(
        self,
        dataset: str = "cifar10",
        split: str | None = None,
        hp: str | int | None = "200",
    ) -> dict[str, float]:
        """``{arch: accuracy}`` for every architecture with a value in the matching column."""
        column = self.find_column(dataset, split, hp)
        out = {}
        for arch, row in self._rows.items():
            value = row.get(column)
            if isinstance(value, (int, float)) and not math.isnan(value):
                out[arch] = float(value)
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source!r}, {len(self)} archs, columns={self.columns})"


def export_table(
    ground_truth: GroundTruth,
    path: str | os.PathLike,
    archs: Iterable[str] | None = None,
    queries: Sequence[tuple[str, str | None, str | int]] = (("cifar10", None, "200"),),
) -> Path:
    """Write accuracies of ``ground_truth`` to a CSV (or ``.json``) table, atomically.

    Each query ``(dataset, split, hp)`` becomes a column named ``dataset/split/hp`` (official
    split names for NAS-Bench-201 datasets), which :class:`TableGroundTruth` finds again. The
    file appears only once every value has been read: an error leaves no partial file.

    Args:
        ground_truth: any :class:`~lga_lightning.search.ground_truth.base.GroundTruth`.
        path: output file; ``.json`` writes a list of rows, anything else CSV.
        archs: architectures to export; all that ``ground_truth`` knows by default.
        queries: ``(dataset, split, hp)`` per column.

    Returns:
        The path written.

    Example:
        >>> import tempfile, pathlib
        >>> src = TableGroundTruth.from_records([{"arch": "a", "cifar10": 91.0}])
        >>> out = export_table(src, pathlib.Path(tempfile.mkdtemp()) / "gt.csv")
        >>> TableGroundTruth(out).accuracy("a")
        91.0
    """
    path = Path(path)
    archs = ground_truth.known_archs() if archs is None else list(archs)
    names = []
    for dataset, split, hp in queries:
        if dataset in DATASETS:
            dataset, split = resolve_split(dataset, split)
        names.append(column_name(dataset, split, hp))
    rows = [{ARCH_COLUMNS[0]: arch} for arch in archs]
    for row in rows:
        for name, (dataset, split, hp) in zip(names, queries, strict=True):
            row[name] = ground_truth.accuracy(row[ARCH_COLUMNS[0]], dataset, split, hp)
    with atomic_open(path, "w", newline="") as f:
        if path.suffix.lower() == ".json":
            json.dump(rows, f, indent=1)
        else:
            writer = csv.DictWriter(f, fieldnames=[ARCH_COLUMNS[0], *names])
            writer.writeheader()
            writer.writerows(rows)
    return path
