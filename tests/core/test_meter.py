"""NTKMeter, the measuring core: its records against kernels and metrics computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lga_lightning import NTKMeter
from lga_lightning.core.kernel import empirical_ntk


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 7), nn.Tanh(), nn.Linear(7, 3))


def batch(seed: int, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 5, generator=g), torch.arange(n) % 3


def pearson_lga(kernel: torch.Tensor, y: torch.Tensor) -> float:
    """LGA written out: the Pearson correlation of the entries of K and of the label kernel."""
    labels = (y[:, None] == y[None, :]).double() * 2 - 1
    return float(np.corrcoef(kernel.double().flatten(), labels.flatten())[0, 1])


def test_a_record_holds_the_metrics_of_the_kernel_of_its_probe():
    model, (x, y) = mlp(), batch(1)
    meter = NTKMeter(["lga", "trace", "frobenius_norm"])
    meter.set_probes([(x, y)])
    record = meter.measure(model, epoch=3)
    kernel = empirical_ntk(model, x)
    assert record["epoch"] == 3 and record["seconds"] >= 0
    assert record["lga"] == pytest.approx(pearson_lga(kernel, y), rel=1e-5)
    assert record["trace"] == pytest.approx(float(torch.diagonal(kernel).sum()), rel=1e-6)
    assert record["frobenius_norm"] == pytest.approx(float(kernel.norm()), rel=1e-6)


def test_several_probes_give_the_mean_and_the_sample_std():
    model = mlp()
    probes = [batch(seed) for seed in (1, 2, 3)]
    meter = NTKMeter(["lga"])
    meter.set_probes(probes)
    record = meter.measure(model, epoch=0)
    values = [pearson_lga(empirical_ntk(model, x), y) for x, y in probes]
    assert record["lga"] == pytest.approx(np.mean(values), rel=1e-5)
    assert record["lga_std"] == pytest.approx(np.std(values, ddof=1), rel=1e-4)
    assert meter.keys == ["lga", "lga_std"]


def test_evolution_compares_with_the_first_kernel_and_velocity_with_the_previous():
    model, (x, y) = mlp(), batch(1)
    meter = NTKMeter(["lga"], track_evolution=True, kernel_velocity=True)
    meter.set_probes([(x, y)])
    first = meter.measure(model, epoch=0)
    k0 = empirical_ntk(model, x)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.3)
    second = meter.measure(model, epoch=1)
    k1 = empirical_ntk(model, x)
    cosine = float((k0 * k1).sum() / (k0.norm() * k1.norm()))
    assert first["kernel_distance"] == 0.0 and math.isnan(first["kernel_velocity"])
    assert second["kernel_distance"] == pytest.approx(1 - cosine, abs=1e-6)
    assert second["kernel_velocity"] == pytest.approx(1 - cosine, abs=1e-6)


def test_state_round_trips_through_a_weights_only_load(tmp_path):
    model, probe = mlp(), batch(1)
    meter = NTKMeter(["lga"], track_evolution=True)
    meter.set_probes([probe])
    meter.measure(model, epoch=0)
    torch.save(meter.state_dict(), tmp_path / "meter.pt")
    restored = NTKMeter(["lga"], track_evolution=True)
    restored.load_state_dict(torch.load(tmp_path / "meter.pt", weights_only=True))
    assert torch.equal(restored.initial_kernels[0], meter.initial_kernels[0])
    assert restored.measure(model, epoch=1) == {
        **meter.measure(model, epoch=1),
        "seconds": pytest.approx(0, abs=60),
    }


def test_a_single_class_probe_warns_once_and_gives_nan():
    model, (x, _) = mlp(), batch(1)
    meter = NTKMeter(["lga"])
    meter.set_probes([(x, torch.zeros(len(x), dtype=torch.long))])
    assert math.isnan(meter.measure(model, epoch=0)["lga"])
    meter.measure(model, epoch=1)
    warnings = meter.pop_warnings()
    assert len(warnings) == 1 and "single class" in warnings[0]


def test_a_meter_without_probes_says_how_to_set_them():
    with pytest.raises(RuntimeError, match="draw_probes"):
        NTKMeter(["lga"]).measure(mlp(), epoch=0)


def test_measuring_does_not_depend_on_the_order_of_the_probe_samples():
    model, (x, y) = mlp(), batch(1)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(5))
    meters = [NTKMeter(["lga", "condition_number", "trace"]) for _ in range(2)]
    meters[0].set_probes([(x, y)])
    meters[1].set_probes([(x[order], y[order])])
    a, b = (m.measure(model, epoch=0) for m in meters)
    for key in ("lga", "condition_number", "trace"):
        assert a[key] == pytest.approx(b[key], rel=1e-5), key
