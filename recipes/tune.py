"""``lga-tune``: an ``lga-search`` config run on Ray Tune, candidates early-stopped by LGA.

Any ``lga-search`` config runs as it is (``model``, ``data``, ``trainer``); a ``tune`` section
says how (:class:`~lga_lightning.search.tune.TuneSearch`: scheduler, rungs, resources, cluster)::

    lga-tune --config configs/tune_digits.yaml
    lga-tune --config configs/demo.yaml --tune.trial_scheduler asha --tune.eta 2
    lga-tune --config configs/tune_nb201_cifar10.yaml --tune.address auto

Needs the ``ray`` extra (``pip install "lga-lightning[ray]"``). Results go to ``model.results_dir``
or ``<trainer.default_root_dir>/lga_tune``; rerunning the same command after a crash restores the
experiment there. Each trial's ``Trainer`` gets the ``trainer`` options that concern one device
(``accelerator``, ``precision``, ``limit_train_batches``, ...); the ``trainer.logger`` (W&B, ...)
logs the whole search as one run.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import MutableMapping
from typing import Any, Literal, Optional

import lightning.pytorch as pl
from lightning.pytorch.cli import ArgsType

from lga_lightning.utils.lock import OutputLock
from recipes import search as search_recipe
from recipes._cli import run_user_errors
from recipes.search import SearchCLI

PROG = "lga-tune"
DESCRIPTION = (
    "Run an lga-search config on Ray Tune: each candidate is a Tune trial, and ASHA or "
    "HyperBand stops the weak ones early on their LGA score; the tune section says how "
    "(scheduler, rungs, resources, cluster). Try first: lga-tune --config "
    'configs/tune_digits.yaml (needs the ray extra: pip install "lga-lightning[ray]"). '
    "Outputs land in <trainer.default_root_dir>/lga_tune/ (or model.results_dir): the "
    "leaderboard, results.jsonl and Tune's experiment; rerunning the same command restores it."
)

DRIVER_ONLY = frozenset(
    {
        "logger",
        "callbacks",
        "default_root_dir",
        "max_epochs",
        "enable_checkpointing",
        "enable_progress_bar",
        "enable_model_summary",
        "num_sanity_val_steps",
        "use_distributed_sampler",
    }
)
"""Trainer options that concern the driver, not a trial's Trainer."""


def tune_options(
    trial_scheduler: Literal["asha", "hyperband", "none"] = "asha",
    min_epochs: int = 1,
    eta: int = 3,
    searcher: Optional[Any] = None,  # noqa: UP045 - jsonargparse reads the annotation
    num_candidates: Optional[int] = None,  # noqa: UP045
    cpu: float = 1.0,
    gpu: float = 0.0,
    max_concurrent_trials: Optional[int] = None,  # noqa: UP045
    max_failures: int = 1,
    reuse_processes: bool = True,
    address: Optional[str] = None,  # noqa: UP045
    storage: Optional[str] = None,  # noqa: UP045
    num_cpus: Optional[int] = None,  # noqa: UP045
    num_gpus: Optional[int] = None,  # noqa: UP045
) -> dict[str, Any]:
    """The ``tune`` section: how the search runs on Ray Tune.

    Args:
        trial_scheduler: ``asha`` (asynchronous successive halving on the ranking signal),
            ``hyperband`` or ``none`` (every candidate trains its full budget).
        min_epochs: epochs before the first comparison (ASHA's grace period).
        eta: keep the top ``1/eta`` at each rung; rungs are ``eta`` times apart.
        searcher: one of Tune's searchers (``class_path``, e.g.
            ``ray.tune.search.optuna.OptunaSearch``) instead of the model's strategy.
        num_candidates: trials a Tune searcher suggests (default: the strategy's).
        cpu: CPUs per trial (and its torch threads).
        gpu: GPUs per trial; fractions share a GPU (``0.5``: two trials per GPU).
        max_concurrent_trials: trials at once (default: as many as the cluster's resources allow
            when the search starts; set it for a cluster that grows).
        max_failures: retries of a failed trial before it ranks last.
        reuse_processes: a worker trains trial after trial in one process (no new Python,
            torch and Lightning per candidate).
        address: ``auto`` (or ``ray://host:port``) to use a running Ray cluster; default: a
            local Ray started for this search.
        storage: where Tune keeps its experiment and the trials' checkpoints, seen by every node
            (default: the results folder; e.g. ``s3://bucket/lga`` when the nodes share no
            folder).
        num_cpus: CPUs of the local Ray (default: all of this machine's).
        num_gpus: GPUs of the local Ray (default: all of this machine's).

    Returns:
        The options, as keyword arguments of :class:`~lga_lightning.search.tune.TuneSearch`.
    """
    return dict(locals())


