"""What a search writes: the results store, the leaderboard files, and what loggers receive.

:class:`ResultsWriter` appends each record to ``results.jsonl`` and logs it, and at the end writes
``leaderboard.csv``, ``leaderboard.json`` and ``scatter.png`` and logs the leaderboard table. The
ground truth is read through the :class:`~lga_lightning.search.ground_truth.GroundTruth` protocol.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from lightning.pytorch.loggers import Logger, WandbLogger

from lga_lightning.search import leaderboard as lb
from lga_lightning.search.ground_truth import GroundTruth
from lga_lightning.search.outputs import recover, write_outputs
from lga_lightning.search.store import Record, ResultsStore
from lga_lightning.training.sinks import Sink, write_all


class ResultsWriter:
    """Write and log a search's results (rank 0).

    Args:
        results_dir: the run directory.
        metrics: the NTK metrics each record holds (logged per candidate).
        signal: the ranking signal's name (leaderboard column and scatter axis).
        ground_truth: true accuracies, or ``None``.
        query: ``{"dataset", "split", "hp"}`` of the ground-truth query.
        sinks: more outputs of every stored record (:mod:`lga_lightning.training.sinks`).

    Example:
        >>> import tempfile
        >>> writer = ResultsWriter(tempfile.mkdtemp(), metrics=("lga",), signal="lga")
        >>> writer.finish([], loggers=[])["candidates"]
        0
    """

    def __init__(
        self,
        results_dir: str,
        metrics: Sequence[str],
        signal: str,
        ground_truth: GroundTruth | None = None,
        query: Mapping[str, Any] | None = None,
        sinks: Sequence[Sink] = (),
    ) -> None:
        self.results_dir = results_dir
        self.metrics = tuple(metrics)
        self.signal = signal
        self.ground_truth = ground_truth
        self.query = dict(query or {})
        self.sinks = list(sinks)
        self.store: ResultsStore | None = None
        self.leaderboard: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        self.step = 0
        """The loggers' step: one monotonic axis for every candidate (W&B drops steps that go
        back), advanced once per logged training step and once per record."""
        self._axes_defined: set[int] = set()

    def open(self, store_path: str, header: Mapping[str, Any]) -> None:
        """Open the store for appending (writing ``header`` to a new one).

        What a killed run left half written (temporary files, a partial leaderboard set) is
        removed first; the folder is this run's (its lock is held).
        """
        recover(self.results_dir)
        self.store = ResultsStore(store_path)
        self.store.open(dict(header))

    def append(self, record: Record) -> None:
        """Append one record to the store (flushed and synced), then hand it to the sinks."""
        if self.store is not None:
            self.store.append(record)
        write_all(self.sinks, record)

    def log_record(
        self,
        loggers: Sequence[Logger],
        record: Record,
        curve: Sequence[float],
        step0: int,
        records: Sequence[Record],
    ) -> None:
        """Log one measurement, its candidate's loss curve, and the search's progress.

        Everything goes on one monotonic step axis (:attr:`step`); each candidate's values also
        carry ``candidate/<cccc>/epoch`` and ``candidate/<cccc>/step`` (its own optimizer step),
        and W&B plots the candidate's measurements against its epoch.
        """
        candidate = int(record["candidate"])
        prefix = f"candidate/{candidate:04d}"
        keys = (*self.metrics, "train_loss", "val_acc", "score")
        scalars = {f"{prefix}/{k}": float(record[k]) for k in keys}
        scalars[f"{prefix}/epoch"] = float(record["epoch"])
        scalars["search/evaluations"] = float(len(records))
        scalars["search/best_score"] = max((r["score"] for r in records), default=-math.inf)
        if candidate not in self._axes_defined:
            self._axes_defined.add(candidate)
            _define_axis(loggers, prefix, keys)
        for i, value in enumerate(curve):
            self.step += 1
            for logger in loggers:
                logger.log_metrics(
                    {f"{prefix}/train_loss_step": value, f"{prefix}/step": float(step0 + i)},
                    step=self.step,
                )
        self.step += 1
        for logger in loggers:
            logger.log_metrics(scalars, step=self.step)

    def finish(
        self,
        records: Sequence[Record],
        loggers: Sequence[Logger],
        done: bool = True,
        num_threads: int | None = None,
    ) -> dict[str, Any]:
        """Close the store, write the leaderboard files, log them; return the summary.

        ``done`` (the search is over, not interrupted) goes into the summary as ``"done"``, and
        ``num_threads`` (torch's intra-op threads per process during the search) when given.
        """
        truth = self.true_accuracy if self.ground_truth is not None else None
        self.leaderboard = lb.build(list(records), truth)
        self.summary = lb.summary(self.leaderboard, self.best_known(), self.signal)
        self.summary["done"] = bool(done)
        if num_threads is not None:
            self.summary["num_threads"] = int(num_threads)
        if self.store is not None:
            self.store.close()
            self.store = None
        image = write_outputs(self.results_dir, self.leaderboard, self.summary, self.signal)
        self.step += 1
        self._log_final(loggers, image, self.step)
        return self.summary

    def true_accuracy(self, arch: str) -> float:
        """The ground truth's accuracy of ``arch``; nan when it has none."""
        if self.ground_truth is None:
            return math.nan
        try:
            return float(self.ground_truth.accuracy(arch, **self.query))
        except (LookupError, ValueError):
            return math.nan

    def best_known(self) -> float | None:
        """The best true accuracy in the whole space, when the ground truth knows it."""
        if self.ground_truth is None:
            return None
        try:
            archs = self.ground_truth.known_archs()
        except (AttributeError, NotImplementedError):
            return None
        values = [a for a in map(self.true_accuracy, archs) if math.isfinite(a)]
        return max(values) if values else None

    def _log_final(self, loggers: Sequence[Logger], image: str | None, step: int) -> None:
        scalars = {
            f"search/{k}": float(self.summary[k])
            for k in ("best_true_acc", "regret_evaluated", "regret_space")
            if k in self.summary
        }
        columns = lb.columns(self.leaderboard)
        data = [[_plain(row.get(c)) for c in columns] for row in self.leaderboard]
        for logger in loggers:
            if scalars:
                logger.log_metrics(scalars, step=step)
            if isinstance(logger, WandbLogger):
                logger.log_table(key="search/leaderboard", columns=columns, data=data)
                if image is not None:
                    logger.log_image(key="search/scatter", images=[image])


def _define_axis(loggers: Sequence[Logger], prefix: str, keys: Sequence[str]) -> None:
    """In W&B, plot a candidate's measurements against its own epoch."""
    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        define = getattr(logger.experiment, "define_metric", None)
        if define is None:
            continue
        define(f"{prefix}/epoch")
        for key in keys:
            define(f"{prefix}/{key}", step_metric=f"{prefix}/epoch")


def check_ground_truth(ground_truth: Any, query: Mapping[str, Any]) -> None:
    """Fail now, not after the search, on a query the ground truth cannot answer.

    Raises:
        ValueError: the object is no :class:`~lga_lightning.search.ground_truth.GroundTruth`.
        LookupError: the query names a dataset, split or budget it does not have.
    """
    if ground_truth is None:
        return
    if not isinstance(ground_truth, GroundTruth):
        raise ValueError(
            f"`ground_truth` must have accuracy(), known_archs() and check_query() (a "
            f"lga_lightning.search.ground_truth.GroundTruth), got {type(ground_truth).__name__}."
        )
    ground_truth.check_query(query["dataset"], query["split"], query["hp"])


def summary_text(summary: Mapping[str, Any]) -> str:
    """The search's result in one line.

    Example:
        >>> summary_text({})
        'no candidate was evaluated'
        >>> summary_text({"candidates": 2, "diverged": 2, "signal": "lga"})[:60]
        'no architecture chosen: all 2 candidates failed (diverged, o'
    """
    if "best_arch" not in summary:
        if summary.get("candidates"):
            return (
                f"no architecture chosen: all {summary['candidates']} candidates failed (diverged, "
                f"or {summary.get('signal', 'the signal')} undefined); lower the learning rate, "
                "set grad_clip, or rank by another signal"
            )
        return "no candidate was evaluated"
    text = (
        f"best: candidate {summary['best_candidate']} {summary['best_arch']} "
        f"({summary['signal']} score {summary['best_score']:.4g}); "
        f"{summary['candidates']} candidates"
    )
    counts = [f"{summary[k]} {k}" for k in ("failed", "diverged", "undefined") if summary.get(k)]
    if counts:
        text += f" ({', '.join(counts)})"
    if "best_true_acc" in summary:
        text += (
            f"; true accuracy {summary['best_true_acc']:.2f}, regret vs evaluated "
            f"{summary['regret_evaluated']:.2f}"
        )
        if "regret_space" in summary:
            text += f", vs best known {summary['regret_space']:.2f}"
    return text


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
