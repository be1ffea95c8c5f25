"""Where records go: the :class:`Sink` protocol and the outputs every surface writes through.

A *record* is a mapping of one measurement (a row of :class:`~lga_lightning.NTKMetrics`), one
candidate's measurement (:class:`~lga_lightning.LGASearch`, ``TuneSearch``) or one
architecture (the ``lga-correlate`` study). A *sink* is any object with ``write(record)``:

- :class:`CSVSink`: every record so far as one CSV table, rewritten atomically after each
  record (``ntk_metrics.csv`` of :class:`~lga_lightning.NTKMetrics`);
- :class:`JSONLinesSink`: one JSON line per record, appended with one write, flushed and
  ``fsync``-ed, so a killed run keeps every record written (the study's ``raw.jsonl``);
- :class:`LoggerSink`: the record's numbers to Lightning loggers (W&B, CSV, TensorBoard), at a
  step taken from the record (the study's row per architecture);
- :class:`ListSink`: the records in memory (tests, notebooks).

Every surface takes extra sinks: ``NTKMetrics(sinks=[...])`` and
``MeasurementSession(sinks=[...])`` get each measurement, ``LGASearch(sinks=[...])`` and
``TuneSearch(sinks=[...])`` each stored record; they write on rank 0 only (every rank holds the
same records). A new output is one class with a ``write`` method (``docs/extending.md``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from lga_lightning.training import _history
from lga_lightning.utils.files import append_jsonl

Record = Mapping[str, Any]


@runtime_checkable
class Sink(Protocol):
    """Where records go: anything with ``write(record)``.

    Example:
        >>> class Printer:
        ...     def write(self, record):
        ...         print(record)
        >>> isinstance(Printer(), Sink)
        True
    """

    # ``Any`` and no return annotation: jsonargparse (configs) then takes any class whose
    # ``write`` takes a ``record``, annotated or not.
    def write(self, record: Any):  # type: ignore[no-untyped-def]
        """Take one finished record (a mapping; see the module docstring)."""


class ListSink:
    """Keep the records in memory, in order (``sink.records``).

    Example:
        >>> sink = ListSink()
        >>> sink.write({"epoch": 0, "lga": 0.5})
        >>> sink.records
        [{'epoch': 0, 'lga': 0.5}]
    """

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, record: Record) -> None:
        """Keep a copy of ``record``."""
        self.records.append(dict(record))


class CSVSink:
    """Every record so far as one CSV table at ``path``, rewritten atomically after each record.

    Columns appear in first-seen order; a record without a column leaves its cell empty. A
    reader never sees a half-written file and a crash keeps the previous version.

    Args:
        path: the CSV file; its folder is created.
        rows: rows already written (a resumed run continues the table).

    Example:
        >>> import tempfile
        >>> sink = CSVSink(os.path.join(tempfile.mkdtemp(), "t.csv"))
        >>> sink.write({"epoch": 0, "lga": 0.5}); sink.write({"epoch": 1, "lga": 0.25})
        >>> open(sink.path).read().splitlines()
        ['epoch,lga', '0,0.5', '1,0.25']
    """

    def __init__(self, path: str | os.PathLike, rows: Iterable[Record] = ()) -> None:
        self.path = os.fspath(path)
        self.rows: list[dict[str, Any]] = [dict(row) for row in rows]

    def write(self, record: Record) -> None:
        """Add ``record`` as a row and rewrite the file."""
        self.rows.append(dict(record))
        _history.write_csv(self.path, self.rows)


class JSONLinesSink:
    r"""One JSON line per record appended to ``path``: a crash loses at most a torn last line.

    Keys are sorted; non-finite numbers are written as ``NaN`` / ``Infinity`` (Python's
    :mod:`json` reads them back).

    Args:
        path: the ``.jsonl`` file; its folder must exist.

    Example:
        >>> import tempfile
        >>> sink = JSONLinesSink(os.path.join(tempfile.mkdtemp(), "r.jsonl"))
        >>> sink.write({"arch": "a", "lga": float("nan")})
        >>> open(sink.path).read()
        '{"arch": "a", "lga": NaN}\n'
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)

    def write(self, record: Record) -> None:
        """Append ``record`` as one line, flushed and ``fsync``-ed."""
        append_jsonl(self.path, dict(record))


