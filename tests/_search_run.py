"""A small, quiet search run in a real Trainer: what the search, signal and Tune tests share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from lga_lightning.data import DigitsDataModule
from lga_lightning.search import LGASearch
from lga_lightning.search.spaces import NB201Space

A = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"
B = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_3x3~0|skip_connect~1|none~2|"
C = "|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|none~2|"


def datamodule() -> DigitsDataModule:
    return DigitsDataModule(channels=3, batch_size=128)


def make_search(strategy, space=None, **kwargs) -> LGASearch:
    """A small, quiet search: NB201 C=4 N=1 cells, a 16-sample probe."""
    return LGASearch(
        space or NB201Space(C=4, N=1),
        strategy,
        probe_size=16,
        progress=False,
        verbose=False,
        **kwargs,
    )


def fit(
    root: Path,
    strategy,
    logger: Any = False,
    space=None,
    data=None,
    trainer_kwargs: dict | None = None,
    **kwargs,
) -> tuple[LGASearch, pl.Trainer]:
    search = make_search(strategy, space, **kwargs)
    trainer = pl.Trainer(
        max_epochs=-1,
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(root),
        **(trainer_kwargs or {}),
    )
    trainer.fit(search, datamodule=data or datamodule())
    return search, trainer
