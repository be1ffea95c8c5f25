"""Wall time, CPU time and peak resident memory of a code block, in the running process.

On a machine shared with other processes the wall time includes the time spent waiting for a
core; the process's CPU time does not, so ratios of CPU times compare the work of two methods
more steadily there (with one intra-op thread, CPU time is the single core's busy time).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Current resident set size of this process (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def release_memory() -> None:
    """Return freed heap pages to the OS so the next block starts from a low baseline."""
    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@dataclass
class Measurement:
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    peak_extra_mb: float = 0.0
    peak_device_mb: float = 0.0
    """Peak CUDA memory allocated during the block (0 without CUDA)."""


@contextmanager
def measure(
    interval: float = 0.005, sync: Callable[[], None] | None = None
) -> Iterator[Measurement]:
    """Time a block (wall and process CPU time) and sample its peak RSS above the starting RSS
    every ``interval`` seconds (the sampling thread's own CPU time is included, ~1%).

    ``sync`` (e.g. ``torch.cuda.synchronize``) runs before the clock starts and before it stops,
    so that queued device work is inside the block's time.
    """
    release_memory()
    cuda = _cuda_available()
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    if sync is not None:
        sync()
    result = Measurement()
    base = rss_bytes()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    cpu_start = time.process_time()
    try:
        yield result
    finally:
        if sync is not None:
            sync()
        result.seconds = time.perf_counter() - start
        result.cpu_seconds = time.process_time() - cpu_start
        stop.set()
        thread.join()
        peak[0] = max(peak[0], rss_bytes())
        result.peak_extra_mb = (peak[0] - base) / 2**20
        if cuda:
            import torch

            result.peak_device_mb = torch.cuda.max_memory_allocated() / 2**20


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()
