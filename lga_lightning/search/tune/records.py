"""The driver's side of a Tune search: every trial's records into one results store.

:class:`SearchRecords` is a Tune ``Callback``: each record a trial reports is appended to the
search's ``results.jsonl`` (once, however often Tune delivers it: a restored trial may repeat its
last epoch), printed, and logged to the search's Lightning loggers; a trial that fails for good
gets a ``failed`` record, so it ranks last. Its state (saved with Tune's experiment, restored by
``Tuner.restore``) carries the state of an ASHA scheduler, which Tune does not save itself.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from typing import Any

from lightning.pytorch.loggers import Logger
from ray.tune import Callback
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from lga_lightning.search.outputs import recover
from lga_lightning.search.progress import summary_line
from lga_lightning.search.store import STORE_NAME, Record, ResultsStore
from lga_lightning.search.tune.state import asha_state, set_asha_state
from lga_lightning.search.tune.trial import record_of
from lga_lightning.search.writer import ResultsWriter


class SearchRecords(Callback):
    """Write, print and log every record the trials report (driver process).

    Args:
        writer: the search's results writer (its store is opened in :meth:`setup`).
        header: the store's header line.
        signal: the ranking signal's name (printed).
        values: the NTK metrics and proxies of a record (nan in a ``failed`` record).
        canonical: ``arch string -> canonical form`` of the search space (for a failed trial).
        scheduler: the Tune scheduler, whose state is saved with this callback's when it is an
            ASHA scheduler.
        verbose: print one line per record.

    Example:
        >>> import tempfile
        >>> writer = ResultsWriter(tempfile.mkdtemp(), metrics=("lga",), signal="lga")
        >>> records = SearchRecords(writer, {"kind": "search"}, "lga", ("lga",), str,
        ...                         verbose=False)
        >>> records.setup()
        >>> record = {"kind": "measurement", "candidate": 0, "epoch": 1, "lga": 0.5}
        >>> records.add(record); records.add(record)  # delivered twice, stored once
        >>> len(records.records)
        1
    """

    def __init__(
        self,
        writer: ResultsWriter,
        header: dict[str, Any],
        signal: str,
        values: Sequence[str],
        canonical: Any,
        scheduler: TrialScheduler | None = None,
        verbose: bool = True,
    ) -> None:
        self.writer = writer
        self.header = header
        self.signal = signal
        self.values = tuple(values)
        self.canonical = canonical
        self.scheduler = scheduler
        self.verbose = verbose
        self.records: list[Record] = []
        self.loggers: list[Logger] = []
        self.startup_seconds: list[float] = []
        """Per trial start: seconds from the trial's start to its first training batch (for a
        new worker process from the process's start: Python, imports, data, model)."""
        self._seen: set[tuple[int, Any]] = set()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["loggers"] = []  # live logger runs stay with the process that started them
        return state

    def setup(self, **info: Any) -> None:
        """Open the store (appending; the records it holds count as delivered).

        What a killed driver left half written is removed first (the driver holds the lock).
        """
        recover(self.writer.results_dir)
        store = ResultsStore(os.path.join(self.writer.results_dir, STORE_NAME))
        self.records = store.open(self.header)
        self.writer.store = store
        self._seen = {_key(r) for r in self.records}

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        """Store, print and log a trial's new record."""
        if "startup_seconds" in result:
            self.startup_seconds.append(float(result["startup_seconds"]))
        record = record_of(result)
        if record is not None:
            self.add(record)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """A trial failed for good (its retries spent): a ``failed`` record ranks it last."""
        config = trial.config
        last = [r for r in self.records if int(r["candidate"]) == int(config["candidate"])]
        record: Record = {
            "kind": "measurement",
            "candidate": int(config["candidate"]),
            "arch": str(config["arch"]),
            "canonical": self.canonical(str(config["arch"])),
            "epoch": max((int(r["epoch"]) for r in last), default=0),
            **dict.fromkeys(self.values, math.nan),
            "train_loss": math.nan,
            "val_acc": math.nan,
            "status": "failed",
            "signal": math.nan,
            "score": -math.inf,
            "error": _error_line(trial),
        }
        self.add(record)

    def add(self, record: Record) -> None:
        """Append ``record`` unless it was stored before."""
        key = _key(record)
        if key in self._seen:
            return
        self._seen.add(key)
        self.records.append(record)
        self.writer.append(record)
        if self.verbose:
            print(summary_line(record, self.signal), flush=True)
        if self.loggers and record.get("status") != "failed":
            self.writer.log_record(self.loggers, record, [], 0, self.records)

    def close(self) -> None:
        """Close the store."""
        if self.writer.store is not None:
            self.writer.store.close()
            self.writer.store = None

    def get_state(self) -> dict[str, Any] | None:
        """The ASHA scheduler's rungs as plain data (Tune saves this with the experiment)."""
        if isinstance(self.scheduler, AsyncHyperBandScheduler):
            return {"asha": asha_state(self.scheduler)}
        return None

    def set_state(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`get_state` saved, checked against the scheduler's rungs.

        Raises:
            StateFileError: the saved rungs are malformed or belong to other settings.
        """
        if state and "asha" in state and isinstance(self.scheduler, AsyncHyperBandScheduler):
            where = f"the callback state in {self.writer.results_dir}"
            set_asha_state(self.scheduler, state["asha"], where)


def _key(record: Record) -> tuple[int, Any]:
    if record.get("status") == "failed":
        return int(record["candidate"]), "failed"
    return int(record["candidate"]), int(record["epoch"])


def _error_line(trial: Any) -> str:
    """The last line of a trial's error (``RuntimeError: ...``), from Tune's error file."""
    texts = []
    path = getattr(trial, "error_file", None)  # the driver's copy, written before the callback
    if path and os.path.exists(path):
        with open(path) as f:
            texts.append(f.read())
    with contextlib.suppress(Exception):  # the storage's copy, once synced
        texts.append(str(trial.get_error() or ""))
    for text in texts:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return "the trial failed (see its error.txt in the Tune experiment folder)"
