"""The docs site's griffe extension (docs/_ext/rst_roles.py) on the real package."""

import importlib.util
from pathlib import Path

import griffe
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def roles():
    spec = importlib.util.spec_from_file_location("rst_roles", ROOT / "docs/_ext/rst_roles.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def package(roles):
    extensions = griffe.load_extensions(roles.RstRoles())
    return griffe.load("lga_lightning", search_paths=[ROOT], extensions=extensions)


def test_roles_to_documented_objects_become_cross_references(package):
    doc = package["training"].docstring.value
    assert "[`NTKMetrics`][lga_lightning.training.callback.NTKMetrics]" in doc
    assert ":class:" not in doc


def test_short_names_resolve_from_the_docstring_s_module(package):
    # core.functional writes :func:`lga`, imported there from core.kernel_metrics.
    doc = package["core.functional"].docstring.value
    assert "[`lga`][lga_lightning.core.kernel_metrics.lga]" in doc


def test_names_not_in_scope_become_code_spans(package):
    # core/__init__ names :class:`NTKMeter` without importing it.
    assert "`NTKMeter`" in package["core"].docstring.value
    assert "[`NTKMeter`]" not in package["core"].docstring.value


def test_roles_outside_the_package_become_code_spans(package):
    doc = package["core.linearization"].docstring.value
    assert "`torch.nn.Module`" in doc and "[`torch.nn.Module`]" not in doc


def test_no_role_is_left_in_any_docstring(package, roles):
    left = [
        obj.path
        for obj in roles._walk(package)
        if obj.docstring is not None and roles.ROLE.search(obj.docstring.value)
    ]
    assert left == []


def test_shared_argument_entries_are_split(roles):
    text = "Args:\n    a, b,\n        c: as X.\n    d: own.\n\nReturns:\n    x, y: kept."
    assert roles.split_shared_entries(text).splitlines() == [
        "Args:",
        "    a: as X.",
        "    b: as X.",
        "    c: as X.",
        "    d: own.",
        "",
        "Returns:",
        "    x, y: kept.",
    ]


def test_getting_started_gives_the_readme_s_two_commands():
    readme = (ROOT / "README.md").read_text()
    page = (ROOT / "docs/getting-started.md").read_text()
    commands = [line for line in page.splitlines() if line.startswith("python -m pip install")]
    assert len(commands) == 2
    assert all(f"\n{command}\n" in readme for command in commands)
