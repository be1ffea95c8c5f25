"""``lga-train``: train any model with Lightning from a YAML config, NTK metrics included.

Any LightningModule and LightningDataModule can be named by ``class_path``; a bare
``torch.nn.Module`` trains through :class:`lga_lightning.training.module.ClassificationModule`, and
the ``NTKMetrics`` callback is configured under ``trainer.callbacks``::

    lga-train fit --config configs/resnet_cifar10.yaml
    lga-train fit --config configs/resnet_cifar10.yaml --trainer.max_epochs 3
    lga-train fit --print_config --config configs/resnet_cifar10.yaml

The subcommands are Lightning's: ``fit``, ``validate``, ``test``, ``predict``.
"""

from __future__ import annotations

import inspect
import logging
import os
from typing import Any

from jsonargparse import ArgumentParser
from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import ArgsType, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from lga_lightning.core.probe import isolated_rng
from lga_lightning.training._rundir import run_dir
from lga_lightning.training.module import ClassificationModule
from lga_lightning.utils.files import check_output_dir
from recipes._cli import ThreadsMixin, run_user_errors
from recipes._help import lightning_parser_class

PROG = "lga-train"
DESCRIPTION = (
    "Train any LightningModule (or a torch.nn.Module, as a classifier) on any LightningDataModule "
    "from a YAML config, with the NTKMetrics callback measuring the network's neural tangent "
    "kernel as it trains. Try first: lga-train fit --config configs/train_digits.yaml (a small "
    "CNN on the embedded digits, about 10 s on a 2-core CPU). Outputs land in the logger's run "
    "folder under trainer.default_root_dir (lga_runs/train_digits/lightning_logs/version_N for "
    "that config): metrics.csv, ntk_metrics.csv, config.yaml and checkpoints."
)
SUBCOMMANDS = ("fit", "validate", "test", "predict")

KEEP_NULLS = (
    {"skip_unset": False}
    if "skip_unset" in inspect.signature(ArgumentParser.save).parameters
    else {"skip_none": False}
)
"""``parser.save`` keeping the null entries: ``skip_unset`` (jsonargparse 4.49+, where
``skip_none`` is deprecated) or ``skip_none`` before it."""


class SaveConfigInRunDir(SaveConfigCallback):
    """Saves ``config.yaml`` in the run's own folder (never over another run's config).

    Example:
        >>> issubclass(SaveConfigInRunDir, SaveConfigCallback)
        True
    """

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Write the config once, in :func:`~lga_lightning.training._rundir.run_dir` (rank 0)."""
        if self.already_saved:
            return
        folder = run_dir(trainer)  # a collective: every rank calls it
        if trainer.is_global_zero:
            os.makedirs(folder, exist_ok=True)
            self.parser.save(
                self.config,
                os.path.join(folder, self.config_filename),
                **KEEP_NULLS,
                overwrite=self.overwrite,
                multifile=self.multifile,
            )
        self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)


class TrainCLI(ThreadsMixin, LightningCLI):
    """Lightning's CLI with the model and the data chosen by ``class_path``.

    Before anything is built, ``trainer.default_root_dir`` and the loggers' ``save_dir`` are
    checked (they can be created and written) and so are the epochs of each ``NTKMetrics``
    callback.

    Example:
        >>> issubclass(TrainCLI, LightningCLI)
        True
    """

    def _set_seed(self) -> None:
        """Seed as Lightning does; its "Seed set" line waits until the configuration is checked."""
        seed_log = logging.getLogger("lightning.fabric.utilities.seed")
        level = seed_log.level
        seed_log.setLevel(logging.WARNING)
        try:
            super()._set_seed()
        finally:
            seed_log.setLevel(level)

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """Check that the network returns logits before the Trainer starts (one clear line)."""
        model, data = self.model, self.datamodule
        probe_batch = getattr(data, "probe_batch", None)
        if isinstance(model, ClassificationModule) and callable(probe_batch):
            with isolated_rng(0):
                x, _ = probe_batch(size=2, seed=0)
            model.check_output(x, model.num_classes or getattr(data, "num_classes", None))
        seed = self._get(self.config, "seed_everything")
        if seed is not False and seed is not None:
            rank_zero_info(f"Seed set to {seed}")
        return super().instantiate_trainer(**kwargs)

    def check_config(self, config: Any) -> None:
        """Check the output folder and the callbacks' epoch lists before any work."""
        trainer = config.get("trainer") or {}
        if trainer.get("default_root_dir"):
            check_output_dir(trainer["default_root_dir"], "trainer.default_root_dir")
        loggers = trainer.get("logger")
        for i, logger in enumerate(loggers if isinstance(loggers, (list, tuple)) else [loggers]):
            save_dir = _get(_get(logger, "init_args") or {}, "save_dir")
            if isinstance(save_dir, (str, os.PathLike)):
                key = f"[{i}]" if isinstance(loggers, (list, tuple)) else ""
                check_output_dir(save_dir, f"trainer.logger{key}.init_args.save_dir")
        check_callback_epochs(trainer.get("callbacks"))


