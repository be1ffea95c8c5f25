"""The results store: an append-only JSON-lines file, one line per measurement of a candidate.

The first line describes the search (``{"kind": "search", ...}``); every other line is one
measurement record (``{"kind": "measurement", "candidate": 3, "epoch": 1, ...}``). A line is
written with one ``write`` of the complete line, then flushed and ``fsync``-ed, so after a crash
(SIGKILL, power loss) the file holds every record that was reported plus at most one torn last
line, which :meth:`ResultsStore.open` drops. The file is the search's state: rerunning the same
search continues from it.

Non-finite numbers are written as ``NaN`` / ``Infinity`` (Python's :mod:`json` reads them back).

A store that holds only its header (a search stopped before its first measurement) holds no
result: it reads as empty, and the next search, whatever its settings, starts it afresh.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from typing import Any

from lga_lightning._compat import upgrade_0_2
from lga_lightning.utils.files import named

Record = dict[str, Any]

STORE_NAME = "results.jsonl"
REQUIRED = ("candidate", "epoch")
"""Integer fields every measurement record has (the search replays records by them)."""


class StoreMismatchError(ValueError):
    """The results directory holds a different search than the one being run."""


class ResultsStore:
    """Append-only, crash-safe JSON-lines file of search records.

    Args:
        path: the ``.jsonl`` file; its directory is created.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> store = ResultsStore(os.path.join(d, "results.jsonl"))
        >>> store.open({"kind": "search", "seed": 0})
        []
        >>> store.append({"kind": "measurement", "candidate": 0, "epoch": 1, "lga": 0.5})
        >>> store.close()
        >>> ResultsStore(store.path).open({"kind": "search", "seed": 0})[0]["lga"]
        0.5
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self._file: Any = None

    def read(self) -> tuple[Record | None, list[Record]]:
        r"""Read ``(header, records)``; a torn last line (no newline) is ignored.

        A store with a header but no record reads as ``(None, [])``: nothing was measured.

        Raises:
            ValueError: when a complete line is not a JSON object, or a record lacks an integer
                ``candidate`` or ``epoch`` (the file was edited or corrupted); the message names
                the file and the line.

        Example:
            >>> import tempfile, os
            >>> path = os.path.join(tempfile.mkdtemp(), "results.jsonl")
            >>> _ = open(path, "w").write('{"kind": "search"}\n{"candidate": 0}\n')
            >>> ResultsStore(path).read()
            Traceback (most recent call last):
            ...
            ValueError: ...results.jsonl, line 2, lacks the field 'epoch'...
        """
        header, records = self._read()
        return (header, records) if records else (None, [])

    def _read(self) -> tuple[Record | None, list[Record]]:
        if not os.path.exists(self.path):
            return None, []
        with open(self.path, "rb") as f:
            data = f.read()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{self.path} is not a text file (byte {err.start} is not UTF-8), so it is not a "
                "results store: move it away, or use a new results directory."
            ) from None
        complete = data[: data.rfind(b"\n") + 1]
        torn = data[len(complete) :]
        if not complete.strip() and torn.strip() and not torn.startswith(b"{"):
            raise ValueError(
                f"{self.path} holds {len(torn)} bytes and no complete line, so it is not a results "
                "store (each line is a JSON object): move it away, or use a new results directory."
            )
        header: Record | None = None
        records: list[Record] = []
        for number, line in enumerate(complete.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{self.path}, line {number}, is not a JSON record ({err}); the store was "
                    "edited or corrupted. Fix or remove that line, or use a new results directory."
                ) from err
            if not isinstance(item, dict):
                raise ValueError(
                    f"{self.path}, line {number}, is {json.dumps(item)[:40]}, not a JSON object; "
                    "the store was edited or corrupted. Fix or remove that line, or use a new "
                    "results directory."
                )
            item = upgrade_0_2(item)  # a 0.2 store reads with 0.3's keys
            if item.get("kind") == "search":
                header = item
                continue
            for field in REQUIRED:
                value = item.get(field)
                if isinstance(value, bool) or not isinstance(value, int):
                    problem = "lacks the field" if field not in item else "has a non-integer"
                    raise ValueError(
                        f"{self.path}, line {number}, {problem} {field!r} (a measurement "
                        f"record needs integer {' and '.join(REQUIRED)}); the store was edited "
                        "or corrupted. Fix or remove that line, or use a new results directory."
                    )
            if header is None:
                raise ValueError(
                    f"{self.path}, line {number}, is a record before the search's header "
                    '({"kind": "search", ...}), so the store was edited or is not a search\'s: '
                    "move it away, or use a new results directory."
                )
            records.append(item)
        return header, records

    def open(self, header: Mapping[str, Any]) -> list[Record]:
        """Open for appending, checking that the stored search is ``header``'s.

        Drops a torn last line, writes ``header`` when the store is new or holds no record (its
        old header, if any, is replaced), and returns the records already stored.

        Raises:
            StoreMismatchError: when the stored header differs from ``header`` and records exist.
        """
        stored, records = self.read()
        if stored is not None:
            check_header(stored, header, self.path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        if stored is None and os.path.exists(self.path):
            os.truncate(self.path, 0)  # a header (and torn line) without records: start afresh
        if os.path.exists(self.path):
            size = os.path.getsize(self.path)
            with open(self.path, "rb") as f:
                keep = f.read().rfind(b"\n") + 1
            if keep != size:
                os.truncate(self.path, keep)
        self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the whole search
        if stored is None:
            self._write(dict(header))
            records = []
        return records

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record durably (one write of the whole line, flush, fsync)."""
        if self._file is None:
            raise RuntimeError("ResultsStore.append before open(); call open(header) first.")
        self._write(dict(record))

    def close(self) -> None:
        """Close the file (appending again needs :meth:`open`)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write(self, item: Record) -> None:
        line = (json.dumps(item, sort_keys=False) + "\n").encode()
        size = self._file.tell()
        try:
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as err:
            # a full disk: cut the part of the line that reached the file; the store ends with
            # its last complete record, and the error names the file
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
            with contextlib.suppress(OSError):
                os.truncate(self.path, size)
            raise named(err, self.path) from err


def check_header(stored: Mapping[str, Any], current: Mapping[str, Any], path: str) -> None:
    """Raise :class:`StoreMismatchError` naming each setting that differs.

    Example:
        >>> check_header({"seed": 0}, {"seed": 0}, "r.jsonl")
        >>> check_header({"seed": 0}, {"seed": 1}, "r.jsonl")
        Traceback (most recent call last):
        ...
        lga_lightning.search.store.StoreMismatchError: ...seed: stored 0, now 1...
    """
    keys = sorted(set(stored) | set(current))
    diffs = [
        f"{k}: stored {stored.get(k)!r}, now {current.get(k)!r}"
        for k in keys
        if _normalise(stored.get(k)) != _normalise(current.get(k))
    ]
    if diffs:
        raise StoreMismatchError(
            f"{path} holds a different search ({'; '.join(diffs)}). Rerun with the stored "
            "settings to resume it, or give this search another `results_dir`."
        )


def _normalise(value: Any) -> Any:
    return json.loads(json.dumps(value))
