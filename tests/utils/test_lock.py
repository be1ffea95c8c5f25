"""OutputLock: one run per output folder, across real processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lga_lightning.utils.lock import LOCK_NAME, OutputLock, OutputLockedError

ROOT = Path(__file__).resolve().parents[2]

HOLD = """
import sys, time
sys.path.insert(0, sys.argv[1])
from lga_lightning.utils.lock import OutputLock
with OutputLock(sys.argv[2]):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""

CONTEND = """
import sys, time
sys.path.insert(0, sys.argv[1])
from lga_lightning.utils.lock import OutputLock, OutputLockedError
start = float(sys.argv[3])
while time.time() < start:
    time.sleep(0.001)
try:
    with OutputLock(sys.argv[2]):
        time.sleep(1.0)
    print("acquired", flush=True)
except OutputLockedError:
    print("refused", flush=True)
"""


def _python(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, str(ROOT), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_lock_file_holds_pid_and_host_and_is_removed_on_exit(tmp_path):
    folder = tmp_path / "out"
    with OutputLock(folder):
        data = json.loads((folder / LOCK_NAME).read_text())
        assert data["pid"] == os.getpid() and data["host"] == socket.gethostname()
    assert not (folder / LOCK_NAME).exists()
    with OutputLock(folder):  # free again
        pass


def test_second_holder_in_the_same_process_is_refused(tmp_path):
    with OutputLock(tmp_path), pytest.raises(OutputLockedError) as info:
        OutputLock(tmp_path, option="`output_dir`").acquire()
    message = str(info.value)
    assert f"process {os.getpid()} on host {socket.gethostname()}" in message
    assert str(tmp_path / LOCK_NAME) in message and "choose another `output_dir`" in message
    assert not (tmp_path / LOCK_NAME).exists()  # the refused one did not remove the holder's


def test_lock_released_after_an_exception(tmp_path):
    with pytest.raises(ZeroDivisionError), OutputLock(tmp_path):
        raise ZeroDivisionError
    assert not (tmp_path / LOCK_NAME).exists()


def test_other_process_is_refused_then_stale_lock_is_taken_over_with_a_warning(tmp_path):
    holder = _python(HOLD, str(tmp_path), "60")
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputLockedError, match=f"process {holder.pid} on host"):
            OutputLock(tmp_path).acquire()
    finally:
        holder.kill()  # SIGKILL: no chance to release
        holder.wait(timeout=30)  # reaped, so its pid no longer exists
        holder.stdout.close()
        holder.stderr.close()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == holder.pid  # left behind
    with pytest.warns(UserWarning, match=f"taking over the lock of process {holder.pid}"):
        lock = OutputLock(tmp_path)
        lock.acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"", "it is empty"),
        (b"\x00\x01garbage", "it holds '\\x00\\x01garbage'"),
        (b'{"pid": null, "host": null}', 'it holds \'{"pid": null, "host": null}\''),
    ],
    ids=["empty", "garbage", "no-pid"],
)
def test_a_lock_naming_no_process_is_refused_when_fresh_and_taken_over_when_old(
    tmp_path, content, found
):
    path = tmp_path / LOCK_NAME
    path.write_bytes(content)
    with pytest.raises(OutputLockedError) as info:  # maybe a run filling it right now
        OutputLock(tmp_path).acquire()
    message = str(info.value)
    assert message.startswith(f"{path} names no process ({found})"), message
    assert f"delete {path}" in message and "None" not in message
    old = time.time() - 60
    os.utime(path, (old, old))
    with pytest.warns(UserWarning) as warned:
        lock = OutputLock(tmp_path)
        lock.acquire()
    text = str(warned[0].message)
    assert text.startswith(f"{path}: taking over a lock file that names no process ({found}")
    assert "None" not in text
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()


def test_lock_of_another_host_is_not_taken_over(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": 0}))
    with pytest.raises(OutputLockedError, match="process 1 on host elsewhere"):
        OutputLock(tmp_path).acquire()
    assert (tmp_path / LOCK_NAME).exists()


def test_exactly_one_of_several_contending_processes_wins(tmp_path):
    start = time.time() + 3.0  # all four wait for the same instant, then try at once
    procs = [_python(CONTEND, str(tmp_path), str(start)) for _ in range(4)]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outcomes.append(out.strip())
    assert sorted(outcomes) == ["acquired", "refused", "refused", "refused"], outcomes
    assert not (tmp_path / LOCK_NAME).exists()


def test_stale_lock_taken_over_by_exactly_one_of_several_processes(tmp_path):
    dead = _python("pass")
    dead.communicate(timeout=60)
    stale = {"pid": dead.pid, "host": socket.gethostname(), "started": 0}
    (tmp_path / LOCK_NAME).write_text(json.dumps(stale))
    start = time.time() + 3.0
    procs = [_python(CONTEND, str(tmp_path), str(start)) for _ in range(4)]
    outcomes = [proc.communicate(timeout=120)[0].strip() for proc in procs]
    assert sorted(outcomes) == ["acquired", "refused", "refused", "refused"], outcomes
