"""A study's cells in a Lightning logger: one row of numbers per architecture, as it is measured.

``raw.jsonl`` stays the resumable store; the logger (W&B, CSV, TensorBoard, any Lightning
``Logger``) is where a running study is followed. Row ``i`` (``step=i``) is the ``i``-th
architecture of the study; a resumed study logs only the cells it measures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.loggers import Logger

from lga_lightning.core.signals import signal_names


def cell_values(record: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of one architecture's record, by ``<quantity>[<setting>]@<epoch>``.

    Example:
        >>> record = {"arch": "a", "num_params": 4, "params": 3, "seconds": 1.5, "epochs": {
        ...     "0": {"ntk": {"n8-train": {"lga": 0.5}}, "proxies": {"snip": 2.0},
        ...           "train_loss": float("nan"), "val_acc": 0.1}}}
        >>> cell_values(record)
        {'num_params': 4.0, 'params': 3.0, 'seconds': 1.5, 'lga[n8-train]@0': 0.5, 'snip@0': 2.0, 'train_loss@0': nan, 'val_acc@0': 0.1}
    """  # noqa: E501
    values = {
        name: float(record[name])
        for name in ("num_params", "params", "flops", "seconds")
        if isinstance(record.get(name), (int, float))
    }
    for epoch, entry in record.get("epochs", {}).items():
        for setting, metrics in entry.get("ntk", {}).items():
            for metric, value in metrics.items():
                values[f"{metric}[{setting}]@{epoch}"] = _number(value)
        for proxy, value in entry.get("proxies", {}).items():
            values[f"{proxy}@{epoch}"] = _number(value)
        for name in signal_names("training"):
            if name in entry:
                values[f"{name}@{epoch}"] = _number(entry[name])
    return values


def log_cell(logger: Logger, index: int, record: Mapping[str, Any]) -> None:
    """Log one cell's numbers at ``step=index`` and flush the logger.

    Example:
        >>> import tempfile
        >>> from lightning.pytorch.loggers import CSVLogger
        >>> logger = CSVLogger(tempfile.mkdtemp(), name="study")
        >>> log_cell(logger, 0, {"params": 3, "epochs": {}})
        >>> open(logger.experiment.metrics_file_path).read().splitlines()
        ['params,step', '3.0,0']
    """
    logger.log_metrics(cell_values(record), step=index)
    logger.save()


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
