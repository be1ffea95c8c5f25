"""``lga-search``: architecture search ranked by LGA (``LGASearch``) from a YAML config.

The config has Lightning's sections: ``model`` (the search: space, strategy, ranking, probe,
optimizer, ground truth), ``data`` (any datamodule, by ``class_path``) and ``trainer``::

    lga-search --config configs/demo.yaml
    lga-search --config configs/search_nb201_cifar10.yaml --data.init_args.root /data
    lga-search --config configs/demo.yaml --print_config

Rerunning the same command resumes the search from its results store
(``<trainer.default_root_dir>/lga_search`` unless ``model.results_dir`` says otherwise); the
leaderboard is printed at the end and written there as CSV and JSON. One search at a time uses a
results directory (``OutputLock``: a second one is refused), and a directory that cannot be
written is reported before anything is trained.
"""

from __future__ import annotations

import os
from typing import Any

from jsonargparse import lazy_instance
from lightning.pytorch import LightningDataModule
from lightning.pytorch.cli import ArgsType, LightningCLI

from lga_lightning.search import LGASearch
from lga_lightning.search.ground_truth import NASBench201, TableGroundTruth, nb201_table
from lga_lightning.search.spaces import NB201Space, SearchSpace
from lga_lightning.search.store import STORE_NAME, ResultsStore
from lga_lightning.search.writer import check_ground_truth
from lga_lightning.utils.files import check_output_dir
from lga_lightning.utils.lock import OutputLock
from recipes._cli import ThreadsMixin, one_line, run_user_errors
from recipes._help import lightning_parser_class

PROG = "lga-search"
DESCRIPTION = (
    "Search a space of neural architectures, ranking the candidates by Label-Gradient "
    "Alignment (LGA): each candidate is trained briefly, its neural tangent kernel measured on a "
    "probe batch, and the leaderboard printed. Try first: lga-search --config "
    "configs/demo.yaml (12 cells on the embedded digits, about 25 s on a 2-core CPU). Outputs "
    "land in <trainer.default_root_dir>/lga_search/ (or model.results_dir): leaderboard.csv and "
    ".json, results.jsonl, scatter.png; rerunning the same command resumes the search."
)
USAGE = "%(prog)s --config FILE [--model.KEY VALUE] [--data.KEY VALUE] [--trainer.KEY VALUE]"
DEFAULT_SPACE = lazy_instance(NB201Space, C=16, N=5)

TRAINER_DEFAULTS: dict[str, Any] = {
    "max_epochs": -1,
    "logger": False,
    "enable_checkpointing": False,
    "enable_progress_bar": False,
    "enable_model_summary": False,
    "num_sanity_val_steps": 0,
    "default_root_dir": "lga_runs/search",
    "use_distributed_sampler": False,
}
"""The search drives its candidates itself: no Lightning checkpoints, summary or epoch bar; under
DDP each process trains its own candidates on the whole data (no sampler sharding it)."""


def lga_search(
    space: SearchSpace = DEFAULT_SPACE,
    ground_truth: NASBench201 | TableGroundTruth | None = None,
    embedded_ground_truth: bool = True,
    **kwargs: Any,
) -> LGASearch:
    """Build an :class:`~lga_lightning.search.LGASearch` from the config's ``model`` section.

    Args:
        space: the search space: any class implementing
            :class:`~lga_lightning.search.spaces.SearchSpace` (default: NAS-Bench-201, C=16, N=5).
        ground_truth: true accuracies of the space's architectures (a NAS-Bench-201 file or a
            table), to report the chosen architecture's accuracy and regret.
        embedded_ground_truth: without ``ground_truth``, use the NAS-Bench-201 table shipped
            with the package (200-epoch accuracies of all 15,625 cells; the query's dataset,
            split and budget come from ``ground_truth_dataset``/``_split``/``_hp``). The
            accuracies are the benchmark's, of each cell trained at C=16, N=5 on the benchmark's
            dataset, whatever data and size the search uses.
        **kwargs: every other argument of ``LGASearch`` (strategy, rank_by, probe_size, ...).

    Returns:
        The search module.

    Raises:
        ValueError: when the strategy names an architecture the space cannot decode, or
            measures at an epoch below 1 (checked here, before the Trainer is built).

    Example:
        >>> lga_search(NB201Space(C=4, N=1), probe_size=8).probe_size
        8
    """
    check_strategy(kwargs.get("strategy"), space)
    if ground_truth is None and embedded_ground_truth:
        ground_truth = nb201_table()
    return LGASearch(space=space, ground_truth=ground_truth, **kwargs)


def check_strategy(strategy: Any, space: Any) -> None:
    """Check a strategy's ``archs`` (decoded by ``space``) and ``measure_at`` (epochs >= 1).

    Raises:
        ValueError: naming the config key, the bad value and the fix.

    Example:
        >>> from lga_lightning.search import Plain
        >>> check_strategy(Plain(archs=["|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|"]),
        ...                NB201Space(C=4, N=1))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: model.strategy.archs[0]: invalid NAS-Bench-201 arch string ...
    """
    for i, arch in enumerate(getattr(strategy, "archs", None) or []):
        try:
            space.decode(arch)
        except ValueError as err:
            raise ValueError(f"model.strategy.archs[{i}]: {one_line(err)}") from None
    measure_at = getattr(strategy, "measure_at", None) or ()
    if any(isinstance(e, bool) or not isinstance(e, int) or e < 1 for e in measure_at):
        raise ValueError(
            f"model.strategy.measure_at: epochs to measure after must be integers >= 1 (1 = "
            f"after the first epoch), got {list(measure_at)}; remove the others."
        )


