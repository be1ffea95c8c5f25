"""Collection rules for the whole tree: the Ray Tune backend is optional.

Everything that needs Ray (``lga_lightning/search/tune`` and its doctests, the
``test_tune*.py`` files of ``tests/search`` and ``tests/recipes``) carries the markers ``ray``
and ``slow``: the README's quick command leaves it out, and ``.ci/run`` installs the ``ray``
extra before the slow tests. Without Ray those files are not collected, unless
``LGA_REQUIRE_RAY=1`` (set by ``.ci/run``), which makes a missing Ray an error.
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
