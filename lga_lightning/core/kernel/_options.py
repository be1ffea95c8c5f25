"""Option types and the choices every kernel option accepts (read by the option checks too)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from torch import Tensor, nn

Output = Literal["sum", "trace", "full"]
BNMode = Literal["train", "eval"]
ParamPreset = Literal["paper", "weights", "all"]
ParamSelection = ParamPreset | Callable[[str, nn.Parameter], bool]
OutputFn = Callable[[Any], Tensor]
Rows = Sequence[int] | slice | range | None

DEFAULT_CHUNK_SIZE = 32
"""Samples per batched gradient computation unless told otherwise."""

OUTPUTS: tuple[str, ...] = ("sum", "trace", "full")
BN_MODES: tuple[str, ...] = ("train", "eval")
PRESETS: tuple[str, ...] = ("paper", "weights", "all")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """Raise one line naming the choices when ``value`` is not one of them.

    Example:
        >>> check_choice("output", "sum", OUTPUTS)
        >>> check_choice("output", "mean", OUTPUTS)
        Traceback (most recent call last):
        ...
        ValueError: `output` can be 'sum', 'trace', 'full'; got 'mean'.
    """
    if value not in choices:
        raise ValueError(f"`{name}` can be {', '.join(map(repr, choices))}; got {value!r}.")


def check_chunk_size(chunk_size: Any) -> None:
    """Raise one line unless ``chunk_size`` is a positive integer or ``None``.

    Example:
        >>> check_chunk_size(None)
        >>> check_chunk_size(0)
        Traceback (most recent call last):
        ...
        ValueError: `chunk_size` must be a positive integer or None, got 0.
    """
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(f"`chunk_size` must be a positive integer or None, got {chunk_size!r}.")
