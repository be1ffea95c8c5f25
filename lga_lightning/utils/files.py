"""Atomic file writes with ordinary permissions, and a check that an output folder is usable.

A result file is written to a temporary file in the destination folder, flushed, ``fsync``-ed
and renamed onto its name: readers see the old file or the complete new one. The temporary file
gets the permissions of any new file (``0o666`` less the umask), not ``mkstemp``'s ``0o600``.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any


def new_file_mode() -> int:
    """The permissions a new file gets: ``0o666`` less the process umask.

    Example:
        >>> old = os.umask(0o022)
        >>> oct(new_file_mode())
        '0o644'
        >>> _ = os.umask(old)
    """
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike, mode: str = "w", newline: str | None = None
) -> Iterator[IO[Any]]:
    r"""Open a temporary file next to ``path``; on a clean exit it replaces ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is left as it was.

    Args:
        path: the destination; its folder is created.
        mode: ``"w"`` (text, UTF-8) or ``"wb"``.
        newline: as for :func:`open` (``""`` for the :mod:`csv` module).

    Yields:
        The open temporary file.

    Example:
        >>> import tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "a.csv")
        >>> with atomic_open(p) as f:
        ...     _ = f.write("x,y\n")
        >>> open(p).read()
        'x,y\n'
    """
    path = os.fspath(path)
    fd, tmp = _temporary(path)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, newline=newline, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise named(err, path) from err
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    r"""Append one JSON line with a single write, then flush and ``fsync``.

    Example:
        >>> import tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "r.jsonl")
        >>> append_jsonl(p, {"b": 1, "a": float("nan")}); open(p).read()
        '{"a": NaN, "b": 1}\n'
    """
    line = json.dumps(record, sort_keys=True) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def named(error: OSError, path: str | os.PathLike) -> OSError:
    """``error`` with ``path`` as its file name when it names none (a full disk's write does not).

    Example:
        >>> import errno
        >>> named(OSError(errno.ENOSPC, "No space left on device"), "/r/a.csv").filename
        '/r/a.csv'
    """
    if error.filename is not None or error.errno is None:
        return error
    return type(error)(error.errno, error.strerror or str(error), os.fspath(path))


def write_temporary(
    path: str | os.PathLike,
    dump: Callable[[Any], None],
    mode: str = "w",
    newline: str | None = None,
) -> str:
    """Write a complete temporary file beside ``path`` (flushed, synced); return its name.

    The caller renames it onto ``path`` (with others, for a set of files written together). On
    an error the temporary file is removed, and an ``OSError`` names ``path``.

    Example:
        >>> import tempfile
        >>> p = os.path.join(tempfile.mkdtemp(), "a.txt")
        >>> tmp = write_temporary(p, lambda f: f.write("x"))
        >>> os.replace(tmp, p); open(p).read()
        'x'
    """
    path = os.fspath(path)
    fd, tmp = _temporary(path)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, newline=newline, encoding=encoding) as f:
            dump(f)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise named(err, path) from err
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return tmp


def remove_temporaries(directory: str | os.PathLike, names: Iterable[str]) -> list[str]:
    """Remove the temporary files (``.<name>.*.tmp``) a killed run left beside ``names``.

    Call it while holding the folder (its lock): no other writer is using them.

    Returns:
        The files removed.
    """
    removed = []
    for name in names:
        for tmp in glob.glob(os.path.join(glob.escape(os.fspath(directory)), f".{name}.*.tmp")):
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
                removed.append(tmp)
    return removed


def atomic_temp_path(path: str | os.PathLike) -> str:
    """A new empty temporary file next to ``path`` with ordinary permissions; returns its path.

    For writers that need a file name (``savefig``, ``torch.save``); rename it onto ``path``
    with :func:`os.replace` when it is complete.

    Example:
        >>> import tempfile
        >>> tmp = atomic_temp_path(os.path.join(tempfile.mkdtemp(), "plot.png"))
        >>> os.path.basename(tmp).startswith(".plot.png.")
        True
    """
    fd, tmp = _temporary(os.fspath(path))
    os.close(fd)
    return tmp


def _temporary(path: str) -> tuple[int, str]:
    """An open new temporary file beside ``path`` (its folder created), ordinary permissions."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, new_file_mode())
    except BaseException:
        os.close(fd)
        os.remove(tmp)
        raise
    return fd, tmp


class OutputDirError(ValueError):
    """An output folder cannot be created or written."""


def check_output_dir(path: str | os.PathLike, option: str) -> None:
    """Check, before any work, that the folder ``path`` exists or can be created, and is writable.

    Nothing is created: the nearest existing folder on the path is checked instead.

    Args:
        path: the output folder.
        option: the setting that chose it, named in the error (e.g. ``"--output_dir"``).

    Raises:
        OutputDirError: naming the folder, what is in the way, and the setting to change.

    Example:
        >>> import tempfile
        >>> base = tempfile.mkdtemp()
        >>> check_output_dir(os.path.join(base, "new", "folder"), "--output_dir")
        >>> open(os.path.join(base, "f.txt"), "w").close()
        >>> check_output_dir(os.path.join(base, "f.txt", "sub"), "--output_dir")
        Traceback (most recent call last):
        ...
        lga_lightning.utils.files.OutputDirError: cannot write to ...f.txt is a file, not...
    """
    target = os.path.abspath(os.fspath(path))
    existing = target
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    fix = f"choose another `{option}`, or fix its permissions."
    if not os.path.isdir(existing):
        raise OutputDirError(
            f"cannot write to {target!r}: {existing} is a file, not a folder; choose another "
            f"`{option}` or move that file."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "it" if existing == target else f"{existing}"
        raise OutputDirError(
            f"cannot write to {target!r}: permission denied ({where} is not writable); {fix}"
        )
