"""Names renamed in 0.3: the old keywords are refused, stores written by 0.2 still read."""

from __future__ import annotations

import json

import pytest

from lga_lightning._compat import RENAMED, upgrade_0_2
from lga_lightning.search.store import ResultsStore
from recipes._store import stored_records

FINGERPRINT_0_2 = {"epochs": [0, 1], "params": "paper", "proxies": []}
RECORD_0_2 = {"kind": "arch", "arch": "a", "params": 1234, "flops": 10, "epochs": {}}


def test_a_0_2_fingerprint_and_record_get_the_new_keys():
    header = upgrade_0_2({"kind": "study", "fingerprint": FINGERPRINT_0_2})
    wanted = {"measure_at": [0, 1], "param_selection": "paper", "proxies": []}
    assert header["fingerprint"] == wanted
    record = upgrade_0_2(RECORD_0_2)
    assert record["num_params"] == 1234 and record["params"] == 1234  # the count and the signal
    assert "num_params" not in RECORD_0_2  # the line read is not changed in place


def test_a_0_3_line_passes_unchanged():
    line = {"kind": "arch", "arch": "a", "params": 8.0, "num_params": 9}
    assert upgrade_0_2(line) == line
    header = {"kind": "study", "fingerprint": {"param_selection": "all"}}
    assert upgrade_0_2(header) == header


def test_a_0_2_study_store_resumes_under_the_new_fingerprint(tmp_path):
    raw = tmp_path / "raw.jsonl"
    lines = [{"kind": "study", "fingerprint": FINGERPRINT_0_2}, RECORD_0_2]
    raw.write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))
    wanted = {"measure_at": [0, 1], "param_selection": "paper", "proxies": []}
    records = stored_records(raw, wanted)
    assert records["a"]["num_params"] == 1234 and records["a"]["params"] == 1234
    with pytest.raises(ValueError, match="differs in \\['param_selection'\\]"):
        stored_records(raw, {**wanted, "param_selection": "all"})


def test_a_0_2_search_store_reads_with_the_new_keys(tmp_path):
    path = tmp_path / "results.jsonl"
    header = {"kind": "search", "version": 1, "kernel_kwargs": {"params": "'all'"}}
    record = {"kind": "measurement", "candidate": 0, "epoch": 1, "lga": 0.5, "params": 99}
    path.write_text(json.dumps(header) + "\n" + json.dumps(record) + "\n")
    stored, records = ResultsStore(path).read()
    assert stored["kernel_kwargs"] == {"param_selection": "'all'"}
    assert records[0]["num_params"] == 99 and records[0]["params"] == 99


def test_the_committed_0_2_study_stores_read_with_the_new_keys():
    from pathlib import Path

    from recipes._store import read_store

    for folder in ("study_cifar10_subset", "study_c16n5"):
        lines = read_store(Path(__file__).parents[2] / "docs" / folder / "raw.jsonl")
        assert "param_selection" in lines[0]["fingerprint"]
        assert "params" not in lines[0]["fingerprint"]
        assert "measure_at" in lines[0]["fingerprint"] and "epochs" not in lines[0]["fingerprint"]
        assert all(line["num_params"] == line["params"] for line in lines[1:])


@pytest.mark.parametrize(("old", "new"), sorted(RENAMED.items()))
def test_every_renamed_key_names_its_new_name_in_the_recipes(old, new):
    from recipes._cli import renamed_hint

    line = renamed_hint(f"unrecognized arguments: --{old} 1")
    assert line.endswith(f"`{old}` was renamed to `{new}` in 0.3.")


def test_the_study_refuses_the_0_2_keywords():
    from recipes.correlate import CorrelationStudy

    with pytest.raises(TypeError, match="^`params` was renamed to `param_selection` in 0.3.$"):
        CorrelationStudy(params="all")
    with pytest.raises(TypeError, match="^`epochs` was renamed to `measure_at` in 0.3.$"):
        CorrelationStudy(epochs=[0, 1])
    assert CorrelationStudy(first=1, measure_at=[1, 0]).measure_at == [0, 1]


def test_the_callback_refuses_epochs_naming_measure_at():
    from lga_lightning import NTKMetrics

    with pytest.raises(TypeError, match="^`epochs` was renamed to `measure_at` in 0.3.$"):
        NTKMetrics(epochs=[0, 1])
    assert NTKMetrics(measure_at=[3, 0]).measure_at == [0, 3]


def test_the_search_refuses_scheduler_naming_lr_scheduler():
    from lga_lightning.search import LGASearch

    with pytest.raises(TypeError, match="^`scheduler` was renamed to `lr_scheduler` in 0.3.$"):
        LGASearch(scheduler=None)


@pytest.mark.parametrize(
    ("line", "new"),
    [
        ("unrecognized arguments: --model.scheduler x", "lr_scheduler"),
        ("Group 'tune' does not accept option 'scheduler'", "trial_scheduler"),
        ("unknown key 'trainer.callbacks.epochs': NTKMetrics accepts no option", "measure_at"),
    ],
)
def test_a_renamed_config_key_is_named_by_its_section(line, new):
    from recipes._cli import renamed_hint

    assert renamed_hint(line).endswith(f"was renamed to `{new}` in 0.3.")


def test_a_0_2_search_header_gets_lr_scheduler_and_a_0_2_tune_header_trial_scheduler():
    search = upgrade_0_2({"kind": "search", "scheduler": "None"})
    assert search == {"kind": "search", "lr_scheduler": "None"}
    tune = upgrade_0_2({"kind": "search", "backend": "ray", "scheduler": "asha"})
    assert tune == {"kind": "search", "backend": "ray", "trial_scheduler": "asha"}


def test_the_0_2_ranking_keyword_mode_is_refused_naming_direction():
    from lga_lightning.search import LGASearch
    from lga_lightning.search.ranking import Ranking

    assert Ranking("lga", direction="min").direction == "min"
    for make in (Ranking, LGASearch):
        with pytest.raises(TypeError, match="^`mode` was renamed to `direction` in 0.3.$"):
            make(mode="min")


def test_a_0_2_search_header_gets_direction():
    header = upgrade_0_2({"kind": "search", "version": 1, "rank_by": "lga", "mode": "max"})
    assert header == {"kind": "search", "version": 1, "rank_by": "lga", "direction": "max"}
