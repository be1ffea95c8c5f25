"""Stable descriptions of settings, so that a rerun with other settings is recognised."""

from __future__ import annotations

import functools
from typing import Any


def describe(value: Any) -> Any:
    """A stable description of a setting for a results-file header (no memory addresses).

    Example:
        >>> import functools, torch
        >>> describe(functools.partial(torch.optim.SGD, lr=0.1))
        'torch.optim.sgd.SGD(lr=0.1)'
        >>> describe(None), describe(3)
        (None, 3)
    """
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, functools.partial):  # e.g. an optimizer class with its init_args
        target = next((a for a in reversed(value.args) if isinstance(a, type)), value.func)
        args = ", ".join(f"{k}={describe(v)!r}" for k, v in sorted(value.keywords.items()))
        return f"{describe(target)}({args})"
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    text = repr(value)
    if " at 0x" in text:
        name = getattr(value, "__qualname__", type(value).__qualname__)
        return f"{getattr(value, '__module__', type(value).__module__)}.{name}"
    return text
