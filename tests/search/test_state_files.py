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


def test_a_state_that_does_not_fit_on_the_disk_names_its_path_and_keeps_the_older_one(tmp_path):
    # torch.save on a full disk raises a RuntimeError that names neither the file nor the cause
    import errno
    import os
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()[:80]})")
    try:
        files = StateFiles(str(disk / "states"))
        first = _run(0)
        files.save(first)
        stats = os.statvfs(disk)
        (disk / "filler").write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - 2048))
        later = _run(1)
        later.model = nn.Linear(300, 200)  # a state larger than what is left
        later.optimizer = torch.optim.SGD(later.model.parameters(), lr=0.1)
        later.epoch = 2
        with pytest.raises(OSError) as info:
            files.save(later)
        assert info.value.errno == errno.ENOSPC
        assert info.value.filename == files.path(0, 2)
        assert sorted(os.listdir(disk / "states")) == ["cand00000-ep0001.pt"]  # no .tmp left
        restored = _run(2)
        files.restore(restored, before=3, device="cpu")  # the older state is whole
        torch.testing.assert_close(restored.model.weight, first.model.weight, rtol=0, atol=0)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
