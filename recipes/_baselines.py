"""The baselines a correlation study reports next to NTK metrics: parameters and FLOPs."""

from __future__ import annotations

import torch
from torch import nn

from lga_lightning.core.proxies.size import flops


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (every parameter, as NAS-Bench-201 counts them).

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one image through every convolution and linear layer.

    The count of :func:`lga_lightning.core.proxies.flops` (torch's ``FlopCounterMode``, halved;
    NAS-Bench-201's convention) for a zero input of shape ``(1, *input_shape)``; the model's mode
    flags and BatchNorm statistics are left unchanged.

    Args:
        model: the network.
        input_shape: shape of one input, e.g. ``(3, 32, 32)``.

    Returns:
        The count for one image.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 16, 10))
        >>> count_flops(net, (3, 4, 4)) == 8 * 16 * 3 * 9 + 8 * 16 * 10
        True
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return int(flops(model, torch.zeros(1, *input_shape, device=device)))
