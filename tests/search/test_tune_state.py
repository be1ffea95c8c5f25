"""The Tune backend's own state is JSON, replayed and checked on load; nothing in it runs.

No Ray cluster is started: the searcher and the ASHA scheduler are driven by hand, as Tune
drives them, and the references are a searcher that was never saved (the same calls in one go).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ray.tune.schedulers import AsyncHyperBandScheduler
from ray.tune.search import Searcher

from lga_lightning.search import RegularizedEvolution
from lga_lightning.search.spaces import NB201Space
from lga_lightning.search.tune import StrategySearcher
from lga_lightning.search.tune.atomic_fs import remove_partial_files
from lga_lightning.search.tune.state import (
    StateFileError,
    asha_state,
    check_ray_state,
    set_asha_state,
)

ROOT = Path(__file__).resolve().parents[2]
SPACE = NB201Space(C=4, N=1)


def evolution() -> RegularizedEvolution:
    return RegularizedEvolution(num_candidates=8, population_size=3, sample_size=2)


def drive(searcher: StrategySearcher, steps: range, scores: np.ndarray) -> list[dict]:
    """Suggest, report one epoch, complete: the configs suggested."""
    configs = []
    for step in steps:
        config = searcher.suggest(f"t{step}")
        configs.append(config)
        record = {"candidate": config["candidate"], "epoch": 1, "status": "ok"}
        record["score"] = float(scores[config["candidate"]])
        searcher.on_trial_complete(f"t{step}", {"record": {**record, "lga": 0.1}})
    return configs


class Payload:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_saved_state_is_json_and_restores_to_the_same_search(tmp_path):
    scores = np.random.default_rng(0).normal(size=8)
    reference = StrategySearcher(evolution(), SPACE, seed=3)
    expected = drive(reference, range(8), scores)
    assert reference.suggest("t8") == Searcher.FINISHED

    first = StrategySearcher(evolution(), SPACE, seed=3)
    drive(first, range(4), scores)
    opened = first.suggest("t4")  # an open trial at the snapshot
    path = tmp_path / "searcher-state-x.pkl"
    first.save(str(path))
    state = json.loads(path.read_text())  # plain JSON
    assert state["seed"] == 3 and state["events"][-1][:3] == ["propose", "t4", opened["candidate"]]

    restored = StrategySearcher(evolution(), SPACE, seed=3)
    restored.restore(str(path))
    assert set(restored.jobs) == {"t4"}
    record = {"candidate": opened["candidate"], "epoch": 1, "status": "ok"}
    record["score"] = float(scores[opened["candidate"]])
    restored.on_trial_complete("t4", {"record": record})
    rest = drive(restored, range(5, 8), scores)
    assert [opened, *rest] == expected[4:]
    assert restored.suggest("t8") == Searcher.FINISHED
    assert restored.strategy.population == reference.strategy.population


@pytest.mark.parametrize(
    "content",
    [
        lambda m: pickle.dumps(Payload(m)),  # what the old pickled state could run
        lambda m: b'{"format": "lga-lightning strategy searcher", "version": 1, "seed": 3, "ev',
        lambda m: json.dumps({"format": "something else", "events": []}).encode(),
        lambda m: json.dumps(
            {
                "format": "lga-lightning strategy searcher",
                "version": 1,
                "seed": 3,
                "events": [["report", {"candidate": 0, "epoch": 1}]],
            }
        ).encode(),
    ],
    ids=["pickle-payload", "truncated", "other-format", "malformed-event"],
)
def test_tampered_state_is_refused_in_one_line_without_running(tmp_path, content):
    marker = tmp_path / "marker"
    path = tmp_path / "searcher-state-x.pkl"
    path.write_bytes(content(marker))
    searcher = StrategySearcher(evolution(), SPACE, seed=3)
    with pytest.raises(StateFileError, match="searcher-state-x.pkl") as info:
        searcher.restore(str(path))
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_state_of_another_search_is_refused(tmp_path):
    scores = np.zeros(8)
    other = StrategySearcher(evolution(), SPACE, seed=4)
    drive(other, range(3), scores)
    path = tmp_path / "searcher-state-x.pkl"
    other.save(str(path))
    state = json.loads(path.read_text())
    state["seed"] = 3  # an edited seed: the recorded proposals no longer come out
    path.write_text(json.dumps(state))
    with pytest.raises(StateFileError, match="belongs to another search"):
        StrategySearcher(evolution(), SPACE, seed=3).restore(str(path))
    # a report of a candidate that was never proposed
    state["seed"] = 4
    state["events"].insert(0, ["report", {"candidate": 5, "epoch": 1, "status": "ok", "score": 0}])
    path.write_text(json.dumps(state))
    with pytest.raises(StateFileError, match="event 0 does not fit"):
        StrategySearcher(evolution(), SPACE, seed=4).restore(str(path))


class FakeTrial:
    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


def _asha() -> AsyncHyperBandScheduler:
    return AsyncHyperBandScheduler(
        time_attr="epoch", metric="score", mode="max", max_t=4, grace_period=1, reduction_factor=2
    )


def test_asha_rungs_round_trip_as_data_and_decide_alike():
    scores = [0.3, 0.9, 0.1, 0.5, 0.7, 0.2]
    reference, saved = _asha(), _asha()
    for scheduler in (reference, saved):
        for i, score in enumerate(scores[:4]):
            scheduler.on_trial_add(None, FakeTrial(f"t{i}"))
            scheduler.on_trial_result(None, FakeTrial(f"t{i}"), {"epoch": 1, "score": score})
    state = json.loads(json.dumps(asha_state(saved)))  # survives JSON
    assert state["rungs"][0][-1] == [1, {f"t{i}": s for i, s in enumerate(scores[:4])}]
    restored = _asha()
    set_asha_state(restored, state, "test")
    for scheduler in (reference, restored):
        for i in (4, 5):
            scheduler.on_trial_add(None, FakeTrial(f"t{i}"))
    decisions = [
        [
            s.on_trial_result(None, FakeTrial(f"t{i}"), {"epoch": 1, "score": scores[i]})
            for i in (4, 5)
        ]
        for s in (reference, restored)
    ]
    # by hand: the cutoff of rung 1 is the median of what it recorded; 0.7 goes on, 0.2 stops
    assert decisions[0] == decisions[1] == ["CONTINUE", "STOP"]
    assert asha_state(restored) == asha_state(reference)


@pytest.mark.parametrize(
    "state",
    [
        {"rungs": [[[4, {}], [2, {}]]], "trial_bracket": {}, "counter": 0, "num_stopped": 0},
        {"rungs": [[[4, {}], [2, {}], [1, {"t0": "x"}]]], "trial_bracket": {}, "counter": 0},
        {
            "rungs": [[[4, {}], [2, {}], [1, {}]]],
            "trial_bracket": {"t0": 3},
            "counter": 0,
            "num_stopped": 0,
        },
        "not a dict",
    ],
    ids=["other-milestones", "bad-score", "no-such-bracket", "not-a-dict"],
)
def test_malformed_asha_state_is_refused(state):
    scheduler = _asha()
    before = asha_state(scheduler)
    with pytest.raises(StateFileError, match="the ASHA scheduler's state is malformed"):
        set_asha_state(scheduler, state, "callback state")
    assert asha_state(scheduler) == before  # nothing half restored


def test_lga_tune_refuses_a_crafted_state_before_starting_ray(tmp_path):
    config = tmp_path / "tune.yaml"
    config.write_text(
        f"""
