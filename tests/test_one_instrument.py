"""The callback, the search and the study measure through one core: same model and probe, same
record, at initialisation and after training."""

from __future__ import annotations

import json
import math

import lightning.pytorch as pl
import pytest
import torch

from lga_lightning import NTKMetrics
from lga_lightning.core.functional import SCALAR_METRICS
from lga_lightning.data import DigitsDataModule
from lga_lightning.search import LGASearch, Plain
from lga_lightning.search.seeding import derive_seed
from lga_lightning.search.spaces import NB201Space
from lga_lightning.training.module import ClassificationModule
from lga_lightning.utils.threads import torch_threads
from recipes import correlate

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
PROBE_SIZE, PROBE_SEED, SEARCH_SEED = 10, 7, 3
METRICS = list(SCALAR_METRICS)


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


def search_records(tmp_path) -> dict[int, dict]:
    search = LGASearch(
        NB201Space(C=4, N=1),
        Plain(archs=[ARCH], epochs=1, measure_at=[0, 1]),
        seed=SEARCH_SEED,
        metrics=METRICS,
        probe_size=PROBE_SIZE,
        probe_seed=PROBE_SEED,
        results_dir=str(tmp_path / "search"),
        progress=False,
        verbose=False,
        num_threads=1,  # the three surfaces sum in the same order
    )
    quiet(max_epochs=-1, default_root_dir=tmp_path).fit(search, datamodule=data())
    return {int(r["epoch"]): r for r in search.records}


def callback_history(tmp_path) -> list[dict]:
    torch.manual_seed(derive_seed(SEARCH_SEED, "init", 0))
    network = NB201Space(C=4, N=1).build(ARCH, num_classes=10, in_channels=3)
    callback = NTKMetrics(
        epochs=[0],
        probe_size=PROBE_SIZE,
        probe_seed=PROBE_SEED,
        metrics=METRICS,
        track_evolution=False,
        log_spectrum=False,
        plot=False,
    )
    with torch_threads(1):
        quiet(max_epochs=1, default_root_dir=tmp_path, callbacks=[callback]).fit(
            ClassificationModule(network, num_classes=10), datamodule=data()
        )
    return callback.history


def study_record(tmp_path) -> dict:
    study = correlate.CorrelationStudy(
        data=data(),
        space=NB201Space(C=4, N=1),
        archs=[ARCH],
        epochs=[0],
        metrics=METRICS,
        probe_sizes=[PROBE_SIZE],
        bn_modes=["train"],
        model_seeds=[derive_seed(SEARCH_SEED, "init", 0)],
        data_seed=PROBE_SEED,
        own_epochs=1,
        limit_train_batches=2,
        output_dir=str(tmp_path / "study"),
        plot=False,
        num_threads=1,
    )
    study.run()
    lines = (tmp_path / "study" / "raw.jsonl").read_text().splitlines()
    return json.loads(lines[1])


def test_three_surfaces_give_identical_records_at_initialisation(tmp_path):
    searched = search_records(tmp_path)
    assert sorted(searched) == [0, 1]  # epoch 0 is measured when the job asks for it
    history = callback_history(tmp_path)
    studied = study_record(tmp_path)["epochs"]["0"]["ntk"][f"n{PROBE_SIZE}-train"]
    for metric in METRICS:
        value = searched[0][metric]
        assert math.isfinite(value), metric
        assert history[0][metric] == value, metric
        assert studied[metric] == value, metric


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
