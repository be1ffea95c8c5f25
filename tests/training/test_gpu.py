"""The kernel on a CUDA device: every implementation equals the float64 loop there.

Skipped (with the reason) where CUDA is not available; never counted as run without a GPU.
"""

from __future__ import annotations

import pytest
import torch

from lga_lightning.core.kernel import IMPLEMENTATIONS, empirical_ntk, samples_are_coupled
from lga_lightning.search.spaces import nb201

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

ARCH = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
    "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(a - b) / torch.linalg.matrix_norm(b))


@pytest.mark.parametrize("bn_mode", ["train", "eval"])
@pytest.mark.parametrize("output", ["sum", "trace"])
def test_every_implementation_on_cuda_equals_the_float64_loop(bn_mode, output):
    torch.manual_seed(0)
    model = nb201.build(ARCH, C=4, N=1, num_classes=5).double().cuda()
    x = torch.randn(12, 3, 8, 8, dtype=torch.float64, device="cuda")
    reference = empirical_ntk(
        model.cpu(), x.cpu(), implementation="loop", bn_mode=bn_mode, output=output
    )
    model.cuda()
    names = ["auto", *IMPLEMENTATIONS]
    if samples_are_coupled(model, bn_mode):
        names.remove("per_sample")
    for name in names:
        K = empirical_ntk(
            model, x, implementation=name, bn_mode=bn_mode, output=output, chunk_size=5
        )
        assert K.device.type == "cuda"
        assert rel_err(K.cpu(), reference) <= 1e-10, name


def test_the_kernel_leaves_the_cuda_random_stream_where_it_was():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 3)
    ).cuda()
    x = torch.randn(6, 4, device="cuda")
    before = torch.cuda.get_rng_state()
    for name in IMPLEMENTATIONS:
        empirical_ntk(model, x, implementation=name)
    assert torch.equal(torch.cuda.get_rng_state(), before)


def callback_under_bf16_mixed(accelerator: str) -> tuple[dict, dict]:
    """``NTKMetrics`` at epoch 0 under ``bf16-mixed``, and the core's float32 record (CPU)."""
    import lightning.pytorch as pl

    from lga_lightning import NTKMeter, NTKMetrics
    from lga_lightning.data import DigitsDataModule
    from lga_lightning.training.module import ClassificationModule

    torch.manual_seed(0)
    network = nb201.build(ARCH, C=4, N=1, num_classes=10)
    initial = {k: v.clone() for k, v in network.state_dict().items()}
    data = DigitsDataModule(resize=8, channels=3, batch_size=64)
    callback = NTKMetrics(measure_at=[0], probe_size=16, track_evolution=False, plot=False)
    pl.Trainer(
        accelerator=accelerator, devices=1, precision="bf16-mixed", max_epochs=1,
        limit_train_batches=2, limit_val_batches=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[callback],
    ).fit(ClassificationModule(network, num_classes=10), datamodule=data)  # fmt: skip
    reference_net = nb201.build(ARCH, C=4, N=1, num_classes=10)
    reference_net.load_state_dict(initial)
    meter = NTKMeter(callback.meter.metrics)
    x, y = callback.probe
    meter.set_probes([(x.cpu(), y.cpu())])
    return callback.history[0], meter.measure(reference_net, epoch=0)


def test_the_callback_under_bf16_mixed_on_cuda_measures_the_float32_kernel():
    measured, reference = callback_under_bf16_mixed("gpu")
    for metric, value in reference.items():
        if metric in ("epoch", "seconds"):
            continue
        # the same weights and probe in float32 on another device: summation order differs
        assert measured[metric] == pytest.approx(value, rel=1e-4), metric


def test_one_search_candidate_trains_and_is_measured_on_cuda(tmp_path):
    import lightning.pytorch as pl

    from lga_lightning.data import DigitsDataModule
    from lga_lightning.search import LGASearch, Plain
    from lga_lightning.search.spaces import NB201Space

    search = LGASearch(
        NB201Space(C=4, N=1), Plain(archs=[ARCH], epochs=1, measure_at=[0, 1]), probe_size=16,
        results_dir=str(tmp_path / "search"), progress=False, verbose=False,
    )  # fmt: skip
    pl.Trainer(
        accelerator="gpu", devices=1, max_epochs=-1, limit_train_batches=2, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    ).fit(search, datamodule=DigitsDataModule(resize=8, channels=3, batch_size=64))  # fmt: skip
    records = {int(r["epoch"]): r for r in search.records}
    assert sorted(records) == [0, 1] and all(r["status"] == "ok" for r in records.values())
    assert 0 < records[1]["lga"] <= 1 and records[0]["lga"] != records[1]["lga"]
