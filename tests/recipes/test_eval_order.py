"""Class-sorted data: evaluation batches and test probes must not follow the file's order."""

from __future__ import annotations

import csv
import json
import math
import sys

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from lga_lightning.core.functional import lga
from lga_lightning.core.init import initialize
from lga_lightning.core.kernel import empirical_ntk
from lga_lightning.data import ArraysDataModule
from lga_lightning.search.spaces import NB201Space
from lga_lightning.training.module import ClassificationModule
from recipes import correlate

K = 4
ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_3x3~0|skip_connect~1|none~2|",
]
CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+" + "|".join(
    ["", "nor_conv_3x3~0", "nor_conv_3x3~1", "nor_conv_3x3~2", ""]
)


@pytest.fixture(autouse=True)
def _argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["lga-correlate"])


@pytest.fixture
def sorted_npz(tmp_path):
    """Images whose class is a colour shift, both splits sorted by class (like the subset)."""
    rng = np.random.default_rng(0)
    means = rng.uniform(40, 215, (K, 3))
    y = np.repeat(np.arange(K), 60)
    x = means[y][:, None, None, :] + rng.normal(0, 30, (len(y), 8, 8, 3))
    x = np.clip(x, 0, 255).astype(np.uint8)
    path = tmp_path / "sorted.npz"
    np.savez(path, train_x=x, train_y=y, test_x=x[::3], test_y=y[::3])
    assert (np.diff(y) >= 0).all() and (np.diff(y[::3]) >= 0).all()
    return path


def test_evaluation_batches_are_class_mixed_and_fixed(sorted_npz):
    dm = ArraysDataModule(sorted_npz, batch_size=12, val_size=0.4, seed=0)
    for loader in (dm.val_dataloader(), dm.test_dataloader()):
        batches = list(loader)
        # file order would give one class in almost every batch of 12 (K=4 classes of 24 / 20)
        mixed = [len(torch.unique(y)) for _, y in batches]
        assert min(mixed) >= 2 and np.mean(mixed) >= 3
        again = list(loader)  # fixed once: the same batches every epoch
        assert all(a[1].equal(b[1]) for a, b in zip(batches, again, strict=True))
    labels = torch.cat([y for _, y in dm.test_dataloader()])
    assert sorted(labels.tolist()) == sorted(dm.test_set.labels.tolist())


def test_val_acc_of_a_batch_statistics_network_is_its_shuffled_accuracy(sorted_npz):
    """The paper's cells normalise with batch statistics in eval mode (no running stats)."""
    dm = ArraysDataModule(sorted_npz, batch_size=12, val_size=0.4, seed=0)
    space = NB201Space(C=4, N=1, affine=False, track_running_stats=False)
    torch.manual_seed(0)
    net = space.build(space.decode(CONV), num_classes=K, in_channels=3)
    module = ClassificationModule(net, num_classes=K)
    trainer = pl.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=dm)
    logged = trainer.validate(module, datamodule=dm, verbose=False)[0]["val/acc"]
    net.eval()
    x = torch.stack([dm.val_set[i][0] for i in range(len(dm.val_set))])
    y = dm.val_set.labels
    with torch.no_grad():
        whole = float((net(x).argmax(1) == y).float().mean())  # one batch: order-free
        in_file_order = float(
            torch.cat([net(x[i : i + 12]).argmax(1) == y[i : i + 12] for i in range(0, 96, 12)])
            .float()
            .mean()
        )
        g = torch.Generator().manual_seed(123)
        shuffled = []
        for _ in range(5):
            p = torch.randperm(len(y), generator=g)
            hits = torch.cat(
                [net(x[p[i : i + 12]]).argmax(1) == y[p[i : i + 12]] for i in range(0, 96, 12)]
            )
            shuffled.append(float(hits.float().mean()))
    assert whole > 0.5  # the network has learned something to measure
    assert abs(in_file_order - whole) > 0.2  # this data shows the artefact
    assert logged == pytest.approx(np.mean(shuffled), abs=0.1)
    assert logged == pytest.approx(whole, abs=0.1)


def test_test_probe_is_class_balanced(sorted_npz):
    dm = ArraysDataModule(sorted_npz, val_size=0.2)
    x, y = dm.test_probe(size=8, seed=42)
    assert x.shape == (8, 3, 8, 8)
    assert np.bincount(y.numpy(), minlength=K).tolist() == [2, 2, 2, 2]
    again = dm.test_probe(size=8, seed=42)[1]
    assert again.equal(y)
    test_images = {
        img.numpy().tobytes() for img, _ in (dm.test_set[i] for i in range(len(dm.test_set)))
    }
    assert all(img.numpy().tobytes() in test_images for img in x)


def study_args(tmp_path, npz, extra=()):
    table = tmp_path / "truth.csv"
    with table.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arch", "cifar10/ori-test/200"])
        writer.writerows(zip(ARCHS, [70.0, 60.0], strict=True))
    return [
        "--data", "lga_lightning.data.ArraysDataModule",
        "--data.path", str(npz), "--data.batch_size", "16", "--data.val_size", "0.2",
        "--space.C", "4", "--space.N", "1",
        "--archs", json.dumps(ARCHS), "--measure_at", "[0]", "--probe_sizes", "[8]",
        "--metrics", "[lga]", "--table", str(table), "--bootstrap", "0", "--plot", "false",
        "--output_dir", str(tmp_path / "out"),
        *extra,
    ]  # fmt: skip


def test_probe_split_sweep_measures_both_probes_on_the_same_weights(tmp_path, sorted_npz):
    correlate.run(study_args(tmp_path, sorted_npz, ["--probe_split", "[train, test]"]))
    lines = [json.loads(s) for s in (tmp_path / "out" / "raw.jsonl").read_text().splitlines()]
    assert lines[0]["fingerprint"]["settings"] == ["n8-train", "n8-train-test"]
    dm = ArraysDataModule(sorted_npz, batch_size=16, val_size=0.2)
    probes = {"n8-train": dm.probe_batch(8, seed=42), "n8-train-test": dm.test_probe(8, seed=42)}
    space = NB201Space(C=4, N=1)
    for record in lines[1:]:
        assert record["status"] == "ok"
        torch.manual_seed(42)
        net = initialize(space.build(space.decode(record["arch"]), num_classes=K), "pytorch")
        for setting, (x, y) in probes.items():
            assert len(torch.unique(y)) == K
            expected = lga(empirical_ntk(net, x, implementation="loop"), y)
            got = record["epochs"]["0"]["ntk"][setting]["lga"]
            assert math.isfinite(got) and got == pytest.approx(expected, rel=1e-4)


def test_a_one_class_probe_is_refused_before_training(tmp_path, sorted_npz, capsys):
    probe = tmp_path / "probe.npz"
    np.savez(probe, x=np.zeros((8, 3, 8, 8), np.float32), y=np.zeros(8, np.int64))
    with pytest.raises(SystemExit) as exit_info:
        correlate.run(study_args(tmp_path, sorted_npz, ["--probe_file", str(probe)]))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "holds one class (0)" in err and len(err.strip().splitlines()) == 1
    assert (
        not (tmp_path / "out" / "raw.jsonl").exists()
        or len((tmp_path / "out" / "raw.jsonl").read_text().splitlines()) == 1
    )  # the header at most: no architecture measured
