"""Module paths of lga-lightning 0.2, kept as aliases of their new homes.

0.3 sorted the package into three wings (``core``, ``training``, ``search``) and ``utils``.
Code, configs (``class_path: lga_lightning.spaces.NB201Space``) and pickled objects written
against 0.2 keep working: importing an old path returns the very module object of the new one,
so classes compare identical and ``isinstance`` holds. :data:`MOVED` is the whole table.
Keywords renamed in 0.3 (:data:`RENAMED`) are refused with one line naming the new one.

Example:
    >>> import lga_lightning.spaces, lga_lightning.search.spaces
    >>> lga_lightning.spaces is lga_lightning.search.spaces
    True
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any, TypeVar

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


#: Keywords, options and config keys of 0.2 -> their 0.3 names; the old ones are refused.
#: ``scheduler`` had two meanings, so each surface names its own new word (see
#: :func:`renamed_keywords`).
RENAMED: dict[str, str] = {
    "params": "param_selection",
    "mode": "direction",
    "measure": "measure_at",
    "extra_measure": "extra_measure_at",
    "epochs": "measure_at",
}

#: Config keys whose new name depends on the section they are in: (section, old) -> new.
RENAMED_BY_SECTION: dict[tuple[str, str], str] = {
    ("model", "scheduler"): "lr_scheduler",  # LGASearch: the candidates' LR scheduler
    ("tune", "scheduler"): "trial_scheduler",  # lga-tune: Ray Tune's trial scheduler
}


def refuse_renamed(
    given: Iterable[str],
    names: Iterable[str] | Mapping[str, str],
    error: type[Exception] = TypeError,
) -> None:
    """Raise one line when ``given`` holds an old name among ``names``.

    ``names`` are keys of :data:`RENAMED`, or a mapping old -> new for a word whose new name
    depends on the surface. ``error`` is :class:`TypeError` for a keyword argument; a key of a
    dict or a config file gets :class:`ValueError`, which the recipes report in one line.

    Example:
        >>> refuse_renamed({"param_selection": "all"}, ["params"])
        >>> refuse_renamed({"params": "all"}, ["params"])
        Traceback (most recent call last):
        ...
        TypeError: `params` was renamed to `param_selection` in 0.3.
    """
    given = set(given)
    renames = dict(names) if isinstance(names, Mapping) else {old: RENAMED[old] for old in names}
    for old, new in renames.items():
        if old in given:
            raise error(f"`{old}` was renamed to `{new}` in 0.3.")


F = TypeVar("F", bound=Callable[..., Any])


def renamed_keywords(*names: str, **renames: str) -> Callable[[F], F]:
    """Refuse the 0.2 keywords of a function with one line naming the new one.

    ``names`` are keys of :data:`RENAMED`; ``renames`` (old=new) name a word whose new name
    depends on the surface, such as ``scheduler="lr_scheduler"``.

    Example:
        >>> @renamed_keywords("params")
        ... def kernel(*, param_selection: str = "paper") -> str:
        ...     return param_selection
        >>> kernel(params="all")
        Traceback (most recent call last):
        ...
        TypeError: `params` was renamed to `param_selection` in 0.3.
    """
    old_to_new = {**{old: RENAMED[old] for old in names}, **renames}

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def checked(*args: Any, **kwargs: Any) -> Any:
            refuse_renamed(kwargs, old_to_new)
            return fn(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return wrap


def upgrade_0_2(line: dict[str, Any]) -> dict[str, Any]:
    """A line of a store written by 0.2 (``raw.jsonl``, ``results.jsonl``) with 0.3's keys.

    0.3 lines pass unchanged, so every reader calls it on every line it loads:

    * a study header's fingerprint and a search header's ``kernel_kwargs``: ``params`` (the
      kernel's parameter selection) becomes ``param_selection``; the fingerprint's ``epochs``
      (the measurement epochs) becomes ``measure_at``; a search header's ``mode``
      (the ranking's max/min) becomes ``direction``, its ``scheduler`` (the candidates' LR
      scheduler) ``lr_scheduler``, and a Tune trial's strategy
      ``SingleJob(..., measure=[...])`` reads ``measure_at``;
    * a record (``"kind": "arch"``, ``"measurement"``): 0.2's ``params`` held the parameter
      count, which was also the value of the ``params`` signal; the count is copied to
      ``num_params`` and ``params`` stays, as the signal.

    Example:
        >>> upgrade_0_2({"kind": "study", "fingerprint": {"params": "paper", "epochs": [0]}})
        {'kind': 'study', 'fingerprint': {'param_selection': 'paper', 'measure_at': [0]}}
        >>> upgrade_0_2({"kind": "arch", "arch": "a", "params": 1234})
        {'kind': 'arch', 'arch': 'a', 'params': 1234, 'num_params': 1234}
    """
    kind = line.get("kind")
    line = dict(line)
    if kind == "study" and isinstance(line.get("fingerprint"), dict):
        fingerprint = _renamed_key(line["fingerprint"], "params", "param_selection")
        line["fingerprint"] = _renamed_key(fingerprint, "epochs", "measure_at")
    elif kind == "search":
        line = _renamed_key(line, "mode", "direction")
        # 0.2's Ray Tune header overwrote the LR scheduler's entry with the trial scheduler's
        new = "trial_scheduler" if line.get("backend") == "ray" else "lr_scheduler"
        line = _renamed_key(line, "scheduler", new)
        strategy = line.get("strategy")
        if isinstance(strategy, str) and strategy.startswith("SingleJob("):  # a Tune trial's
            line["strategy"] = strategy.replace(", measure=[", ", measure_at=[")
        if isinstance(line.get("kernel_kwargs"), dict):
            kernel = _renamed_key(line["kernel_kwargs"], "params", "param_selection")
            line["kernel_kwargs"] = kernel
    elif kind not in ("study", "search") and "params" in line and "num_params" not in line:
        line["num_params"] = line["params"]
    return line


def _renamed_key(mapping: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """``mapping`` with ``old`` renamed to ``new`` in place (unchanged when ``new`` is in it)."""
    if old not in mapping or new in mapping:
        return mapping
    return {(new if key == old else key): value for key, value in mapping.items()}


_UNKNOWN = re.compile(r"(?:unknown key '|unrecognized arguments: --|[Oo]ption ')((?:\w+\.)*)(\w+)")
_GROUP = re.compile(r"Group '(\w+)'")


def renamed_hint(line: str) -> str:
    """``line``, and when it refuses a key renamed in 0.3, the key's new name.

    Example:
        >>> renamed_hint("unrecognized arguments: --params all")
        'unrecognized arguments: --params all; `params` was renamed to `param_selection` in 0.3.'
        >>> renamed_hint("Group 'tune' does not accept option 'scheduler'").split("; ")[1]
        '`scheduler` was renamed to `trial_scheduler` in 0.3.'
    """
    match = _UNKNOWN.search(line)
    if not match:
        return line
    old, group = match.group(2), _GROUP.search(line)
    section = group.group(1) if group else match.group(1).partition(".")[0]
    new = RENAMED_BY_SECTION.get((section, old)) or RENAMED.get(old)
    return f"{line}; `{old}` was renamed to `{new}` in 0.3." if new else line
