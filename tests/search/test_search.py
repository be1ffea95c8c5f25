"""LGASearch in real Trainer runs on the embedded digits: records, reference training, failures,
ground truth and W&B offline output."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _search_run import A, B, C, datamodule, fit, make_search
from _wandb import RecordingWandbLogger

from lga_lightning import empirical_ntk, ntk_metrics
from lga_lightning.data import DigitsDataModule
from lga_lightning.search import (
    LGASearch,
    Plain,
    RandomSearch,
    RegularizedEvolution,
    SuccessiveHalving,
    load_results,
)
from lga_lightning.search.ground_truth import NASBench201, TableGroundTruth
from lga_lightning.search.seeding import derive_seed, seed_global
from lga_lightning.search.spaces import NB201Space, nb201
from lga_lightning.training.sinks import ListSink

VOLATILE = ("seconds", "ntk_seconds", "process")
DEAD = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def stable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in records]


def same(a: Any, b: Any) -> bool:
    """Equality that treats nan == nan."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def store_records(root: Path) -> list[dict]:
    lines = (root / "lga_search" / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[1:]]


def test_random_search_trains_each_candidate_once_and_is_deterministic(tmp_path):
    search, trainer = fit(tmp_path / "a", RandomSearch(num_candidates=3, epochs=2))
    assert trainer.current_epoch == 6  # 3 candidates x 2 epochs, one Lightning epoch each
    assert [(r["candidate"], r["epoch"]) for r in search.records] == [(0, 2), (1, 2), (2, 2)]
    assert stable(store_records(tmp_path / "a")) == stable(search.records)
    again, _ = fit(tmp_path / "b", RandomSearch(num_candidates=3, epochs=2))
    assert same(stable(again.records), stable(search.records))
    assert same(
        load_results(str(tmp_path / "b" / "lga_search"))["leaderboard"][0]["arch"],
        search.leaderboard[0]["arch"],
    )
    # the leaderboard is the records sorted by score, best first
    order = sorted(search.records, key=lambda r: -r["score"])
    assert [r["candidate"] for r in search.leaderboard] == [r["candidate"] for r in order]
    csv_lines = (tmp_path / "a" / "lga_search" / "leaderboard.csv").read_text().splitlines()
    assert len(csv_lines) == 4 and csv_lines[0].startswith("rank,candidate,status")


def test_each_candidate_trains_like_an_independent_reference(tmp_path):
    """Candidate 1 (after candidate 0 trained) equals a hand-written loop from a fresh optimizer."""
    search, _ = fit(tmp_path, Plain(archs=[A, B], epochs=1), seed=3)
    record = search.records[1]
    dm = datamodule()
    dm.setup()
    torch.manual_seed(derive_seed(3, "init", 1))
    model = nb201.build(B, C=4, N=1, num_classes=10, in_channels=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.025, momentum=0.9, weight_decay=3e-4)
    seed_global(derive_seed(3, "data", 1, 1))
    total, count = 0.0, 0
    for x, y in dm.train_dataloader():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total, count = total + float(loss.detach()) * len(y), count + len(y)
    assert record["train_loss"] == pytest.approx(total / count, rel=1e-5)
    x, y = dm.probe_batch(16, 42)
    want = ntk_metrics(empirical_ntk(model, x, implementation="loop"), y)
    for name in ("lga", "condition_number", "trace"):
        assert record[name] == pytest.approx(want[name], rel=1e-3), name
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in dm.val_dataloader())
    assert record["val_acc"] == pytest.approx(correct / len(dm.val_set))
    assert record["num_params"] == sum(p.numel() for p in model.parameters())
    assert record["params"] == record["num_params"]  # the signal: every parameter trains


def test_successive_halving_continues_survivors(tmp_path):
    search, trainer = fit(tmp_path, SuccessiveHalving(num_candidates=4, eta=2))
    assert trainer.current_epoch == 4 * 1 + 2 * 1 + 1 * 2
    epochs = [(r["candidate"], r["epoch"]) for r in search.records]
    assert sorted(e for _, e in epochs) == [1, 1, 1, 1, 2, 2, 4]
    rung0 = sorted((r for r in search.records if r["epoch"] == 1), key=lambda r: -r["score"])
    assert sorted(c for c, e in epochs if e == 2) == sorted(r["candidate"] for r in rung0[:2])
    assert search.leaderboard[0]["epoch"] == 4
    assert not list((tmp_path / "lga_search" / "states").iterdir())  # cleaned up


def test_evolution_runs_under_the_trainer(tmp_path):
    s = RegularizedEvolution(num_candidates=5, population_size=3, sample_size=2)
    search, trainer = fit(tmp_path, s)
    assert trainer.current_epoch == 5 and len(search.records) == 5


