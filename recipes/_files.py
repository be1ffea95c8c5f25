"""Crash-safe result files: atomic whole-file writes and an append-and-fsync JSON-lines log."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lga_lightning.utils.files import atomic_temp_path


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Write a file through ``write(tmp_path)`` then ``os.replace`` it onto ``path``.

    Readers see the old file or the complete new one, never a partial file. The file gets the
    permissions of any new file (``0o666`` less the umask).

    Args:
        path: the destination.
        write: called with a temporary path in the same folder; must create that file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "a.txt"
        >>> _ = atomic_write(p, lambda tmp: Path(tmp).write_text("hi"))
        >>> p.read_text()
        'hi'
    """
    path = Path(path)
    tmp = atomic_temp_path(path)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    r"""Atomically replace ``path`` with ``text`` (UTF-8).

    Example:
        >>> import tempfile
        >>> p = atomic_write_text(Path(tempfile.mkdtemp()) / "b.csv", "x,y\n")
        >>> p.read_text()
        'x,y\n'
    """
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON line with a single write, then flush and ``fsync``.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "r.jsonl"
        >>> append_jsonl(p, {"a": float("nan")}); read_jsonl(p)
        [{'a': nan}]
    """
    line = json.dumps(record, sort_keys=True) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    r"""Read every complete line; a torn last line (a crash mid-write) is ignored.

    Raises:
        ValueError: when a complete line is not JSON (the file was edited or damaged).

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "r.jsonl"
        >>> _ = p.write_text('{"a": 1}\n{"a": 2')
        >>> read_jsonl(p)
        [{'a': 1}]
    """
    path = Path(path)
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    complete = lines[:-1]  # whatever follows the last newline is torn (or empty)
    records = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path}, line {number}, is not valid JSON ({err.msg}); the file was edited or "
                "damaged: fix or delete that line, or choose another output_dir."
            ) from None
    return records


def drop_torn_tail(path: str | os.PathLike) -> None:
    r"""Cut a torn last line off ``path`` so that the next append starts on a fresh line.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "r.jsonl"
        >>> _ = p.write_text('{"a": 1}\n{"a"'); drop_torn_tail(p); p.read_text()
        '{"a": 1}\n'
    """
    path = Path(path)
    if not path.is_file():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
            f.flush()
            os.fsync(f.fileno())
