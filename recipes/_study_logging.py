"""A study's cells in a Lightning logger: one row of numbers per architecture, as it is measured.

``raw.jsonl`` stays the resumable store; the logger (W&B, CSV, TensorBoard, any Lightning
``Logger``) is where a running study is followed. Row ``i`` (``step=i``) is the ``i``-th
architecture of the study; a resumed study logs only the cells it measures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from lightning.pytorch.loggers import Logger

from lga_lightning.core.signals import signal_names
from lga_lightning.training.sinks import LoggerSink


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


def cell_sink(logger: Logger, archs: Sequence[str]) -> LoggerSink:
    """The sink that logs each cell's numbers at ``step=`` its architecture's index in ``archs``.

    Example:
        >>> import tempfile
        >>> from lightning.pytorch.loggers import CSVLogger
        >>> logger = CSVLogger(tempfile.mkdtemp(), name="study")
        >>> cell_sink(logger, ["a", "b"]).write({"arch": "b", "params": 3, "epochs": {}})
        >>> open(logger.experiment.metrics_file_path).read().splitlines()
        ['params,step', '3.0,1']
    """
    index = {arch: i for i, arch in enumerate(archs)}
    return LoggerSink([logger], step=lambda record: index[record["arch"]], values=cell_values)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
