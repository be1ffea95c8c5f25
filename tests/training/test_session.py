"""The measurement session: every surface gives the same record under every Trainer precision.

Surfaces: the ``NTKMetrics`` callback, ``LGASearch``, the search restricted to one job as a Ray
Tune trial runs it (``LGASearch.for_job``), and the study's train-and-measure loop
(``recipes._study.TrainAndMeasure``, behind ``lga-correlate``). ``lga-linearize`` measures
through ``NTKMetrics``; tests/training/test_five_surfaces.py compares all five surfaces, after
training too. The reference is the measuring core alone (``NTKMeter``) on the same weights, in
the dtype the session promises.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from lga_lightning import NTKMeter, NTKMetrics
from lga_lightning.core.probe import draw_probe
from lga_lightning.data import DigitsDataModule
from lga_lightning.search import LGASearch, Plain
from lga_lightning.search.module import DEFAULT_METRICS
from lga_lightning.search.seeding import derive_seed
from lga_lightning.search.spaces import NB201Space
from lga_lightning.search.strategies import Job
from lga_lightning.training.module import ClassificationModule
from lga_lightning.training.session import MeasurementSession, computed_in
from recipes._study import TrainAndMeasure

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|"
METRICS = ["lga", "condition_number", "frobenius_norm", "mean", "trace"]
PROBE_SIZE, PROBE_SEED, SEED = 10, 42, 3
PRECISIONS = ["32-true", "64-true", "bf16-mixed"]


def data() -> DigitsDataModule:
    return DigitsDataModule(resize=8, channels=3, batch_size=64)


def network() -> nn.Module:
    torch.manual_seed(derive_seed(SEED, "init", 0))
    return NB201Space(C=4, N=1).build(ARCH, num_classes=10, in_channels=3)


def trainer(tmp_path, precision: str, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_train_batches=2,
        limit_val_batches=1,
        default_root_dir=tmp_path,
        **kwargs,
    )


def probe() -> tuple[torch.Tensor, torch.Tensor]:
    dm = data()
    dm.setup("fit")
    return draw_probe(dm, PROBE_SIZE, PROBE_SEED)[0]


def core_reference(dtype: torch.dtype) -> dict:
    meter = NTKMeter(METRICS)
    x, y = probe()
    meter.set_probes([(x.to(dtype), y)])
    return meter.measure(network().to(dtype), epoch=0)


def callback_record(tmp_path, precision: str) -> dict:
    callback = NTKMetrics(
        measure_at=[0], probe_size=PROBE_SIZE, metrics=METRICS, track_evolution=False, plot=False
    )
    module = ClassificationModule(network(), num_classes=10)
    trainer(tmp_path, precision, max_epochs=1, callbacks=[callback]).fit(module, datamodule=data())
    return callback.history[0]


def search(tmp_path, **options) -> LGASearch:
    return LGASearch(
        NB201Space(C=4, N=1),
        Plain(archs=[ARCH], epochs=1, measure_at=[0, 1]),
        seed=SEED,
        probe_size=PROBE_SIZE,
        results_dir=str(tmp_path / "search"),
        progress=False,
        verbose=False,
        **{"metrics": METRICS, **options},
    )


def search_record(tmp_path, precision: str) -> dict:
    run = search(tmp_path)
    trainer(tmp_path, precision, max_epochs=-1).fit(run, datamodule=data())
    return next(r for r in run.records if r["epoch"] == 0)


def trial_record(tmp_path, precision: str) -> dict:
    one = search(tmp_path).for_job(Job(0, ARCH, 1, (0, 1)), str(tmp_path / "trial"))
    trainer(tmp_path, precision, max_epochs=-1).fit(one, datamodule=data())
    return next(r for r in one.records if r["epoch"] == 0)


def study_record(tmp_path, precision: str) -> dict:
    meter = NTKMeter(METRICS)
    meter.set_probes([probe()])
    run = TrainAndMeasure(
        {"n10-train": meter},
        measure_at=[0, 1],
        trainer_kwargs={"precision": precision, "limit_train_batches": 2},
    )
    entries = run.fit(network(), data(), num_classes=10, seed=SEED)
    return entries[0]["ntk"]["n10-train"]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_surface_gives_the_core_record_at_every_precision(tmp_path, precision):
    dtype = torch.float64 if precision == "64-true" else torch.float32
    reference = core_reference(dtype)
    records = {
        "callback": callback_record(tmp_path / "callback", precision),
        "search": search_record(tmp_path / "search", precision),
        "trial": trial_record(tmp_path / "trial", precision),
        "study": study_record(tmp_path / "study", precision),
    }
    for metric in METRICS:
        assert math.isfinite(reference[metric]), metric
        for surface, record in records.items():
            assert record[metric] == reference[metric], (surface, metric)


def test_bf16_true_weights_are_measured_in_float32(tmp_path):
    # Under bf16-true the kernel is the float32 kernel of the bf16 weights themselves.
    callback = NTKMetrics(
        measure_at=[0], probe_size=PROBE_SIZE, metrics=METRICS, track_evolution=False, plot=False
    )
    module = ClassificationModule(network(), num_classes=10)
    trainer(tmp_path, "bf16-true", max_epochs=1, callbacks=[callback]).fit(
        module, datamodule=data()
    )
    rounded = network().bfloat16().float()
    meter = NTKMeter(METRICS)
    meter.set_probes([probe()])
    expected = meter.measure(rounded, epoch=0)
    unrounded = core_reference(torch.float32)
    for metric in METRICS:
        assert callback.history[0][metric] == expected[metric], metric
    # ... which differs from the float32 network's kernel by the rounding of the weights alone
    assert callback.history[0]["lga"] != unrounded["lga"]
    assert callback.history[0]["lga"] == pytest.approx(unrounded["lga"], rel=1e-2)


def test_a_float64_model_is_measured_in_float64_from_a_float32_probe():
    model = network().double()
    x, y = probe()
    session = MeasurementSession(NTKMeter(METRICS, proxies=["grad_norm", "synflow"]))
    session.meter.set_probes([(x, y)])
    record = session.measure(model, epoch=0)
    reference = NTKMeter(METRICS, proxies=["grad_norm", "synflow"])
    reference.set_probes([(x.double(), y)])
    expected = reference.measure(model, epoch=0)
    for key in [*METRICS, "grad_norm", "synflow"]:
        assert record[key] == expected[key], key
    assert all(p.dtype == torch.float64 for p in model.parameters())


def test_a_measurement_leaves_model_grad_and_every_rng_as_it_was():
    import random

    import numpy as np

    model = network()
    model(torch.randn(4, 3, 8, 8)).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    session = MeasurementSession(NTKMeter(METRICS, proxies=["jacob_cov", "zico"]))
    session.meter.set_probes([probe()])
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    session.measure(model, epoch=0)
    after = (torch.rand(1).item(), np.random.rand(), random.random())
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    assert after == (torch.rand(1).item(), np.random.rand(), random.random())
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads, strict=True))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())


def test_computed_in_restores_low_precision_weights_bit_for_bit_and_keeps_parameters():
    model = network().bfloat16()
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    with computed_in(model, torch.float32):
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    pairs = zip(params, before, strict=True)
    assert all(torch.equal(p, b) and p.dtype == torch.bfloat16 for p, b in pairs)


def test_an_explicit_kernel_dtype_is_used_and_a_bad_one_is_refused():
    model = network()
    x, y = probe()
    session = MeasurementSession(NTKMeter(["lga"]), kernel_dtype="float64")
    session.meter.set_probes([(x, y)])
    assert session.compute_dtype(model) == torch.float64
    reference = NTKMeter(["lga"])
    reference.set_probes([(x.double(), y)])
    expected = reference.measure(network().double(), epoch=0)["lga"]
    assert session.measure(model, epoch=0)["lga"] == pytest.approx(expected, rel=1e-12)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with pytest.raises(ValueError, match="`kernel_dtype` must be a floating dtype"):
        MeasurementSession(NTKMeter(["lga"]), kernel_dtype="int64")


def test_the_callback_takes_a_meter_instance_and_refuses_duplicated_options():
    meter = NTKMeter(["lga"], kernel_velocity=True)
    callback = NTKMetrics(meter=meter)
    assert callback.meter is meter and callback.kernel_velocity and callback.metrics == ("lga",)
    with pytest.raises(ValueError, match=r"\['metrics'\] were given too; pass them to NTKMeter"):
        NTKMetrics(meter=meter, metrics=["trace"])


def test_every_surface_shares_one_default_probe():
    import inspect

    defaults = {
        cls.__name__: (
            inspect.signature(cls).parameters["probe_size"].default,
            inspect.signature(cls).parameters["probe_seed"].default,
        )
        for cls in (NTKMetrics, LGASearch)
    }
    assert len(set(defaults.values())) == 1, defaults


def test_the_search_takes_a_meter_instance_and_measures_with_it(tmp_path):
    meter = NTKMeter(["lga", "trace"], kernel_kwargs={"bn_mode": "eval"})
    run = search(tmp_path, meter=meter, metrics=DEFAULT_METRICS)
    assert run.meter is meter and run.metrics == ("lga", "trace")
    trainer(tmp_path, "32-true", max_epochs=-1).fit(run, datamodule=data())
    reference = NTKMeter(["lga", "trace"], kernel_kwargs={"bn_mode": "eval"})
    reference.set_probes([probe()])
    expected = reference.measure(network(), epoch=0)
    record = next(r for r in run.records if r["epoch"] == 0)
    assert (record["lga"], record["trace"]) == (expected["lga"], expected["trace"])
    with pytest.raises(ValueError, match=r"\['proxies'\] given too"):
        LGASearch(NB201Space(C=4, N=1), meter=meter, proxies=["snip"])
