"""NTKMetrics in the Lightning setups users train with.

Each setup is a real ``Trainer`` run of a small user LightningModule. Every cell checks two
things: the kernel metrics at epoch 0 equal the measuring core's on the same weights and probe
(``NTKMeter``, float32 or the dtype stated), and training with the callback leaves exactly the
weights training without it leaves. A setup that cannot be measured is refused in one line.
"""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from lga_lightning import NTKMeter, NTKMetrics

METRICS = ["lga", "condition_number", "trace"]
N, PROBE = 96, 16


def images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(N) % 4
    return torch.randn(N, 3, 6, 6, generator=g) + y.view(-1, 1, 1, 1) * 0.1, y


class DictImages(Dataset):
    """Hugging Face style items: ``{"pixel_values": ..., "labels": ...}``."""

    def __init__(self) -> None:
        self.x, self.y = images()

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> dict:
        return {"pixel_values": self.x[i], "labels": self.y[i]}


class StreamedImages(IterableDataset):
    def __iter__(self):
        x, y = images()
        return iter(zip(x, y, strict=True))


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 4),
    )


class UserModule(pl.LightningModule):
    def __init__(self, manual: bool = False) -> None:
        super().__init__()
        self.net = net()
        self.manual = manual
        self.automatic_optimization = not manual

    def forward(self, x):
        return self.net(x)

    def _xy(self, batch):
        return (batch["pixel_values"], batch["labels"]) if isinstance(batch, dict) else batch

    def training_step(self, batch, batch_idx):
        x, y = self._xy(batch)
        loss = nn.functional.cross_entropy(self(x), y)
        if not self.manual:
            return loss
        first, second = self.optimizers()
        first.zero_grad(), second.zero_grad()
        self.manual_backward(loss)
        first.step(), second.step()
        return None

    def validation_step(self, batch, batch_idx):
        x, y = self._xy(batch)
        self.log("val/loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        if not self.manual:
            return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
        body = [p for n, p in self.named_parameters() if not n.startswith("net.5")]
        return (
            torch.optim.SGD(body, lr=0.05),
            torch.optim.Adam(self.net[5].parameters(), lr=1e-2),
        )


def fit(callback, dataset, manual=False, val=False, **trainer_kwargs) -> UserModule:
    module = UserModule(manual)
    pl.seed_everything(0, verbose=False)
    loader = DataLoader(dataset, batch_size=32, shuffle=not isinstance(dataset, IterableDataset))
    pl.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback] if callback else [],
        limit_val_batches=1 if val else 0,
        num_sanity_val_steps=0,
        **trainer_kwargs,
    ).fit(module, loader, DataLoader(dataset, batch_size=32) if val else None)
    return module


def reference(dtype=torch.float32) -> dict:
    meter = NTKMeter(METRICS)
    meter.draw_probes(torch.utils.data.TensorDataset(*images()), PROBE, seed=42)
    x, y = meter.probes[0]
    meter.set_probes([(x.to(dtype), y)])
    return meter.measure(UserModule().to(dtype), epoch=0)


def callback() -> NTKMetrics:
    return NTKMetrics(measure_at=[0, 1, 2], probe_size=PROBE, metrics=METRICS, plot=False)


SETUPS = {
    "dict batches": ({"dataset": "dict"}, torch.float32),
    "gradient accumulation": ({"accumulate_grad_batches": 2}, torch.float32),
    "manual optimisation, two optimizers": ({"manual": True}, torch.float32),
    "validation loop": ({"val": True}, torch.float32),
    "bf16-mixed": ({"precision": "bf16-mixed"}, torch.float32),
    "16-mixed": ({"precision": "16-mixed"}, torch.float32),
    "64-true": ({"precision": "64-true"}, torch.float64),
}


@pytest.mark.parametrize("setup", list(SETUPS))
def test_the_callback_measures_the_core_kernel_and_leaves_training_unchanged(setup):
    options, dtype = SETUPS[setup]
    options = dict(options)
    dataset = DictImages() if options.pop("dataset", None) == "dict" else None
    if dataset is None:
        dataset = torch.utils.data.TensorDataset(*images())
    measured = callback()
    with_callback = fit(measured, dataset, **options)
    without = fit(None, dataset, **options)
    expected = reference(dtype)
    assert [row["epoch"] for row in measured.history] == [0, 1, 2]
    for metric in METRICS:
        assert measured.history[0][metric] == expected[metric], metric
    for a, b in zip(with_callback.parameters(), without.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_strategy_that_shards_the_parameters_is_refused_at_setup_in_one_line():
    from lightning.pytorch.strategies import ModelParallelStrategy
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    module = UserModule()
    before = [p.detach().clone() for p in module.parameters()]
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        strategy=ModelParallelStrategy(),
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback()],
    )
    loader = DataLoader(torch.utils.data.TensorDataset(*images()), batch_size=32)
    with pytest.raises(MisconfigurationException, match="ModelParallelStrategy shards") as info:
        trainer.fit(module, loader)
    assert "\n" not in str(info.value) and "strategy='ddp'" in str(info.value)
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def test_an_iterable_dataset_needs_a_probe_and_says_so():
    with pytest.raises(ValueError, match="probe") as info:
        fit(callback(), StreamedImages())
    assert "\n" not in str(info.value)


