"""What every recipe shares: user errors reported as one line instead of a traceback.

A wrong config key, an unknown ``class_path``, a YAML syntax error, a missing data file, an
output folder that cannot be written or is in use by another run: these are the user's to fix,
so the recipes print ``<prog>: error: <what and where, and the fix>`` and exit with status 2.
Any other exception keeps its traceback. Set the environment variable ``LGA_TRACEBACK=1`` to get
the full traceback for user errors too.
"""

from __future__ import annotations

import errno
import os
import re
import sys
from argparse import ArgumentError
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Optional, TypeVar, Union

import torch
from lightning.pytorch.utilities.exceptions import MisconfigurationException

from lga_lightning._compat import renamed_hint
from lga_lightning.utils.lock import OutputLockedError
from lga_lightning.utils.threads import choose_threads
from recipes._quiet import quiet_third_party

T = TypeVar("T")

USER_ERRORS: tuple[type[BaseException], ...] = (
    ArgumentError,
    FileNotFoundError,
    NotADirectoryError,
    LookupError,
    ValueError,
    MisconfigurationException,
    OutputLockedError,
)
"""Exceptions that mean "the configuration or the files are wrong", reported in one line."""

PROGRAMMING_ERRORS: tuple[type[BaseException], ...] = (KeyError, IndexError)
"""Lookup errors that signal a bug, not a configuration problem: always shown in full."""

_KEY = re.compile(r'^Parser key "([^"]+)":?\s*(.*)$')
_CLASS = re.compile(r"^Problem with given class_path '([^']+)':?$")
_OPTION = re.compile(r"^Option '([^']+)' is not accepted$")
_NO_ATTR = re.compile(r"module '([^']+)' has no attribute '([^']+)'")
_NO_MODULE = re.compile(r"No module named '([^']+)'")
_JSONARGPARSE = ('Parser key "', "Problem with given class_path", "Does not validate against")
_CARET = re.compile(r"^\s*\^+\s*$")
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
    if len(lines) == 1 or not any(marker in text for marker in _JSONARGPARSE):
        return _tidy(lines[0])  # a plain message: its first line says what is wrong
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
        if not line or line.startswith(_NOISE) or _CARET.match(line):
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


def run_user_errors(prog: str, body: Callable[[], T], args: Any = None) -> T:
    """Run ``body``; report a user error as ``<prog>: error: <one line>`` and exit with 2.

    Before ``body`` runs, every YAML file named by ``--config`` in ``args`` (default:
    ``sys.argv[1:]``) is read, so that a syntax error names the file and its line. A file system
    error (a folder that cannot be written, a path through a file) is a user error too.
    Third-party noise (Lightning's tips, its ``LeafSpec`` deprecation) is filtered first
    (:func:`recipes._quiet.quiet_third_party`).

    Args:
        prog: the console script's name, e.g. ``"lga-train"``.
        body: the recipe.
        args: the recipe's command-line arguments (``None``: ``sys.argv[1:]``; a dict: no check).

    Returns:
        Whatever ``body`` returns.

    Raises:
        SystemExit: with status 2 on a user error (the full traceback with ``LGA_TRACEBACK=1``).

    Example:
        >>> run_user_errors("demo", lambda: 3)
        3
    """
    quiet_third_party()
    try:
        check_config_files(sys.argv[1:] if args is None else args)
        return body()
    except USER_ERRORS as err:
        if os.environ.get("LGA_TRACEBACK") or isinstance(err, PROGRAMMING_ERRORS):
            raise
        line = os_error_line(err) if isinstance(err, OSError) else one_line(err)
        report(prog, renamed_hint(line))
    except OSError as err:
        if os.environ.get("LGA_TRACEBACK") or err.errno not in _USER_ERRNOS:
            raise
        report(prog, os_error_line(err))


def report(prog: str, line: str) -> None:
    """Print ``<prog>: error: <line>`` on stderr and exit with status 2.

    Raises:
        SystemExit: always, with status 2.
    """
    print(f"{prog}: error: {line}", file=sys.stderr, flush=True)
    raise SystemExit(2) from None


_USER_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOTDIR,
    errno.EEXIST,
    errno.EISDIR,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.ENOENT,
}
"""Errors of the file system the user can fix (permissions, a file in the way, a full disk)."""


def os_error_line(error: OSError) -> str:
    """One line for a file system error: the path, what is wrong, and what to do.

    Example:
        >>> os_error_line(PermissionError(13, "Permission denied", "/data/out"))
        "cannot access '/data/out': Permission denied; fix its permissions or choose another path."
    """
    if error.filename is None:
        return one_line(error)
    path = os.fspath(error.filename)
    what = error.strerror or type(error).__name__
    if error.errno == errno.ENOENT:
        return f"{path!r} does not exist; check the path (relative to {os.getcwd()})."
    if error.errno == errno.ENOTDIR:
        return f"{path!r}: part of this path is a file, not a folder; choose another path."
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        folder = os.path.dirname(os.path.abspath(path))
        return (
            f"cannot write {path!r}: {what}; free space in {folder} (or choose another "
            "results_dir / output folder), then rerun: what was stored is kept."
        )
    if error.errno in (errno.EEXIST, errno.EISDIR):
        return f"{path!r}: {what}; choose another path or move what is there."
    return f"cannot access {path!r}: {what}; fix its permissions or choose another path."


