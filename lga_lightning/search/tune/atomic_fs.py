"""A local filesystem for Tune whose every written file appears whole or not at all.

Tune writes its experiment state (``experiment_state-*.json``, the searcher's and the callbacks'
state) in a staging folder and copies it into the storage folder file by file. A plain copy
overwrites in place, so a driver killed in the middle of one leaves a file cut short, and
``Tuner.restore`` then fails on it. :func:`atomic_local_filesystem` gives Tune a filesystem whose
output streams write to a hidden temporary file beside the target and rename it into place when
closed: a killed copy leaves the previous version.

Example:
    >>> import os, tempfile
    >>> fs = atomic_local_filesystem()
    >>> path = os.path.join(tempfile.mkdtemp(), "state.json")
    >>> with fs.open_output_stream(path) as stream:
    ...     _ = stream.write(b"{}")
    ...     os.path.exists(path)  # not there until the stream is closed
    False
    >>> open(path).read()
    '{}'
"""

from __future__ import annotations

import io
import os
import uuid
from typing import Any

import pyarrow
import pyarrow.fs
from fsspec.implementations.local import LocalFileSystem

PARTIAL_SUFFIX = ".partial"
"""How a file being written is named: ``.<name>.<random>.partial`` beside its target."""


class _RenameOnClose(io.FileIO):
    """A binary file written under a temporary name and renamed to ``target`` on close."""

    def __init__(self, target: str) -> None:
        folder, name = os.path.split(target)
        self.target = target
        super().__init__(os.path.join(folder, f".{name}.{uuid.uuid4().hex}{PARTIAL_SUFFIX}"), "wb")

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        os.replace(str(self.name), self.target)


class AtomicLocalHandler(pyarrow.fs.FSSpecHandler):
    """fsspec's local filesystem for pyarrow, with output streams that rename on close."""

    def __init__(self) -> None:
        super().__init__(LocalFileSystem())

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, AtomicLocalHandler)

    def __hash__(self) -> int:
        return hash(AtomicLocalHandler)

    def get_type_name(self) -> str:
        """The name pyarrow shows for this filesystem."""
        return "lga-atomic-local"

    def open_output_stream(self, path: str, metadata: Any) -> pyarrow.NativeFile:
        """A stream into a hidden temporary file that becomes ``path`` when closed."""
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return pyarrow.PythonFile(_RenameOnClose(path), mode="w")

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return AtomicLocalHandler, ()


def remove_partial_files(folder: str) -> int:
    """Delete what killed writers left under ``folder`` (the caller holds its lock); how many.

    Example:
        >>> import tempfile
        >>> remove_partial_files(tempfile.mkdtemp())
        0
    """
    removed = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            if name.startswith(".") and name.endswith(PARTIAL_SUFFIX):
                os.remove(os.path.join(parent, name))
                removed += 1
    return removed


def atomic_local_filesystem() -> pyarrow.fs.FileSystem:
    """A pyarrow filesystem on local paths whose written files appear whole (see module)."""
    return pyarrow.fs.PyFileSystem(AtomicLocalHandler())
