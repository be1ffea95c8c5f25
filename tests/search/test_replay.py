"""Replaying a search on its measured cells makes the real search's choice, at its cost."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest

from lga_lightning.data import DigitsDataModule
from lga_lightning.search import LGASearch, RandomSearch, SuccessiveHalving
from lga_lightning.search.replay import MeasuredTable, replay, replay_many, table_from_search
from lga_lightning.search.spaces import NB201Space


def real_search(root, strategy):
    search = LGASearch(NB201Space(C=4, N=1), strategy, probe_size=16, progress=False, verbose=False)
    trainer = pl.Trainer(
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(root),
    )
    trainer.fit(search, datamodule=DigitsDataModule(channels=3, batch_size=128))
    return search, trainer


@pytest.mark.slow
@pytest.mark.parametrize(
    "make", [lambda: SuccessiveHalving(num_candidates=4, eta=2), lambda: RandomSearch(3)]
)
def test_replay_on_a_searchs_own_store_makes_its_pick(tmp_path, make):
    search, trainer = real_search(tmp_path, make())
    table = table_from_search(tmp_path / "lga_search" / "results.jsonl", truth={})
    table.truth = {arch: 0.0 for arch in table.values}
    outcome = replay(make(), table, "lga", seed=search.seed, space=NB201Space(C=4, N=1))
    assert outcome.arch == search.leaderboard[0]["arch"]
    assert outcome.candidate_epochs == trainer.current_epoch  # one Lightning epoch per epoch


def test_replay_picks_by_the_signal_and_bounds_hold():
    values = {f"c{i}": {0: {"s": float(i)}, 1: {"s": float(-i)}} for i in range(10)}
    truth = {f"c{i}": float(i) for i in range(10)}
    table = MeasuredTable(values, truth, epoch_seconds=dict.fromkeys(values, 2.0))
    good = replay_many(lambda: RandomSearch(4), table, "s", searches=200, epoch_offset=-1)
    bad = replay_many(lambda: RandomSearch(4), table, "s", searches=200, epoch_offset=0)
    assert good["mean"] == pytest.approx(good["oracle"])  # s@0 ranks as the truth does
    assert bad["mean"] < good["random"] < good["mean"]  # s@1 ranks in reverse
    assert good["candidate_epochs"] == 0 and bad["candidate_epochs"] == 4
    assert bad["seconds"] == pytest.approx(8.0)
