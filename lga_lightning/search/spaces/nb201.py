"""The NAS-Bench-201 search space: :class:`NB201Space`, plus the cells' and networks' functions.

The cells' strings live in :mod:`lga_lightning.search.spaces.nb201_cells` (parsing, enumeration
order, canonical forms, all documented there), the networks in
:mod:`lga_lightning.search.spaces.nb201_network`; this module joins them into the space and keeps
every name where 0.2 users found it (``nb201.parse``, ``nb201.build``, ``nb201.NB201Network``).

**Networks** (:func:`build`) follow the NAS-Bench-201 skeleton exactly (xautodl's
``TinyNetwork``/``InferCell``/``ResNetBasicblock``, whose module and parameter names they keep):
a 3x3 conv + BN stem, three stages of ``N`` cells with ``C``, ``2C``, ``4C`` channels joined
by residual reduction blocks, BN-ReLU, global average pooling and a linear ``classifier``.

Example:
    >>> import torch
    >>> from lga_lightning.search.spaces import nb201
    >>> arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    >>> nb201.format(nb201.parse(arch)) == arch
    True
    >>> net = nb201.build(arch, C=4, N=1, num_classes=10)
    >>> net(torch.zeros(2, 3, 8, 8)).shape
    torch.Size([2, 10])
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from lga_lightning.search.spaces.base import RngLike
from lga_lightning.search.spaces.nb201_cells import (
    EDGES,
    NUM_CANONICAL,
    NUM_NODES,
    OPS,
    SIZE,
    ArchStringError,
    Cell,
    _as_cell,
    all_archs,
    canonical,
    format,
    from_index,
    index,
    live_edges,
    mutate,
    parse,
    sample,
    validate,
)
from lga_lightning.search.spaces.nb201_network import (
    InferCell,
    NB201Network,
    Pooling,
    ReLUConvBN,
    ResNetBasicblock,
    Zero,
    build,
)


class NB201Space:
    """NAS-Bench-201 as a :class:`~lga_lightning.search.spaces.base.SearchSpace`; archs are strings.

    Args:
        C: default channels passed to :func:`build`.
        N: default cells per stage passed to :func:`build`.
        **build_kwargs: further defaults for :func:`build` (``affine``, ``in_channels``, ...).

    Example:
        >>> import torch
        >>> space = NB201Space(C=4, N=1)
        >>> space.size
        15625
        >>> arch = space.sample(0)
        >>> space.decode(space.encode(arch)) == arch
        True
        >>> space.build(arch, num_classes=3)(torch.zeros(2, 3, 8, 8)).shape
        torch.Size([2, 3])
    """

    size: int = SIZE

    def __init__(self, C: int = 16, N: int = 5, **build_kwargs: Any) -> None:  # noqa: N803
        self.build_kwargs = {"C": C, "N": N, **build_kwargs}

    def sample(self, rng: RngLike = None) -> str:
        """See :func:`sample`."""
        return sample(rng)

    def mutate(self, arch: str, rng: RngLike = None) -> str:
        """See :func:`mutate`."""
        return mutate(arch, rng)

    def build(self, arch: str, num_classes: int = 10, **kwargs: Any) -> NB201Network:
        """See :func:`build`; ``kwargs`` override the defaults given at construction."""
        return build(arch, num_classes=num_classes, **{**self.build_kwargs, **kwargs})

    def encode(self, arch: str | Sequence[str]) -> str:
        """The arch string (validated)."""
        return format(_as_cell(arch))

    def decode(self, text: str) -> str:
        """Validate and return an arch string; raises :class:`ArchStringError` if malformed."""
        return validate(text)

    def canonical(self, arch: str | Sequence[str]) -> str:
        """See :func:`canonical`."""
        return canonical(arch)

    def enumerate(self) -> Iterator[str]:
        """See :func:`all_archs`."""
        return all_archs()

    def benchmark_index(self, arch: str) -> int:
        """NAS-Bench-201's own index of ``arch`` (not :func:`index`, this module's order)."""
        from lga_lightning.search.ground_truth.embedded import benchmark_index

        return benchmark_index(self.encode(arch))

    def from_benchmark_index(self, index: int) -> str:
        """The arch string of NAS-Bench-201's cell ``index``; inverse of :meth:`benchmark_index`."""
        from lga_lightning.search.ground_truth.embedded import benchmark_arch

        return benchmark_arch(index)

    def __repr__(self) -> str:
        return f"NB201Space({', '.join(f'{k}={v!r}' for k, v in self.build_kwargs.items())})"


__all__ = [
    "EDGES",
    "NUM_NODES",
    "Cell",
    "NUM_CANONICAL",
    "OPS",
    "SIZE",
    "ArchStringError",
    "InferCell",
    "NB201Network",
    "NB201Space",
    "Pooling",
    "ReLUConvBN",
    "ResNetBasicblock",
    "Zero",
    "all_archs",
    "build",
    "canonical",
    "format",
    "from_index",
    "index",
    "live_edges",
    "mutate",
    "parse",
    "sample",
    "validate",
]
