"""The Ray Tune backend on a local Ray with 2 CPUs: same records, ASHA's decisions, crash safety.

Marked ``ray`` and ``slow`` by the root conftest (``.ci/run`` installs the ``ray`` extra first).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import ray
from _search_run import fit, make_search
from _wandb import RecordingWandbLogger
from ray import cloudpickle
from ray.tune.search import Searcher

from lga_lightning.data import DigitsDataModule
from lga_lightning.search import Plain, RandomSearch, RegularizedEvolution
from lga_lightning.search.dispatcher import JobDispatcher
from lga_lightning.search.spaces import NB201Space
from lga_lightning.search.store import ResultsStore
from lga_lightning.search.tune import StrategySearcher, TuneSearch
from lga_lightning.training.sinks import ListSink

ROOT = Path(__file__).resolve().parents[2]
TRIAL_TRAINER = {"accelerator": "cpu", "limit_train_batches": 4, "limit_val_batches": 2}
TIMING = ("seconds", "ntk_seconds", "process")

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers get this module's classes


@pytest.fixture(scope="module")
def local_ray():
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        ignore_reinit_error=True,
    )
    yield
    ray.shutdown()


def _data() -> DigitsDataModule:
    return DigitsDataModule(channels=3, batch_size=64)


def _tuned(strategy, results_dir: Path, space=None, sinks=(), **kwargs) -> TuneSearch:
    """A quiet TuneSearch of a small search on the digits, trials limited like TRIAL_TRAINER."""
    kwargs.setdefault("trainer", dict(TRIAL_TRAINER))
    search = make_search(strategy, space, sinks=sinks)
    return TuneSearch(search, _data(), results_dir=str(results_dir), verbose=False, **kwargs)


def _comparable(record: dict) -> dict:
    """A record without its timings, nan as a token (nan != nan)."""
    return {
        k: ("nan" if isinstance(v, float) and math.isnan(v) else v)
        for k, v in record.items()
        if k not in TIMING
    }


def _by_key(records) -> dict:
    return {(int(r["candidate"]), int(r["epoch"])): _comparable(r) for r in records}


def test_records_equal_the_in_process_search(local_ray, tmp_path):
    archs = [NB201Space().sample(seed) for seed in (3, 4, 5)]  # a fixed list of cells

    def strategy():
        return Plain(archs=archs, epochs=2, measure_at=(0, 1, 2))

    in_process, _ = fit(
        tmp_path,
        strategy(),
        data=_data(),
        trainer_kwargs=TRIAL_TRAINER,
        results_dir=str(tmp_path / "in_process"),
    )

    sink = ListSink()
    tuned = _tuned(strategy(), tmp_path / "tune", trial_scheduler="none", sinks=[sink])
    tuned.fit()

    expected = _by_key(in_process.records)
    assert len(expected) == 9  # 3 candidates x epochs 0, 1, 2
    assert _by_key(tuned.records) == expected
    assert len(sink.records) == 9 and _by_key(sink.records) == expected  # the driver writes them
    assert [r["candidate"] for r in tuned.leaderboard] == [
        r["candidate"] for r in in_process.leaderboard
    ]


def test_evolution_on_tune_evolves_as_in_process(local_ray, tmp_path):
    def evolution():
        return RegularizedEvolution(num_candidates=7, population_size=3, sample_size=2)

    in_process, _ = fit(
        tmp_path, evolution(), data=_data(), trainer_kwargs=TRIAL_TRAINER, results_dir=None
    )
    shared = tmp_path / "shared"  # Tune's experiment apart from the results (a cluster's storage)
    tuned = _tuned(evolution(), tmp_path / "tune", trial_scheduler="none", storage=str(shared))
    tuned.fit()
    assert _by_key(tuned.records) == _by_key(in_process.records)  # children included
    assert len(tuned.records) == 7
    assert len(list((shared / "tune").glob("cand*"))) == 7
    assert (tmp_path / "tune" / "leaderboard.csv").is_file()
    assert not (tmp_path / "tune" / "tune").exists()


def _asha_by_hand(records, rungs, eta):
    """Replay ASHA over the records in the order the driver received them.

    A record at rung ``r`` is stopped when its score is below the ``1 - 1/eta`` percentile of
    the scores recorded at ``r`` before it; otherwise it is promoted.
    """
    recorded = {r: [] for r in rungs}
    stopped, promoted = set(), set()
    for record in records:
        epoch, candidate = int(record["epoch"]), int(record["candidate"])
        if epoch not in recorded:
            continue
        before = recorded[epoch]
        cutoff = np.nanpercentile(before, (1 - 1 / eta) * 100) if before else None
        (stopped if cutoff is not None and record["score"] < cutoff else promoted).add(
            (candidate, epoch)
        )
        before.append(record["score"])
    return stopped, promoted


def test_asha_promotes_what_a_hand_computation_promotes(local_ray, tmp_path):
    tuned = _tuned(RandomSearch(num_candidates=8, epochs=4), tmp_path, min_epochs=1, eta=2)
    assert tuned.rungs == [1, 2, 4]
    tuned.fit()
    records = tuned.records  # the driver's arrival order, which is ASHA's
    assert all(math.isfinite(r["score"]) for r in records)
    stopped, promoted = _asha_by_hand(records, rungs=(1, 2), eta=2)
    reached = {}
    for r in records:
        reached[int(r["candidate"])] = max(reached.get(int(r["candidate"]), 0), int(r["epoch"]))
    for candidate, epoch in stopped:
        assert reached[candidate] == epoch, f"candidate {candidate} went on after rung {epoch}"
    for candidate, epoch in promoted:
        assert reached[candidate] > epoch, f"candidate {candidate} stopped at rung {epoch}"
    assert stopped, "ASHA stopped nobody: the test would not tell promotion from stopping"
    assert len({c for c, _ in promoted if c in reached}) >= 1
    # the leaderboard ranks survivors of more rungs first
    epochs = [row["epoch"] for row in tuned.leaderboard]
    assert epochs == sorted(epochs, reverse=True)


def test_strategy_searcher_proposes_what_the_in_process_scheduler_proposes():
    space = NB201Space(C=4, N=1)

    def evolution():
        return RegularizedEvolution(num_candidates=7, population_size=3, sample_size=2)

    searcher = StrategySearcher(evolution(), space, seed=5)
    dispatcher = JobDispatcher(evolution(), space, seed=5, processes=1)
    rng = np.random.default_rng(0)
    for step in range(7):
        job = dispatcher.fill()[0]
        config = searcher.suggest(f"t{step}")
        assert config["candidate"] == job.candidate and config["arch"] == space.encode(job.arch)
        record = {
            "candidate": job.candidate,
            "epoch": 1,
            "status": "ok",
            "score": float(rng.normal()),
            "process": 0,
        }
        dispatcher.add(record)
        searcher.on_trial_complete(f"t{step}", {"record": record})
    assert searcher.suggest("t7") == Searcher.FINISHED
    assert searcher.strategy.population == dispatcher.strategy.population


class FlakySpace(NB201Space):
    """NB201 whose ``build`` fails: always for ``broken``, once (per marker file) for ``flaky``."""

    def __init__(self, broken: str, flaky: str, marker: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.broken, self.flaky, self.marker = broken, flaky, marker

    def build(self, arch, **kwargs):
        if self.encode(arch) == self.broken:
            raise RuntimeError("this cell cannot be built (a test failure)")
        if self.encode(arch) == self.flaky and not os.path.exists(self.marker):
            Path(self.marker).touch()
            raise RuntimeError("a passing failure (the test's flaky cell)")
        return super().build(arch, **kwargs)


def test_a_failed_trial_is_retried_and_otherwise_ranked_last(local_ray, tmp_path):
    archs = [NB201Space().sample(seed) for seed in range(3)]
    space = FlakySpace(archs[1], archs[2], str(tmp_path / "flaky-once"), C=4, N=1)
    logger = RecordingWandbLogger(save_dir=str(tmp_path))
    tuned = _tuned(
        Plain(archs=archs, epochs=1),
        tmp_path / "search",
        space=space,
        trial_scheduler="none",
        max_failures=1,
        loggers=[logger],
    )
    tuned.fit()
    rows = {row["arch"]: row for row in tuned.leaderboard}
    assert rows[archs[2]]["status"] == "ok"  # failed once, retried, measured
    assert (tmp_path / "flaky-once").exists()
    assert rows[archs[1]]["status"] == "failed" and rows[archs[1]]["rank"] == 3
    assert "cannot be built" in rows[archs[1]]["error"]
    assert tuned.summary["failed"] == 1
    # one W&B run for the search: each measurement, then the leaderboard table
    logged = [key for metrics, _ in logger.metrics for key in metrics]
    assert "candidate/0000/lga" in logged and "candidate/0002/lga" in logged
    assert [t["key"] for t in logger.tables] == ["search/leaderboard"]


class ListSearcher(Searcher):
    """A minimal Tune searcher: the architectures of its parameter space's ``arch`` choice, in
    a seeded order."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.rng = np.random.default_rng(seed)
        self.choices: list[str] = []

    def set_search_properties(self, metric, mode, config, **spec):
        super().set_search_properties(metric, mode, config, **spec)
        self.choices = list(config["arch"].categories)
        return True

    def suggest(self, trial_id):
        return {"arch": str(self.rng.choice(self.choices))}

    def on_trial_complete(self, trial_id, result=None, error=False):
        """Results do not steer this searcher (Tune's base class requires the method)."""


