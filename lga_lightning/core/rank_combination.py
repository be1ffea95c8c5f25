"""Combine several signals (zero-cost proxies, NTK metrics) over a set of candidates by rank.

Each signal is ranked over the candidates so that the best gets the highest rank ``N`` and the
worst rank ``1``; ties share the average of their ranks (:func:`scipy.stats.rankdata`,
``method="average"``); ``nan`` values rank below every number (tied among themselves at the
average of the lowest ranks), so a candidate a signal cannot score is treated as its worst.
Ranks are then summed (:func:`sum_of_ranks`) or, as AZ-NAS (Lee & Ham, CVPR 2024) combines its
proxies, their logs ``log(rank / N)`` are summed (:func:`sum_of_log_ranks`), which punishes a
candidate that one signal ranks near the bottom more than a plain sum does. Higher combined
scores are better.

Example:
    >>> sum_of_ranks({"a": [1.0, 3.0, 2.0], "b": [0.5, 0.1, 0.2]}, {"a": 1, "b": -1}).tolist()
    [2.0, 6.0, 4.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

Columns = Mapping[str, ArrayLike] | Sequence[ArrayLike]
Directions = Mapping[str, int] | Sequence[int] | None


def rank_best_highest(values: ArrayLike, direction: int = 1) -> np.ndarray:
    """Ranks ``1..N`` with the best value ranked ``N``; average ranks for ties, ``nan`` worst.

    Args:
        values: one signal over ``N`` candidates.
        direction: ``+1`` when higher values are better, ``-1`` when lower values are.

    Returns:
        Float ranks, shape ``(N,)``.

    Example:
        >>> rank_best_highest([0.3, float("nan"), 0.9, 0.3]).tolist()
        [2.5, 1.0, 4.0, 2.5]
        >>> rank_best_highest([0.3, 0.1, 0.9], direction=-1).tolist()
        [2.0, 3.0, 1.0]
    """
    if direction not in (1, -1):
        raise ValueError(f"`direction` must be +1 or -1, got {direction!r}.")
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"a signal must be one value per candidate, got shape {array.shape}.")
    oriented = np.where(np.isnan(array), -np.inf, direction * array)
    return np.asarray(rankdata(oriented, method="average"), dtype=np.float64)


def _ranks(columns: Columns, directions: Directions) -> np.ndarray:
    if isinstance(columns, Mapping):
        names = list(columns)
        signals = [columns[name] for name in names]
        if directions is None:
            signs = [1] * len(names)
        elif isinstance(directions, Mapping):
            missing = [name for name in names if name not in directions]
            if missing:
                raise KeyError(f"no direction for the signals {missing}.")
            signs = [directions[name] for name in names]
        else:
            signs = list(directions)
    else:
        if isinstance(directions, Mapping):
            raise TypeError("pass the columns as a mapping to give directions by name.")
        signals = list(columns)
        signs = [1] * len(signals) if directions is None else list(directions)
    if not signals:
        raise ValueError("no signal to combine.")
    if len(signs) != len(signals):
        raise ValueError(f"{len(signals)} signals but {len(signs)} directions.")
    ranks = [rank_best_highest(s, d) for s, d in zip(signals, signs, strict=True)]
    if len({len(r) for r in ranks}) != 1:
        raise ValueError(
            f"signals cover different numbers of candidates: {[len(r) for r in ranks]}."
        )
    return np.stack(ranks)


def sum_of_ranks(columns: Columns, directions: Directions = None) -> np.ndarray:
    """Sum over signals of each candidate's rank (best ``N``); higher is better.

    Args:
        columns: ``{name: values}`` or a sequence of value arrays, each one value per candidate.
        directions: ``{name: +1 or -1}`` (or a sequence aligned with ``columns``); ``None``
            means every signal is higher-is-better.

    Returns:
        The combined score per candidate, shape ``(N,)``.

    Example:
        >>> sum_of_ranks([[1.0, 2.0], [5.0, 4.0]]).tolist()
        [3.0, 3.0]
    """
    return np.asarray(_ranks(columns, directions).sum(0), dtype=np.float64)


def sum_of_log_ranks(columns: Columns, directions: Directions = None) -> np.ndarray:
    """Sum over signals of ``log(rank / N)`` (AZ-NAS); ``0`` is best, higher is better.

    Args:
        columns: as in :func:`sum_of_ranks`.
        directions: as in :func:`sum_of_ranks`.

    Returns:
        The combined score per candidate, shape ``(N,)``, at most ``0``.

    Example:
        >>> import math
        >>> out = sum_of_log_ranks([[1.0, 2.0], [5.0, 4.0]])
        >>> bool(np.allclose(out, [math.log(1 / 2), math.log(1 / 2)]))
        True
    """
    ranks = _ranks(columns, directions)
    return np.asarray(np.log(ranks / ranks.shape[1]).sum(0), dtype=np.float64)
