"""The ``lga-tune`` configs parse as written and run tiny on a local Ray; its one-line errors.

Marked ``ray`` and ``slow`` by the root conftest.
"""

from __future__ import annotations

import json

import pytest
import yaml
from test_configs import CONFIGS, files, recipe_of, tiny_config  # noqa: F401 - files: a fixture

from recipes import tune

TUNE_CONFIGS = [p for p in CONFIGS if recipe_of(p) == "lga-tune"]


def test_there_are_tune_configs_for_a_laptop_and_a_cluster():
    names = {p.name for p in TUNE_CONFIGS}
    assert {"tune_digits.yaml", "tune_nb201_cifar10.yaml"} <= names


@pytest.mark.parametrize("path", TUNE_CONFIGS, ids=lambda p: p.name)
def test_tune_config_parses_as_written(path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        tune.main(["--config", str(path), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    written = yaml.safe_load(path.read_text())
    for section in written:
        assert section in printed, f"{path.name}: {section} missing from --print_config"
    assert printed["tune"]["trial_scheduler"] == written["tune"]["trial_scheduler"]


@pytest.mark.parametrize("path", TUNE_CONFIGS, ids=lambda p: p.name)
def test_tune_config_runs_tiny(path, files, tmp_path, capsys):  # noqa: F811
    config = tiny_config(path, files, tmp_path)
    config["trainer"].pop("devices", None)
    config["trainer"]["accelerator"] = "cpu"
    config["trainer"]["default_root_dir"] = str(tmp_path / "run")
    config["model"]["strategy"]["init_args"].update(num_candidates=3, epochs=3)
    config["tune"].update(address=None, gpu=0, cpu=1, num_cpus=2)
    file = tmp_path / path.name
    file.write_text(yaml.safe_dump(config))
    result = tune.run(["--config", str(file)])
    assert len(result.leaderboard) == 3
    assert (tmp_path / "run" / "lga_tune" / "leaderboard.csv").is_file()
    out = capsys.readouterr().out
    assert "rank" in out and "best" in out


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--trainer.devices", "2"], "each trial trains one candidate on one device"),
        (
            [
                "--model.strategy",
                '{"class_path": "lga_lightning.search.SuccessiveHalving", '
                '"init_args": {"num_candidates": 4}}',
            ],
            "is what the 'asha' scheduler does",
        ),
        (["--model.rank_by", '["lga", "params"]'], "Use trial_scheduler='none'"),
        (["--tune.min_epochs", "20"], "min_epochs=20 must be between 1 and the strategy's epochs"),
    ],
    ids=["devices", "successive-halving", "combined-rank-by", "min-epochs"],
)
def test_tune_mistakes_get_one_line(override, message, tmp_path, capsys):
    path = next(p for p in TUNE_CONFIGS if p.name == "tune_digits.yaml")
    args = ["--config", str(path), "--trainer.default_root_dir", str(tmp_path), *override]
    with pytest.raises(SystemExit) as exit_info:
        tune.main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lga-tune: error: ")
    assert message in err[0]


def test_a_results_dir_holding_another_search_is_refused(tmp_path, capsys):
    store = tmp_path / "lga_tune" / "results.jsonl"
    store.parent.mkdir(parents=True)
    store.write_text(
        '{"kind": "search", "seed": 99}\n{"kind": "measurement", "candidate": 0, "epoch": 1}\n'
    )
    path = next(p for p in TUNE_CONFIGS if p.name == "tune_digits.yaml")
    with pytest.raises(SystemExit) as exit_info:
        tune.main(["--config", str(path), "--trainer.default_root_dir", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds a different search" in err[0] and "seed: stored 99" in err[0]


def test_stored_measurements_without_their_tune_experiment_are_refused(tmp_path, capsys):
    path = next(p for p in TUNE_CONFIGS if p.name == "tune_digits.yaml")
    args = ["--config", str(path), "--trainer.default_root_dir", str(tmp_path)]
    cli = tune.build_cli(args)
    from lga_lightning.search.tune import TuneSearch

    search = TuneSearch(cli.model, cli.datamodule, results_dir=str(tmp_path / "lga_tune"))
    store = tmp_path / "lga_tune" / "results.jsonl"
    store.parent.mkdir(parents=True)
    line = json.dumps({"kind": "measurement", "candidate": 0, "epoch": 1})
    store.write_text(json.dumps(search.header()) + "\n" + line + "\n")
    with pytest.raises(SystemExit) as exit_info:
        tune.main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds no Tune experiment" in err[-1]