class NanAfterSpace(NB201Space):
    """NB201 where one architecture's network produces nan logits (a diverging candidate)."""

    def build(self, arch, num_classes=10, **kwargs):
        net = super().build(arch, num_classes, **kwargs)
        if arch == B:
            net.classifier.register_forward_hook(lambda m, i, out: out * float("nan"))
        return net


def test_divergent_and_dead_candidates_do_not_stop_the_search(tmp_path):
    space = NanAfterSpace(C=4, N=1)
    search, trainer = fit(tmp_path, Plain(archs=[B, DEAD, A], epochs=2), space=space)
    status = {r["arch"]: r["status"] for r in search.leaderboard}
    assert status == {A: "ok", B: "diverged", DEAD: "undefined"}
    assert search.leaderboard[0]["arch"] == A
    diverged = next(r for r in search.records if r["arch"] == B)
    assert diverged["epoch"] == 1 and not math.isfinite(diverged["train_loss"])
    assert [r["epoch"] for r in search.records if r["arch"] == DEAD] == [1, 2]
    assert trainer.current_epoch == 1 + 2 + 2


def test_when_every_candidate_fails_no_architecture_is_chosen(tmp_path, capsys):
    search, _ = fit(tmp_path, Plain(archs=[B, DEAD], epochs=1), space=NanAfterSpace(C=4, N=1))
    assert {r["status"] for r in search.leaderboard} == {"diverged", "undefined"}
    assert "best_arch" not in search.summary
    counts = {k: search.summary[k] for k in ("failed", "diverged", "undefined")}
    assert counts == {"failed": 0, "diverged": 1, "undefined": 1}
    saved = load_results(str(tmp_path / "lga_search"))["summary"]
    assert "best_arch" not in saved


def test_ground_truth_gives_true_accuracy_and_regret(tmp_path):
    strategy = RandomSearch(num_candidates=3)
    strategy.bind(NB201Space(), 0)
    archs = [strategy.propose().arch for _ in range(3)]
    table = {a: 90.0 + i for i, a in enumerate(archs)}
    table[DEAD] = 95.0  # known to the benchmark, never evaluated
    truth = TableGroundTruth.from_records([{"arch": a, "cifar10": v} for a, v in table.items()])
    search, _ = fit(tmp_path, RandomSearch(num_candidates=3), ground_truth=truth)
    chosen = search.leaderboard[0]["arch"]
    assert [r["true_acc"] for r in search.leaderboard] == [
        table[r["arch"]] for r in search.leaderboard
    ]
    assert search.summary["best_true_acc"] == table[chosen]
    assert search.summary["regret_evaluated"] == pytest.approx(92.0 - table[chosen])
    assert search.summary["regret_space"] == pytest.approx(95.0 - table[chosen])


def test_rank_by_train_loss(tmp_path):
    search, _ = fit(tmp_path, RandomSearch(num_candidates=3), rank_by="train_loss")
    losses = [r["train_loss"] for r in search.leaderboard]
    assert losses == sorted(losses)


def test_rerun_with_other_settings_is_refused(tmp_path):
    fit(tmp_path, RandomSearch(num_candidates=1))
    with pytest.raises(ValueError, match="holds a different search"):
        fit(tmp_path, RandomSearch(num_candidates=1), seed=1)


def test_rerun_on_other_data_is_refused(tmp_path):
    """Candidates trained on other data must not join the stored ones."""
    fit(tmp_path, RandomSearch(num_candidates=1))
    other = DigitsDataModule(resize=16, channels=3, batch_size=128)
    with pytest.raises(ValueError, match="holds a different search.*data:.*resize=16"):
        fit(tmp_path, RandomSearch(num_candidates=1), data=other)
    fit(tmp_path, RandomSearch(num_candidates=1))  # the stored settings still resume


def test_wandb_logger_receives_table_curves_and_scatter(tmp_path):
    logger = RecordingWandbLogger()
    search, _ = fit(tmp_path, RandomSearch(num_candidates=2), logger=logger)
    history = [metrics for metrics, _ in logger.metrics]
    for rec in search.records:
        key = f"candidate/{rec['candidate']:04d}"
        got = [(h, step) for h, step in logger.metrics if f"{key}/lga" in h]
        assert len(got) == 1 and got[0][0][f"{key}/lga"] == pytest.approx(rec["lga"])
        assert got[0][0][f"{key}/val_acc"] == pytest.approx(rec["val_acc"])
        assert got[0][0][f"{key}/epoch"] == rec["epoch"]
        steps = [h[f"{key}/train_loss_step"] for h in history if f"{key}/train_loss_step" in h]
        assert len(steps) == rec["steps"] > 1
        assert all(math.isfinite(v) for v in steps)
    steps = [step for _, step in logger.metrics]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)  # one axis, never back
    (table,) = [t for t in logger.tables if t["key"] == "search/leaderboard"]
    arch = table["columns"].index("arch")
    assert [row[arch] for row in table["data"]] == [r["arch"] for r in search.leaderboard]
    (image,) = [i for i in logger.images if i["key"] == "search/scatter"]
    scatter = tmp_path / "lga_search" / "scatter.png"
    assert image["images"] == [str(scatter)] and scatter.stat().st_size > 1000