def config_files(args: Sequence[str] | Mapping[str, Any] | None) -> list[str]:
    """The files named by ``--config`` (``--config X`` or ``--config=X``) in ``args``.

    Example:
        >>> config_files(["fit", "--config", "a.yaml", "--config=b.yaml", "--x", "1"])
        ['a.yaml', 'b.yaml']
    """
    if not isinstance(args, Sequence) or isinstance(args, str):
        return []
    args = [str(a) for a in args]
    paths = []
    for i, arg in enumerate(args):
        if arg.startswith("--config="):
            paths.append(arg.split("=", 1)[1])
        elif arg == "--config" and i + 1 < len(args):
            paths.append(args[i + 1])
    return paths


def check_config_files(args: Sequence[str] | Mapping[str, Any] | None) -> None:
    r"""Read each ``--config`` YAML file; a syntax error names the file, line and column.

    Missing files are left to the parser (it names them).

    Raises:
        ValueError: ``<file>, line L, column C: invalid YAML (<cause>); ...``.

    Example:
        >>> import tempfile, pathlib
        >>> bad = pathlib.Path(tempfile.mkdtemp()) / "bad.yaml"
        >>> _ = bad.write_text("model:\n  init_args: {C: [4}\n")
        >>> check_config_files(["--config", str(bad)])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: ...bad.yaml, line 2, column 20: invalid YAML (expected ',' or ']', ...
    """
    import yaml

    for path in config_files(args):
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            cause = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ValueError(
                f"{path}{where}: invalid YAML ({cause}); fix the file there (a missing bracket, "
                "quote or colon, or a tab used for indentation)."
            ) from None


class ThreadsMixin:
    """Adds ``--num_threads`` to a LightningCLI: torch's intra-op CPU threads per process.

    ``"auto"`` fits the cores and the processes
    (:func:`lga_lightning.utils.threads.choose_threads`), an integer is used as given, ``null``
    leaves torch's choice. With ``threads_to_model`` the value goes to the model's ``num_threads``
    (the search applies and prints it when its fit starts); otherwise it is set before anything is
    built. Subclasses check the parsed settings in :meth:`check_config`, which runs right after
    parsing (before seeding and instantiation).
    """

    threads_default: Any = None
    """The default of ``--num_threads``."""

    threads_to_model = False
    """Whether ``--num_threads`` is the model's ``num_threads`` (linked) instead of set here."""

    def add_arguments_to_parser(self, parser: Any) -> None:
        """Add ``--num_threads``."""
        parser.add_argument(
            "--num_threads",
            type=Optional[Union[int, Literal["auto"]]],  # noqa: UP007,UP045 - read at runtime
            default=self.threads_default,
            help=(
                "Torch's intra-op CPU threads per process: auto (one thread below 4 cores per "
                "process, else cores // processes), a number, or null for torch's default."
            ),
        )
        if self.threads_to_model:
            parser.link_arguments("num_threads", "model.num_threads")
        super().add_arguments_to_parser(parser)  # type: ignore[misc]

    def parse_arguments(self, parser: Any, args: Any) -> None:
        """Parse, then :meth:`check_config` the chosen section before anything else runs."""
        super().parse_arguments(parser, args)  # type: ignore[misc]
        config = self.config  # type: ignore[attr-defined]
        subcommand = config.get("subcommand")
        self.check_config(config.get(subcommand, config) if subcommand else config)

    def check_config(self, config: Any) -> None:
        """Check the parsed settings (before seeding and instantiation); raise on a user error.

        Args:
            config: the parsed settings (the subcommand's section, if any).
        """

    def before_instantiate_classes(self) -> None:
        """Apply ``--num_threads`` (unless the model does)."""
        config = self.config  # type: ignore[attr-defined]
        subcommand = getattr(self, "subcommand", None)
        section = config.get(subcommand, config) if subcommand else config
        threads, _ = choose_threads(section.get("num_threads"))
        if threads and not self.threads_to_model:
            torch.set_num_threads(threads)
        super().before_instantiate_classes()  # type: ignore[misc]


def class_parser(prog: str, cls: type, description: str | None) -> Any:
    """A jsonargparse parser: ``--config`` and one argument per ``__init__`` parameter of ``cls``.

    Its help starts with the first paragraph of ``description`` (:mod:`recipes._help`).

    Example:
        >>> class Study:
        ...     def __init__(self, epochs: int = 1) -> None:
        ...         self.epochs = epochs
        >>> class_parser("study", Study, "A study.").parse_args(["--epochs", "3"]).epochs
        3
    """
    from jsonargparse import ActionConfigFile

    from recipes._help import HelpParser

    parser = HelpParser(
        prog=prog,
        description=(description or "").split("\n\n")[0],
        usage="%(prog)s --config FILE [--KEY VALUE ...]",
        exit_on_error=False,
        default_env=False,
    )
    parser.add_argument("--config", action=ActionConfigFile, help="A YAML config file.")
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

    return run_user_errors(prog, body, args)
