"""NTKMetrics with several probe batches: mean and std against per-probe references, state, DDP."""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from test_callback import (
    ALL_METRICS,
    CNN,
    MLP,
    Snapshots,
    dataset,
    ntk_rows,
    read_csv,
    trainer,
)
from torch.utils.data import DataLoader, TensorDataset

from lga_lightning import NTKMetrics
from lga_lightning.core.functional import NTKMetricWarning, kernel_distance, ntk_metrics
from lga_lightning.core.kernel import empirical_ntk


def source_index(data: TensorDataset, x: torch.Tensor) -> list[int]:
    """Index in ``data`` of every probe sample (the inputs are distinct random tensors)."""
    return [next(i for i in range(len(data)) if torch.equal(data.tensors[0][i], xi)) for xi in x]


def reference_kernel(model: pl.LightningModule, state: dict, x: torch.Tensor) -> torch.Tensor:
    """The kernel of ``x`` under the weights ``state``, on a copy of the model."""
    copy_ = copy.deepcopy(model)
    copy_.load_state_dict(state)
    return empirical_ntk(copy_, x)


def mean_and_std(per_probe: list[dict[str, float]]) -> dict[str, float]:
    """numpy's mean and sample std (ddof=1) of each metric over the probe batches."""
    out = {}
    for name in per_probe[0]:
        column = np.array([values[name] for values in per_probe], dtype=np.float64)
        out[name] = float(np.mean(column))
        out[f"{name}_std"] = float(np.std(column, ddof=1))
    return out


def assert_close(got: dict[str, float], want: dict[str, float], rtol: float = 1e-5) -> None:
    assert set(want) <= set(got), sorted(set(want) - set(got))
    for name, value in want.items():
        if math.isnan(value):
            assert math.isnan(float(got[name])), name
        else:
            assert float(got[name]) == pytest.approx(value, rel=rtol, abs=1e-6), name


def test_mean_and_std_over_probe_batches_match_per_probe_references(tmp_path: Path) -> None:
    data, k, size = dataset(n=48), 3, 12
    callback = NTKMetrics(
        measure_at=[0, 2], probe_size=size, num_probes=k, probe_seed=5, kernel_velocity=True
    )
    single = NTKMetrics(
        measure_at=[0], probe_size=size, probe_seed=5, prefix="one/", state_key="one"
    )
    snapshots = Snapshots()
    fit = trainer(
        tmp_path, max_epochs=2, callbacks=[callback, single, snapshots], logger=CSVLogger(tmp_path)
    )
    model = CNN()
    fit.fit(model, DataLoader(data, batch_size=16, shuffle=True))

    # k disjoint, class-balanced probe batches of the training data; the first is the single probe
    assert len(callback.probes) == k
    indices = [source_index(data, x) for x, _ in callback.probes]
    assert len({i for idx in indices for i in idx}) == k * size
    for (x, y), idx in zip(callback.probes, indices, strict=True):
        assert x.shape[0] == size
        assert torch.equal(data.tensors[1][idx], y)
        assert torch.bincount(y, minlength=3).tolist() == [4, 4, 4]
    assert torch.equal(callback.probes[0][0], single.probe[0])
    assert torch.equal(callback.probe[0], callback.probes[0][0])

    # per-probe metrics by hand, each probe against its own initial kernel, then numpy mean/std
    want = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NTKMetricWarning)
        kernels = {
            epoch: [reference_kernel(model, snapshots.states[epoch], x) for x, _ in callback.probes]
            for epoch in (0, 2)
        }
        for epoch in (0, 2):
            per_probe = []
            for j, (_, y) in enumerate(callback.probes):
                values = ntk_metrics(
                    kernels[epoch][j], y, metrics=ALL_METRICS, initial_kernel=kernels[0][j]
                )
                values["kernel_velocity"] = (
                    math.nan if epoch == 0 else kernel_distance(kernels[0][j], kernels[2][j])
                )
                per_probe.append(values)
            want[epoch] = mean_and_std(per_probe)
    assert want[2]["lga_std"] > 0  # the probes do disagree

    assert [row["epoch"] for row in callback.history] == [0, 2]
    for row, epoch in zip(callback.history, (0, 2), strict=True):
        assert_close(row, want[epoch])
    logged = ntk_rows(read_csv(Path(fit.logger.log_dir) / "metrics.csv"))
    assert sorted(logged) == [0, 2]
    for epoch in (0, 2):
        assert_close(logged[epoch], want[epoch])
    history_csv = read_csv(Path(fit.logger.log_dir) / "ntk_metrics.csv")
    for row, epoch in zip(history_csv, (0, 2), strict=True):
        assert_close({key: float(v) for key, v in row.items()}, want[epoch])
    # the spectrum is the first probe batch's; one probe batch logs no `_std` key
    eig = torch.linalg.eigvalsh(kernels[2][0].double()).flip(0)
    assert callback.spectra[2].tolist() == pytest.approx(eig.tolist(), rel=1e-4, abs=1e-6)
    logged_single = ntk_rows(read_csv(Path(fit.logger.log_dir) / "metrics.csv"), "one/")
    for keys in (single.history[0], logged_single[0]):
        assert not [key for key in keys if key.endswith("_std")]


