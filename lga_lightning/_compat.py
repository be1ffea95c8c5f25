"""Module paths of lga-lightning 0.2, kept as aliases of their new homes.

0.3 sorted the package into three wings (``core``, ``training``, ``search``) and ``utils``.
Code, configs (``class_path: lga_lightning.spaces.NB201Space``) and pickled objects written
against 0.2 keep working: importing an old path returns the very module object of the new one,
so classes compare identical and ``isinstance`` holds. :data:`MOVED` is the whole table.

Example:
    >>> import lga_lightning.spaces, lga_lightning.search.spaces
    >>> lga_lightning.spaces is lga_lightning.search.spaces
    True
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType

#: 0.2 module (under ``lga_lightning.``) -> its 0.3 home. Submodules follow their package.
MOVED: dict[str, str] = {
    "kernel": "core.kernel",
    "proxies": "core.proxies",
    "functional": "core.functional",
    "signals": "core.signals",
    "probe": "core.probe",
    "meter": "core.meter",
    "evolution": "core.evolution",
    "linearization": "core.linearization",
    "rank_combination": "core.rank_combination",
    "init": "core.init",
    "models": "core.models",
    "_layout": "core.kernel._layout",
    "callback": "training.callback",
    "session": "training.session",
    "module": "training.module",
    "_callback_checks": "training._callback_checks",
    "_callback_logging": "training._callback_logging",
    "_history": "training._history",
    "_distributed": "training._distributed",
    "_rundir": "training._rundir",
    "spaces": "search.spaces",
    "ground_truth": "search.ground_truth",
    "tune": "search.tune",
    "_files": "utils.files",
    "_lock": "utils.lock",
    "_describe": "utils.describe",
    "_threads": "utils.threads",
}

_PREFIX = "lga_lightning."


def new_name(old: str) -> str | None:
    """The 0.3 name of a 0.2 module path, or ``None`` if ``old`` did not move.

    Example:
        >>> new_name("lga_lightning.spaces.nb201")
        'lga_lightning.search.spaces.nb201'
        >>> new_name("lga_lightning.search") is None
        True
    """
    if not old.startswith(_PREFIX):
        return None
    head, _, tail = old[len(_PREFIX) :].partition(".")
    if head not in MOVED:
        return None
    return _PREFIX + MOVED[head] + ("." + tail if tail else "")


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self.own_spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """The target is already executed; give it back its own spec, which the import replaced.

        Without it, ``importlib.resources.files`` would see the alias, which is no package.
        """
        module.__spec__ = self.own_spec


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001, ANN201 (importlib API)
        target_name = new_name(fullname)
        if target_name is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(target_name))


def install() -> None:
    """Put the alias finder on ``sys.meta_path`` once."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())
