"""Each training run's own folder, so that no run writes over another's files.

CSV and TensorBoard loggers already give each run ``<save_dir>/<name>/version_N``; other loggers
(W&B: its ``save_dir``) and runs without a logger (``default_root_dir``, often the current
directory) do not. :func:`run_dir` returns the logger's versioned folder when it has one, else
``<log dir>/<name>/<version>`` of the logger (W&B: project and run id), else the next free
``<default_root_dir>/lga_runs/version_N``. It is chosen once per Trainer and shared by every
caller (the NTK callback, the saved config), identical on every rank.
"""

from __future__ import annotations

import os
import re
from typing import Any

from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

_ATTRIBUTE = "_lga_run_dir"


def run_dir(trainer: Any) -> str:
    """The folder of this run's files (a collective: every rank must call it).

    Example:
        >>> import tempfile, lightning.pytorch as pl
        >>> root = tempfile.mkdtemp()
        >>> trainer = pl.Trainer(logger=False, default_root_dir=root)
        >>> run_dir(trainer) == os.path.join(root, "lga_runs", "version_0")
        True
        >>> run_dir(trainer) == run_dir(trainer)  # chosen once per Trainer
        True
    """
    chosen = getattr(trainer, _ATTRIBUTE, None)
    if chosen is None:
        log_dir = trainer.log_dir or trainer.default_root_dir  # a collective itself: every rank
        mine = _choose(trainer, log_dir) if trainer.is_global_zero else None
        chosen = trainer.strategy.broadcast(mine, src=0)
        setattr(trainer, _ATTRIBUTE, chosen)
    return chosen


def use_run_dir(trainer: Any, folder: str) -> None:
    """Make ``folder`` this Trainer's run folder (a resumed run keeps writing where it wrote)."""
    setattr(trainer, _ATTRIBUTE, folder)


def _choose(trainer: Any, log_dir: str) -> str:
    if trainer.loggers:
        logger = trainer.loggers[0]
        if isinstance(logger, (CSVLogger, TensorBoardLogger)):
            return log_dir  # already the run's own folder (version_N, or the one the user named)
        version = getattr(logger, "version", None)
        version = version if isinstance(version, str) else f"version_{version}"
        name = getattr(logger, "name", None) or "lga_runs"
        return os.path.join(log_dir, _safe(name), _safe(version))
    base = os.path.join(trainer.default_root_dir, "lga_runs")
    taken = os.listdir(base) if os.path.isdir(base) else []
    numbers = [int(m.group(1)) for m in map(re.compile(r"version_(\d+)$").match, taken) if m]
    return os.path.join(base, f"version_{max(numbers, default=-1) + 1}")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)) or "run"