class LoggerSink:
    """The numbers of each record to Lightning loggers, at a step taken from the record.

    Args:
        loggers: Lightning loggers (``WandbLogger``, ``CSVLogger``, ``TensorBoardLogger``...).
        step: the record's key holding the step, or a function ``record -> step``; ``None``
            counts the records (0, 1, 2...).
        values: ``record -> {name: number}``; default: the record's numbers, nested mappings
            flattened with ``/`` (``{"ntk": {"lga": 0.5}}`` gives ``ntk/lga``), booleans and
            text left out.
        prefix: put before every name.

    Example:
        >>> import tempfile
        >>> from lightning.pytorch.loggers import CSVLogger
        >>> logger = CSVLogger(tempfile.mkdtemp(), name="run")
        >>> sink = LoggerSink([logger], step="epoch", prefix="ntk/")
        >>> sink.write({"epoch": 1, "lga": 0.5, "arch": "text is left out"})
        >>> open(logger.experiment.metrics_file_path).read().splitlines()
        ['ntk/epoch,ntk/lga,step', '1.0,0.5,1']
    """

    def __init__(
        self,
        loggers: Sequence[Any],
        *,
        step: str | Callable[[Record], int] | None = None,
        values: Callable[[Record], Mapping[str, float]] | None = None,
        prefix: str = "",
    ) -> None:
        self.loggers = list(loggers)
        self.step = step
        self.values = values if values is not None else numbers
        self.prefix = prefix
        self._count = 0

    def write(self, record: Record) -> None:
        """Log ``record``'s numbers at its step on every logger and flush them."""
        if callable(self.step):
            step = int(self.step(record))
        elif self.step is not None:
            step = int(record[self.step])
        else:
            step = self._count
        self._count += 1
        scalars = {f"{self.prefix}{name}": value for name, value in self.values(record).items()}
        for logger in self.loggers:
            logger.log_metrics(scalars, step=step)
            logger.save()


def numbers(record: Record, prefix: str = "") -> dict[str, float]:
    """The numbers of ``record``, nested mappings flattened with ``/``.

    Example:
        >>> numbers({"epoch": 1, "ntk": {"lga": 0.5, "ok": True}, "arch": "a", "n": None})
        {'epoch': 1.0, 'ntk/lga': 0.5}
    """
    flat: dict[str, float] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(numbers(value, prefix=f"{name}/"))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[name] = float(value)
    return flat


def write_all(sinks: Iterable[Sink], record: Record) -> None:
    """Hand ``record`` to every sink, in order.

    Example:
        >>> a, b = ListSink(), ListSink()
        >>> write_all([a, b], {"x": 1}); a.records == b.records == [{"x": 1}]
        True
    """
    for sink in sinks:
        sink.write(record)


def check_sinks(sinks: Iterable[Any] | None, owner: str) -> list[Sink]:
    """The sinks as a list; an object without ``write`` is refused, naming it.

    Example:
        >>> check_sinks(None, "NTKMetrics")
        []
        >>> check_sinks([42], "NTKMetrics")
        Traceback (most recent call last):
        ...
        ValueError: `NTKMetrics(sinks=...)` takes objects with a `write(record)` method (lga_lightning.training.sinks.Sink), got int.
    """  # noqa: E501
    checked = list(sinks or [])
    for sink in checked:
        if not callable(getattr(sink, "write", None)):
            raise ValueError(
                f"`{owner}(sinks=...)` takes objects with a `write(record)` method "
                f"(lga_lightning.training.sinks.Sink), got {type(sink).__name__}."
            )
    return checked


__all__ = [
    "CSVSink",
    "JSONLinesSink",
    "ListSink",
    "LoggerSink",
    "Sink",
    "check_sinks",
    "numbers",
    "write_all",
]
