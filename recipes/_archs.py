"""Which architectures a study measures: a list, the first ``k`` of a space, or a seeded sample."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any


def study_architectures(
    space: Any,
    archs: Sequence[str] | None = None,
    sample: int | None = None,
    first: int | None = None,
    arch_seed: int = 0,
) -> list[str]:
    """The architectures of a study, encoded as strings, in study order.

    Args:
        space: the search space (``encode``, ``decode``, ``enumerate``, ``sample``, ``size``).
        archs: an explicit list, re-encoded (so that each is checked against the space).
        sample: a seeded random sample of this many distinct architectures.
        first: the first ``first`` architectures of the space's enumeration.
        arch_seed: the seed of ``sample``.

    Raises:
        ValueError: when ``sample`` exceeds the space's size.

    Example:
        >>> from lga_lightning.search.spaces import NB201Space
        >>> space = NB201Space(C=4, N=1)
        >>> study_architectures(space, first=2) == study_architectures(space, first=3)[:2]
        True
        >>> len(set(study_architectures(space, sample=5, arch_seed=1)))
        5
    """
    if archs:
        return [space.encode(space.decode(a)) for a in archs]
    if first:
        out = []
        for arch in space.enumerate():
            out.append(space.encode(arch))
            if len(out) == first:
                break
        return out
    size = space.size
    if sample > size:
        raise ValueError(f"`sample={sample}` exceeds the {size} architectures of the space.")
    rng = random.Random(arch_seed)
    seen: dict[str, None] = {}
    while len(seen) < sample:
        seen.setdefault(space.encode(space.sample(rng)), None)
    return list(seen)
