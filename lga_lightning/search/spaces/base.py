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
from typing import Any, Protocol, runtime_checkable

import numpy as np

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

    # Parameters and results are typed Any: the recipes' parsers (jsonargparse) accept a class
    # for a ``space`` only when each of its annotations equals the protocol's, and a space's
    # own, narrower types (or none) must pass.

    def sample(self, rng: Any = None) -> Any:
        """Draw one architecture (``rng``: a :data:`RngLike`); a seed always gives the same."""
        ...

    def mutate(self, arch: Any, rng: Any = None) -> Any:
        """Return a neighbour of ``arch`` (the regularised-evolution move; ``rng``: RngLike)."""
        ...

    def build(self, arch: Any, num_classes: Any, **kwargs: Any) -> Any:
        """Build a freshly initialised ``nn.Module`` for ``arch`` that returns logits."""
        ...

    def encode(self, arch: Any) -> Any:
        """Serialise ``arch`` to a plain string (``decode`` inverts it)."""
        ...

    def decode(self, text: Any) -> Any:
        """Parse a string written by ``encode``; raises ``ValueError`` when it is malformed."""
        ...

    def canonical(self, arch: Any) -> Any:
        """A string equal for architectures known to compute the same function."""
        ...

    def enumerate(self) -> Any:
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
