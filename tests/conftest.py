"""Suite-wide settings: one intra-op thread and offline W&B.

The suite runs on small tensors, often with two processes at once (DDP tests); one thread per
process avoids oversubscribing a 2-core machine, where spinning OpenMP threads make small ops
orders of magnitude slower.
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _one_thread():
    # Each test starts at one thread, whatever an earlier test left: results compared bit for
    # bit within a test must not depend on which tests ran before it.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
