"""Collection rules for the whole tree: the Ray Tune backend is optional.

Everything that needs Ray (``lga_lightning/search/tune`` and its doctests, the
``test_tune*.py`` files of ``tests/search`` and ``tests/recipes``) carries the markers ``ray``
and ``slow``: the README's quick command leaves it out, and ``.ci/run`` installs the ``ray``
extra before the slow tests. Without Ray those files are not collected, unless
``LGA_REQUIRE_RAY=1`` (set by ``.ci/run``), which makes a missing Ray an error.

The quick part (``-m "not slow"``, the README's command) runs on two pytest-xdist workers, one
test file each at a time (``-n auto --dist loadfile`` in ``pyproject.toml``, the count chosen by
:func:`pytest_xdist_auto_num_workers`); everything else (the slow part with its DDP and Ray
runs, one file or one test) runs in this process. ``-n 0`` or ``-n 2`` overrides the choice.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

HAS_RAY = importlib.util.find_spec("ray") is not None
RAY_PATHS = ("lga_lightning/search/tune", "tests/search/test_tune", "tests/recipes/test_tune")

if not HAS_RAY and os.environ.get("LGA_REQUIRE_RAY") == "1":
    raise RuntimeError(
        "LGA_REQUIRE_RAY=1 but Ray is not installed; install the extra: pip install -e '.[ray]'"
    )

collect_ignore_glob = (
    [] if HAS_RAY else ["lga_lightning/search/tune/*", "tests/search/test_tune*.py"]
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every item of the Ray paths ``ray`` and ``slow``."""
    root = Path(str(config.rootpath))
    for item in items:
        relative = Path(str(item.path)).resolve().relative_to(root.resolve()).as_posix()
        if relative.startswith(RAY_PATHS):
            item.add_marker(pytest.mark.ray)
            item.add_marker(pytest.mark.slow)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Two workers for the quick part on a machine with two cores or more; none otherwise."""
    quick = " ".join(str(config.option.markexpr).split()) == "not slow"
    return 2 if quick and (os.cpu_count() or 1) >= 2 else 0
