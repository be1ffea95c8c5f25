"""The callback and the search report the same metric warnings.

That every surface gives the same record is tests/training/test_five_surfaces.py.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch

from lga_lightning.data import DigitsDataModule
from lga_lightning.search import LGASearch, Plain
from lga_lightning.search.spaces import NB201Space

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
PROBE_SIZE = 10


def data() -> DigitsDataModule:
    return DigitsDataModule(resize=8, channels=3, batch_size=64)


def quiet(**kwargs) -> pl.Trainer:
    return pl.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_train_batches=2,
        **kwargs,
    )


def test_the_search_reports_metric_warnings_the_callback_reports(tmp_path):
    # A single-class probe leaves LGA undefined: both surfaces say so instead of a silent nan.
    class OneClass(DigitsDataModule):
        def probe_batch(self, size: int = 256, seed: int = 42):
            x, _ = super().probe_batch(size, seed)
            return x, torch.zeros(size, dtype=torch.long)

    search = LGASearch(
        NB201Space(C=4, N=1),
        Plain(archs=[ARCH], epochs=1),
        probe_size=PROBE_SIZE,
        results_dir=str(tmp_path / "search"),
        progress=False,
        verbose=False,
    )
    with pytest.warns(UserWarning, match="LGASearch.*single class"):
        quiet(max_epochs=-1, default_root_dir=tmp_path).fit(
            search, datamodule=OneClass(resize=8, channels=3, batch_size=64)
        )
    assert math.isnan(search.records[0]["lga"]) and search.records[0]["status"] == "undefined"
