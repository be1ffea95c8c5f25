"""The Tune backend's own state as data: JSON written by this project and checked on load.

Two pieces of a Tune search's state are this project's, not Ray's:

* the :class:`~lga_lightning.search.tune.StrategySearcher`'s state (``tune/searcher-state-*.pkl``, a
  name Ray chooses; the content is JSON): the strategy's seed and the sequence of proposals and
  reports it saw. A strategy is a deterministic function of these, so restoring replays them on
  a fresh strategy and checks that each proposal comes out as recorded;
* the rungs of an ASHA scheduler (carried in the record callback's state): every rung's
  milestone and recorded scores, and each trial's bracket.

A file that is not valid JSON of the expected form, or whose replay does not match, raises
:class:`StateFileError` (a ``ValueError``) naming the file and the fix. Nothing in these files
can run code. (What Ray itself pickles -- ``tuner.pkl``, ``trainable.pkl``, the search
generator's and callbacks' state -- is trusted input: see ``docs/tune.md``.)
"""

from __future__ import annotations

import glob
import json
import math
import os
import pickletools
from collections import deque
from collections.abc import Mapping
from typing import Any

from lga_lightning.search.spaces.base import SearchSpace
from lga_lightning.search.strategies import Job, Strategy
from lga_lightning.search.tune.atomic_fs import remove_partial_files

FORMAT = "lga-lightning strategy searcher"
VERSION = 1
SEARCHER_STATE_GLOB = "searcher-state-*.pkl"
"""Ray's name for a searcher's state file (Ray's ``Searcher.CKPT_FILE_TMPL``)."""

_RECORD_FIELDS = ("candidate", "epoch", "status", "score")
"""What a strategy reads from a record (see ``Strategy.report``)."""


class StateFileError(ValueError):
    """A state file is not one this project wrote, or does not fit this search."""


def fix_hint(results_dir: str) -> str:
    """The fix for a refused state file: restore only what you wrote, else start afresh."""
    return (
        f"restore only results folders you wrote; delete {results_dir} (or choose another "
        "results_dir) to start the search afresh"
    )


