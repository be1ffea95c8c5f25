"""The recipes take any class implementing the SearchSpace protocol, by ``class_path``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from _recipe_server import RecipeServer
from test_errors import recipe_env

ROOT = Path(__file__).resolve().parents[2]
DIGITS = {"class_path": "lga_lightning.data.DigitsDataModule"}
DIGITS["init_args"] = {"resize": 8, "channels": 3, "batch_size": 64}


@pytest.fixture(scope="module")
def server():
    """Recipe processes with tests/ importable, where the space's module lives.

    Forked from one warm interpreter (``tests/_recipe_server.py``, checked against
    ``python -m`` in ``test_errors.py``).
    """
    server = RecipeServer(recipe_env(also_on_path=(ROOT / "tests",)))
    yield server
    server.close()


def test_lga_search_searches_a_space_given_by_class_path(tmp_path, server):
    config = {
        "model": {
            "space": {"class_path": "_width_space.WidthSpace"},
            "strategy": {
                "class_path": "lga_lightning.search.Plain",
                "init_args": {"archs": ["8", "64"], "epochs": 1},
            },
            "probe_size": 16,
            "results_dir": "out",
            "progress": False,
        },
        "data": DIGITS,
        "trainer": {"limit_train_batches": 2, "logger": False, "enable_checkpointing": False},
    }
    (tmp_path / "search.yaml").write_text(yaml.safe_dump(config))
    result = server.run("search", ["--config", "search.yaml"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "out" / "leaderboard.json").read_text())["leaderboard"]
    assert sorted(r["arch"] for r in rows) == ["64", "8"]
    # the parameter count of a width-w MLP on 3 x 8 x 8 inputs and 10 classes
    assert {r["arch"]: r["num_params"] for r in rows} == {
        str(w): 192 * w + w + 10 * w + 10 for w in (8, 64)
    }


def test_lga_correlate_measures_a_space_given_by_class_path(tmp_path, server):
    args = ["--space", "_width_space.WidthSpace", "--archs", '["8", "16", "64"]']
    args += ["--own_epochs", "1", "--measure_at", "[0]", "--probe_sizes", "[8]"]
    args += ["--data", DIGITS["class_path"], "--data.resize", "8", "--data.channels", "3"]
    args += ["--output_dir", "study", "--limit_train_batches", "2", "--plot", "false"]
    result = server.run("correlate", args, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "study" / "raw.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["fingerprint"]["space"] == "_width_space.WidthSpace"
    archs = sorted(json.loads(line)["arch"] for line in lines[1:])
    assert archs == ["16", "64", "8"]
    # the fingerprint holds no memory address, so the rerun resumes: nothing is measured again
    again = server.run("correlate", args, tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "study" / "raw.jsonl").read_text().splitlines() == lines


@pytest.mark.parametrize("recipe", ["search", "correlate"])
def test_a_class_that_is_no_space_is_refused_in_one_line(tmp_path, recipe, server):
    flag = "--model.space" if recipe == "search" else "--space"
    args = [flag, "collections.OrderedDict"]
    if recipe == "search":
        args = ["--config", str(ROOT / "configs" / "demo.yaml"), *args]
    result = server.run(recipe, args, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not implement protocol SearchSpace" in lines[0], lines
