"""Full disks and kills while writing: the error names the file, the store stays valid, the
leaderboard set (CSV, JSON, PNG) is whole or absent, and the rerun equals an uninterrupted run.

The quick tests inject ``OSError(ENOSPC)`` where the disk would raise it (``os.fsync``, as a
full tmpfs does). The slow ones run ``lga-search`` into a real tmpfs of a few kilobytes when
this machine lets the test mount one (root), and SIGKILL a process in the middle of renaming a
leaderboard set into place.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_errors import run_recipe, search_config

from lga_lightning.search.outputs import OUTPUTS, WRITING, recover, write_outputs
from lga_lightning.search.store import ResultsStore

ROOT = Path(__file__).resolve().parents[2]
VOLATILE = ("seconds", "ntk_seconds", "process")
ROWS = [
    {"rank": 1, "candidate": 1, "status": "ok", "signal": 0.7, "val_acc": 0.4},
    {"rank": 2, "candidate": 0, "status": "ok", "signal": 0.2, "val_acc": 0.3},
]


def _enospc_on_fsync(monkeypatch, after: int) -> None:
    """``os.fsync`` works ``after`` times, then fails as on a full disk."""
    real, calls = os.fsync, []

    def fsync(fd: int) -> None:
        calls.append(fd)
        if len(calls) > after:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("after", [0, 1, 2], ids=["csv", "json", "png"])
def test_a_full_disk_leaves_the_previous_set_whole_and_names_the_file(tmp_path, monkeypatch, after):
    write_outputs(str(tmp_path), ROWS[:1], {"done": False}, "lga")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) == set(OUTPUTS)
    _enospc_on_fsync(monkeypatch, after)
    with pytest.raises(OSError) as info:
        write_outputs(str(tmp_path), ROWS, {"done": True}, "lga")
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(tmp_path / OUTPUTS[after])
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary left


def test_a_full_disk_cuts_the_store_back_to_its_last_record(tmp_path, monkeypatch):
    path = tmp_path / "results.jsonl"
    store = ResultsStore(path)
    store.open({"kind": "search", "seed": 0})
    store.append({"kind": "measurement", "candidate": 0, "epoch": 1, "lga": 0.5})
    valid = path.read_bytes()
    _enospc_on_fsync(monkeypatch, 0)
    with pytest.raises(OSError) as info:
        store.append({"kind": "measurement", "candidate": 1, "epoch": 1, "lga": 0.25})
    assert info.value.filename == str(path)
    assert path.read_bytes() == valid
    monkeypatch.undo()
    header, records = ResultsStore(path).read()
    assert header == {"kind": "search", "seed": 0} and [r["candidate"] for r in records] == [0]


def test_the_error_line_names_the_folder_to_free(tmp_path):
    from recipes._cli import os_error_line

    line = os_error_line(OSError(errno.ENOSPC, "No space left on device", "/r/x/results.jsonl"))
    assert line.startswith("cannot write '/r/x/results.jsonl': No space left on device;")
    assert "free space in /r/x" in line and "results_dir" in line


def test_recover_removes_temporaries_and_a_partial_set(tmp_path):
    write_outputs(str(tmp_path), ROWS, {}, "lga")
    (tmp_path / ".leaderboard.csv.abc123.tmp").write_text("")  # killed while writing
    assert recover(str(tmp_path)) == [str(tmp_path / ".leaderboard.csv.abc123.tmp")]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OUTPUTS)  # a whole set stays
    (tmp_path / WRITING).write_text("")  # killed while renaming: the set may be mixed
    recover(str(tmp_path))
    assert list(tmp_path.iterdir()) == []


KILL_DURING_RENAMES = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
from lga_lightning.search.outputs import write_outputs
real, count = os.replace, []
def replace(a, b):
    real(a, b)
    count.append(b)
    if len(count) == 1:  # the new CSV is in place, the JSON and PNG are not
        print("renamed", flush=True)
        time.sleep(60)
os.replace = replace
rows = [{"rank": 1, "candidate": 0, "status": "ok", "signal": 0.9, "val_acc": 0.9}]
write_outputs(sys.argv[2], rows, {"done": True, "killed": True}, "lga")
"""


def _comparable(path: Path) -> dict:
    data = json.loads(path.read_text())
    for row in data["leaderboard"]:
        for key in VOLATILE:
            row.pop(key, None)
    return data


