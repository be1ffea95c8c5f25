"""``ClassificationModule``: train any ``torch.nn.Module`` classifier with Lightning, no code.

The module adds what every image classifier needs around a bare network: cross-entropy,
torchmetrics accuracy, train/validation/test logging and an optimizer. With the ``lga-train``
recipe the network, the optimizer and the scheduler all come from the YAML config.
"""

from __future__ import annotations

import copy
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from lga_lightning.core.probe import default_batch_unpack

PAPER_SGD = {"lr": 0.025, "momentum": 0.9, "weight_decay": 3e-4}
"""The paper's training recipe: SGD, constant learning rate 0.025, momentum 0.9, wd 3e-4."""


def paper_sgd(params: Any) -> torch.optim.Optimizer:
    """The paper's optimizer: ``SGD(lr=0.025, momentum=0.9, weight_decay=3e-4)``.

    Example:
        >>> opt = paper_sgd(nn.Linear(2, 2).parameters())
        >>> opt.defaults["lr"], opt.defaults["momentum"], opt.defaults["weight_decay"]
        (0.025, 0.9, 0.0003)
    """
    return torch.optim.SGD(params, **PAPER_SGD)


class ClassificationModule(pl.LightningModule):
    """Wrap a network that maps images to logits into a LightningModule.

    Training minimises cross-entropy; accuracy is ``torchmetrics``' multiclass (micro) accuracy.
    ``forward`` is the wrapped network's ``forward``, so ``NTKMetrics`` differentiates the network
    itself.

    Logged keys: ``train/loss`` (step and epoch), ``train/acc`` (epoch), ``val/loss``,
    ``val/acc``, ``test/loss``, ``test/acc`` (epoch).

    Args:
        model: any ``nn.Module`` returning logits of shape ``(batch, num_classes)``; in YAML a
            ``class_path`` such as ``lga_lightning.core.models.ResNet`` or
            ``lga_lightning.search.spaces.nb201.NB201Network``.
        num_classes: number of classes; default: the datamodule's ``num_classes``.
        optimizer: a function of the parameters returning an optimizer; in YAML a
            ``class_path`` such as ``torch.optim.AdamW`` with its ``init_args`` (the parameters
            are filled in). Default: the paper's SGD (lr 0.025, momentum 0.9, wd 3e-4).
        lr_scheduler: a function of the optimizer returning a scheduler (``class_path`` such as
            ``torch.optim.lr_scheduler.CosineAnnealingLR``); stepped once per epoch; default none.
        label_smoothing: cross-entropy label smoothing.

    Example:
        >>> import torch
        >>> module = ClassificationModule(torch.nn.Linear(4, 3), num_classes=3)
        >>> module(torch.zeros(2, 4)).shape
        torch.Size([2, 3])
        >>> type(module.configure_optimizers()).__name__
        'SGD'
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int | None = None,
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ValueError(
                f"`model` must be a torch.nn.Module returning logits, got {type(model).__name__}."
            )
        if num_classes is not None and (isinstance(num_classes, bool) or num_classes < 2):
            raise ValueError(f"`num_classes` must be an integer >= 2 or None, got {num_classes!r}.")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"`label_smoothing` must be in [0, 1), got {label_smoothing}.")
        self.model = model
        self.num_classes = num_classes
        self.optimizer_factory = optimizer or paper_sgd
        self.scheduler_factory = lr_scheduler
        self.label_smoothing = label_smoothing
        self.save_hyperparameters(ignore=["model", "optimizer", "lr_scheduler"])
        self._accuracy: nn.ModuleDict | None = None
        if num_classes is not None:
            self._make_metrics(num_classes)

    def _make_metrics(self, num_classes: int) -> None:
        self._accuracy = nn.ModuleDict(
            {
                f"{stage}_acc": MulticlassAccuracy(num_classes=num_classes, average="micro")
                for stage in ("train", "val", "test")
            }
        )

    def setup(self, stage: str) -> None:
        """Take ``num_classes`` from the datamodule when it was not given."""
        if self._accuracy is not None:
            return
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        found = getattr(datamodule, "num_classes", None)
        if not isinstance(found, int):
            raise MisconfigurationException(
                "ClassificationModule needs `num_classes`: pass it (model.init_args.num_classes) "
                "or use a datamodule with a `num_classes` attribute."
            )
        self.num_classes = found
        self._make_metrics(found)

    def forward(self, x: Tensor) -> Tensor:
        """The wrapped network's logits."""
        return self.model(x)

    def check_output(self, x: Tensor, num_classes: int | None = None) -> None:
        """Run a copy of the network on ``x`` and check it returns ``(batch, num_classes)`` logits.

        The network itself is untouched (a copy in eval mode runs without gradients), so this can
        run before training, to fail with one clear line instead of a traceback mid-epoch.

        Raises:
            ValueError: naming what the network returned and the fix.

        Example:
            >>> import torch
            >>> module = ClassificationModule(torch.nn.Linear(4, 3), num_classes=3)
            >>> module.check_output(torch.zeros(2, 4))
            >>> module.check_output(torch.zeros(2, 4), num_classes=5)  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            ValueError: the model returned logits of shape (2, 3), expected (batch, 5); ...
        """
        network = copy.deepcopy(self.model).eval()
        with torch.no_grad():
            _check_logits(network(x), num_classes or self.num_classes)

    def _step(self, batch: Any, stage: str) -> Tensor:
        x, y = default_batch_unpack(batch)  # (x, y, ...) tuples or dicts such as HF batches
        logits = self(x)
        _check_logits(logits, self.num_classes)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
        self._log_step(stage, loss, logits.detach(), y)
        return loss

    @torch.compiler.disable
    def _log_step(self, stage: str, loss: Tensor, logits: Tensor, y: Tensor) -> None:
        # Eager even under torch.compile(module): Lightning's `log` inspects hook signatures,
        # which TorchDynamo cannot trace.
        accuracy = self._accuracy[f"{stage}_acc"]  # type: ignore[index]
        accuracy(logits, y)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True)
        self.log(f"{stage}/acc", accuracy, on_step=False, on_epoch=True, prog_bar=stage != "train")

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        """Cross-entropy of one batch."""
        return self._step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        """Log validation loss and accuracy."""
        self._step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        """Log test loss and accuracy."""
        self._step(batch, "test")

    def configure_optimizers(self) -> Any:
        """The configured optimizer, and scheduler (stepped per epoch) when one is set."""
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler}}


def _check_logits(out: Any, num_classes: int | None) -> None:
    if not isinstance(out, Tensor):
        what = type(out).__name__
        if isinstance(out, dict):
            what += f" with keys {sorted(out)}"
        elif isinstance(out, (tuple, list)):
            what += f" of {len(out)} items"
        raise ValueError(
            f"the model returned a {what}, not a logits tensor; ClassificationModule trains a "
            "network whose forward returns (batch, num_classes) logits: wrap the model in a "
            "module whose forward returns the logits (e.g. out['logits'])."
        )
    if num_classes is not None and (out.dim() != 2 or out.shape[1] != num_classes):
        raise ValueError(
            f"the model returned logits of shape {tuple(out.shape)}, expected "
            f"(batch, {num_classes}); set the network's number of outputs to "
            "`num_classes` (e.g. model.init_args.num_classes)."
        )
