"""A candidate's saved training state loads as tensors and data only; a crafted one is refused."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch import nn

from lga_lightning.search.runner import CandidateRun, StateFiles
from lga_lightning.search.strategies import Job


class Payload:
    def __init__(self, marker) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _run(seed: int) -> CandidateRun:
    torch.manual_seed(seed)
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    return CandidateRun(Job(0, None, 2, (1, 2)), model, optimizer, None, epoch=1, steps=5)


def test_saved_state_restores_and_a_crafted_one_is_refused(tmp_path):
    files = StateFiles(str(tmp_path / "states"))
    saved = _run(0)
    files.save(saved)
    restored = _run(1)
    files.restore(restored, before=2, device="cpu")
    assert (restored.epoch, restored.steps) == (1, 5)
    torch.testing.assert_close(restored.model.weight, saved.model.weight, rtol=0, atol=0)

    marker = tmp_path / "marker"
    path = files.path(0, 1)
    with open(path, "wb") as f:
        pickle.dump({"model": Payload(marker)}, f)
    with pytest.raises(ValueError, match="refused the candidate state .*cand00000-ep0001.pt") as e:
        files.restore(_run(1), before=2, device="cpu")
    assert "\n" not in str(e.value) and "Delete it" in str(e.value)
    assert not marker.exists()
    with open(path, "wb") as f:
        f.write(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="refused the candidate state"):
        files.restore(_run(1), before=2, device="cpu")
