"""Five surfaces, one instrument: the same network, probe and training give the same record.

The surfaces: the ``NTKMetrics`` callback, ``LGASearch``, a Ray Tune trial of the search
(``TuneSearch``), the ``lga-correlate`` study and ``lga-linearize``; under the Trainer precisions
``32-true`` and ``64-true``, at initialisation and after one epoch of training.

Every surface builds the network from one seed (``INIT_SEED``, the search's seed of candidate 0)
and draws the probe from another (``PROBE_SEED``). The training batches come in the split's order,
unshuffled: the search seeds each epoch's order from a derived 64-bit seed, which the recipes'
``pl.seed_everything`` cannot take, so no seed could give every surface one shuffled order.

What each surface reports:

- the search and the trial: the kernel metrics (``SCALAR_METRICS``); no evolution metrics, as
  each candidate is measured on its own;
- the callback and the study: the kernel metrics and the evolution metrics;
- ``lga-linearize``: every metric of its callback in ``<arch>/nonlinear/ntk_metrics.csv``, and
  ``kernel_distance`` after the last epoch in ``raw.jsonl``.

Each comparison runs over the metrics both sides report. The two precisions give values that
differ in about the seventh digit, so a surface that ignored ``64-true`` would not match.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from lga_lightning import NTKMetrics
from lga_lightning.core.functional import EVOLUTION_METRICS, SCALAR_METRICS
from lga_lightning.data import DigitsDataModule
from lga_lightning.search import LGASearch, Plain
from lga_lightning.search.seeding import derive_seed
from lga_lightning.search.spaces import NB201Space
from lga_lightning.training.module import ClassificationModule
from lga_lightning.utils.threads import torch_threads
from recipes import correlate, linearize

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
PROBE_SIZE, PROBE_SEED, SEARCH_SEED, BATCHES = 10, 7, 3, 2
INIT_SEED = derive_seed(SEARCH_SEED, "init", 0)
KERNEL = list(SCALAR_METRICS)
EVOLUTION = list(EVOLUTION_METRICS)
PRECISIONS = ["32-true", "64-true"]
EPOCHS = [0, 1]


class InOrder(DigitsDataModule):
    """The digits with the training split unshuffled: the same batches on every surface."""

    def train_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(self.train_set, shuffle=False)


def data() -> InOrder:
    return InOrder(resize=8, channels=3, batch_size=64)


def network() -> nn.Module:
    """Candidate 0 of the search, as the search initialises it."""
    torch.manual_seed(INIT_SEED)
    return NB201Space(C=4, N=1).build(ARCH, num_classes=10, in_channels=3)


def quiet(precision: str, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_train_batches=BATCHES,
        **kwargs,
    )


def search(tmp_path: Path) -> LGASearch:
    return LGASearch(
        NB201Space(C=4, N=1),
        Plain(archs=[ARCH], epochs=1, measure_at=EPOCHS),
        seed=SEARCH_SEED,
        metrics=KERNEL,
        probe_size=PROBE_SIZE,
        probe_seed=PROBE_SEED,
        results_dir=str(tmp_path),
        progress=False,
        verbose=False,
        num_threads=1,  # every surface sums in the same order
    )


def by_epoch(records) -> dict[int, dict]:
    return {int(r["epoch"]): dict(r) for r in records}


def search_records(tmp_path: Path, precision: str) -> dict[int, dict]:
    run = search(tmp_path / "search")
    quiet(precision, max_epochs=-1, default_root_dir=tmp_path).fit(run, datamodule=data())
    return by_epoch(run.records)


def callback_records(tmp_path: Path, precision: str) -> dict[int, dict]:
    callback = NTKMetrics(
        measure_at=EPOCHS,
        probe_size=PROBE_SIZE,
        probe_seed=PROBE_SEED,
        metrics=KERNEL,
        track_evolution=True,
        log_spectrum=False,
        plot=False,
    )
    module = ClassificationModule(network(), num_classes=10)
    trainer = quiet(
        precision,
        max_epochs=1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
        callbacks=[callback],
    )
    with torch_threads(1):
        trainer.fit(module, datamodule=data())
    return by_epoch(callback.history)


def study_records(tmp_path: Path, precision: str) -> dict[int, dict]:
    study = correlate.CorrelationStudy(
        data=data(),
        space=NB201Space(C=4, N=1),
        archs=[ARCH],
        measure_at=EPOCHS,
        metrics=KERNEL + EVOLUTION,
        probe_sizes=[PROBE_SIZE],
        bn_modes=["train"],
        model_seeds=[INIT_SEED],
        data_seed=PROBE_SEED,
        limit_train_batches=BATCHES,
        output_dir=str(tmp_path / "study"),
        plot=False,
        num_threads=1,
        precision=precision,
        accelerator="cpu",
    )
    study.run()
    lines = (tmp_path / "study" / "raw.jsonl").read_text().splitlines()
    epochs = json.loads(lines[1])["epochs"]
    setting = f"n{PROBE_SIZE}-train"
    return {int(e): {"epoch": int(e), **entry["ntk"][setting]} for e, entry in epochs.items()}


def linearize_records(tmp_path: Path, precision: str) -> tuple[dict[int, dict], dict]:
    """The CSV rows of the network's ``NTKMetrics`` by epoch, and the ``raw.jsonl`` record."""
    study = linearize.NonlinearAdvantage(
        data=data(),
        models=[network],  # the search's candidate 0; the recipe's seed is the probe's
        epochs=1,
        seed=PROBE_SEED,
        limit_train_batches=BATCHES,
        probe_size=PROBE_SIZE,
        kernel_bn_mode="train",  # the paper's kernel, as on the other surfaces
        accelerator="cpu",
        precision=precision,
        output_dir=str(tmp_path / "linearize"),
        save_weights=False,
        num_threads=1,
    )
    (record,) = study.run()
    (path,) = (tmp_path / "linearize").rglob("nonlinear/ntk_metrics.csv")
    with path.open() as f:
        rows = {
            int(row["epoch"]): {k: float(v) for k, v in row.items() if v != ""}
            for row in csv.DictReader(f)
        }
    return rows, record


