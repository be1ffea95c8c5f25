"""The study's training run records what the Trainer did: each epoch's mean training loss and the
validation accuracy of the weights that epoch ended with."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from lga_lightning.core.meter import NTKMeter
from lga_lightning.data import DigitsDataModule
from recipes._study import TrainAndMeasure


class Witness(Callback):
    """Keeps every training batch's loss and size, and each epoch's validation accuracy."""

    def __init__(self) -> None:
        self.losses: dict[int, list[tuple[float, int]]] = {}
        self.accuracy: dict[int, float] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        epoch = trainer.current_epoch + 1
        self.losses.setdefault(epoch, []).append((float(outputs["loss"]), len(batch[1])))

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.state.fn == "fit":
            loader = trainer.datamodule.val_dataloader()
            model = pl_module.model.eval()
            with torch.no_grad():
                hits = sum(int((model(x).argmax(1) == y).sum()) for x, y in loader)
            model.train()
            self.accuracy[trainer.current_epoch + 1] = hits / len(loader.dataset)


def test_recorded_loss_and_accuracy_are_the_epochs_own():
    data = DigitsDataModule(resize=8, batch_size=64)
    data.setup("fit")
    meter = NTKMeter(["lga"])
    meter.draw_probes(data, size=10, seed=0)
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
    )
    witness = Witness()
    run = TrainAndMeasure(
        {"n10": meter},
        measure_at=[0, 1, 2],
        trainer_kwargs={"accelerator": "cpu", "limit_train_batches": 4, "callbacks": [witness]},
    )
    entries = run.fit(net, data, num_classes=10, seed=0)
    assert sorted(entries) == [0, 1, 2] and math.isnan(entries[0]["train_loss"])
    for epoch in (1, 2):
        losses, sizes = zip(*witness.losses[epoch], strict=True)
        assert len(losses) == 4
        assert entries[epoch]["train_loss"] == pytest.approx(np.average(losses, weights=sizes))
        assert entries[epoch]["val_acc"] == pytest.approx(witness.accuracy[epoch])
    assert entries[1]["ntk"]["n10"]["lga"] != entries[2]["ntk"]["n10"]["lga"]  # trained between
