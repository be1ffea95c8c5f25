"""Every file in configs/ parses, and runs a few steps with tiny overrides.

Configs that need CIFAR, ImageNet16-120 or the NAS-Bench-201 file get tiny files written here in
the official formats (python pickles; a torch-saved benchmark dict built with nas_201_api's own
result classes), and their paths are overridden, like every size, to make each run take seconds.
"""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from nas_201_api import ArchResults, ResultsCount

from recipes import correlate, linearize, search, train

CONFIGS = sorted(Path(__file__).resolve().parents[2].glob("configs/*.yaml"))
RAY_RECIPES = ("lga-tune",)
"""Recipes that need the ray extra: their configs are checked in test_tune_configs.py."""
ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|skip_connect~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|nor_conv_3x3~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_3x3~0|skip_connect~1|none~2|",
    "|avg_pool_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
]
BENCH_ACC = {arch: 80.0 + 3.0 * i for i, arch in enumerate(ARCHS)}


# ------------------------------------------------------------------------------ official files


def _dump(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=2)


def _batch(rng: np.random.Generator, n: int, side: int, labels, key: str = "labels") -> dict:
    return {"data": rng.integers(0, 256, (n, 3 * side * side), dtype=np.uint8), key: list(labels)}


def write_cifar10(root: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(1, 6):
        _dump(root / "cifar-10-batches-py" / f"data_batch_{i}", _batch(rng, 10, 32, range(10)))
    _dump(
        root / "cifar-10-batches-py" / "test_batch",
        _batch(rng, 12, 32, [j % 10 for j in range(12)]),
    )


def write_cifar100(root: Path) -> None:
    rng = np.random.default_rng(1)
    train = _batch(rng, 50, 32, [j % 5 for j in range(50)], key="fine_labels")
    _dump(root / "cifar-100-python" / "train", train)
    _dump(
        root / "cifar-100-python" / "test",
        _batch(rng, 12, 32, [j % 5 for j in range(12)], "fine_labels"),
    )


def write_imagenet16(root: Path) -> None:
    rng = np.random.default_rng(2)
    for i in range(1, 11):
        _dump(root / "ImageNet16" / f"train_data_batch_{i}", _batch(rng, 6, 16, [1, 2, 3, 4, 1, 2]))
    _dump(root / "ImageNet16" / "val_data", _batch(rng, 12, 16, [1 + j % 4 for j in range(12)]))


def write_nb201(path: Path) -> Path:
    """A NAS-Bench-201 file holding ARCHS, each with accuracy BENCH_ACC[arch]."""
    arch2infos = {}
    for index, arch in enumerate(ARCHS):
        state = {}
        for hp, epochs in (("12", 2), ("200", 3)):
            results = ArchResults(index, arch)
            for dataset, sets in (
                ("cifar10", ("ori-test",)),
                ("cifar100", ("x-valid", "x-test", "ori-test")),
                ("ImageNet16-120", ("x-valid", "x-test", "ori-test")),
            ):
                for seed in (777, 888):
                    config = {
                        "name": "infer.tiny",
                        "C": 16,
                        "N": 5,
                        "arch_str": arch,
                        "class_num": 10,
                    }
                    rc = ResultsCount(
                        dataset,
                        None,
                        [50.0] * epochs,
                        [1.0] * epochs,
                        0.1,
                        10.0,
                        config,
                        seed,
                        epochs,
                        [0.01],
                    )
                    accs = {f"{s}@{e}": BENCH_ACC[arch] for s in sets for e in range(epochs)}
                    rc.update_eval(accs, dict.fromkeys(accs, 1.0), dict.fromkeys(accs, 0.5))
                    results.update(dataset, seed, rc)
            state["less" if hp == "12" else "full"] = results.state_dict()
        arch2infos[index] = state
    data = {
        "meta_archs": list(ARCHS),
        "arch2infos": arch2infos,
        "evaluated_indexes": list(range(len(ARCHS))),
    }
    torch.save(data, path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("files")
    write_cifar10(root)
    write_cifar100(root)
    write_imagenet16(root)
    write_nb201(root / "NAS-Bench-201-v1_1-096897.pth")
    rng = np.random.default_rng(0)  # a tiny stand-in for ../shared/data/cifar10_subset.npz
    np.savez(
        root / "tiny.npz",
        train_x=rng.integers(0, 256, (60, 8, 8, 3), dtype=np.uint8),
        train_y=np.arange(60) % 10,
        test_x=rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8),
        test_y=np.arange(20) % 10,
    )
    return root


# ------------------------------------------------------------------------------ tiny overrides


def recipe_of(path: Path) -> str:
    """The recipe a config names in its `# Run:` header line."""
    match = re.search(r"^# Run: (lga-\w+)", path.read_text(), flags=re.M)
    assert match, f"{path.name}: no '# Run: lga-...' line in the header"
    return match.group(1)


def shrink(node: Any, files: Path, tmp: Path) -> Any:
    """Tiny sizes, local files and fast trainer settings, applied wherever the keys occur."""
    if isinstance(node, list):
        return [shrink(v, files, tmp) for v in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        value = shrink(value, files, tmp)
        tiny = {
            "C": 4,
            "N": 1,
            "blocks": 1,
            "width": 4,
            "probe_size": 8,
            "proxy_batch": 8,
            "batch_size": 16,
            "num_workers": 0,
            "root": str(files),
            "num_candidates": 3,
            "path": str(files / "NAS-Bench-201-v1_1-096897.pth"),
            "save_dir": str(tmp / "logs"),
            "default_root_dir": str(tmp / "run"),
        }
        if key in tiny and not isinstance(value, dict):
            value = tiny[key]
            if key == "path" and str(node[key]).endswith(".npz"):
                value = str(files / "tiny.npz")
        if key == "measure_at" and isinstance(value, list) and value and max(value) > 1:
            value = [0, 1]
        out[key] = value
    return out


def tiny_config(path: Path, files: Path, tmp: Path) -> dict:
    cfg = shrink(yaml.safe_load(path.read_text()), files, tmp)
    recipe = recipe_of(path)
    if recipe == "lga-correlate":
        cfg.update(
            sample=None,
            first=None,
            archs=ARCHS[:3],
            probe_sizes=[8],
            limit_train_batches=2,
            output_dir=str(tmp / "out"),
            benchmark=cfg.get("benchmark") and str(files / "NAS-Bench-201-v1_1-096897.pth"),
            own_epochs=2 if cfg.get("own_epochs") else None,
            num_threads=None,
            combine=[c for c in cfg.get("combine", []) if not re.search(r"@([2-9]|\d\d)", c)],
        )
        return cfg
    if recipe == "lga-linearize":
        cfg.update(
            archs=cfg["archs"][:1],
            epochs=1,
            limit_train_batches=2,
            accelerator="cpu",
            output_dir=str(tmp / "out"),
            num_threads=None,
        )
        return cfg
    trainer = cfg.setdefault("trainer", {})
    trainer.update(accelerator="cpu", devices=1, limit_val_batches=1, enable_progress_bar=False)
    trainer.pop("strategy", None)
    trainer.pop("sync_batchnorm", None)
    if recipe == "lga-train":
        trainer.update(max_epochs=1, limit_train_batches=2, enable_checkpointing=False)
        if "WandbLogger" in str(trainer.get("logger")):
            trainer["logger"] = False
    else:
        trainer["limit_train_batches"] = 2
        strategy = cfg["model"]["strategy"]["init_args"]
        if "max_epochs" in strategy:
            strategy["max_epochs"] = 3
        cfg["model"]["progress"] = False
    cfg.pop("num_threads", None)
    return cfg


# ------------------------------------------------------------------------------ tests


def test_every_config_has_a_header():
    assert len(CONFIGS) >= 10
    for path in CONFIGS:
        text = path.read_text()
        head = "\n".join(line for line in text.splitlines() if line.startswith("#"))
        assert text.startswith(f"# {path.name}:"), path.name
        for word in ("What:", "Needs:", "Takes:", "Run:"):
            assert f"# {word}" in head, f"{path.name}: header lacks {word!r}"


def in_process_configs() -> list[Path]:
    """The configs of the recipes that run without Ray."""
    return [p for p in CONFIGS if recipe_of(p) not in RAY_RECIPES]


@pytest.mark.parametrize("path", in_process_configs(), ids=lambda p: p.name)
def test_config_parses_as_written(path, capsys):
    recipe = recipe_of(path)
    args = ["--config", str(path), "--print_config"]
    main = {
        "lga-train": train.main,
        "lga-search": search.main,
        "lga-correlate": correlate.main,
        "lga-linearize": linearize.main,
    }[recipe]
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args] if recipe == "lga-train" else args)
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    written = yaml.safe_load(path.read_text())
    for key in written:  # every section of the file survives parsing
        assert key in printed, f"{path.name}: {key} missing from --print_config"


