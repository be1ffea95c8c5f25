"""Every user mistake, through the recipes' command lines: one line on stderr, exit 2, nothing lost.

Each case runs ``python -m recipes.<name>`` as a process of its own (this checkout's code, a
fresh working directory, W&B offline), forked from a warm interpreter (``tests/_recipe_server.py``;
a LightningCLI and a class recipe are also run through ``python -m`` itself and must print the
same), and checks that stderr is exactly one line ``<prog>: error: ...`` naming the offending
value, with no traceback.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from _recipe_server import RecipeServer

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
BAD_ARCH = "|conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
GOOD_ARCH = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"

SEARCH = {
    "num_threads": 1,
    "model": {
        "space": {
            "class_path": "lga_lightning.search.spaces.NB201Space",
            "init_args": {"C": 4, "N": 1},
        },
        "strategy": {
            "class_path": "lga_lightning.search.RandomSearch",
            "init_args": {"num_candidates": 2, "epochs": 1},
        },
        "probe_size": 8,
    },
    "data": {
        "class_path": "lga_lightning.data.DigitsDataModule",
        "init_args": {"resize": 8, "channels": 3, "batch_size": 64},
    },
    "trainer": {
        "accelerator": "cpu",
        "devices": 1,
        "limit_train_batches": 2,
        "limit_val_batches": 1,
        "default_root_dir": "runs",
    },
}
"""A search of two NB201 cells (C=4, N=1) trained two batches each: a few seconds."""

DICT_NET = """
import torch
from torch import nn


class DictNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def forward(self, x):
        logits = self.body(x)
        return {"logits": logits, "aux": logits.sum()}
"""
"""A model returning a dict, importable from the case's working directory."""

LINEARIZE = ["--epochs", "1", "--C", "4", "--N", "1", "--limit_train_batches", "1"]
LINEARIZE += ["--probe_size", "0", "--save_weights", "false"]


