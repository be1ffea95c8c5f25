"""One run per output folder: an exclusive lock file holding the owner's pid and host.

Two runs writing the same results store or table would interleave their lines and overwrite each
other's files. :class:`OutputLock` creates ``<folder>/.lock`` with ``O_CREAT | O_EXCL`` (only one
process can create it) and removes it on exit. A lock left by a process that no longer exists on
this host (it was killed) is taken over with a warning; a lock held by a live process, or by a
process on another host (which cannot be checked from here), is an error naming that process.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import warnings
from pathlib import Path
from typing import Any

LOCK_NAME = ".lock"
_GUARD_SECONDS = 10.0
"""A takeover guard older than this was left by a process that died while taking over."""


class OutputLockedError(RuntimeError):
    """The output folder is locked by another run."""


class OutputLock:
    """Exclusive use of an output folder, as a context manager.

    Args:
        directory: the folder (created if missing); the lock file is ``<directory>/.lock``.
        option: the setting that chose the folder, named in the error (e.g. ``"output_dir"``).

    Raises:
        OutputLockedError: on entry, when another live process holds the folder; the message
            names its pid, host and the lock file, and what to do.

    Example:
        >>> import tempfile
        >>> folder = tempfile.mkdtemp()
        >>> with OutputLock(folder) as lock:
        ...     lock.holder()["pid"] == os.getpid()
        True
        >>> os.path.exists(os.path.join(folder, ".lock"))
        False
    """

    def __init__(self, directory: str | os.PathLike, option: str = "output directory") -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self.option = option
        self._mine: dict[str, Any] | None = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def holder(self) -> dict[str, Any] | None:
        """The lock file's content (``pid``, ``host``, ``started``), or None when unlocked.

        An unreadable lock file reads as ``{}``.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}

    def check(self) -> None:
        """Raise now if another live process holds the lock; takes nothing.

        For an early check before expensive set-up; :meth:`acquire` decides.

        Raises:
            OutputLockedError: as :meth:`acquire` would.

        Example:
            >>> import tempfile
            >>> OutputLock(tempfile.mkdtemp()).check()
        """
        holder = self.holder()
        if holder is not None and self._mine != holder and not self._stale(holder):
            raise OutputLockedError(self._message(holder))

    def acquire(self) -> None:
        """Take the lock, taking over a stale one (dead pid, this host) with a warning.

        Raises:
            OutputLockedError: when another live process (or one on another host) holds it.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        for _ in range(100):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is None:
                    continue  # released meanwhile: try again
                if not self._stale(holder):
                    raise OutputLockedError(self._message(holder)) from None
                self._take_over(holder)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(mine, f)
                f.flush()
                os.fsync(f.fileno())
            self._mine = mine
            return
        raise OutputLockedError(self._message(self.holder() or {}))

    def release(self) -> None:
        """Remove the lock file if this object holds it (idempotent)."""
        if self._mine is not None and self.holder() == self._mine:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self._mine = None

    # -------------------------------------------------------------------------------------------

    def _stale(self, holder: dict[str, Any]) -> bool:
        if not _names_a_process(holder):
            # written by a process that died between creating and filling the file, or damaged
            return _age(self.path) > _GUARD_SECONDS
        return holder["host"] == socket.gethostname() and not _alive(holder["pid"])

    def _take_over(self, holder: dict[str, Any]) -> None:
        """Remove a stale lock file, one process at a time (a guard file serialises them)."""
        guard = self.path.with_name(LOCK_NAME + ".takeover")
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if _age(guard) > _GUARD_SECONDS:
                with contextlib.suppress(FileNotFoundError):
                    guard.unlink()
            time.sleep(0.05)
            return
        os.close(fd)
        try:
            if self.holder() == holder:  # nobody took it over meanwhile
                if _names_a_process(holder):
                    what = (
                        f"the lock of process {holder.get('pid')} on {holder.get('host')}, "
                        "which no longer exists (it was stopped before it could release the "
                        "folder)"
                    )
                else:
                    what = (
                        f"a lock file that names no process ({self._found()}, untouched for "
                        f"over {_GUARD_SECONDS:.0f} s: left by a run killed while taking the "
                        "folder, or damaged)"
                    )
                warnings.warn(f"{self.path}: taking over {what}.", stacklevel=4)
                self.path.unlink()
        finally:
            with contextlib.suppress(FileNotFoundError):
                guard.unlink()

    def _found(self) -> str:
        """What an unreadable lock file holds, in a few words."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "it is gone"
        if not text.strip():
            return "it is empty"
        return f"it holds {text[:40]!r}{'...' if len(text) > 40 else ''}"

    def _message(self, holder: dict[str, Any]) -> str:
        if not _names_a_process(holder):
            return (
                f"{self.path} names no process ({self._found()}): a run may be taking "
                f"{self.directory} this instant; retry in {_GUARD_SECONDS:.0f} s (an older such "
                f"file is taken over), or delete {self.path} if no run uses the folder."
            )
        pid, host = holder.get("pid", "?"), holder.get("host", "?")
        started = holder.get("started")
        since = (
            f", since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}"
            if isinstance(started, (int, float))
            else ""
        )
        return (
            f"{self.directory} is in use by process {pid} on host {host} (lock file "
            f"{self.path}{since}); wait for that run to finish or stop it, or choose another "
            f"{self.option}. If no such process is running, delete {self.path}."
        )


def _names_a_process(holder: dict[str, Any]) -> bool:
    pid, host = holder.get("pid"), holder.get("host")
    return type(pid) is int and isinstance(host, str)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0
