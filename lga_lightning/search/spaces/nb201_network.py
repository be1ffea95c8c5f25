"""The NAS-Bench-201 network of a cell (the benchmark's ``TinyNetwork``), built from its string.

:func:`build` is re-exported by :mod:`lga_lightning.search.spaces.nb201`, where the strings live.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from lga_lightning.search.spaces.nb201_cells import EDGES, NUM_NODES, Cell, format, parse


class ReLUConvBN(nn.Module):
    """``nor_conv_kxk``: ReLU, ``k x k`` convolution without bias, BatchNorm."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel_size: int,
        stride: int,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_running_stats),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Apply ReLU-Conv-BN."""
        return self.op(x)


class Pooling(nn.Module):
    """``avg_pool_3x3``: 3x3 average pooling, stride 1, padding 1, ``count_include_pad=False``."""

    def __init__(self) -> None:
        super().__init__()
        self.op = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x: Tensor) -> Tensor:
        """Average-pool ``x``."""
        return self.op(x)


class Zero(nn.Module):
    """``none``: multiplies by zero, so the result stays in the autograd graph."""

    def forward(self, x: Tensor) -> Tensor:
        """Return ``0 * x``."""
        return x.mul(0.0)


def _make_op(op: str, channels: int, affine: bool, track_running_stats: bool) -> nn.Module:
    """Module for one cell edge (stride 1, ``channels`` in and out)."""
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "avg_pool_3x3":
        return Pooling()
    kernel = 1 if op == "nor_conv_1x1" else 3
    return ReLUConvBN(channels, channels, kernel, 1, affine, track_running_stats)


class InferCell(nn.Module):
    """One NAS-Bench-201 cell: node ``j`` is the sum of its incoming edges' ops."""

    def __init__(
        self, ops: Cell, channels: int, affine: bool = True, track_running_stats: bool = True
    ) -> None:
        super().__init__()
        self.ops = tuple(ops)
        self.layers = nn.ModuleList(
            _make_op(op, channels, affine, track_running_stats) for op in self.ops
        )

    def forward(self, x: Tensor) -> Tensor:
        """Compute nodes 1..3 in order and return node 3."""
        nodes = [x]
        for target in range(1, NUM_NODES):
            terms = [
                self.layers[k](nodes[source]) for k, (source, j) in enumerate(EDGES) if j == target
            ]
            nodes.append(sum(terms[1:], terms[0]))
        return nodes[-1]


class ResNetBasicblock(nn.Module):
    """Residual reduction block between stages (stride 2, channels ``c_in`` -> ``c_out``).

    ``conv_a`` (ReLU-Conv3x3/2-BN), ``conv_b`` (ReLU-Conv3x3-BN), plus the shortcut
    ``downsample`` = AvgPool2d(2) then a bias-free 1x1 conv, as in NAS-Bench-201.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(c_in, c_out, kernel_size=1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Return ``downsample(x) + conv_b(conv_a(x))``."""
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """The NAS-Bench-201 network of one cell (see :func:`build`); ``forward`` returns logits.

    Attributes:
        arch: the arch string.
        stem: 3x3 conv (no bias) + BatchNorm.
        cells: ``N`` cells, reduction block, ``N`` cells, reduction block, ``N`` cells.
        lastact: BatchNorm + ReLU.
        global_pooling: ``AdaptiveAvgPool2d(1)``.
        classifier: the final ``nn.Linear``.
    """

    def __init__(
        self,
        arch: str,
        C: int = 16,  # noqa: N803 - the benchmark's name
        N: int = 5,  # noqa: N803
        num_classes: int = 10,
        in_channels: int = 3,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        for name, value in (("C", C), ("N", N), ("num_classes", num_classes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}")
        ops = parse(arch)
        self.arch = arch
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, C, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(C)
        )
        self.cells = nn.ModuleList()
        channels = C
        for stage in range(3):
            if stage > 0:
                self.cells.append(ResNetBasicblock(channels, 2 * channels))
                channels *= 2
            for _ in range(N):
                self.cells.append(InferCell(ops, channels, affine, track_running_stats))
        self.lastact = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Return the logits, shape ``(n, num_classes)``."""
        feature = self.stem(x)
        for cell in self.cells:
            feature = cell(feature)
        out = self.global_pooling(self.lastact(feature)).flatten(1)
        return self.classifier(out)

    def extra_repr(self) -> str:
        """Show the arch string."""
        return f"arch={self.arch!r}"


def build(
    arch: str | Sequence[str],
    C: int = 16,  # noqa: N803 - the benchmark's name
    N: int = 5,  # noqa: N803
    num_classes: int = 10,
    in_channels: int = 3,
    affine: bool = True,
    track_running_stats: bool = True,
) -> NB201Network:
    """Build the NAS-Bench-201 network of a cell, freshly initialised (PyTorch defaults).

    Layout (NAS-Bench-201 / xautodl ``TinyNetwork``): stem 3x3 conv (``in_channels`` -> ``C``,
    no bias) + BN; ``N`` cells at ``C`` channels; a ``ResNetBasicblock`` (stride 2) to ``2C``;
    ``N`` cells; a ``ResNetBasicblock`` to ``4C``; ``N`` cells; BN + ReLU; global average pooling;
    ``classifier = nn.Linear(4C, num_classes)``. Cell ops: ``nor_conv_kxk`` = ReLU-Conv-BN,
    ``avg_pool_3x3`` = AvgPool2d(3, 1, 1, count_include_pad=False), ``skip_connect`` = identity,
    ``none`` = ``0 * x``. Modules are created, hence initialised, in the order of the official
    code, and keep its module and parameter names.

    Unlike the official network, ``forward`` returns only the logits (not ``(features, logits)``).
    Every cell works, including all-``none`` cells and cells whose output is unreachable: their
    output is an exact zero that still carries a ``grad_fn`` (``none`` multiplies by zero), so the
    logits are differentiable; at initialisation they equal the classifier bias, and the
    gradients of everything before the first such cell are exactly zero.

    Args:
        arch: arch string (or 6 op names in edge order).
        C: channels of the first stage (16 in the benchmark).
        N: cells per stage (5 in the benchmark).
        num_classes: classifier outputs (10 CIFAR-10, 100 CIFAR-100, 120 ImageNet16-120).
        in_channels: image channels.
        affine: learnable BN scale/shift in the *cells'* convolutions. The stem, the reduction
            blocks and ``lastact`` always use standard affine BN, as in the official code (and in
            the zero-cost-proxy code the paper builds on, which uses ``affine=False``,
            ``track_running_stats=False`` in the cells).
        track_running_stats: BN running statistics in the cells' convolutions (same scope).

    Returns:
        An :class:`NB201Network` in training mode.

    Raises:
        ArchStringError: for a malformed arch string.
        ValueError: for non-positive ``C``, ``N`` or ``num_classes``.

    Example:
        >>> net = build("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        ...             "+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
        >>> sum(p.numel() for p in net.parameters())  # NAS-Bench-201: 1.531546 M on CIFAR-10
        1531546
    """
    text = arch if isinstance(arch, str) else format(arch)
    return NB201Network(text, C, N, num_classes, in_channels, affine, track_running_stats)
