"""The baselines a correlation study reports next to NTK metrics: parameters and FLOPs."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn.modules.conv import _ConvNd


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (every parameter, as NAS-Bench-201 counts them).

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one image through every convolution and linear layer.

    Counted with forward hooks on a single input of shape ``(1, *input_shape)``: a convolution
    costs ``out_elements * in_channels / groups * prod(kernel_size)``, a linear layer
    ``out_elements * in_features``; biases, normalisation, activations and pooling are not
    counted (the convention of NAS-Bench-201's "FLOPs"). The model's mode flags and BatchNorm
    statistics are left unchanged.

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
    total = 0

    def conv_hook(module: _ConvNd, _: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        total += out[0].numel() * per_output

    def linear_hook(module: nn.Linear, _: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal total
        total += out[0].numel() * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, _ConvNd):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    modes = {m: m.training for m in model.modules()}
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    return int(total)