def strategy_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``record`` a strategy reads, as plain JSON values.

    Example:
        >>> strategy_record({"candidate": 1, "epoch": 2, "score": 0.5, "lga": 0.4})
        {'candidate': 1, 'epoch': 2, 'status': 'ok', 'score': 0.5}
    """
    score = record.get("score", -math.inf)
    return {
        "candidate": int(record["candidate"]),
        "epoch": int(record["epoch"]),
        "status": str(record.get("status", "ok")),
        "score": float(score) if score is not None else -math.inf,
    }


def write_searcher_state(path: str, seed: int, events: list[list[Any]]) -> None:
    """Write a strategy searcher's state: its seed and its events, as JSON.

    Args:
        path: the file (Ray renames it into place).
        seed: the search seed the strategy was bound with.
        events: ``["propose", trial_id, candidate, arch]`` (the architecture string) and
            ``["report", record]``, in order.
    """
    with open(path, "w") as f:
        json.dump({"format": FORMAT, "version": VERSION, "seed": seed, "events": events}, f)


def read_searcher_state(path: str) -> tuple[int, list[list[Any]]]:
    """The seed and the events of a state file, checked for form (not yet replayed).

    Raises:
        StateFileError: the file is not JSON of the form :func:`write_searcher_state` writes.
    """
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise StateFileError(f"{path}: not a searcher state (not JSON: {err})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise StateFileError(f"{path}: not a searcher state this project wrote")
    if state.get("version") != VERSION:
        raise StateFileError(f"{path}: version {state.get('version')!r}, expected {VERSION}")
    seed, events = state.get("seed"), state.get("events")
    if not isinstance(seed, int) or not isinstance(events, list):
        raise StateFileError(f"{path}: no integer 'seed' and list of 'events'")
    for i, event in enumerate(events):
        if not _valid_event(event):
            raise StateFileError(f"{path}: event {i} ({str(event)[:80]}) is malformed")
    return seed, events


def _valid_event(event: Any) -> bool:
    if not isinstance(event, list) or not event:
        return False
    if event[0] == "propose":
        return (
            len(event) == 4
            and isinstance(event[1], str)
            and type(event[2]) is int
            and isinstance(event[3], str)
        )
    if event[0] == "report" and len(event) == 2 and isinstance(event[1], dict):
        record = event[1]
        return (
            set(record) == set(_RECORD_FIELDS)
            and type(record["candidate"]) is int
            and type(record["epoch"]) is int
            and isinstance(record["status"], str)
            and isinstance(record["score"], (int, float))
        )
    return False


def replay(
    strategy: Strategy, space: SearchSpace, seed: int, events: list[list[Any]], path: str
) -> dict[str, Job]:
    """Rebuild ``strategy`` from ``events``; the jobs proposed, by trial id.

    Raises:
        StateFileError: a proposal differs from the recorded one, or a report does not fit.
    """
    strategy.bind(space, seed)
    jobs: dict[str, Job] = {}
    for i, event in enumerate(events):
        if event[0] == "propose":
            job = strategy.propose()
            got = None if job is None else [job.candidate, space.encode(job.arch)]
            if job is None or got != event[2:]:
                raise StateFileError(
                    f"{path}: event {i} proposes {event[2:]}, but this search's strategy "
                    f"proposes {got} there (the file belongs to another search)"
                )
            jobs[event[1]] = job
        else:
            try:
                strategy.report(event[1])
            except ValueError as err:
                raise StateFileError(f"{path}: event {i} does not fit: {err}") from None
    return jobs


def newest_searcher_state(experiment: str) -> str | None:
    """The state file Ray's restore reads (the newest name), or ``None``."""
    paths = glob.glob(os.path.join(experiment, SEARCHER_STATE_GLOB))
    return max(paths) if paths else None


def check_searcher_state(experiment: str, searcher: Any, results_dir: str) -> None:
    """Replay a restorable experiment's searcher state on ``searcher`` before Ray starts.

    Args:
        experiment: Tune's experiment folder (a URI is left to Ray).
        searcher: a fresh :class:`~lga_lightning.search.tune.StrategySearcher` of this search.
        results_dir: the search's results folder (named in the fix).

    Raises:
        StateFileError: the state file is missing, malformed or from another search.
    """
    if not os.path.isdir(experiment):
        return
    path = newest_searcher_state(experiment)
    if path is None:
        raise StateFileError(
            f"{experiment} holds a Tune experiment without its searcher state "
            f"({SEARCHER_STATE_GLOB}); {fix_hint(results_dir)}."
        )
    try:
        searcher.check_state(path)
    except StateFileError as err:
        raise StateFileError(
            f"refused {err}; nothing in it was run. {fix_hint(results_dir)}."
        ) from None


RAY_STATE_GLOBS = (
    "experiment_state-*.json",
    "search_gen_state-*.json",
    "basic-variant-state-*.json",
    "callback-states-*.pkl",
    "tuner.pkl",
    "trainable.pkl",
)
"""Ray's files a restore reads (the newest of each pattern)."""


def check_ray_state(experiment: str, results_dir: str) -> None:
    """Refuse a restore from Ray state files that were cut short, before Ray reads them.

    A pickle (some ``.json`` names hold one) is walked opcode by opcode to its end (nothing in
    it runs); JSON is parsed. A file
    ends short when a driver was killed while copying it into a folder written by a version
    that copied in place (this one renames every written file into place).

    Args:
        experiment: Tune's experiment folder (a URI is left to Ray).
        results_dir: the search's results folder (named in the fix).

    Raises:
        StateFileError: the newest file of a kind is incomplete or malformed.
    """
    if not os.path.isdir(experiment):
        return
    for pattern in RAY_STATE_GLOBS:
        paths = glob.glob(os.path.join(experiment, pattern))
        if not paths:
            continue
        path = max(paths)
        try:
            with open(path, "rb") as f:
                content = f.read()
            if content[:1] == b"\x80":  # a pickle, whatever its name says
                deque(pickletools.genops(content), maxlen=0)  # walk every opcode to STOP
            else:
                json.loads(content)
        except ValueError as err:
            raise StateFileError(
                f"{path} is incomplete ({err}): the run that wrote it was stopped while "
                f"writing it, and Ray cannot restore from it. {fix_hint(results_dir)}."
            ) from None