@pytest.fixture(scope="module", params=PRECISIONS)
def surfaces(request, tmp_path_factory) -> dict:
    """Records by surface and epoch, under one precision (the Tune trial apart: it is slow)."""
    precision = request.param
    tmp_path = tmp_path_factory.mktemp(precision)
    rows, record = linearize_records(tmp_path / "linearize", precision)
    return {
        "precision": precision,
        "search": search_records(tmp_path / "search", precision),
        "callback": callback_records(tmp_path / "callback", precision),
        "study": study_records(tmp_path / "study", precision),
        "linearize": rows,
        "linearize_record": record,
    }


def assert_same(reference: dict, record: dict, metrics, surface: str) -> None:
    for metric in metrics:
        assert math.isfinite(reference[metric]), (surface, metric)
        assert record[metric] == reference[metric], (surface, metric)


@pytest.mark.parametrize("epoch", EPOCHS)
def test_four_surfaces_give_identical_records(surfaces, epoch):
    assert sorted(surfaces["search"]) == EPOCHS  # epoch 0 is measured when the job asks for it
    searched = surfaces["search"][epoch]
    for surface in ("callback", "study", "linearize"):
        # the kernel metrics: every surface reports them
        assert_same(searched, surfaces[surface][epoch], KERNEL, surface)
    for surface in ("study", "linearize"):
        # the evolution metrics: not the search's (see the module docstring)
        assert_same(surfaces["callback"][epoch], surfaces[surface][epoch], EVOLUTION, surface)


def test_training_moved_the_kernel_and_lga_linearize_reports_it(surfaces):
    callback = surfaces["callback"]
    assert callback[0]["kernel_distance"] == 0.0
    assert callback[1]["kernel_distance"] > 0.0
    assert all(surfaces["search"][1][m] != surfaces["search"][0][m] for m in KERNEL)
    # raw.jsonl: the kernel's distance from initialisation after the last (here the first) epoch
    assert surfaces["linearize_record"]["kernel_distance"] == callback[1]["kernel_distance"]


@pytest.mark.slow
@pytest.mark.ray
def test_a_tune_trial_gives_the_same_records(surfaces, tmp_path):
    pytest.importorskip("ray")
    from ray import cloudpickle

    from lga_lightning.search.tune import TuneSearch

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the trial unpickles InOrder
    trainer = {"accelerator": "cpu", "limit_train_batches": BATCHES}
    tuned = TuneSearch(
        search(tmp_path / "search"),
        data(),
        trial_scheduler="none",
        cpu=1,  # one torch thread, as on the other surfaces
        num_cpus=2,
        trainer={**trainer, "precision": surfaces["precision"]},
        results_dir=str(tmp_path / "tune"),
        verbose=False,
    )
    tuned.fit()
    trial = by_epoch(tuned.records)
    assert sorted(trial) == EPOCHS
    for epoch in EPOCHS:
        for surface in ("search", "callback", "study", "linearize"):
            assert_same(surfaces[surface][epoch], trial[epoch], KERNEL, f"trial vs {surface}")
