"""The recipes' command lines: console scripts, --help, --print_config, one-line user errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lga_lightning.training.module import ClassificationModule
from recipes import correlate, search, train
from recipes._cli import one_line

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(autouse=True)
def _argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["lga"])


def test_console_scripts_print_help_with_documented_arguments():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    commands = {
        "lga-train": ["fit", "--help"],
        "lga-search": ["--help"],
        "lga-correlate": ["--help"],
    }
    procs = {}
    for script, args in commands.items():
        path = shutil.which(script)
        assert path, f"console script {script} is not installed (pip install -e .)"
        procs[script] = subprocess.Popen(
            [path, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
    outputs = {}
    for script, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, f"{script}: {err[-2000:]}"
        outputs[script] = " ".join(out.split())
    # arguments are documented from the docstrings
    assert "--model.optimizer" in outputs["lga-train"] or "--model CONFIG" in outputs["lga-train"]
    assert "usage: lga-train" in outputs["lga-train"]
    assert "samples in the probe batch" in outputs["lga-search"]
    assert "--num_threads" in outputs["lga-search"]
    assert "probe batch sizes to measure with" in outputs["lga-correlate"]
    assert "Kendall" in outputs["lga-correlate"] or "correlate" in outputs["lga-correlate"]


def test_train_help_documents_the_module_arguments(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.run(["fit", "--model.help", "lga_lightning.training.module.ClassificationModule"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--model.optimizer" in text and "cross-entropy label smoothing" in text


def test_print_config_round_trips(capsys, tmp_path):
    with pytest.raises(SystemExit):
        correlate.run(["--first", "3", "--own_epochs", "2", "--print_config"])
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["first"] == 3 and printed["probe_sizes"] == [256]
    assert printed["data"] is None  # the study builds its digits default itself
    default = correlate.CorrelationStudy(first=1, own_epochs=2).data
    assert type(default).__name__ == "DigitsDataModule" and default.batch_size == 128
    # the printed config is itself a valid config
    path = tmp_path / "printed.yaml"
    path.write_text(yaml.safe_dump(printed))
    with pytest.raises(SystemExit):
        correlate.run(["--config", str(path), "--print_config"])
    assert yaml.safe_load(capsys.readouterr().out) == printed


def _error(run, args, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        run(args)
    assert exit_info.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def _train_config(tmp_path, **changes) -> str:
    cfg = yaml.safe_load((CONFIGS / "train_digits.yaml").read_text())
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[leaf] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_wrong_key_is_one_line_naming_the_key(tmp_path, capsys):
    model_args = {"num_classes": 10, "widht": 16}
    cfg = _train_config(tmp_path, **{"model.init_args.model.init_args": model_args})
    err = _error(train.run, ["fit", "--config", cfg], capsys)
    assert err.startswith("lga-train: error:")
    assert "model.model.widht" in err and "SmallCNN" in err
    cfg = _train_config(tmp_path, **{"trainer.callbacks.0.init_args": {"epochz": [0]}})
    err = _error(train.run, ["fit", "--config", cfg], capsys)
    assert "trainer.callbacks.epochz" in err and "NTKMetrics" in err
    err = _error(
        search.run, ["--config", str(CONFIGS / "demo.yaml"), "--model.probe_sise", "8"], capsys
    )
    assert "probe_sise" in err
    err = _error(correlate.run, ["--first", "2", "--own_epochs", "1", "--probe_size", "8"], capsys)
    assert "--probe_size" in err


def test_unknown_class_path_is_one_line_naming_it(tmp_path, capsys):
    bad_model = {"class_path": "lga_lightning.core.models.ResNett"}
    cfg = _train_config(tmp_path, **{"model.init_args.model": bad_model})
    err = _error(train.run, ["fit", "--config", cfg], capsys)
    assert "lga_lightning.core.models.ResNett" in err and "model.model" in err
    bad_optimizer = {"class_path": "torch.optim.SGDD", "init_args": {"lr": 0.1}}
    cfg = _train_config(tmp_path, **{"model.init_args.optimizer": bad_optimizer})
    err = _error(train.run, ["fit", "--config", cfg], capsys)
    assert "torch.optim.SGDD" in err
    args = ["--config", str(CONFIGS / "demo.yaml"), "--data", "lga_lightning.data.Nope"]
    err = _error(search.run, args, capsys)
    assert "lga_lightning.data.Nope" in err


def test_missing_data_path_is_one_line_naming_it(tmp_path, capsys):
    missing = tmp_path / "no_such_folder"
    data = {
        "class_path": "lga_lightning.data.CIFAR10DataModule",
        "init_args": {"root": str(missing)},
    }
    model = {"class_path": "lga_lightning.core.models.SmallCNN", "init_args": {"in_channels": 3}}
    cfg = _train_config(tmp_path, data=data, **{"model.init_args.model": model})
    err = _error(train.run, ["fit", "--config", cfg], capsys)
    assert str(missing) in err and "data_batch_1" in err
    args = ["--config", str(CONFIGS / "correlate_digits.yaml"), "--sample", "2"]
    args += ["--data", "lga_lightning.data.CIFAR10DataModule", "--data.root", str(missing)]
    args += ["--output_dir", str(tmp_path / "out")]
    err = _error(correlate.run, args, capsys)
    assert str(missing) in err
    args = ["--config", str(CONFIGS / "correlate_digits.yaml"), "--own_epochs", "null"]
    args += ["--benchmark", str(missing / "NAS-Bench-201-v1_1-096897.pth")]
    args += ["--output_dir", str(tmp_path / "out2")]
    err = _error(correlate.run, args, capsys)
    assert str(missing / "NAS-Bench-201-v1_1-096897.pth") in err
    assert not (tmp_path / "out2").exists()  # stopped before measuring anything
    err = _error(train.run, ["fit", "--config", str(tmp_path / "nope.yaml")], capsys)
    assert "nope.yaml" in err


def test_one_line_keeps_a_single_line_message():
    assert one_line(FileNotFoundError("missing /data/x")) == "missing /data/x"


def test_classification_module_takes_num_classes_from_the_datamodule(tmp_path):
    import lightning.pytorch as pl
    import torch

    from lga_lightning.core.models import SmallCNN
    from lga_lightning.data import DigitsDataModule

    module = ClassificationModule(
        SmallCNN(num_classes=10, in_channels=1), optimizer=torch.optim.Adam
    )
    trainer = pl.Trainer(
        max_epochs=1, limit_train_batches=2, limit_val_batches=2, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(module, datamodule=DigitsDataModule(batch_size=32))
    assert module.num_classes == 10
    assert {"train/loss", "val/loss", "val/acc", "train/acc"} <= set(trainer.callback_metrics)
    assert isinstance(trainer.optimizers[0], torch.optim.Adam)
    # accuracy is the fraction of correct predictions, computed independently
    dm = DigitsDataModule(batch_size=32)
    dm.setup()
    x, y = next(iter(dm.val_dataloader()))
    module.eval()
    with torch.no_grad():
        expected = (module(x).argmax(1) == y).float().mean()
    one_batch = pl.Trainer(
        limit_val_batches=1, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    val = one_batch.validate(module, datamodule=dm, verbose=False)[0]
    assert val["val/acc"] == pytest.approx(float(expected), abs=1e-6)
    with pytest.raises(ValueError, match="num_classes"):
        bad = ClassificationModule(SmallCNN(num_classes=3, in_channels=1), num_classes=10)
        bad.training_step((x, y), 0)


def test_recipe_docstring_examples():
    import doctest

    import recipes._baselines
    import recipes._cli
    import recipes._files
    import recipes._rank
    import recipes._store
    import recipes._study_logging

    modules = [recipes._baselines, recipes._cli, recipes._files, recipes._rank]
    modules += [recipes._store, recipes._study_logging, correlate, search]
    for module in modules:
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, module.__name__
