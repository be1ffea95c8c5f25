"""The default search: NAS-Bench-201 cells on the embedded digits, ranked by LGA.

``python -m lga_lightning.search.demo [RESULTS_DIR]`` runs it (about 30 s on a 2-core CPU):
12 random NB201 cells (C=8, N=1) on scikit-learn's digits resized to 16x16 RGB, each trained one
epoch with the paper's SGD recipe, LGA on a 64-image class-balanced probe; prints a line per
candidate and the leaderboard, and writes ``RESULTS_DIR/lga_search/``. Rerunning resumes.
"""

from __future__ import annotations

import sys
from typing import Any

import lightning.pytorch as pl
import torch

from lga_lightning.data import DigitsDataModule
from lga_lightning.search.module import LGASearch
from lga_lightning.search.strategies import RandomSearch
from lga_lightning.spaces import NB201Space


def digits_search(
    root: str = "lga_runs/digits",
    num_candidates: int = 12,
    epochs: int = 1,
    seed: int = 0,
    probe_size: int = 64,
    num_threads: int | None = 1,
    **trainer_kwargs: Any,
) -> LGASearch:
    """Run the default digits search and return the fitted :class:`LGASearch`.

    Args:
        root: the Trainer's ``default_root_dir``; results go to ``<root>/lga_search``.
        num_candidates: random NB201 cells to evaluate.
        epochs: training epochs per candidate.
        seed: search seed.
        probe_size: images in the NTK probe batch.
        num_threads: ``torch.set_num_threads`` for the run (``None`` keeps the current value).
            One thread is the default: these networks are small, and on a busy 2-core CPU two
            spinning OpenMP threads made the same search 9x slower (30 s vs 4.5 min measured).
        **trainer_kwargs: overrides of the Trainer's arguments (e.g. ``logger``).

    Returns:
        The search; ``search.leaderboard`` and ``search.summary`` hold the results.
    """
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    search = LGASearch(
        NB201Space(C=8, N=1),
        RandomSearch(num_candidates=num_candidates, epochs=epochs),
        seed=seed,
        probe_size=probe_size,
    )
    kwargs: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "max_epochs": -1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "default_root_dir": root,
    }
    kwargs.update(trainer_kwargs)
    pl.Trainer(**kwargs).fit(
        search, datamodule=DigitsDataModule(resize=16, channels=3, batch_size=64)
    )
    return search


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: ``python -m lga_lightning.search.demo [RESULTS_ROOT]``."""
    args = sys.argv[1:] if argv is None else argv
    digits_search(args[0] if args else "lga_runs/digits")


if __name__ == "__main__":
    main()
