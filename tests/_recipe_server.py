"""Run ``python -m recipes.<name>`` command lines as processes forked from one warm interpreter.

Starting Python and importing Lightning costs seconds per command line; a suite that checks dozens
of user errors through real processes pays that dozens of times. A :class:`RecipeServer` imports
the recipes once, then forks one child per command line: a real process with its own working
directory (first on ``sys.path``, as ``python -m`` puts it), its own stdout and stderr, and its
own exit status (``sys.exit``, an uncaught exception's traceback and status 1, or a signal).
``tests/recipes/test_errors.py`` checks that a forked run and ``python -m`` print the same.

POSIX only (``os.fork``). Run as a script, this module is the server's loop.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("search", "train", "correlate", "linearize")


class RecipeServer:
    """A warm interpreter that runs recipe command lines in forked children, one at a time.

    Args:
        env: the server's environment (``PYTHONPATH`` with this checkout first, W&B offline...).
    """

    def __init__(self, env: dict[str, str]) -> None:
        self._outputs = tempfile.mkdtemp(prefix="recipe-server-")
        self._process = subprocess.Popen(
            [sys.executable, __file__, *RECIPES],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # the imports' own warnings; each child has its own stderr
            env=env,
            cwd=self._outputs,
            text=True,
        )
        ready = self._process.stdout.readline()
        if ready.strip() != "ready":
            raise RuntimeError(f"the recipe server did not start: {ready!r}")
        self._count = 0

    def run(self, recipe: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
        """``python -m recipes.<recipe> *args`` in ``cwd``, as a forked child of the server."""
        self._count += 1
        out = os.path.join(self._outputs, f"{self._count}.out")
        err = os.path.join(self._outputs, f"{self._count}.err")
        case = {"recipe": recipe, "args": list(args), "cwd": str(cwd), "out": out, "err": err}
        self._process.stdin.write(json.dumps(case) + "\n")
        self._process.stdin.flush()
        reply = self._process.stdout.readline()
        if not reply:
            raise RuntimeError("the recipe server stopped")
        code = json.loads(reply)["returncode"]
        stdout, stderr = Path(out).read_text(), Path(err).read_text()
        argv = [sys.executable, "-m", f"recipes.{recipe}", *args]
        return subprocess.CompletedProcess(argv, code, stdout, stderr)

    def close(self) -> None:
        """Stop the server and remove the children's output files."""
        self._process.stdin.close()
        self._process.wait(timeout=60)
        shutil.rmtree(self._outputs, ignore_errors=True)


def _child(case: dict) -> None:
    """Become ``python -m recipes.<recipe> *args`` in the case's folder; never returns."""
    os.chdir(case["cwd"])
    sys.path.insert(0, case["cwd"])
    for stream, path in ((1, case["out"]), (2, case["err"])):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, stream)
        os.close(fd)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the child's whole life
    module = sys.modules[f"recipes.{case['recipe']}"]
    sys.argv = [module.__file__, *case["args"]]
    module.main()
    sys.exit(0)


def _serve() -> None:
    del sys.path[0]  # this file's folder: `python -m` would not have it
    for name in sys.argv[1:]:
        importlib.import_module(f"recipes.{name}")
    print("ready", flush=True)
    for line in sys.stdin:
        case = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(case)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    _serve()