def test_store_header_tells_optimizer_settings_apart(tmp_path):
    """A CLI optimizer is a partial of the optimizer class: its arguments are in the header."""
    import functools

    from lga_lightning.training.module import paper_sgd
    from lga_lightning.utils.describe import describe as _describe

    slow = _describe(functools.partial(torch.optim.SGD, lr=0.01))
    fast = _describe(functools.partial(torch.optim.SGD, lr=0.5))
    assert slow == "torch.optim.sgd.SGD(lr=0.01)" and slow != fast
    assert " at 0x" not in _describe(functools.partial(lambda p, lr: None, lr=0.1))
    assert _describe(paper_sgd) == "lga_lightning.training.module.paper_sgd"


@pytest.mark.parametrize(
    "query",
    [{"ground_truth_dataset": "cifar-10"}, {"ground_truth_split": "x-valid"}],
    ids=["dataset", "split"],
)
def test_a_ground_truth_query_that_cannot_be_answered_fails_before_training(tmp_path, query):
    """Otherwise every candidate's true accuracy is a silent nan after the whole search."""
    truth = TableGroundTruth.from_records([{"arch": A, "cifar10/ori-test/200": 93.0}])
    with pytest.raises(LookupError, match="no accuracy column"):
        fit(tmp_path, Plain(archs=[A]), ground_truth=truth, **query)
    assert not (tmp_path / "lga_search" / "results.jsonl").exists()
    # a missing benchmark file is named before any candidate trains, not after the search
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        fit(tmp_path, Plain(archs=[A]), ground_truth=NASBench201(tmp_path / "absent.pth"), **query)
    assert not (tmp_path / "lga_search" / "results.jsonl").exists()


def test_rank_by_several_signals_combined_by_log_rank(tmp_path):
    from scipy.stats import rankdata

    search, _ = fit(tmp_path, Plain(archs=[A, B, C], epochs=1), rank_by=["lga", "train_loss"])
    rows = search.leaderboard
    lga = np.array([r["lga"] for r in rows])
    loss = np.array([r["train_loss"] for r in rows])
    n = len(rows)
    # best highest: a high LGA and a low training loss get high ranks
    expected = np.log(rankdata(lga) / n) + np.log(rankdata(-loss) / n)
    assert [r["score"] for r in rows] == pytest.approx(expected.tolist())
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    assert search.summary["signal"] == "lga+train_loss"


def test_a_combined_ranking_is_refused_where_decisions_use_scores(tmp_path):
    with pytest.raises(ValueError, match="RandomSearch or Plain"):
        LGASearch(
            NB201Space(C=4, N=1), SuccessiveHalving(num_candidates=4), rank_by=["lga", "mean"]
        )


def _comparable_rows(rows: list[dict]) -> list[dict]:
    """Rows with nan as a token (nan != nan)."""
    return [
        {k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
        for row in rows
    ]


def test_a_search_hands_each_stored_record_to_its_sinks_once_also_when_resumed(tmp_path):
    strategy = Plain(archs=[A, B, C], epochs=1, measure_at=(0, 1))
    first = ListSink()
    stopped = make_search(strategy, results_dir=str(tmp_path / "run"), sinks=[first])
    trainer = pl.Trainer(
        max_epochs=1,  # stops the search after its first candidate
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(stopped, datamodule=datamodule())
    lines = (tmp_path / "run" / "results.jsonl").read_text().splitlines()[1:]
    assert [r["candidate"] for r in first.records] == [0, 0]
    assert _comparable_rows(first.records) == _comparable_rows([json.loads(x) for x in lines])

    more = ListSink()  # the same search rerun: only the records it adds reach the sinks
    search, _ = fit(tmp_path, strategy, results_dir=str(tmp_path / "run"), sinks=[more])
    assert [r["candidate"] for r in more.records] == [1, 1, 2, 2]
    assert _comparable_rows(first.records + more.records) == _comparable_rows(search.records)


def test_an_object_without_write_is_refused_naming_the_search():
    with pytest.raises(ValueError, match=r"`LGASearch\(sinks=...\)`.*got str"):
        make_search(Plain(archs=[A]), sinks=["results.jsonl"])
