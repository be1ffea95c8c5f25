"""The sinks: every surface hands its records to them, and the built-in ones write what they got."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lga_lightning import NTKMetrics
from lga_lightning.training.sinks import CSVSink, JSONLinesSink, ListSink, LoggerSink, Sink


class Collect:
    """A user's sink: the one method a new output needs."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def write(self, record):
        self.seen.append(dict(record))


class Classifier(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def sorted_data(n: int = 24) -> DataLoader:
    """Labels sorted by class, as class-sorted files are."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) * 3 // n
    return DataLoader(TensorDataset(torch.randn(n, 12, generator=g), labels), batch_size=8)


def train(root: Path, callback: NTKMetrics, logger=False) -> None:
    pl.Trainer(
        max_epochs=2,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
        callbacks=[callback],
    ).fit(Classifier(), sorted_data())


def comparable(rows: list[dict]) -> list[dict]:
    """Rows with nan as a token (nan != nan)."""
    return [
        {k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in rows
    ]


def test_every_callback_row_reaches_the_sinks_csv_and_history_alike(tmp_path):
    mine, lines = Collect(), JSONLinesSink(tmp_path / "rows.jsonl")
    callback = NTKMetrics(measure_at=[0, 1, 2], probe_size=9, sinks=[mine, lines], plot=False)
    train(tmp_path, callback, logger=CSVLogger(tmp_path))
    assert isinstance(mine, Sink)
    assert [row["epoch"] for row in mine.seen] == [0, 1, 2]
    assert comparable(mine.seen) == comparable(callback.history)
    stored = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert comparable(stored) == comparable(callback.history)
    with open(tmp_path / "lightning_logs" / "version_0" / "ntk_metrics.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [float(r["lga"]) for r in table] == [row["lga"] for row in callback.history]


def test_write_csv_false_writes_no_file_and_keeps_the_history(tmp_path):
    mine = ListSink()
    callback = NTKMetrics(
        measure_at=[0, 2], probe_size=9, write_csv=False, plot=False, sinks=[mine]
    )
    train(tmp_path, callback)
    assert [row["epoch"] for row in callback.history] == [0, 2]
    assert mine.records == callback.history
    assert not list(tmp_path.rglob("*.csv"))


def test_an_object_without_write_is_refused_naming_the_callback():
    with pytest.raises(ValueError, match=r"`NTKMetrics\(sinks=...\)`.*got int"):
        NTKMetrics(sinks=[3])


def test_csv_sink_continues_the_rows_it_is_given(tmp_path):
    sink = CSVSink(tmp_path / "t.csv", rows=[{"epoch": 0, "lga": 0.5}])
    sink.write({"epoch": 1, "lga": 0.25, "extra": 3})
    with open(tmp_path / "t.csv", newline="") as f:
        assert list(csv.DictReader(f)) == [
            {"epoch": "0", "lga": "0.5", "extra": ""},
            {"epoch": "1", "lga": "0.25", "extra": "3"},
        ]


def test_logger_sink_steps_by_key_function_or_count(tmp_path):
    logger = CSVLogger(tmp_path, name="run")
    by_key = LoggerSink([logger], step="epoch", prefix="a/")
    by_function = LoggerSink([logger], step=lambda r: 10 + r["epoch"], prefix="b/")
    by_count = LoggerSink([logger], prefix="c/")
    for epoch in (3, 5):
        for sink in (by_key, by_function, by_count):
            sink.write({"epoch": epoch, "nested": {"lga": 0.5}})
    with open(logger.experiment.metrics_file_path, newline="") as f:
        rows = list(csv.DictReader(f))
    steps = {key: [int(r["step"]) for r in rows if r[f"{key}/epoch"]] for key in "abc"}
    assert steps == {"a": [3, 5], "b": [13, 15], "c": [0, 1]}
    assert {r["a/nested/lga"] for r in rows if r["a/epoch"]} == {"0.5"}