@pytest.mark.slow
def test_sigkill_during_the_leaderboard_write_then_rerun_gives_a_complete_set(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    for folder in (reference, killed):
        folder.mkdir()
        result = run_recipe("search", search_config(folder), folder)
        assert result.returncode == 0, result.stderr[-3000:]
    results = killed / "runs" / "lga_search"
    writer = subprocess.Popen(
        [sys.executable, "-c", KILL_DURING_RENAMES, str(ROOT), str(results)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "renamed"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
    assert (results / WRITING).exists() and list(results.glob(".scatter.png.*.tmp"))
    rerun = run_recipe("search", search_config(killed), killed)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    names = sorted(p.name for p in results.iterdir() if p.is_file())
    assert names == sorted(["results.jsonl", *OUTPUTS]), names
    expected = reference / "runs" / "lga_search"
    assert _comparable(results / "leaderboard.json") == _comparable(expected / "leaderboard.json")
    csv_lines = (results / "leaderboard.csv").read_text().splitlines()
    assert len(csv_lines) == 3 and csv_lines[0].startswith("rank,")


@contextlib.contextmanager
def small_tmpfs(folder: Path, free: int):
    """A tmpfs at ``folder`` with about ``free`` bytes free (skips where none can be mounted)."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()[:80]}); the "
            "injected-ENOSPC tests cover this"
        )
    try:
        stats = os.statvfs(folder)
        filler = folder / "filler"
        filler.write_bytes(b"\0" * (stats.f_bavail * stats.f_frsize - free))
        yield filler
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.slow
@pytest.mark.parametrize("free", [8 * 1024, 28 * 1024], ids=["8k-store", "28k-leaderboard"])
def test_a_search_on_a_full_disk_names_the_path_and_its_rerun_completes(tmp_path, free):
    reference = tmp_path / "reference"
    reference.mkdir()
    assert run_recipe("search", search_config(reference), reference).returncode == 0
    disk = tmp_path / "disk"
    with small_tmpfs(disk, free) as filler:
        config = search_config(tmp_path, **{"model.results_dir": str(disk / "results")})
        full = run_recipe("search", config, tmp_path)
        lines = [line for line in full.stderr.splitlines() if "error" in line.lower()]
        assert full.returncode == 2, full.stderr[-3000:]
        assert len(lines) == 1 and "Traceback" not in full.stderr, full.stderr[-3000:]
        assert "No space left on device" in lines[0]
        assert str(disk / "results") in lines[0] and "free space in" in lines[0]
        results = disk / "results"
        ResultsStore(results / "results.jsonl").read()  # valid: raises on a damaged line
        assert not list(results.glob(".*.tmp")) and not (results / WRITING).exists()
        present = {name for name in OUTPUTS if (results / name).exists()}
        assert present in (set(), set(OUTPUTS)), present  # the set is whole or absent
        filler.unlink()  # space freed: rerun
        rerun = run_recipe("search", config, tmp_path)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert {p.name for p in results.iterdir()} >= set(OUTPUTS)
        expected = reference / "runs" / "lga_search" / "leaderboard.json"
        assert _comparable(results / "leaderboard.json") == _comparable(expected)


def test_a_nan_signal_stored_as_ok_ranks_last_as_undefined_with_one_warning():
    from lga_lightning.search import leaderboard as lb

    records = [
        {"candidate": 0, "epoch": 1, "status": "ok", "signal": float("nan"), "arch": "a"},
        {"candidate": 1, "epoch": 1, "status": "ok", "signal": 0.3, "score": 0.3, "arch": "b"},
        {"candidate": 2, "epoch": 1, "status": "diverged", "signal": 0.1, "arch": "c"},
        {"candidate": 3, "epoch": 1, "status": "failed", "signal": float("nan"), "arch": "d"},
    ]
    with pytest.warns(UserWarning, match="candidate 0 .* ranks last as 'undefined'") as warned:
        rows = lb.build(records)
    assert len(warned) == 1
    assert [(r["arch"], r["status"]) for r in rows][0] == ("b", "ok")
    assert {r["arch"]: r["status"] for r in rows}["a"] == "undefined"
    summary = lb.summary(rows)
    assert {k: summary[k] for k in ("failed", "diverged", "undefined")} == {
        "failed": 1,
        "diverged": 1,
        "undefined": 1,
    }
