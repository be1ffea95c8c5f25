"""Search spaces: the :class:`SearchSpace` protocol and NAS-Bench-201.

Example:
    >>> from lga_lightning.search.spaces import NB201Space, SearchSpace, nb201
    >>> isinstance(NB201Space(), SearchSpace), nb201.SIZE
    (True, 15625)
"""

from lga_lightning.search.spaces import nb201
from lga_lightning.search.spaces.base import SearchSpace
from lga_lightning.search.spaces.nb201 import NB201Space

__all__ = ["NB201Space", "SearchSpace", "nb201"]