def check_callback_epochs(callbacks: Any) -> None:
    """Check that every callback's ``measure_at`` list holds integers >= 0.

    Raises:
        ValueError: naming the callback's config key, its value and the fix.

    Example:
        >>> check_callback_epochs([{"class_path": "lga_lightning.NTKMetrics",
        ...                         "init_args": {"measure_at": [0, -1]}}])
        Traceback (most recent call last):
        ...
        ValueError: trainer.callbacks[0].init_args.measure_at (lga_lightning.NTKMetrics): ...
    """
    if not isinstance(callbacks, (list, tuple)):
        return
    for i, callback in enumerate(callbacks):
        init_args = _get(callback, "init_args") or {}
        epochs = _get(init_args, "measure_at")
        if not isinstance(epochs, (list, tuple)):
            continue
        if any(isinstance(e, bool) or not isinstance(e, int) or e < 0 for e in epochs):
            raise ValueError(
                f"trainer.callbacks[{i}].init_args.measure_at ({_get(callback, 'class_path')}): "
                f"measure_at must be integers >= 0 (0 = at initialisation, e = after e epochs), "
                f"got {list(epochs)}; remove the others."
            )


def _get(node: Any, key: str) -> Any:
    if hasattr(node, "get"):
        return node.get(key)
    return getattr(node, key, None)


def build_cli(args: ArgsType = None, run: bool = True) -> TrainCLI:
    """Parse ``args`` (default: the command line), instantiate, and run the subcommand.

    Args:
        args: command-line arguments, e.g. ``["fit", "--config", "configs/resnet_cifar10.yaml"]``
            (or a dict of the config); default ``sys.argv[1:]``.
        run: run the subcommand; with ``False`` the arguments must not name one and the CLI
            only instantiates the trainer, model and datamodule.

    Returns:
        The CLI, with ``trainer``, ``model`` and ``datamodule`` attributes.
    """
    return TrainCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        seed_everything_default=42,
        save_config_callback=SaveConfigInRunDir,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={
            "exit_on_error": False,
            "prog": PROG,
            "description": DESCRIPTION,
            "usage": "%(prog)s {fit,validate,test,predict} --config FILE [--KEY VALUE ...]",
            **{
                name: {
                    "description": DESCRIPTION,
                    "usage": f"{PROG} {name} --config FILE [--model.KEY VALUE] [--trainer.KEY ...]",
                }
                for name in SUBCOMMANDS
            },
        },
        parser_class=lightning_parser_class(),
        args=args,
        run=run,
    )


def run(args: ArgsType = None) -> TrainCLI:
    """Run ``lga-train`` in-process; a configuration error is one line on stderr (exit 2).

    Returns:
        The CLI, with the fitted ``model`` and the ``trainer``.

    Example:
        >>> run(["fit", "--help"])  # doctest: +SKIP
    """
    return run_user_errors(PROG, lambda: build_cli(args), args)


def main(args: ArgsType = None) -> None:
    """Entry point of the ``lga-train`` console script."""
    run(args)


if __name__ == "__main__":
    main()