def test_probe_tensors_are_split_into_equal_consecutive_batches(tmp_path: Path) -> None:
    data = dataset()
    x, y = data.tensors[0][:16], data.tensors[1][:16]
    callback = NTKMetrics(measure_at=[0], probe=(x, y), num_probes=2, metrics=("lga", "trace"))
    initial = Snapshots()
    model = MLP()
    trainer(tmp_path, callbacks=[callback, initial]).fit(model, DataLoader(data, batch_size=16))
    assert all(torch.equal(p[0], q) for p, q in zip(callback.probes, (x[:8], x[8:]), strict=True))
    per_probe = [
        ntk_metrics(reference_kernel(model, initial.states[0], xj), yj, metrics=("lga", "trace"))
        for xj, yj in ((x[:8], y[:8]), (x[8:], y[8:]))
    ]
    assert_close(callback.history[0], mean_and_std(per_probe))


def test_resume_measures_the_same_probe_batches(tmp_path: Path) -> None:
    loader = DataLoader(dataset(), batch_size=16)
    kwargs = {"every_n_epochs": 1, "probe_size": 9, "num_probes": 2, "kernel_velocity": True}
    full = NTKMetrics(**kwargs)
    pl.seed_everything(0)
    trainer(
        tmp_path / "full",
        max_epochs=3,
        callbacks=[full, ModelCheckpoint(tmp_path / "ckpt", filename="{epoch}", save_top_k=-1)],
        enable_checkpointing=True,
    ).fit(CNN(), loader)

    path = tmp_path / "ckpt" / "epoch=0.ckpt"
    state = torch.load(path, weights_only=True)["callbacks"][full.state_key]["meter"]
    assert len(state["probes_x"]) == len(state["initial_kernels"]) == 2
    for j, (x, y) in enumerate(full.probes):
        assert torch.equal(state["probes_x"][j], x) and torch.equal(state["probes_y"][j], y)
        # saved on its own, not as a view of every probe sample
        assert state["probes_x"][j].untyped_storage().nbytes() == x.nbytes

    resumed = NTKMetrics(**{**kwargs, "probe_seed": 123})  # the checkpoint's probes win
    trainer(tmp_path / "resumed", max_epochs=3, callbacks=[resumed]).fit(
        CNN(), loader, ckpt_path=path
    )
    for (x, y), (x_full, y_full) in zip(resumed.probes, full.probes, strict=True):
        assert torch.equal(x, x_full) and torch.equal(y, y_full)
    assert [row["epoch"] for row in resumed.history] == [0, 1, 2, 3]
    for got, want in zip(resumed.history, full.history, strict=True):
        assert_close(got, {key: v for key, v in want.items() if key != "seconds"}, rtol=1e-6)


def test_data_too_small_for_the_probe_batches(tmp_path: Path) -> None:
    message = r"`num_probes=3` .* `probe_size=8` need 3 x 8 = 24 samples, but the data holds 20"
    fit = trainer(tmp_path, callbacks=[NTKMetrics(probe_size=8, num_probes=3)])
    with pytest.raises(ValueError, match=message):
        fit.fit(CNN(), DataLoader(dataset(n=20), batch_size=10))
    with pytest.raises(ValueError, match=message):
        NTKMetrics(probe_size=8, num_probes=3, probe=dataset(n=20))
    x, y = dataset().tensors
    with pytest.raises(ValueError, match="split into 3 equal probe batches .* holds 16 samples"):
        NTKMetrics(num_probes=3, probe=(x[:16], y[:16]))


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_num_probes_is_a_positive_integer(value: object) -> None:
    with pytest.raises(ValueError, match="`num_probes` must be an integer"):
        NTKMetrics(num_probes=value)


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_shards_every_probe_batch(tmp_path: Path) -> None:
    data = dataset()
    x, y = data.tensors[0][:14], data.tensors[1][:14]  # two batches of 7: uneven shards
    pl.seed_everything(0)
    model = MLP()
    state_0 = copy.deepcopy(model.state_dict())
    callback = NTKMetrics(
        measure_at=[0], probe=(x, y), num_probes=2, log_spectrum=False, plot=False
    )
    fit = trainer(
        tmp_path,
        devices=2,
        strategy="ddp_spawn",
        callbacks=[callback],
        logger=CSVLogger(tmp_path),
        limit_train_batches=1,
    )
    fit.fit(model, DataLoader(data, batch_size=8))
    history = read_csv(tmp_path / "lightning_logs" / "version_0" / "ntk_metrics.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NTKMetricWarning)
        per_probe = [
            ntk_metrics(
                K := reference_kernel(MLP(), state_0, xj), yj, metrics=ALL_METRICS, initial_kernel=K
            )
            for xj, yj in ((x[:7], y[:7]), (x[7:], y[7:]))
        ]
    assert len(history) == 1
    assert_close({key: float(v) for key, v in history[0].items()}, mean_and_std(per_probe))