class SearchCLI(ThreadsMixin, LightningCLI):
    """Lightning's CLI for the search; runs ``trainer.fit`` without a subcommand.

    Before anything is built, the results directory is checked (it can be created and written).

    Example:
        >>> issubclass(SearchCLI, LightningCLI)
        True
    """

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """Check the data files, the ground truth and the search before the Trainer is built."""
        if isinstance(getattr(type(self.datamodule), "arrays", None), property):
            self.datamodule.arrays  # noqa: B018  (reads and checks every data file, once)
        check_ground_truth(self.model.ground_truth, self.model.ground_truth_query)
        self.model.check_data(self.datamodule)
        return super().instantiate_trainer(**kwargs)

    threads_default = "auto"
    threads_to_model = True

    results_subdir = "lga_search"
    """The results folder in ``trainer.default_root_dir`` when ``model.results_dir`` is unset."""

    def check_output(self, config: Any) -> tuple[str, str]:
        """Check that the root and results folders can be written.

        Returns:
            The results folder and the option that names it (for messages).
        """
        model, trainer = config.get("model") or {}, config.get("trainer") or {}
        root = trainer.get("default_root_dir") or TRAINER_DEFAULTS["default_root_dir"]
        check_output_dir(root, "trainer.default_root_dir")
        folder = results_dir(model, trainer, self.results_subdir)
        option = "model.results_dir" if model.get("results_dir") else "trainer.default_root_dir"
        check_output_dir(folder, option)
        return folder, option

    def check_config(self, config: Any) -> None:
        """Check the results directory before any work: writable, not in use, store readable."""
        folder, option = self.check_output(config)
        trainer = config.get("trainer") or {}
        if trainer.get("use_distributed_sampler") is True:
            raise ValueError(
                "trainer.use_distributed_sampler: true would give each process a shard of the "
                "data, but LGASearch trains each candidate on the whole data in one process; "
                "set it to false (the search's default)."
            )
        if _worker():
            return  # a DDP worker: the launching process holds the lock
        OutputLock(folder, option=f"`{option}`").check()
        ResultsStore(os.path.join(folder, STORE_NAME)).read()  # a damaged line is named now


def results_dir(model: Any, trainer: Any, subdir: str = SearchCLI.results_subdir) -> str:
    """Where a search writes: ``model.results_dir``, else ``<default_root_dir>/<subdir>``.

    Example:
        >>> results_dir({}, {"default_root_dir": "runs"}), results_dir({"results_dir": "r"}, {})
        ('runs/lga_search', 'r')
    """
    root = trainer.get("default_root_dir") or TRAINER_DEFAULTS["default_root_dir"]
    return model.get("results_dir") or os.path.join(root, subdir)


def build_cli(
    args: ArgsType = None,
    cli_class: type[SearchCLI] | None = None,
    prog: str = PROG,
    description: str = DESCRIPTION,
) -> SearchCLI:
    """Parse ``args`` (default: the command line) and instantiate the search, data and trainer.

    Args:
        args: e.g. ``["--config", "configs/demo.yaml"]``; default ``sys.argv[1:]``.
        cli_class: the CLI class (default :class:`SearchCLI`; ``lga-tune`` adds a section).
        prog: the program name in messages.
        description: the paragraph that starts ``--help``.

    Returns:
        The CLI, with ``model`` (the search), ``datamodule`` and ``trainer``.
    """
    return (cli_class or SearchCLI)(
        lga_search,
        LightningDataModule,
        subclass_mode_data=True,
        trainer_defaults=TRAINER_DEFAULTS,
        seed_everything_default=False,
        save_config_callback=None,
        auto_configure_optimizers=False,
        parser_kwargs={
            "exit_on_error": False,
            "prog": prog,
            "description": description,
            "usage": USAGE,
        },
        parser_class=lightning_parser_class(),
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
        try:
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        except SystemExit:
            # Lightning ends a fit stopped by Ctrl+C with exit(1) and one stopped by SIGTERM
            # with exit(0); the search has written its partial leaderboard and said how to
            # resume, and the exit status says what happened.
            stopped_by = cli.model.interrupted_by
            if stopped_by is not None:
                raise SystemExit(130 if stopped_by == "SIGINT" else 143) from None
            raise
        return cli.model

    return run_user_errors(PROG, body, args)


def _worker() -> bool:
    """Whether this process was started by a DDP launcher for a rank other than 0."""
    ranks = (os.environ.get(name, "0") for name in ("RANK", "LOCAL_RANK", "NODE_RANK"))
    return not all(rank in ("", "0") for rank in ranks)


def main(args: ArgsType = None) -> None:
    """Entry point of the ``lga-search`` console script."""
    run(args)


if __name__ == "__main__":
    main()
