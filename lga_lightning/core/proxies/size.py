"""Size baselines with the proxy signature: trainable parameters and FLOPs."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode


def params(model: nn.Module, x: Tensor | None = None, y: Tensor | None = None) -> float:
    """Number of trainable parameters (``requires_grad``); ``x`` and ``y`` are not used.

    Higher is "better" in the sense that larger NAS-Bench-201 cells tend to be more accurate.

    Example:
        >>> params(nn.Linear(3, 2))
        8.0
    """
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))


def flops(model: nn.Module, x: Tensor, y: Tensor | None = None) -> float:
    """Multiply-accumulates of one sample (shaped like ``x[0]``) through every matrix product.

    Counted by torch's :class:`~torch.utils.flop_counter.FlopCounterMode` and halved (it counts
    a multiply-accumulate as 2 FLOPs): a convolution costs ``output elements * in_channels /
    groups * kernel area``, a linear layer ``output elements * in_features``, and so does a
    functional ``matmul``, ``F.linear`` or attention product that forward hooks on layers would
    miss; biases, normalisation, activations and pooling cost nothing (NAS-Bench-201's
    convention; ``lga-correlate`` reports this count as ``flops``). Run in eval mode without
    gradients on a zero input; mode flags and buffers are left as they were. ``y`` is not used.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 16, 10))
        >>> flops(net, torch.zeros(2, 3, 4, 4)) == 8 * 16 * 3 * 9 + 8 * 16 * 10
        True
    """
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros((1, *x.shape[1:]), dtype=x.dtype, device=x.device))
    finally:
        for module, mode in modes:
            module.training = mode
    return float(counter.get_total_flops() // 2)