def test_an_iterable_dataset_with_probe_tensors_is_measured():
    x, y = images()
    measured = NTKMetrics(measure_at=[0], probe=(x[:PROBE], y[:PROBE]), metrics=METRICS, plot=False)
    fit(measured, StreamedImages())
    meter = NTKMeter(METRICS)
    meter.set_probes([(x[:PROBE], y[:PROBE])])
    assert measured.history[0]["lga"] == meter.measure(UserModule(), epoch=0)["lga"]


def test_the_projects_own_module_trains_on_dict_batches_like_on_tuples():
    from lga_lightning.training.module import ClassificationModule

    def trained(dataset) -> list[torch.Tensor]:
        module = ClassificationModule(net(), num_classes=4)
        pl.seed_everything(0, verbose=False)
        pl.Trainer(
            max_epochs=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        ).fit(module, DataLoader(dataset, batch_size=32, shuffle=True))
        return [p.detach().clone() for p in module.parameters()]

    as_dicts = trained(DictImages())
    as_tuples = trained(torch.utils.data.TensorDataset(*images()))
    assert all(torch.equal(a, b) for a, b in zip(as_dicts, as_tuples, strict=True))


@pytest.mark.slow
def test_a_compiled_classification_module_trains_and_is_measured_on_its_weights():
    from lga_lightning.training.module import ClassificationModule

    measured = callback()
    module = ClassificationModule(net(), num_classes=4)
    pl.seed_everything(0, verbose=False)
    pl.Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[measured],
    ).fit(torch.compile(module), DataLoader(torch.utils.data.TensorDataset(*images()), 32))
    assert [row["epoch"] for row in measured.history] == [0, 1, 2]
    meter = NTKMeter(METRICS)
    meter.draw_probes(torch.utils.data.TensorDataset(*images()), PROBE, seed=42)
    initial = meter.measure(ClassificationModule(net(), num_classes=4), epoch=0)
    after = meter.measure(module, epoch=2)  # the trained weights, measured eagerly
    # The measurement runs the compiled forward: equal to eager to float32 rounding.
    for metric in METRICS:
        assert measured.history[0][metric] == pytest.approx(initial[metric], rel=1e-5), metric
        assert measured.history[2][metric] == pytest.approx(after[metric], rel=1e-5), metric


class LazyModule(UserModule):
    def __init__(self, initialise_in_setup: bool) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.LazyLinear(8), nn.ReLU(), nn.Linear(8, 4))
        self.initialise_in_setup = initialise_in_setup

    def setup(self, stage: str) -> None:
        if self.initialise_in_setup:
            self.net(torch.zeros(1, 3, 6, 6))  # the fix the error names


def test_a_lazy_model_is_refused_with_the_fix_which_then_works():
    dataset = torch.utils.data.TensorDataset(*images())
    trainer_kwargs = dict(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0,
    )  # fmt: skip
    early = NTKMetrics(measure_at=[0], probe_size=PROBE, metrics=METRICS, plot=False)
    with pytest.raises(ValueError, match="lazy parameters .* in the LightningModule's `setup`"):
        pl.Trainer(callbacks=[early], **trainer_kwargs).fit(
            LazyModule(initialise_in_setup=False), DataLoader(dataset, batch_size=32)
        )
    fixed = NTKMetrics(measure_at=[0, 1], probe_size=PROBE, metrics=METRICS, plot=False)
    pl.Trainer(callbacks=[fixed], **trainer_kwargs).fit(
        LazyModule(initialise_in_setup=True), DataLoader(dataset, batch_size=32)
    )
    assert [row["epoch"] for row in fixed.history] == [0, 1]


def test_the_search_refuses_a_strategy_that_shards_the_parameters_at_setup_in_one_line(tmp_path):
    from lightning.pytorch.strategies import ModelParallelStrategy
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    from lga_lightning.data import DigitsDataModule
    from lga_lightning.search import LGASearch, Plain
    from lga_lightning.search.spaces import NB201Space

    arch = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    search = LGASearch(
        NB201Space(C=4, N=1), Plain([arch], epochs=1), probe_size=8, progress=False,
        verbose=False, results_dir=str(tmp_path / "search"),
    )  # fmt: skip
    trainer = pl.Trainer(
        max_epochs=-1, accelerator="cpu", devices=1, strategy=ModelParallelStrategy(),
        logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(tmp_path),
    )  # fmt: skip
    data = DigitsDataModule(resize=8, channels=3, batch_size=64)
    with pytest.raises(MisconfigurationException, match="LGASearch needs every rank") as info:
        trainer.fit(search, datamodule=data)
    assert "\n" not in str(info.value) and "ModelParallelStrategy shards" in str(info.value)
    assert "strategy='ddp'" in str(info.value)
    assert not (tmp_path / "search" / "results.jsonl").exists()  # refused before any record
