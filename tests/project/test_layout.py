"""The package's layout: three wings, imports flowing one way, no circle anywhere.

The wings are ``core`` (torch only) <- ``training`` (Lightning side) <- ``search``; the
recipes sit on top. ``utils`` may be used by all and imports no other part; ``data`` (data
modules) may use the core and ``utils`` only. Every module stays short enough to read whole
(at most :data:`MAX_LINES` lines). Every ``import`` statement counts, including those
inside functions, so a lazy import cannot hide a wrong direction.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from lga_lightning import _compat

ROOT = Path(__file__).resolve().parents[2]

#: wing -> the project wings it may import (itself always allowed).
ALLOWED = {
    "utils": set(),
    "core": {"utils"},
    "data": {"utils", "core"},
    "training": {"utils", "core"},
    "search": {"utils", "core", "training", "data"},
    "recipes": {"utils", "core", "training", "search", "data"},
}
THIRD_PARTY_BANNED = {"core": {"lightning", "pytorch_lightning", "ray", "wandb"}}
#: the most lines a module may have, docstrings and comments included.
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    files = [*(ROOT / "lga_lightning").rglob("*.py"), *(ROOT / "recipes").rglob("*.py")]
    return {_module_name(path): path for path in files}


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every module an ``import``/``from ... import`` in ``path`` names (absolute form)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {_compat.new_name(name) or name for name in names}


def _wing(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] == "recipes":
        return "recipes"
    if parts[0] == "lga_lightning" and len(parts) > 1 and parts[1] in ALLOWED:
        return parts[1]
    return None


def _project_edges() -> dict[str, set[str]]:
    edges = {}
    for module, path in MODULES.items():
        edges[module] = {name for name in _imports(path) if name in MODULES and name != module}
    return edges


def test_every_module_belongs_to_a_wing():
    root = {"lga_lightning", "lga_lightning._compat"}
    loose = [m for m in MODULES if _wing(m) is None and m not in root]
    assert loose == []


def test_the_tests_mirror_the_wings():
    tests = ROOT / "tests"
    folders = {p.name for p in tests.iterdir() if p.is_dir() and p.name[0] not in "_."}
    assert folders == {*ALLOWED, "project"}  # project: layout, docs, README, public names
    assert sorted(p.name for p in tests.glob("test_*.py")) == []  # no test outside a wing
    assert (tests / "core" / "test_meter.py").is_file()
    assert (tests / "training" / "test_session.py").is_file()


@pytest.mark.parametrize("wing", sorted(ALLOWED))
def test_a_wing_imports_only_the_wings_below_it(wing):
    wrong = []
    for module, targets in _project_edges().items():
        if _wing(module) != wing:
            continue
        for target in targets:
            target_wing = _wing(target)
            if target_wing not in (None, wing) and target_wing not in ALLOWED[wing]:
                wrong.append(f"{module} -> {target}")
            if target == "lga_lightning" and wing != "recipes":
                wrong.append(f"{module} -> lga_lightning (import the wing, not the package root)")
    assert wrong == []


def _too_long(paths: list[Path], limit: int, root: Path = ROOT) -> list[str]:
    """``path: N lines`` (from ``root``) for each file over ``limit`` lines, longest first."""
    counts = {path: len(path.read_text().splitlines()) for path in paths}
    long = sorted((p for p, n in counts.items() if n > limit), key=lambda p: -counts[p])
    return [f"{path.relative_to(root)}: {counts[path]} lines" for path in long]


def test_every_module_has_at_most_400_lines():
    too_long = _too_long(sorted(MODULES.values()), MAX_LINES)
    assert too_long == [], f"modules over {MAX_LINES} lines (split them): {too_long}"


def test_the_line_count_names_the_modules_over_the_limit(tmp_path):
    short, long, longer = tmp_path / "short.py", tmp_path / "long.py", tmp_path / "longer.py"
    short.write_text("x = 1\n" * 4)
    long.write_text("x = 1\n" * 5)
    longer.write_text('"""A docstring counts too."""\n' * 6)
    found = _too_long([short, long, longer], limit=4, root=tmp_path)
    assert found == ["longer.py: 6 lines", "long.py: 5 lines"]
    assert _too_long([short], limit=4, root=tmp_path) == []


def test_the_core_imports_no_lightning_ray_or_wandb():
    wrong = []
    for module, path in MODULES.items():
        if _wing(module) == "core":
            banned = THIRD_PARTY_BANNED["core"]
            wrong += [f"{module} -> {n}" for n in _imports(path) if n.split(".")[0] in banned]
    assert wrong == []


def test_importing_the_core_loads_no_lightning():
    code = (
        "import sys, lga_lightning.core.meter, lga_lightning.core.proxies;"
        " print('lightning' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle among modules (a package and its own submodules excepted)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges[node]):
            # A package's __init__ re-exporting its submodules is not a circle.
            if target.startswith(node + ".") or node.startswith(target + "."):
                continue
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_circle_anywhere():
    assert _cycle(_project_edges()) is None


def test_the_circle_finder_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("old", sorted(_compat.MOVED))
def test_every_0_2_module_path_still_imports_as_its_new_home(old):
    if old == "tune":
        pytest.importorskip("ray", reason="lga_lightning.search.tune needs the ray extra")
    module = importlib.import_module(f"lga_lightning.{old}")
    assert module is importlib.import_module(f"lga_lightning.{_compat.MOVED[old]}")


def test_a_0_2_config_class_path_still_resolves():
    from jsonargparse import ArgumentParser

    from lga_lightning.search.spaces import NB201Space

    parser = ArgumentParser()
    parser.add_argument("--space", type=NB201Space)
    old_config = '{"class_path": "lga_lightning.spaces.NB201Space", "init_args": {"C": 4, "N": 1}}'
    config = parser.parse_args(["--space", old_config])
    space = parser.instantiate_classes(config).space
    assert isinstance(space, NB201Space) and type(space) is NB201Space


def test_a_module_imported_by_its_old_path_keeps_its_own_spec():
    code = (
        "import lga_lightning.ground_truth, importlib.resources as r;"
        " print(r.files('lga_lightning.search.ground_truth').joinpath('data').is_dir())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