def test_one_of_tunes_own_searchers_numbers_its_candidates(local_ray, tmp_path):
    tuned = _tuned(
        RandomSearch(num_candidates=3, epochs=2),
        tmp_path,
        trial_scheduler="hyperband",
        eta=2,
        searcher=ListSearcher(seed=1),
        num_candidates=3,
    )
    tuned.fit()
    assert sorted(int(r["candidate"]) for r in tuned.leaderboard) == [0, 1, 2]
    assert {r["status"] for r in tuned.leaderboard} == {"ok"}
    # every trial reported each epoch once, across HyperBand's pauses and resumptions
    for result_file in (tmp_path / "tune").glob("cand*/result.json"):
        epochs = [json.loads(line)["epoch"] for line in result_file.read_text().splitlines()]
        assert epochs == sorted(set(epochs))


def _write_config(path: Path, root: Path) -> Path:
    path.write_text(
        f"""
model:
  space: {{class_path: lga_lightning.search.spaces.NB201Space, init_args: {{C: 4, N: 1}}}}
  strategy:
    class_path: lga_lightning.search.RandomSearch
    init_args: {{num_candidates: 5, epochs: 3}}
  probe_size: 16
data:
  class_path: lga_lightning.data.DigitsDataModule
  init_args: {{channels: 3, batch_size: 64}}
trainer:
  accelerator: cpu
  limit_train_batches: 4
  limit_val_batches: 2
  default_root_dir: {root}
tune:
  trial_scheduler: asha
  eta: 3
  max_concurrent_trials: 1
  num_cpus: 2
"""
    )
    return path