def recipe_env(also_on_path: tuple[Path, ...] = ()) -> dict[str, str]:
    """The environment of a recipe's process: this checkout (then ``also_on_path``) first."""
    path = [str(ROOT), *map(str, also_on_path), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env.pop("LGA_TRACEBACK", None)
    return env


def run_recipe(
    name: str, args: list[str], cwd: Path, also_on_path: tuple[Path, ...] = ()
) -> subprocess.CompletedProcess:
    """``python -m recipes.<name> *args`` with this checkout (then ``also_on_path``) first."""
    return subprocess.run(
        [sys.executable, "-m", f"recipes.{name}", *args],
        cwd=cwd,
        env=recipe_env(also_on_path),
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_yaml(path: Path, config: dict) -> str:
    path.write_text(yaml.safe_dump(config))
    return str(path)


def search_config(tmp: Path, **changes) -> list[str]:
    config = json.loads(json.dumps(SEARCH))
    for dotted, value in changes.items():
        node = config
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    return ["--config", write_yaml(tmp / "search.yaml", config)]


def train_config(tmp: Path, **changes) -> list[str]:
    config = yaml.safe_load((CONFIGS / "train_digits.yaml").read_text())
    config["trainer"].update(max_epochs=1, limit_train_batches=2, limit_val_batches=1)
    config["trainer"]["default_root_dir"] = "runs"
    config["trainer"]["logger"] = False
    config["trainer"]["callbacks"][0]["init_args"]["probe_size"] = 8
    for dotted, value in changes.items():
        node = config
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[leaf] = value
    return ["fit", "--config", write_yaml(tmp / "train.yaml", config)]


def broken_yaml(tmp: Path) -> str:
    path = tmp / "broken.yaml"
    path.write_text("num_threads: 1\nmodel:\n  space:\n    init_args: {C: 4, N: [1}\n")
    return str(path)


def a_file(tmp: Path) -> Path:
    path = tmp / "file.txt"
    path.write_text("not a folder")
    return path


def store(tmp: Path, lines: list[dict]) -> None:
    folder = tmp / "runs" / "lga_search"
    folder.mkdir(parents=True)
    text = "".join(json.dumps(line) + "\n" for line in lines)
    (folder / "results.jsonl").write_text(text)


def raw_store(content: bytes) -> Callable[[Path], None]:
    """A setup writing ``runs/lga_search/results.jsonl`` with ``content``."""

    def setup(tmp: Path) -> None:
        folder = tmp / "runs" / "lga_search"
        folder.mkdir(parents=True)
        (folder / "results.jsonl").write_bytes(content)

    return setup


def hold_lock(tmp: Path, folder: str = "runs/lga_search") -> None:
    folder = tmp / folder
    folder.mkdir(parents=True)
    holder = {"pid": os.getppid(), "host": socket.gethostname(), "started": 0}
    (folder / ".lock").write_text(json.dumps(holder))  # pytest's parent: a live process


CORRELATE = ["--data", "lga_lightning.data.DigitsDataModule", "--data.resize", "8"]
CORRELATE += ["--data.channels", "3", "--space.C", "4", "--space.N", "1", "--measure_at", "[0]"]
CORRELATE += ["--archs", json.dumps([GOOD_ARCH]), "--probe_sizes", "[8]", "--output_dir", "out"]


class Payload:
    """Unpickling this creates ``marker`` (what a crafted file would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def cifar_folder(tmp: Path, crafted: str | None = None) -> None:
    """A CIFAR-10 folder of tiny official-format batches; ``crafted`` holds a payload."""
    folder = tmp / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batch = {b"data": np.zeros((10, 3072), np.uint8), b"labels": list(range(10))}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        content = {b"data": Payload(tmp / "marker"), b"labels": [0]} if name == crafted else batch
        (folder / name).write_bytes(pickle.dumps(content, protocol=2))


def probe_file(tmp: Path, x_shape: tuple[int, ...], labels: list[int]) -> str:
    path = tmp / "probe.npz"
    np.savez(path, x=np.zeros(x_shape, np.float32), y=np.array(labels))
    return str(path)


def crafted_npz(tmp: Path) -> str:
    path = tmp / "data.npz"
    payload = np.empty(1, dtype=object)
    payload[0] = Payload(tmp / "marker")
    np.savez(path, train_x=payload, train_y=np.zeros(1, np.int64))
    return str(path)


def garbage_lock(tmp: Path) -> None:
    """A lock file naming no process, as fresh as one a starting run is filling."""
    path = tmp / "runs" / "lga_search" / ".lock"
    path.parent.mkdir(parents=True)
    path.write_text("garbage")
    future = time.time() + 3600  # stays "fresh" however long the case waits to run
    os.utime(path, (future, future))


def study_store(content: bytes) -> Callable[[Path], None]:
    """A setup writing ``out/raw.jsonl`` with ``content`` (the CORRELATE cases' store)."""

    def setup(tmp: Path) -> None:
        (tmp / "out").mkdir()
        (tmp / "out" / "raw.jsonl").write_bytes(content)

    return setup


A_RECORD = json.dumps({"kind": "arch", "arch": GOOD_ARCH, "params": 1}).encode() + b"\n"


def damaged_benchmark(tmp: Path) -> str:
    path = tmp / "NAS-Bench-201-v1_1-096897.pth"
    path.write_bytes(b"PK\x03\x04 the first bytes of a download that stopped")
    return str(path)


@dataclass
class Case:
    id: str
    recipe: str
    args: Callable[[Path], list[str]]
    expect: Callable[[Path], list[str]]
    """Texts the error line must contain (the offending value, where, the fix)."""
    setup: Callable[[Path], None] = field(default=lambda tmp: None)


CASES = [
    Case(
        "search-bad-arch",
        "search",
        lambda t: search_config(
            t,
            **{
                "model.strategy": {
                    "class_path": "lga_lightning.search.Plain",
                    "init_args": {"archs": [BAD_ARCH]},
                }
            },
        ),
        lambda t: ["model.strategy.archs[0]", "'conv_3x3'", "edge 0->1", "nor_conv_3x3"],
    ),
    Case(
        "linearize-bad-arch",
        "linearize",
        lambda t: [*LINEARIZE, "--archs", json.dumps([BAD_ARCH])],
        lambda t: ["archs[0]", "'conv_3x3'", "valid ops: none, skip_connect"],
    ),
    Case(
        "search-root-under-a-file",
        "search",
        lambda t: search_config(t, **{"trainer.default_root_dir": str(a_file(t) / "sub")}),
        lambda t: [str(t / "file.txt"), "not a folder", "`trainer.default_root_dir`"],
    ),
    Case(
        "search-results-dir-under-a-file",
        "search",
        lambda t: search_config(t, **{"model.results_dir": str(a_file(t) / "sub")}),
        lambda t: [str(t / "file.txt" / "sub"), "not a folder", "`model.results_dir`"],
    ),
    Case(
        "linearize-output-under-a-file",
        "linearize",
        lambda t: [*LINEARIZE, "--output_dir", str(a_file(t) / "sub")],
        lambda t: [str(t / "file.txt" / "sub"), "not a folder", "`output_dir`"],
    ),
    Case(
        "train-root-under-a-file",
        "train",
        lambda t: train_config(t, **{"trainer.default_root_dir": str(a_file(t) / "sub")}),
        lambda t: [str(t / "file.txt"), "`trainer.default_root_dir`"],
    ),
    Case(
        "train-logger-save-dir-under-a-file",
        "train",
        lambda t: train_config(
            t,
            **{
                "trainer.logger": {
                    "class_path": "lightning.pytorch.loggers.CSVLogger",
                    "init_args": {"save_dir": str(a_file(t) / "logs")},
                }
            },
        ),
        lambda t: [str(t / "file.txt"), "`trainer.logger.init_args.save_dir`"],
    ),
    Case(
        "search-broken-yaml",
        "search",
        lambda t: ["--config", broken_yaml(t)],
        lambda t: ["broken.yaml, line 4, column 28", "invalid YAML", "']'"],
    ),
    Case(
        "linearize-broken-yaml",
        "linearize",
        lambda t: ["--config", broken_yaml(t)],
        lambda t: ["broken.yaml, line 4, column 28", "invalid YAML"],
    ),
    Case(
        "train-broken-yaml",
        "train",
        lambda t: ["fit", "--config", broken_yaml(t)],
        lambda t: ["broken.yaml, line 4, column 28", "invalid YAML"],
    ),
    Case(
        "search-store-record-without-epoch",
        "search",
        lambda t: search_config(t),
        lambda t: ["results.jsonl, line 2", "lacks the field 'epoch'", "remove that line"],
        setup=lambda t: store(t, [{"kind": "search", "seed": 0}, {"candidate": 0, "lga": 1}]),
    ),
    Case(
        "search-negative-measure-at",
        "search",
        lambda t: search_config(
            t,
            **{
                "model.strategy": {
                    "class_path": "lga_lightning.search.Plain",
                    "init_args": {"num_candidates": 1, "epochs": 1, "measure_at": [-1, 1]},
                }
            },
        ),
        lambda t: ["model.strategy.measure_at", "[-1, 1]", ">= 1"],
    ),
    Case(
        "train-negative-ntk-epochs",
        "train",
        lambda t: train_config(t, **{"trainer.callbacks.0.init_args.measure_at": [0, -2]}),
        lambda t: ["trainer.callbacks[0].init_args.measure_at", "NTKMetrics", "[0, -2]", ">= 0"],
    ),
    Case(
        "search-too-few-classes",
        "search",
        lambda t: search_config(t, **{"model.num_classes": 5}),
        lambda t: ["num_classes=5", "10 classes", "set num_classes to 10"],
    ),
    Case(
        "search-too-many-classes",
        "search",
        lambda t: search_config(t, **{"model.num_classes": 20}),
        lambda t: ["num_classes=20", "10 classes"],
    ),
    Case(
        "search-sharded-ddp-data",
        "search",
        lambda t: search_config(t, **{"trainer.use_distributed_sampler": True}),
        lambda t: ["trainer.use_distributed_sampler", "set it to false"],
    ),
    Case(
        "train-model-returns-a-dict",
        "train",
        lambda t: train_config(
            t, **{"model.init_args.model": {"class_path": "dictnet.DictNet", "init_args": {}}}
        ),
        lambda t: ["returned a dict with keys ['aux', 'logits']", "wrap the model"],
        setup=lambda t: (t / "dictnet.py").write_text(DICT_NET),
    ),
    Case(
        "search-results-dir-in-use",
        "search",
        lambda t: search_config(t),
        lambda t: [f"process {os.getppid()} on host", str(Path("runs/lga_search/.lock"))],
        setup=hold_lock,
    ),
    Case(
        "linearize-output-dir-in-use",
        "linearize",
        lambda t: [*LINEARIZE, "--output_dir", "out"],
        lambda t: [f"process {os.getppid()} on host", "out/.lock", "`output_dir`"],
        setup=lambda t: hold_lock(t, "out"),
    ),
    Case(
        "search-crafted-cifar-batch",
        "search",
        lambda t: search_config(
            t,
            data={
                "class_path": "lga_lightning.data.CIFAR10DataModule",
                "init_args": {"root": str(t / "cifar"), "val_size": 0},
            },
        ),
        lambda t: ["refused", "data_batch_2", "io.open", "nothing in it was run", "Replace it"],
        setup=lambda t: cifar_folder(t, crafted="data_batch_2"),
    ),
    Case(
        "search-crafted-npz",
        "search",
        lambda t: search_config(
            t,
            data={
                "class_path": "lga_lightning.data.ArraysDataModule",
                "init_args": {"path": crafted_npz(t)},
            },
        ),
        lambda t: ["data.npz cannot be read", "allow_pickle=False"],
    ),
    Case(
        "search-damaged-benchmark",
        "search",
        lambda t: search_config(
            t,
            **{
                "model.ground_truth": {
                    "class_path": "lga_lightning.search.ground_truth.NASBench201",
                    "init_args": {"path": damaged_benchmark(t)},
                }
            },
        ),
        lambda t: ["cannot read", "NAS-Bench-201-v1_1-096897.pth", "download"],
    ),
    Case(
        "correlate-damaged-benchmark",
        "correlate",
        lambda t: [*CORRELATE, "--benchmark", damaged_benchmark(t)],
        lambda t: ["cannot read", "NAS-Bench-201-v1_1-096897.pth", "download"],
    ),
    Case(
        "correlate-probe-flat-images",
        "correlate",
        lambda t: [*CORRELATE, "--probe_file", probe_file(t, (32, 16), [0] * 32)],
        lambda t: ["probe.npz", "shape (32, 16)", "(n, 3, 8, 8)"],
    ),
    Case(
        "correlate-probe-one-channel",
        "correlate",
        lambda t: [*CORRELATE, "--probe_file", probe_file(t, (32, 1, 8, 8), [0] * 32)],
        lambda t: ["probe.npz", "shape (32, 1, 8, 8)", "(n, 3, 8, 8)"],
    ),
    Case(
        "correlate-probe-too-few-labels",
        "correlate",
        lambda t: [*CORRELATE, "--probe_file", probe_file(t, (32, 3, 8, 8), [0] * 20)],
        lambda t: ["probe.npz", "shape (20,) for 32 images", "one integer label per image"],
    ),
    Case(
        "correlate-probe-labels-beyond-classes",
        "correlate",
        lambda t: [*CORRELATE, "--probe_file", probe_file(t, (10, 3, 8, 8), list(range(50, 60)))],
        lambda t: ["probe.npz", "labels lie in [50, 59]", "10 classes"],
    ),
    Case(
        "correlate-store-not-text",
        "correlate",
        lambda t: CORRELATE,
        lambda t: ["out/raw.jsonl is not a text file", "byte 1 is not UTF-8", "move it away"],
        setup=study_store(b"P\x80K\x03\x04\n binary"),
    ),
    Case(
        "correlate-store-no-newline",
        "correlate",
        lambda t: CORRELATE,
        lambda t: ["out/raw.jsonl holds 13 characters and no complete line", "move it away"],
        setup=study_store(b"my own notes!"),
    ),
    Case(
        "correlate-store-record-first",
        "correlate",
        lambda t: CORRELATE,
        lambda t: ["out/raw.jsonl, line 1, is not a lga-correlate header", "move it away"],
        setup=study_store(A_RECORD),
    ),
    Case(
        "correlate-store-header-without-fingerprint",
        "correlate",
        lambda t: CORRELATE,
        lambda t: ["out/raw.jsonl, line 1, is not a lga-correlate header"],
        setup=study_store(b'{"kind": "study"}\n' + A_RECORD),
    ),
    Case(
        "correlate-store-foreign-line",
        "correlate",
        lambda t: CORRELATE,
        lambda t: ["out/raw.jsonl, line 2, is not an architecture record", "delete that line"],
        setup=study_store(b'{"fingerprint": {}, "kind": "study"}\n{"kind": "search"}\n'),
    ),
    Case(
        "correlate-analyse-only-store-not-text",
        "correlate",
        lambda t: [*CORRELATE, "--analyse_only", "true"],
        lambda t: ["out/raw.jsonl is not a text file"],
        setup=study_store(b"\xff\xfe{}\n"),
    ),
    Case(
        "search-store-not-text",
        "search",
        lambda t: search_config(t),
        lambda t: ["results.jsonl is not a text file", "byte 0 is not UTF-8", "move it away"],
        setup=raw_store(b"\x89PNG\r\n\x1a\n"),
    ),
    Case(
        "search-store-no-newline",
        "search",
        lambda t: search_config(t),
        lambda t: ["results.jsonl holds 8 bytes and no complete line", "move it away"],
        setup=raw_store(b"my notes"),
    ),
    Case(
        "search-store-record-before-header",
        "search",
        lambda t: search_config(t),
        lambda t: ["results.jsonl, line 1, is a record before the search's header"],
        setup=raw_store(b'{"kind": "measurement", "candidate": 0, "epoch": 1}\n'),
    ),
    Case(
        "search-garbage-lock",
        "search",
        lambda t: search_config(t),
        lambda t: ["runs/lga_search/.lock names no process", "it holds 'garbage'", "delete"],
        setup=garbage_lock,
    ),
]


@dataclass
class Ran:
    tmp: Path
    before: set[Path]
    before_bytes: dict[Path, bytes]
    result: subprocess.CompletedProcess


def run_cases(
    cases: list[Case], tmp_path_factory, runner: Callable[..., subprocess.CompletedProcess]
) -> list[Ran]:
    """Each case in a fresh folder of its own, through ``runner(recipe, args, cwd)``."""
    ran = []
    for case in cases:
        tmp = tmp_path_factory.mktemp(case.id)
        case.setup(tmp)
        args = case.args(tmp)  # writes the case's config and files
        before = {p.relative_to(tmp) for p in tmp.rglob("*")}
        before_bytes = {p: (tmp / p).read_bytes() for p in before if (tmp / p).is_file()}
        ran.append(Ran(tmp, before, before_bytes, runner(case.recipe, args, tmp)))
    return ran


@pytest.fixture(scope="module")
def ran(tmp_path_factory) -> dict[str, Ran]:
    """Every case run once, as processes forked from two warm recipe servers.

    Each case is a real process (its own folder, streams and exit status) that skips the seconds
    of interpreter start-up and imports; ``test_a_forked_run_prints_what_python_m_prints``
    checks that this changes nothing.
    """

    def serve(cases: list[Case]) -> list[Ran]:
        server = RecipeServer(recipe_env())
        try:
            return run_cases(cases, tmp_path_factory, server.run)
        finally:
            server.close()

    halves = [CASES[0::2], CASES[1::2]]
    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(serve, halves)
    ordered = [*halves[0], *halves[1]]
    return {c.id: r for c, r in zip(ordered, [*first, *second], strict=True)}


@pytest.fixture(scope="module")
def direct(tmp_path_factory) -> dict[str, Ran]:
    """The first case of a LightningCLI recipe and of a class recipe, through ``python -m``."""
    cases = [next(c for c in CASES if c.recipe == recipe) for recipe in ("search", "correlate")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = pool.map(lambda case: run_cases([case], tmp_path_factory, run_recipe)[0], cases)
        return {case.recipe: run for case, run in zip(cases, runs, strict=True)}


@pytest.mark.parametrize("recipe", ["search", "correlate"])
def test_a_forked_run_prints_what_python_m_prints(recipe, ran, direct):
    case = next(c for c in CASES if c.recipe == recipe)
    forked = ran[case.id]
    assert direct[recipe].result.returncode == forked.result.returncode == 2
    stderr = direct[recipe].result.stderr.replace(str(direct[recipe].tmp), str(forked.tmp))
    assert stderr == forked.result.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_user_error_is_one_line_and_exit_2(case: Case, ran: dict[str, Ran]):
    tmp, result = ran[case.id].tmp, ran[case.id].result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    prog = f"lga-{case.recipe}"
    assert lines[0].startswith(f"{prog}: error: "), lines[0]
    for text in case.expect(tmp):
        assert text in lines[0], (text, lines[0])
    # nothing was trained or written, nothing lost: only the case's own files, unchanged
    assert {p.relative_to(tmp) for p in tmp.rglob("*")} == ran[case.id].before
    for path, data in ran[case.id].before_bytes.items():
        assert (tmp / path).read_bytes() == data


def test_traceback_on_request(tmp_path):
    env_case = next(c for c in CASES if c.id == "linearize-bad-arch")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LGA_TRACEBACK": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "recipes.linearize", *env_case.args(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0 and "Traceback" in result.stderr
    assert "ArchStringError" in result.stderr or "ValueError" in result.stderr


def test_header_only_store_is_started_afresh_by_the_corrected_command(tmp_path):
    # a search stopped before its first measurement (here: a wrong seed in its header)
    store(tmp_path, [{"kind": "search", "version": 1, "seed": 123}])
    result = run_recipe("search", search_config(tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = (tmp_path / "runs" / "lga_search" / "results.jsonl").read_text().splitlines()
    header, records = json.loads(lines[0]), [json.loads(line) for line in lines[1:]]
    assert header["kind"] == "search" and header["seed"] == 0
    assert sorted(r["candidate"] for r in records) == [0, 1]
    assert not (tmp_path / "runs" / "lga_search" / ".lock").exists()  # released at the end
    # every file of the search has the permissions of an ordinary new file, like results.jsonl
    folder = tmp_path / "runs" / "lga_search"
    modes = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir() if p.is_file()}
    assert {"results.jsonl", "leaderboard.csv", "leaderboard.json", "scatter.png"} <= set(modes)
    assert set(modes.values()) == {modes["results.jsonl"]}, modes


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_atomic_writes_give_files_the_umask_permissions(tmp_path, umask):
    from lga_lightning.search import leaderboard
    from lga_lightning.training import _history
    from recipes._files import atomic_write_text

    old = os.umask(umask)
    try:
        _history.write_csv(str(tmp_path / "ntk_metrics.csv"), [{"epoch": 0, "step": 0}])
        leaderboard.write_csv(str(tmp_path / "leaderboard.csv"), [{"rank": 1, "arch": "a"}])
        leaderboard.write_json(str(tmp_path / "leaderboard.json"), {"summary": {}})
        rows = [{"signal": 0.5, "val_acc": 0.1}, {"signal": 0.7, "val_acc": 0.2}]
        assert leaderboard.scatter(str(tmp_path / "scatter.png"), rows, "lga")
        atomic_write_text(tmp_path / "advantage.csv", "name\n")
        (tmp_path / "plain.txt").write_text("reference: an ordinary new file")
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert set(modes.values()) == {0o666 & ~umask}, {k: oct(v) for k, v in modes.items()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
