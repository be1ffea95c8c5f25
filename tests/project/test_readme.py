"""Every code block of the README (and of the pages it hands its sections to) works.

Python blocks run; recipe commands parse.

Python blocks are executed as they are. Every bash command that calls a recipe must name an
installed console script of ``pyproject.toml`` and existing config files, and must parse: it is
run in-process with ``--print_config`` appended (which validates every argument without
training). The long install commands of the quick start are checked verbatim, not executed.
"""

from __future__ import annotations

import re
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import tomllib

from recipes import correlate, linearize, search, train, tune

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["README.md", "docs/tune.md", "docs/runs.md", "docs/paper.md", "docs/configs.md"]
"""The README and the documentation pages that hold its former sections."""
README = "\n".join((ROOT / page).read_text() for page in PAGES)
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
RUNNERS = {
    "lga-train": train.run,
    "lga-search": search.run,
    "lga-correlate": correlate.run,
    "lga-linearize": linearize.run,
    "lga-tune": tune.run,
}


def blocks(language: str) -> list[str]:
    # python blocks: the README's (a page's own may need an extra, e.g. docs/tune.md Ray)
    text = README if language != "python" else (ROOT / "README.md").read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def recipe_commands() -> list[list[str]]:
    commands = []
    for block in blocks("bash"):
        for line in block.splitlines():
            if line.lstrip().startswith("#"):
                continue
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                    words = words[1:]  # environment assignments such as WANDB_MODE=offline
                if words and words[0].startswith("lga-"):
                    commands.append(words)
    return commands


@pytest.fixture(autouse=True)
def _argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["lga"])


def test_quick_start_commands_are_verbatim():
    bash = blocks("bash")
    assert (
        "python -m pip install torch==2.13.0 -e . && lga-search --config configs/demo.yaml"
        in (bash[0])
    )
    assert (
        'python -m pip install torch==2.13.0 -e ".[dev]" && python -m pytest -m "not slow"'
        in bash[1]
    )


@pytest.mark.parametrize("index", range(len(blocks("python"))))
def test_python_block_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = blocks("python")[index]
    exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})


def test_recipe_commands_name_scripts_and_files_that_exist():
    commands = recipe_commands()
    assert len(commands) >= 10
    for words in commands:
        assert words[0] in SCRIPTS, f"{words[0]} is not a console script in pyproject.toml"
        assert shutil.which(words[0]), f"{words[0]} is not installed"
        for word in words:
            if word.startswith("configs/"):
                assert (ROOT / word).is_file(), f"README names a missing file {word}"
    mentioned = set(re.findall(r"`(\w+\.yaml)`", README))
    assert mentioned == {p.name for p in (ROOT / "configs").glob("*.yaml")}


@pytest.mark.parametrize("words", recipe_commands(), ids=lambda w: " ".join(w[1:])[:60])
def test_recipe_command_parses(words, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    args = [w for w in words[1:] if w != "--print_config"]
    with pytest.raises(SystemExit) as exit_info:
        RUNNERS[words[0]]([*args, "--print_config"])
    assert exit_info.value.code in (0, None), capsys.readouterr().err
    assert capsys.readouterr().out.strip()
