"""How many intra-op CPU threads torch uses for a search or a study: ``num_threads="auto"``.

Small networks on a small CPU gain nothing from intra-op parallelism and lose a lot when the
threads contend for the cores (with each other, other processes or other users): the README's
search snippet took 67.7 s with torch's default of 2 threads on a shared 2-core CPU and 7.4 s with
one (measured when the issue was filed; ``docs/threads.md`` has this machine's numbers). The rule
of ``"auto"``:

- on a CPU with fewer than :data:`MIN_CORES_PER_PROCESS` cores per process of the job: 1 thread;
- otherwise ``cores // processes`` (at most torch's own default), so that processes x threads
  never exceeds the cores;

where ``cores`` are the CPUs this process may run on (its affinity mask and, under a container's
CPU quota, the quota). An integer is used as given; ``None`` leaves torch's setting alone.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch

Threads = int | Literal["auto"] | None
"""A thread setting: a count, ``"auto"`` (see the module) or ``None`` (torch's choice)."""

MIN_CORES_PER_PROCESS = 4
"""Below this many cores per process, ``"auto"`` uses one thread per process."""


def available_cores() -> int:
    """CPUs this process may use: its affinity mask, bounded by a cgroup v2 CPU quota.

    Example:
        >>> 1 <= available_cores() <= (os.cpu_count() or 1)
        True
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max", encoding="ascii") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def choose_threads(
    setting: Threads, processes: int = 1, cores: int | None = None, default: int | None = None
) -> tuple[int | None, str]:
    """The thread count for ``setting`` and a few words saying why.

    Args:
        setting: ``"auto"``, a count, or ``None`` (leave torch's choice).
        processes: processes of the job on this machine (DDP on CPU: one per device).
        cores: CPUs available (default :func:`available_cores`).
        default: torch's own count (default ``torch.get_num_threads()``).

    Returns:
        ``(threads, reason)``; ``threads`` is ``None`` when torch's setting is left alone.

    Raises:
        ValueError: ``setting`` is neither ``"auto"``, ``None`` nor an integer >= 1.

    Example:
        >>> choose_threads("auto", processes=1, cores=2, default=2)
        (1, 'auto: 2 CPU cores for 1 process, below 4 per process')
        >>> choose_threads("auto", processes=2, cores=16, default=16)
        (8, 'auto: 16 CPU cores for 2 processes')
        >>> choose_threads(3)
        (3, 'num_threads=3')
    """
    if setting is None:
        return None, "torch's default"
    if setting == "auto":
        cores = available_cores() if cores is None else cores
        default = torch.get_num_threads() if default is None else default
        processes = max(1, int(processes))
        plural = "process" if processes == 1 else "processes"
        per_process = cores // processes
        if per_process < MIN_CORES_PER_PROCESS:
            why = f"below {MIN_CORES_PER_PROCESS} per process"
            return 1, f"auto: {cores} CPU cores for {processes} {plural}, {why}"
        threads = max(1, min(default, per_process))
        return threads, f"auto: {cores} CPU cores for {processes} {plural}"
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(
            f"num_threads={setting!r}: give an integer >= 1, 'auto' (fit the cores and the "
            "processes) or null (torch's default)."
        )
    return setting, f"num_threads={setting}"


def threads_line(prog: str, threads: int | None, reason: str) -> str:
    """The line a search or a study starts with.

    Example:
        >>> threads_line("lga-search", 1, "auto: 2 CPU cores for 1 process, below 4 per process")
        'lga-search: 1 torch thread per process (auto: 2 CPU cores for 1 process, below 4 per process; num_threads sets it)'
    """  # noqa: E501
    if threads is None:
        count = f"{torch.get_num_threads()} torch threads per process"
    else:
        count = f"{threads} torch thread{'s' if threads != 1 else ''} per process"
    return f"{prog}: {count} ({reason}; num_threads sets it)"


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` intra-op threads inside the block and restore torch's count after it.

    A library call that changed the count for good would change the numbers of whatever the
    caller runs next (a float sum over 2 threads is not the one over 1).

    Args:
        threads: the count inside the block; ``None`` leaves torch's setting alone.

    Example:
        >>> before = torch.get_num_threads()
        >>> with torch_threads(1):
        ...     torch.get_num_threads()
        1
        >>> torch.get_num_threads() == before
        True
    """
    before = torch.get_num_threads()
    if threads is not None and threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
