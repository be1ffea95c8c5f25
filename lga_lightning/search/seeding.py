"""Seeds derived from the search seed and a candidate's identity, never from history.

Every random choice of a search — the architectures a strategy proposes, a candidate's weight
initialisation, the order of its training data in each epoch — draws from a generator seeded by
``derive_seed(search_seed, *keys)``. The same candidate therefore trains identically whichever
process trains it, whatever ran before it, and after any interruption.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed determined by ``seed`` and ``keys`` (stable across processes and runs).

    Args:
        seed: the search seed.
        *keys: what the seed is for, e.g. ``("init", 3)`` for candidate 3's weights.

    Returns:
        An integer in ``[0, 2**63)``.

    Example:
        >>> derive_seed(0, "init", 3) == derive_seed(0, "init", 3)
        True
        >>> derive_seed(0, "init", 3) == derive_seed(0, "init", 4)
        False
    """
    text = repr((int(seed), *keys)).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


def python_rng(seed: int, *keys: object) -> random.Random:
    """A ``random.Random`` seeded with :func:`derive_seed`.

    Example:
        >>> python_rng(1, "sample", 0).random() == python_rng(1, "sample", 0).random()
        True
    """
    return random.Random(derive_seed(seed, *keys))


def seed_global(seed: int) -> None:
    """Seed torch (all devices), NumPy and ``random`` — what data loading and augmentation use.

    Example:
        >>> seed_global(7); a = torch.rand(1); seed_global(7); bool(a == torch.rand(1))
        True
    """
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
