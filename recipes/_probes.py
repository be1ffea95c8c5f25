"""The study's probes: setting names, the one-class check, the ``undefined`` status."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

PROXY_SETTING = "proxies"
"""The key of the meter that measures the zero-cost proxies (their entry is ``"proxies"``)."""


def setting_name(size: int, mode: str, split: str = "train") -> str:
    """The name of a kernel setting: ``n<size>-<bn mode>``, ``-test`` for a test-image probe.

    Example:
        >>> setting_name(64, "train"), setting_name(64, "train", "test")
        ('n64-train', 'n64-train-test')
    """
    return f"n{size}-{mode}" + ("-test" if split == "test" else "")


def check_probe_classes(labels: Tensor, what: str) -> None:
    """Refuse a probe whose labels hold one class: LGA is undefined on it (every value nan).

    Example:
        >>> check_probe_classes(torch.tensor([0, 1, 0]), "the n3 probe")
        >>> check_probe_classes(torch.tensor([2, 2]), "the n2 probe")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: the n2 probe holds one class (2): LGA is undefined on it; ...
    """
    classes = torch.unique(torch.as_tensor(labels))
    if len(classes) < 2:
        raise ValueError(
            f"{what} holds one class ({', '.join(str(int(c)) for c in classes)}): LGA is "
            "undefined on it; draw a class-balanced probe (the default), or give "
            "`probe_indices`/`probe_file` with several classes."
        )


def probe_name(key: Any) -> str:
    """How messages name a study's probe: ``(size, split)`` or the proxies' batch key.

    Example:
        >>> probe_name((64, "test"))
        'the test probe of 64 images'
    """
    if key == PROXY_SETTING:
        return "the zero-cost proxies' batch"
    size, split = key
    return f"the {split} probe of {size} images"


def undefined_lga(entries: Mapping[int, Mapping[str, Any]]) -> bool:
    """Whether any measured LGA is nan (the record is then ``undefined``, not ``ok``)."""
    for entry in entries.values():
        for values in entry.get("ntk", {}).values():
            value = values.get("lga")
            if value is not None and math.isnan(value):
                return True
    return False
