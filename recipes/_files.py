"""Crash-safe result files: atomic whole-file writes and a JSON-lines log (read back whole)."""

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


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    r"""Read every complete line; a torn last line (a crash mid-write) is ignored.

    Raises:
        ValueError: when the file is not UTF-8 text, or a complete line is not a JSON object
            (the file was edited or damaged); the message names the file and the line.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "r.jsonl"
        >>> _ = p.write_text('{"a": 1}\n{"a": 2')
        >>> read_jsonl(p)
        [{'a': 1}]
    """
    return [record for _, record in read_jsonl_numbered(path)]


def read_jsonl_numbered(path: str | os.PathLike) -> list[tuple[int, dict[str, Any]]]:
    r"""Like :func:`read_jsonl`, with each record's line number (blank lines are skipped).

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "r.jsonl"
        >>> _ = p.write_text('{"a": 1}\n\n{"a": 2}\n')
        >>> read_jsonl_numbered(p)
        [(1, {'a': 1}), (3, {'a': 2})]
    """
    path = Path(path)
    if not path.is_file():
        return []
    return parse_jsonl(complete_text(path), path)


def parse_jsonl(text: str, path: str | os.PathLike) -> list[tuple[int, dict[str, Any]]]:
    r"""The complete lines of ``text`` (read from ``path``, named in errors), numbered.

    Example:
        >>> parse_jsonl('{"a": 1}\n{"a"', "r.jsonl")
        [(1, {'a': 1})]
    """
    complete = text.split("\n")[:-1]
    records = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path}, line {number}, is not valid JSON ({err.msg}); the file was edited or "
                "damaged: fix or delete that line, or choose another output_dir."
            ) from None
        if not isinstance(record, dict):
            raise ValueError(
                f"{path}, line {number}, is {line[:40]!r}, not a JSON object; the file was edited "
                "or damaged: fix or delete that line, or choose another output_dir."
            )
        records.append((number, record))
    return records


def complete_text(path: str | os.PathLike) -> str:
    r"""The file's text, checked to be UTF-8 (the torn tail included).

    Raises:
        ValueError: naming the file and the first byte that is not UTF-8.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "r.jsonl"
        >>> _ = p.write_bytes(b"\x80\x81")
        >>> try:
        ...     complete_text(p)
        ... except ValueError as err:
        ...     print(str(err).split(", so")[0].split("/")[-1])
        r.jsonl is not a text file (byte 0 is not UTF-8)
    """
    try:
        return Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path} is not a text file (byte {err.start} is not UTF-8), so it is not a store "
            "this tool wrote: move it away, or choose another output_dir."
        ) from None


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
