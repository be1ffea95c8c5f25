"""What every recipe shares: user errors reported as one line instead of a traceback.

A wrong config key, an unknown ``class_path`` or a missing data file is the user's to fix, so
the recipes print ``<prog>: error: <what and where>`` and exit with status 2. Set the environment
variable ``LGA_TRACEBACK=1`` to get the full traceback instead.
"""

from __future__ import annotations

import os
import re
import sys
from argparse import ArgumentError
from collections.abc import Callable
from typing import Any, Optional, TypeVar

import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException

T = TypeVar("T")

USER_ERRORS: tuple[type[BaseException], ...] = (
    ArgumentError,
    FileNotFoundError,
    NotADirectoryError,
    LookupError,
    ValueError,
    MisconfigurationException,
)
"""Exceptions that mean "the configuration or the files are wrong", reported in one line."""

PROGRAMMING_ERRORS: tuple[type[BaseException], ...] = (KeyError, IndexError)
"""Lookup errors that signal a bug, not a configuration problem: always shown in full."""

_KEY = re.compile(r'^Parser key "([^"]+)":?\s*(.*)$')
_CLASS = re.compile(r"^Problem with given class_path '([^']+)':?$")
_OPTION = re.compile(r"^Option '([^']+)' is not accepted$")
_NO_ATTR = re.compile(r"module '([^']+)' has no attribute '([^']+)'")
_NO_MODULE = re.compile(r"No module named '([^']+)'")
_NOISE = (
    "Does not validate against",
    "Subtypes:",
    "Errors:",
    "Given value",
    "Expected a <class 'NoneType'>",
    "Not a valid subclass of",
    "Subclass types expect",
    "a class path (str)",
    "a dict with",
    "a dict without",
    "Expected a path but",
)


def one_line(error: BaseException) -> str:
    r"""Condense an error (jsonargparse's nested validation reports included) into one line.

    For a nested report the deepest problem is kept, prefixed by the full config key it belongs
    to and the ``class_path`` being configured there.

    Args:
        error: the exception.

    Returns:
        A single line naming the key or path at fault.

    Example:
        >>> report = ('Parser key "model":\n  Does not validate against any of the Union\n'
        ...           "    - Problem with given class_path 'a.B':\n"
        ...           '        Parser key "net":\n'
        ...           "          Problem with given class_path 'a.C':\n"
        ...           "            Option 'widht' is not accepted\n")
        >>> one_line(ValueError(report))
        "unknown key 'model.net.widht': a.C accepts no option 'widht'"
    """
    text = str(error).strip() or type(error).__name__
    if isinstance(error, KeyError) and error.args:
        text = str(error.args[0])
    lines = text.splitlines()
    if len(lines) == 1:
        return _tidy(lines[0])
    best: tuple[int, int, str, list[str], str | None] | None = None
    frames: list[tuple[int, str, str]] = []  # (indent, kind, value)
    for raw in lines:
        if not raw.strip():
            continue
        indent = len(raw) - len(raw.lstrip())
        line = raw.strip().removeprefix("- ").strip()
        while frames and frames[-1][0] >= indent:
            frames.pop()
        key = _KEY.match(line)
        if key:
            frames.append((indent, "key", key.group(1)))
            line = key.group(2)
            if not line:
                continue
        cls = _CLASS.match(line)
        if cls:
            frames.append((indent, "class", cls.group(1)))
            continue
        if not line or line.startswith(_NOISE):
            continue
        keys = [v for _, kind, v in frames if kind == "key"]
        classes = [v for _, kind, v in frames if kind == "class"]
        depth = len(frames)
        if best is None or (depth, indent) > (best[0], best[1]):
            best = (depth, indent, line, keys, classes[-1] if classes else None)
    if best is None:
        return _tidy(lines[0])
    _, _, line, keys, cls = best
    where = ".".join(keys)
    option = _OPTION.match(line)
    if option:
        full = f"{where}.{option.group(1)}" if where else option.group(1)
        owner = cls or "this section"
        return f"unknown key '{full}': {owner} accepts no option '{option.group(1)}'"
    missing = _NO_ATTR.search(line)
    if missing:
        path = f"{missing.group(1)}.{missing.group(2)}"
        return f"{where}: unknown class_path '{path}' ({missing.group(0)})"
    no_module = _NO_MODULE.search(line)
    if no_module:
        return f"{where}: unknown class_path ({no_module.group(0)})"
    context = f" (class_path {cls})" if cls else ""
    return _tidy(f"{where}{context}: {line}" if where else line)


def _tidy(line: str) -> str:
    return " ".join(line.split())


def run_user_errors(prog: str, body: Callable[[], T]) -> T:
    """Run ``body``; report a user error as ``<prog>: error: <one line>`` and exit with 2.

    Args:
        prog: the console script's name, e.g. ``"lga-train"``.
        body: the recipe.

    Returns:
        Whatever ``body`` returns.

    Raises:
        SystemExit: with status 2 on a user error (the full traceback with ``LGA_TRACEBACK=1``).

    Example:
        >>> run_user_errors("demo", lambda: 3)
        3
    """
    try:
        return body()
    except USER_ERRORS as err:
        if os.environ.get("LGA_TRACEBACK") or isinstance(err, PROGRAMMING_ERRORS):
            raise
        print(f"{prog}: error: {one_line(err)}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


class ThreadsMixin:
    """Adds ``--num_threads`` to a LightningCLI: intra-op CPU threads, set before anything runs.

    On a small, busy CPU one thread per process is often many times faster than several
    contending threads; the default leaves torch's choice.
    """

    def add_arguments_to_parser(self, parser: Any) -> None:
        """Add ``--num_threads``."""
        parser.add_argument(
            "--num_threads",
            type=Optional[int],  # noqa: UP045 - jsonargparse reads the annotation at runtime
            default=None,
            help="CPU threads for torch (torch.set_num_threads); default: torch's choice.",
        )
        super().add_arguments_to_parser(parser)  # type: ignore[misc]

    def before_instantiate_classes(self) -> None:
        """Apply ``--num_threads``."""
        config = self.config  # type: ignore[attr-defined]
        subcommand = getattr(self, "subcommand", None)
        section = config.get(subcommand, config) if subcommand else config
        threads = section.get("num_threads")
        if threads:
            torch.set_num_threads(int(threads))
        super().before_instantiate_classes()  # type: ignore[misc]


def class_parser(prog: str, cls: type, description: str | None) -> Any:
    """A jsonargparse parser: ``--config`` and one argument per ``__init__`` parameter of ``cls``.

    Example:
        >>> class Study:
        ...     def __init__(self, epochs: int = 1) -> None:
        ...         self.epochs = epochs
        >>> class_parser("study", Study, "A study.").parse_args(["--epochs", "3"]).epochs
        3
    """
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser(
        prog=prog,
        description=(description or "").split("\n\n")[0],
        exit_on_error=False,
        default_env=False,
    )
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML config file")
    parser.add_class_arguments(cls, None, fail_untyped=True)
    return parser


def run_class(prog: str, parser: Any, cls: Callable[..., Any], args: list[str] | None) -> Any:
    """Parse ``args`` (``sys.argv[1:]`` when None), build ``cls`` and call its ``run()``.

    User errors are reported in one line (:func:`run_user_errors`).
    """

    def body() -> Any:
        cfg = parser.parse_args(list(sys.argv[1:] if args is None else args))
        init = parser.instantiate(cfg).as_dict()
        init.pop("config", None)
        return cls(**init).run()

    return run_user_errors(prog, body)
