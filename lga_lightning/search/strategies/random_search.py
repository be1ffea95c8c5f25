"""``RandomSearch``: uniform samples, one record each after its last epoch."""

from __future__ import annotations

from typing import Any

from lga_lightning.search.strategies.plain import Plain


class RandomSearch(Plain):
    """Random search: ``num_candidates`` uniform samples, each trained ``epochs`` epochs.

    One record per candidate, after its last epoch. Samples have distinct canonical forms while
    the space allows it.

    Args:
        num_candidates: architectures to evaluate.
        epochs: training epochs per candidate.

    Example:
        >>> from lga_lightning.search.spaces import NB201Space
        >>> s = RandomSearch(num_candidates=3)
        >>> s.bind(NB201Space(), seed=0)
        >>> [s.propose().candidate for _ in range(3)], s.propose(), s.done
        ([0, 1, 2], None, False)
    """

    def __init__(self, num_candidates: int = 10, epochs: int = 1) -> None:
        super().__init__(None, num_candidates, epochs, (epochs,))

    def _config(self) -> dict[str, Any]:
        return {"num_candidates": self.num_candidates, "epochs": self.epochs}
