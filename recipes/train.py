"""``lga-train``: train any model with Lightning from a YAML config, NTK metrics included.

Any LightningModule and LightningDataModule can be named by ``class_path``; a bare
``torch.nn.Module`` trains through :class:`lga_lightning.module.ClassificationModule`, and the
``NTKMetrics`` callback is configured under ``trainer.callbacks``::

    lga-train fit --config configs/resnet_cifar10.yaml
    lga-train fit --config configs/resnet_cifar10.yaml --trainer.max_epochs 3
    lga-train fit --print_config --config configs/resnet_cifar10.yaml

The subcommands are Lightning's: ``fit``, ``validate``, ``test``, ``predict``.
"""

from __future__ import annotations

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import ArgsType, LightningCLI

from recipes._cli import ThreadsMixin, run_user_errors

PROG = "lga-train"


class TrainCLI(ThreadsMixin, LightningCLI):
    """Lightning's CLI with the model and the data chosen by ``class_path``.

    Example:
        >>> issubclass(TrainCLI, LightningCLI)
        True
    """


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
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"exit_on_error": False, "prog": PROG},
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
    return run_user_errors(PROG, lambda: build_cli(args))


def main(args: ArgsType = None) -> None:
    """Entry point of the ``lga-train`` console script."""
    run(args)


if __name__ == "__main__":
    main()
