"""The interface a search space offers to the architecture search.

The search loop (``lga_lightning.search``) depends only on :class:`SearchSpace`, so any space
that implements these few members can be searched: NAS-Bench-201
(:class:`lga_lightning.search.spaces.nb201.NB201Space`) is one implementation.

An *architecture* is whatever object the space chooses (NAS-Bench-201 uses its arch string).
Results files store architectures through :meth:`SearchSpace.encode`, so ``encode`` must return a
plain string that :meth:`SearchSpace.decode` turns back into an equal architecture.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np
from torch import nn

RngLike = int | random.Random | np.random.Generator | None
"""What ``sample``/``mutate`` accept as randomness: a seed, a ``random.Random``, a NumPy
``Generator``, or ``None`` (fresh, unseeded randomness)."""


@runtime_checkable
class SearchSpace(Protocol):
    """A space of architectures the search can sample, mutate, build and store.

    Attributes:
        size: number of architectures in the space (``float("inf")`` for infinite spaces).

    Example:
        >>> from lga_lightning.search.spaces.nb201 import NB201Space
        >>> isinstance(NB201Space(), SearchSpace)
        True
    """

    size: int | float

    def sample(self, rng: RngLike = None) -> Any:
        """Draw one architecture; the same seed always gives the same architecture."""
        ...

    def mutate(self, arch: Any, rng: RngLike = None) -> Any:
        """Return a neighbour of ``arch`` (the regularised-evolution move)."""
        ...

    def build(self, arch: Any, num_classes: int, **kwargs: Any) -> nn.Module:
        """Build a freshly initialised network for ``arch`` that returns logits."""
        ...

    def encode(self, arch: Any) -> str:
        """Serialise ``arch`` to a string (``decode`` inverts it)."""
        ...

    def decode(self, text: str) -> Any:
        """Parse a string written by ``encode``; raises ``ValueError`` when it is malformed."""
        ...

    def canonical(self, arch: Any) -> str:
        """A string equal for architectures known to compute the same function."""
        ...

    def enumerate(self) -> Iterator[Any]:
        """Iterate over every architecture in a fixed order.

        Raises:
            NotImplementedError: for spaces too large or infinite to enumerate.
        """
        ...


def as_rng(rng: RngLike) -> random.Random:
    """Turn a seed, ``random.Random`` or NumPy ``Generator`` into a ``random.Random``.

    A ``random.Random`` is returned as is (so successive calls advance it); a NumPy generator
    seeds a new ``random.Random`` from one draw (advancing the generator).

    Args:
        rng: an ``int`` seed, a ``random.Random``, a ``numpy.random.Generator`` or ``None``.

    Returns:
        A ``random.Random``.

    Raises:
        TypeError: for any other type.

    Example:
        >>> as_rng(0).random() == as_rng(0).random()
        True
    """
    if isinstance(rng, random.Random):
        return rng
    if rng is None:
        return random.Random()
    if isinstance(rng, np.random.Generator):
        return random.Random(int(rng.integers(0, 2**63 - 1)))
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return random.Random(int(rng))
    raise TypeError(
        f"`rng` must be an int seed, a random.Random, a numpy.random.Generator or None, "
        f"got {type(rng).__name__}"
    )