def trial_trainer_options(trainer: dict[str, Any]) -> dict[str, Any]:
    """The ``trainer`` options each trial's ``Trainer`` gets: those set away from the defaults.

    Raises:
        ValueError: the config asks for several devices or a strategy per trial.

    Example:
        >>> trial_trainer_options({"accelerator": "cpu", "devices": 1, "max_epochs": -1,
        ...                        "precision": None, "limit_train_batches": 4})
        {'accelerator': 'cpu', 'limit_train_batches': 4}
    """
    defaults = {
        name: p.default for name, p in inspect.signature(pl.Trainer.__init__).parameters.items()
    }
    devices, strategy = trainer.get("devices", 1), trainer.get("strategy", "auto")
    if devices not in (1, "1", "auto", None) or strategy not in ("auto", None):
        raise ValueError(
            f"trainer.devices={devices!r}, trainer.strategy={strategy!r}: on Ray Tune each trial "
            "trains one candidate on one device; remove them and set tune.cpu / tune.gpu (and "
            "tune.num_gpus for a local Ray) instead."
        )
    skip = {*DRIVER_ONLY, "devices", "strategy", "num_nodes"}
    return {
        k: v
        for k, v in trainer.items()
        if k not in skip and k in defaults and v != defaults[k] and v is not None
    }


class TuneCLI(SearchCLI):
    """``lga-search``'s CLI with a ``tune`` section; nothing is fitted in this process.

    Example:
        >>> issubclass(TuneCLI, SearchCLI)
        True
    """

    def add_arguments_to_parser(self, parser: Any) -> None:
        """Add the ``tune`` section."""
        parser.add_function_arguments(tune_options, "tune")
        super().add_arguments_to_parser(parser)

    results_subdir = "lga_tune"

    def check_config(self, config: Any) -> None:
        """Check the results directory (writable, not in use) before anything is built."""
        folder, option = self.check_output(config)
        OutputLock(folder, option=f"`{option}`").check()
        trial_trainer_options(dict(config.get("trainer") or {}))


RAY_QUIET = {"RAY_AIR_NEW_OUTPUT": "0"}
"""Ray settings of ``lga-tune``: Tune's legacy output, which ``verbose=0`` silences (the new one
prints its configuration box, the results path and a TensorBoard hint whatever the verbosity);
the search prints its own lines."""


def quiet_ray(environ: MutableMapping[str, str] | None = None) -> None:
    """Set Ray's environment (default ``os.environ``) for a quiet start; the user's values stay.

    Ray's one-line notice that a new local cluster uses token authentication stays: it is about
    security, and setting ``RAY_AUTH_MODE`` here would change what the cluster does.

    Example:
        >>> env = {"RAY_DEDUP_LOGS": "0"}
        >>> quiet_ray(environ=env)
        >>> env
        {'RAY_DEDUP_LOGS': '0', 'RAY_AIR_NEW_OUTPUT': '0'}
    """
    env = os.environ if environ is None else environ
    for name, value in RAY_QUIET.items():
        env.setdefault(name, value)


def build_cli(args: ArgsType = None) -> TuneCLI:
    """Parse ``args`` (default: the command line); build the search, the data and the loggers."""
    cli = search_recipe.build_cli(args, TuneCLI, PROG, DESCRIPTION)
    assert isinstance(cli, TuneCLI)
    return cli


def run(args: ArgsType = None) -> Any:
    """Run ``lga-tune`` in-process: parse, search on Ray Tune, print the leaderboard.

    Returns:
        The finished :class:`~lga_lightning.search.tune.TuneSearch` (``.leaderboard``,
        ``.summary``).
    """

    def body() -> Any:
        cli = build_cli(args)  # parses (and --print_config works) without Ray
        try:
            from lga_lightning.search.tune import TuneSearch
        except ImportError as err:
            raise ValueError(str(err)) from None
        config = cli.config
        options = dict(cli.config_init["tune"])
        quiet_ray()
        search = TuneSearch(
            cli.model,
            cli.datamodule,
            trainer=trial_trainer_options(dict(config["trainer"])),
            loggers=cli.trainer.loggers,
            results_dir=search_recipe.results_dir(
                config["model"], config["trainer"], TuneCLI.results_subdir
            ),
            **options,
        )
        summary = search.fit()
        if not summary.get("done", True):
            raise SystemExit(130)  # Ctrl+C: Tune saved the experiment; the message says how on
        return search

    return run_user_errors(PROG, body, args)


def main(args: ArgsType = None) -> None:
    """Entry point of the ``lga-tune`` console script."""
    run(args)


if __name__ == "__main__":
    main()