@pytest.mark.parametrize("path", in_process_configs(), ids=lambda p: p.name)
def test_config_runs_tiny(path, files, tmp_path, capsys):
    recipe = recipe_of(path)
    config = tmp_path / path.name
    config.write_text(yaml.safe_dump(tiny_config(path, files, tmp_path)))
    if recipe == "lga-train":
        cli = train.run(["fit", "--config", str(config)])
        assert cli.trainer.global_step == 2
        ntk = [c for c in cli.trainer.callbacks if type(c).__name__ == "NTKMetrics"]
        assert ntk and [row["epoch"] for row in ntk[0].history] == [0, 1]
        assert all(np.isfinite(row["frobenius_norm"]) for row in ntk[0].history)
    elif recipe == "lga-search":
        result = search.run(["--config", str(config)])
        assert len(result.leaderboard) == 3
        out = capsys.readouterr().out
        assert "rank" in out and "best" in out
        if "ground_truth" in yaml.safe_load(path.read_text())["model"]:
            assert result.ground_truth is not None
    elif recipe == "lga-linearize":
        records = linearize.run(["--config", str(config)])
        assert len(records) == 1
        record = records[0]
        assert record["advantage"] == pytest.approx(record["acc_nonlinear"] - record["acc_linear"])
        assert (tmp_path / "out" / "advantage.csv").is_file()
    else:
        rows = correlate.run(["--config", str(config)])
        quantities = {r.quantity for r in rows}
        assert {"lga", "condition_number", "params", "flops", "val_acc"} <= quantities
        assert (tmp_path / "out" / "correlations.csv").is_file()
        assert (tmp_path / "out" / "correlations.png").read_bytes()[:4] == b"\x89PNG"
        if yaml.safe_load(path.read_text()).get("benchmark"):
            n_tau = [r for r in rows if r.quantity == "params" and r.epoch == 0][0]
            assert n_tau.n == 3  # all three archs found in the benchmark file


def test_a_sink_named_in_yaml_gets_every_row_of_the_callback(files, tmp_path):
    (digits,) = [p for p in CONFIGS if p.name == "train_digits.yaml"]
    config = tiny_config(digits, files, tmp_path)
    rows = tmp_path / "rows.jsonl"
    sink = {"class_path": "lga_lightning.training.sinks.JSONLinesSink"}
    sink["init_args"] = {"path": str(rows)}
    (callback,) = [c for c in config["trainer"]["callbacks"] if "NTKMetrics" in c["class_path"]]
    callback.setdefault("init_args", {})["sinks"] = [sink]
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = train.run(["fit", "--config", str(path)])
    (ntk,) = [c for c in cli.trainer.callbacks if type(c).__name__ == "NTKMetrics"]
    written = [json.loads(line) for line in rows.read_text().splitlines()]
    assert [r["epoch"] for r in written] == [r["epoch"] for r in ntk.history] == [0, 1]
    assert [r["lga"] for r in written] == [r["lga"] for r in ntk.history]