def check_restorable(experiment: str, strategy_searcher: Any, results_dir: str) -> None:
    """Before Ray restores ``experiment``: drop killed writers' leftovers, check every state.

    Args:
        experiment: Tune's experiment folder (a URI is left to Ray).
        strategy_searcher: a fresh :class:`~lga_lightning.search.tune.StrategySearcher` to
            replay the saved searcher state on, or ``None`` for a Tune searcher.
        results_dir: the search's results folder (named in the fix).

    Raises:
        StateFileError: a state file is malformed, incomplete or from another search.
    """
    if not os.path.isdir(experiment):
        return
    remove_partial_files(experiment)
    if strategy_searcher is not None:
        check_searcher_state(experiment, strategy_searcher, results_dir)
    check_ray_state(experiment, results_dir)


# ---------------------------------------------------------------------------- ASHA
def asha_state(scheduler: Any) -> dict[str, Any]:
    """An ASHA scheduler's rungs as plain data (milestones, scores, each trial's bracket).

    Example:
        >>> from ray.tune.schedulers import AsyncHyperBandScheduler
        >>> s = AsyncHyperBandScheduler(time_attr="epoch", max_t=4, reduction_factor=2)
        >>> asha_state(s)["rungs"]
        [[[4, {}], [2, {}], [1, {}]]]
    """
    brackets = list(scheduler._brackets)
    index = {id(b): i for i, b in enumerate(brackets)}
    return {
        "rungs": [
            [[_number(m), {str(t): float(v) for t, v in rec.items()}] for m, rec in b._rungs]
            for b in brackets
        ],
        "trial_bracket": {str(t): index[id(b)] for t, b in scheduler._trial_info.items()},
        "counter": int(scheduler._counter),
        "num_stopped": int(scheduler._num_stopped),
    }


def set_asha_state(scheduler: Any, state: Any, where: str) -> None:
    """Put :func:`asha_state`'s data back into ``scheduler`` (built with the same settings).

    Raises:
        StateFileError: the data is not of that form or its milestones differ.
    """
    brackets = list(scheduler._brackets)
    try:
        rungs, trial_bracket = state["rungs"], state["trial_bracket"]
        counter, stopped = int(state["counter"]), int(state["num_stopped"])
        if len(rungs) != len(brackets):
            raise ValueError(f"{len(rungs)} brackets, the scheduler has {len(brackets)}")
        new_rungs = []
        for bracket, saved in zip(brackets, rungs, strict=True):
            milestones = [_number(m) for m, _ in bracket._rungs]
            if [_number(m) for m, _ in saved] != milestones:
                raise ValueError(f"milestones {[m for m, _ in saved]}, expected {milestones}")
            new_rungs.append([(m, {str(t): float(v) for t, v in rec.items()}) for m, rec in saved])
        info = {str(t): brackets[int(i)] for t, i in trial_bracket.items()}
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        raise StateFileError(f"{where}: the ASHA scheduler's state is malformed ({err})") from None
    for bracket, saved in zip(brackets, new_rungs, strict=True):
        bracket._rungs = saved
    scheduler._trial_info = info
    scheduler._counter, scheduler._num_stopped = counter, stopped


def _number(value: Any) -> int | float:
    value = float(value)
    return int(value) if value.is_integer() else value
