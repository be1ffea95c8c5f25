"""``lga-search``: architecture search ranked by LGA (``LGASearch``) from a YAML config.

The config has Lightning's sections: ``model`` (the search: space, strategy, ranking, probe,
optimizer, ground truth), ``data`` (any datamodule, by ``class_path``) and ``trainer``::

    lga-search --config configs/demo.yaml
    lga-search --config configs/search_nb201_cifar10.yaml --data.init_args.root /data
    lga-search --config configs/demo.yaml --print_config

Rerunning the same command resumes the search from its results store
(``<trainer.default_root_dir>/lga_search`` unless ``model.results_dir`` says otherwise); the
leaderboard is printed at the end and written there as CSV and JSON.
"""

from __future__ import annotations

from typing import Any

from jsonargparse import lazy_instance
from lightning.pytorch import LightningDataModule
from lightning.pytorch.cli import ArgsType, LightningCLI

from lga_lightning.ground_truth import NASBench201, TableGroundTruth
from lga_lightning.search import LGASearch
from lga_lightning.spaces import NB201Space
from recipes._cli import ThreadsMixin, run_user_errors

PROG = "lga-search"
DEFAULT_SPACE = lazy_instance(NB201Space, C=16, N=5)

TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": -1,
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
    "default_root_dir": "lga_runs/search",
}
"""The search drives its candidates itself: no Lightning checkpoints, summary or epoch bar."""


def lga_search(
    space: NB201Space = DEFAULT_SPACE,
    ground_truth: NASBench201 | TableGroundTruth | None = None,
    **kwargs: Any,
) -> LGASearch:
    """Build an :class:`~lga_lightning.search.LGASearch` from the config's ``model`` section.

    Args:
        space: the search space (NAS-Bench-201 with its ``C`` and ``N``).
        ground_truth: true accuracies of the space's architectures (a NAS-Bench-201 file or a
            table), to report the chosen architecture's accuracy and regret.
        **kwargs: every other argument of ``LGASearch`` (strategy, rank_by, probe_size, ...).

    Returns:
        The search module.

    Example:
        >>> lga_search(NB201Space(C=4, N=1), probe_size=8).probe_size
        8
    """
    return LGASearch(space=space, ground_truth=ground_truth, **kwargs)


class SearchCLI(ThreadsMixin, LightningCLI):
    """Lightning's CLI for the search; runs ``trainer.fit`` without a subcommand.

    Example:
        >>> issubclass(SearchCLI, LightningCLI)
        True
    """


def build_cli(args: ArgsType = None) -> SearchCLI:
    """Parse ``args`` (default: the command line) and instantiate the search, data and trainer.

    Args:
        args: e.g. ``["--config", "configs/demo.yaml"]``; default ``sys.argv[1:]``.

    Returns:
        The CLI, with ``model`` (the search), ``datamodule`` and ``trainer``.
    """
    return SearchCLI(
        lga_search,
        LightningDataModule,
        subclass_mode_data=True,
        trainer_defaults=TRAINER_DEFAULTS,
        seed_everything_default=False,
        save_config_callback=None,
        auto_configure_optimizers=False,
        parser_kwargs={"exit_on_error": False, "prog": PROG},
        args=args,
        run=False,
    )


def run(args: ArgsType = None) -> LGASearch:
    """Run ``lga-search`` in-process: parse, search, print the leaderboard.

    Returns:
        The fitted search (``.leaderboard``, ``.summary``, ``.results_dir``).
    """

    def body() -> LGASearch:
        cli = build_cli(args)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        return cli.model

    return run_user_errors(PROG, body)


def main(args: ArgsType = None) -> None:
    """Entry point of the ``lga-search`` console script."""
    run(args)


if __name__ == "__main__":
    main()