def _measurements(store: Path) -> int:
    if not store.exists():
        return 0
    return store.read_text().count('"kind": "measurement"')


def _lga_tune(config: Path) -> tuple[list[str], dict[str, str]]:
    """The ``lga-tune`` command for ``config``, and its environment (this checkout first)."""
    command = [sys.executable, "-m", "recipes.tune", "--config", str(config)]
    return command, {**os.environ, "PYTHONPATH": str(ROOT)}


def _start_driver(command, env, store: Path, measurements: int, stdout) -> subprocess.Popen:
    """Start ``lga-tune`` in its own session; return once ``store`` holds ``measurements``."""
    driver = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        start_new_session=True,
        text=True,
        stdout=stdout,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 240
    while _measurements(store) < measurements and driver.poll() is None:
        assert time.time() < deadline, "no measurement within 4 minutes"
        time.sleep(0.2)
    assert driver.poll() is None, "the search ended before the test could stop it"
    return driver


def _kill_group(driver: subprocess.Popen) -> None:
    """Kill what is left of the driver's session (Ray's processes), if anything."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(driver.pid, signal.SIGKILL)


def test_driver_sigkill_then_rerun_restores_the_search(local_ray, tmp_path):
    from recipes.tune import run

    command, env = _lga_tune(_write_config(tmp_path / "killed.yaml", tmp_path / "killed"))
    store = tmp_path / "killed" / "lga_tune" / "results.jsonl"
    driver = _start_driver(command, env, store, measurements=3, stdout=subprocess.DEVNULL)
    try:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    finally:
        _kill_group(driver)  # what Ray left behind, as a dead node would
    assert 3 <= _measurements(store) < 9

    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "restoring the Tune experiment" in rerun.stdout

    reference = _write_config(tmp_path / "reference.yaml", tmp_path / "reference")
    uninterrupted = run(["--config", str(reference)])

    _, records = ResultsStore(store).read()
    keys = [(int(r["candidate"]), int(r["epoch"])) for r in records]
    assert len(keys) == len(set(keys)), "a measurement was stored twice"
    assert _by_key(records) == _by_key(uninterrupted.records)
    resumed = json.loads((store.parent / "leaderboard.json").read_text())["leaderboard"]
    assert [_comparable(r) for r in resumed] == [_comparable(r) for r in uninterrupted.leaderboard]
    # no epoch of any candidate was reported twice, across all its trials (a trial started after
    # the experiment's last snapshot is started again on restore; it had reported nothing)
    reported: dict[int, list[int]] = {}
    for trial_dir in (store.parent / "tune").glob("cand*"):
        candidate = int(trial_dir.name[4:9])
        results = trial_dir / "result.json"
        lines = results.read_text().splitlines() if results.exists() else []
        reported.setdefault(candidate, []).extend(json.loads(line)["epoch"] for line in lines)
    assert sorted(reported) == [0, 1, 2, 3, 4]
    for candidate, epochs in reported.items():
        assert len(epochs) == len(set(epochs)), f"candidate {candidate} trained an epoch twice"


def test_ctrl_c_writes_the_partial_leaderboard_and_a_rerun_finishes(tmp_path):
    command, env = _lga_tune(_write_config(tmp_path / "interrupted.yaml", tmp_path / "run"))
    store = tmp_path / "run" / "lga_tune" / "results.jsonl"
    driver = _start_driver(command, env, store, measurements=2, stdout=subprocess.PIPE)
    try:
        driver.send_signal(signal.SIGINT)
        out, _ = driver.communicate(timeout=120)
    finally:
        _kill_group(driver)
    assert driver.returncode == 130, out[-3000:]
    assert "Rerun the same command to continue" in out
    partial = json.loads((store.parent / "leaderboard.json").read_text())
    assert partial["summary"]["done"] is False and partial["leaderboard"]

    rerun = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    final = json.loads((store.parent / "leaderboard.json").read_text())
    assert final["summary"]["done"] is True and len(final["leaderboard"]) == 5
    assert not list((store.parent / "tune").glob("cand*/checkpoint_*")), "checkpoints kept"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trainer": {"limit_train_batchs": 2}}, "not arguments of lightning.pytorch.Trainer"),
        ({"trainer": {"max_epochs": 3}}, "are set by the trials themselves"),
        ({"trial_scheduler": "median"}, "is not one of 'asha', 'hyperband', 'none'"),
        ({"gpu": -1.0}, "resources per trial must be cpu > 0 and gpu >= 0"),
        ({"eta": 1}, "eta=1 must be at least 2"),
        ({"searcher": "optuna"}, "searcher must be a ray.tune.search.Searcher"),
    ],
    ids=["unknown-option", "fixed-option", "trial_scheduler", "gpu", "eta", "searcher"],
)
def test_tune_search_refuses_bad_arguments_before_starting_ray(kwargs, message, tmp_path):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _tuned(RandomSearch(num_candidates=2, epochs=2), tmp_path, **kwargs)