model:
  space: {{class_path: lga_lightning.search.spaces.NB201Space, init_args: {{C: 4, N: 1}}}}
  strategy: {{class_path: lga_lightning.search.RandomSearch, init_args: {{num_candidates: 2}}}}
  probe_size: 8
data: {{class_path: lga_lightning.data.DigitsDataModule, init_args: {{channels: 3}}}}
trainer: {{accelerator: cpu, limit_train_batches: 1, default_root_dir: {tmp_path / "runs"}}}
tune: {{trial_scheduler: none, num_cpus: 1}}
"""
    )
    experiment = tmp_path / "runs" / "lga_tune" / "tune"
    experiment.mkdir(parents=True)
    (experiment / "tuner.pkl").write_bytes(b"Ray's own file: never read by this check")
    marker = tmp_path / "marker"
    (experiment / "searcher-state-2026-12-02.pkl").write_bytes(pickle.dumps(Payload(marker)))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("LGA_TRACEBACK", None)
    result = subprocess.run(
        [sys.executable, "-m", "recipes.tune", "--config", str(config)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # Lightning's start-up notes (the Trainer is built first) and one error line
    lines = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == lines[0]
    assert lines[0].startswith("lga-tune: error: refused ")
    assert "searcher-state-2026-12-02.pkl" in lines[0] and "nothing in it was run" in lines[0]
    assert f"delete {tmp_path / 'runs' / 'lga_tune'}" in lines[0]
    assert "ray:" not in result.stdout  # Ray was not started
    assert not marker.exists()
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


_KILLED_WRITER = """
import sys, time
import pyarrow.fs
from lga_lightning.search.tune.atomic_fs import atomic_local_filesystem
fs = atomic_local_filesystem() if sys.argv[2] == "atomic" else pyarrow.fs.LocalFileSystem()
stream = fs.open_output_stream(sys.argv[1])
stream.write(b"new state, cut short")
stream.flush()
print("writing", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("filesystem", ["atomic", "plain"])
def test_a_writer_killed_mid_file_leaves_the_previous_version_whole(tmp_path, filesystem):
    target = tmp_path / "callback-states-2026-12-03.pkl"
    target.write_bytes(pickle.dumps({"asha": "the previous state"}))
    before = target.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(target), filesystem],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "writing"
    finally:
        writer.kill()
        writer.wait()
    if filesystem == "atomic":
        assert target.read_bytes() == before
        assert remove_partial_files(str(tmp_path)) == 1
        assert [p.name for p in tmp_path.iterdir()] == [target.name]
    else:  # what Ray's own local copy leaves: the file Tune restores from, cut short
        assert target.read_bytes() == b"new state, cut short"
        with pytest.raises(StateFileError, match=f"{target.name} is incomplete"):
            check_ray_state(str(tmp_path), "the results folder")


def test_complete_ray_state_files_pass_and_a_cut_one_is_named(tmp_path):
    state = pickle.dumps({"asha": {"rungs": list(range(100))}})
    (tmp_path / "callback-states-2026-12-01.pkl").write_bytes(state)
    (tmp_path / "experiment_state-2026-12-01.json").write_text(json.dumps({"trial_data": []}))
    (tmp_path / "search_gen_state-2026-12-01.json").write_bytes(state)  # Ray pickles into it
    check_ray_state(str(tmp_path), "runs/lga_tune")  # whole files: no error
    (tmp_path / "experiment_state-2026-12-02.json").write_text('{"trial_data": [')
    with pytest.raises(StateFileError) as err:
        check_ray_state(str(tmp_path), "runs/lga_tune")
    message = str(err.value)
    assert "experiment_state-2026-12-02.json is incomplete" in message
    assert "delete runs/lga_tune" in message and "\n" not in message
    (tmp_path / "experiment_state-2026-12-02.json").unlink()
    (tmp_path / "callback-states-2026-12-02.pkl").write_bytes(state[: len(state) // 2])
    with pytest.raises(StateFileError, match="callback-states-2026-12-02.pkl is incomplete"):
        check_ray_state(str(tmp_path), "runs/lga_tune")
