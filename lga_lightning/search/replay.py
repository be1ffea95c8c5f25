"""Replay a search on measured cells: the strategies' choices without training anything.

A study's ``raw.jsonl`` (or a search's ``results.jsonl``) holds, for every cell it measured, each
signal at each epoch and what it cost. :func:`replay` drives a
:class:`~lga_lightning.search.strategies.Strategy` exactly as
:class:`~lga_lightning.search.LGASearch` does (propose, report, rank with the leaderboard), but
each record's score is *looked up* in a :class:`MeasuredTable` instead of trained for; its cost
is the candidate-epochs the strategy asked for and the seconds those epochs and measurements took
when they were measured. Repeating it over many search seeds (:func:`replay_many`) gives the
expected ground-truth accuracy of the cell a search picks, against its budget.

Example:
    >>> table = MeasuredTable({"a": {1: {"lga": 0.1}}, "b": {1: {"lga": 0.9}}},
    ...                       truth={"a": 70.0, "b": 90.0})
    >>> from lga_lightning.search.strategies import RandomSearch
    >>> replay(RandomSearch(num_candidates=2), table, "lga", seed=0).arch
    'b'
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lga_lightning._compat import upgrade_0_2
from lga_lightning.core.signals import expected_sign, signal_names
from lga_lightning.search import leaderboard
from lga_lightning.search.strategies import Strategy

Values = dict[int, dict[str, float]]
"""``epoch -> {signal: value}`` of one cell."""


class PoolSpace:
    """A search space whose architectures are a fixed pool of strings (the measured cells).

    Example:
        >>> space = PoolSpace(["b", "a"])
        >>> space.sample(random.Random(0)) in ("a", "b"), space.canonical("a")
        (True, 'a')
    """

    def __init__(self, archs: Sequence[str]) -> None:
        self.archs = sorted(set(archs))
        self.size = len(self.archs)

    def sample(self, rng: random.Random | None = None) -> str:
        """A uniform draw from the pool."""
        return (rng or random.Random()).choice(self.archs)

    def encode(self, arch: str) -> str:
        """The arch string itself."""
        return arch

    def decode(self, text: str) -> str:
        """The arch string itself."""
        return text

    def canonical(self, arch: str) -> str:
        """The arch string itself: every measured cell is its own candidate."""
        return arch

    def enumerate(self) -> Iterator[str]:
        """The pool, sorted."""
        return iter(self.archs)


@dataclass
class MeasuredTable:
    """Measured signals, their cost and the ground truth of a pool of cells.

    Attributes:
        values: ``arch -> epoch -> {signal: value}``; epoch-free signals (``params``) are
            repeated at every epoch.
        truth: ``arch -> ground-truth accuracy``.
        epoch_seconds: ``arch -> seconds of one training epoch`` (validation included).
        signal_seconds: ``arch -> {signal: seconds of one measurement}``.
        costs: ``signal -> candidate-epochs it costs on its own`` whatever epoch it is read at
            (the benchmark's 12-epoch accuracy: 12); absent means the epoch it is read at.
    """

    values: dict[str, Values]
    truth: dict[str, float] = field(default_factory=dict)
    epoch_seconds: dict[str, float] = field(default_factory=dict)
    signal_seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    costs: dict[str, float] = field(default_factory=dict)

    @property
    def archs(self) -> list[str]:
        """Cells with a ground truth, sorted."""
        return sorted(a for a in self.values if math.isfinite(self.truth.get(a, math.nan)))

    def signals(self) -> list[tuple[str, int]]:
        """Every ``(signal, epoch)`` measured on every cell."""
        common = None
        for arch in self.archs:
            here = {(s, e) for e, entry in self.values[arch].items() for s in entry}
            common = here if common is None else common & here
        return sorted(common or ())

    def value(self, arch: str, signal: str, epoch: int) -> float:
        """A cell's signal at ``epoch`` (nan when it was not measured there)."""
        return float(self.values.get(arch, {}).get(epoch, {}).get(signal, math.nan))

    def seconds(self, arch: str, signal: str, new_epochs: float) -> float:
        """Seconds of ``new_epochs`` training epochs of ``arch`` plus one measurement."""
        train = self.epoch_seconds.get(arch, 0.0) * new_epochs
        return train + self.signal_seconds.get(arch, {}).get(signal.split("[")[0], 0.0)


@dataclass
class Outcome:
    """One replayed search: the chosen cell, its accuracy, what the search cost."""

    arch: str
    true_acc: float
    candidate_epochs: float
    seconds: float
    best_evaluated: float
    mean_evaluated: float


def replay(
    strategy: Strategy,
    table: MeasuredTable,
    signal: str,
    seed: int,
    space: Any = None,
    epoch_offset: int = 0,
    sign: int | None = None,
) -> Outcome:
    """Run ``strategy`` against ``table``: every record's value is looked up, not trained for.

    Args:
        strategy: a fresh or reused strategy (``bind`` resets it).
        table: the measured cells.
        signal: the ranking signal, a key of the table's values.
        seed: the search seed (the strategy's sampling derives from it).
        space: the space the strategy samples from; default a :class:`PoolSpace` of the cells.
            With the space a real search used and its seed, the replay proposes the same cells.
        epoch_offset: read the value at ``job epoch + epoch_offset`` (``-1``: a 1-epoch
            strategy ranks by the value at initialisation, trained for nothing).
        sign: the signal's direction (default :func:`lga_lightning.core.signals.expected_sign`).

    Returns:
        The :class:`Outcome`: the leaderboard's top cell (ranked as ``lga-search`` ranks).
    """
    sign = expected_sign(signal.split("[")[0]) if sign is None else sign
    space = PoolSpace(table.archs) if space is None else space
    strategy.bind(space, seed)
    records: list[dict[str, Any]] = []
    trained: dict[int, int] = {}
    epochs_total = seconds_total = 0.0
    while not strategy.done:
        batch = []
        while (job := strategy.propose()) is not None:
            batch.append(job)
        if not batch:
            raise RuntimeError(f"{strategy!r} waits for results but proposed nothing.")
        for job in batch:
            arch = space.encode(job.arch)
            fixed = table.costs.get(signal)
            for epoch in job.measure_at:
                at = epoch + epoch_offset
                new = at - trained.get(job.candidate, 0) if fixed is None else fixed
                new = max(new, 0)
                trained[job.candidate] = max(at, trained.get(job.candidate, 0))
                epochs_total += new
                seconds_total += table.seconds(arch, signal, new)
                value = table.value(arch, signal, at)
                score = sign * value if sign else value
                ok = math.isfinite(score)
                record = {
                    "candidate": job.candidate,
                    "epoch": epoch,
                    "status": "ok" if ok else "undefined",
                    "score": score if ok else -math.inf,
                    "arch": arch,
                }
                records.append(record)
                strategy.report(record)
    rows = leaderboard.build(records)
    evaluated = [table.truth.get(str(r["arch"]), math.nan) for r in rows]
    return Outcome(
        arch=str(rows[0]["arch"]),
        true_acc=table.truth.get(str(rows[0]["arch"]), math.nan),
        candidate_epochs=epochs_total,
        seconds=seconds_total,
        best_evaluated=float(np.nanmax(evaluated)),
        mean_evaluated=float(np.nanmean(evaluated)),
    )


def replay_many(
    make: Callable[[], Strategy],
    table: MeasuredTable,
    signal: str,
    searches: int = 1000,
    epoch_offset: int = 0,
) -> dict[str, float]:
    """:func:`replay` over search seeds ``0..searches-1``: the picked cells' accuracy and cost.

    Returns:
        ``mean``, ``low``, ``high`` (2.5 and 97.5 percentiles over searches) of the chosen
        cell's accuracy; ``oracle`` (mean of the best evaluated cell: a perfect ranking) and
        ``random`` (mean over the evaluated cells: a random pick) for the same candidates; the
        mean ``candidate_epochs`` and ``seconds`` of one search.
    """
    strategy = make()
    outcomes = [
        replay(strategy, table, signal, s, epoch_offset=epoch_offset) for s in range(searches)
    ]
    acc = np.array([o.true_acc for o in outcomes])
    return {
        "mean": float(acc.mean()),
        "low": float(np.percentile(acc, 2.5)),
        "high": float(np.percentile(acc, 97.5)),
        "oracle": float(np.mean([o.best_evaluated for o in outcomes])),
        "random": float(np.mean([o.mean_evaluated for o in outcomes])),
        "candidate_epochs": float(np.mean([o.candidate_epochs for o in outcomes])),
        "seconds": float(np.mean([o.seconds for o in outcomes])),
    }


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The JSON lines of a store (a torn last line is left out)."""
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def table_from_search(path: str | Path, truth: Mapping[str, float]) -> MeasuredTable:
    """A search's ``results.jsonl``: every signal its records hold, cost = their ``seconds``.

    Each record's ``seconds`` (training since the previous record plus the measurement) is
    spread evenly over the epochs it covers.
    """
    values: dict[str, Values] = {}
    epoch_seconds: dict[str, float] = {}
    for r in map(upgrade_0_2, read_jsonl(path)):
        if r.get("kind") != "measurement":
            continue
        arch, epoch = str(r["arch"]), int(r["epoch"])
        numbers = {
            k: float(v)
            for k, v in r.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith("_")
        }
        for k in ("candidate", "epoch", "seconds", "ntk_seconds", "process", "steps", "score"):
            numbers.pop(k, None)
        for k in ("num_params",):  # a count, not a signal (the signal is ``params``)
            numbers.pop(k, None)
        values.setdefault(arch, {})[epoch] = numbers
        epoch_seconds[arch] = float(r.get("seconds", 0.0)) / max(epoch, 1)
    return MeasuredTable(values, dict(truth), epoch_seconds)


def table_from_study(
    path: str | Path,
    truth: Mapping[str, float],
    reference: Mapping[str, float] | None = None,
    reference_epochs: float = 12.0,
    reference_images: float = 1.0,
    combine: Sequence[tuple[str, Sequence[tuple[str, int]]]] = (),
) -> MeasuredTable:
    """A study's ``raw.jsonl`` (``lga-correlate``) as a measured table.

    Signals: every NTK metric as ``metric[setting]`` (and plain ``metric`` for the first
    setting), every proxy, ``train_loss``, ``val_acc``, ``params`` and ``flops``; with
    ``reference`` (e.g. the benchmark's 12-epoch accuracy) the signal ``benchmark``, costing
    ``reference_epochs`` candidate-epochs and ``reference_epochs * reference_images`` measured
    training epochs of seconds (``reference_images``: the benchmark's images per epoch over the
    study's). ``combine`` adds ``(name, [(signal, epoch), ...])`` rankings by sum of log ranks,
    the ranks taken over the whole measured pool, stored at the last of their epochs.

    Costs: one epoch's seconds is the record's training time over its trained epochs; one NTK
    measurement is its kernel time over its measured epochs and settings; one proxy measurement
    is that proxy's time over the measured epochs.
    """
    from lga_lightning.core.rank_combination import sum_of_log_ranks

    values: dict[str, Values] = {}
    epoch_seconds: dict[str, float] = {}
    signal_seconds: dict[str, dict[str, float]] = {}
    for r in map(upgrade_0_2, read_jsonl(path)):  # a 0.2 store reads with 0.3's keys
        if r.get("kind") != "arch":
            continue
        arch, cell = str(r["arch"]), {}
        for key, entry in r["epochs"].items():
            out: dict[str, float] = {"params": float(r["params"]), "flops": float(r["flops"])}
            for i, (setting, metrics) in enumerate(entry.get("ntk", {}).items()):
                for metric, v in metrics.items():
                    out[f"{metric}[{setting}]"] = float(v)
                    if i == 0:
                        out[metric] = float(v)
            out.update({k: float(v) for k, v in entry.get("proxies", {}).items()})
            for k in signal_names("training"):
                if entry.get(k) is not None:
                    out[k] = float(entry[k])
            if reference is not None:
                out["benchmark"] = float(reference.get(arch, math.nan))
            cell[int(key)] = out
        values[arch] = cell
        spent = r.get("signal_seconds", {})
        measured = [e for e, entry in r["epochs"].items() if "ntk" in entry]
        settings = max(len(r["epochs"][e]["ntk"]) for e in measured) if measured else 1
        trained = max(int(e) for e in r["epochs"])
        epoch_seconds[arch] = spent.get("train", 0.0) / max(trained, 1)
        per = {
            k: v / max(len(measured), 1) for k, v in spent.items() if k not in ("train", "kernel")
        }
        per.update(
            {
                m: spent.get("kernel", 0.0) / max(len(measured) * settings, 1)
                for m in signal_names("kernel")
            }
        )
        signal_seconds[arch] = per
    table = MeasuredTable(values, dict(truth), epoch_seconds, signal_seconds)
    if reference is not None:
        table.costs["benchmark"] = reference_epochs
        for arch in values:
            signal_seconds[arch]["benchmark"] = (
                reference_epochs * (reference_images - 1.0) * epoch_seconds[arch]
            )
    archs = table.archs
    for name, terms in combine:
        columns = [[table.value(a, s, e) for a in archs] for s, e in terms]
        signs = [expected_sign(s.split("[")[0]) for s, _ in terms]
        scores = sum_of_log_ranks(columns, signs)
        last = max(e for _, e in terms)
        for arch, score in zip(archs, scores, strict=True):
            values[arch][last][name] = float(score)
        table.costs.pop(name, None)
        for arch in archs:
            signal_seconds[arch][name] = sum(
                signal_seconds[arch].get(s.split("[")[0], 0.0) for s, _ in terms
            )
    return table
