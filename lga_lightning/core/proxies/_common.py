"""Shared plumbing of the zero-cost proxies: leaving the model untouched, layers, warnings."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.nn.modules.conv import _ConvNd

from lga_lightning.core.kernel_metrics import NTKMetricWarning


class ProxyWarning(NTKMetricWarning):
    """A zero-cost proxy is undefined for this network and batch (dead or constant); it is nan."""


def to_host(values: list[Tensor]) -> list[float]:
    """Scalar tensors as Python floats, read from their device in one transfer.

    Each value is exactly ``float(value)``; the proxies sum them on the host in a fixed order,
    so a score does not depend on the device's reduction order, and a CUDA model syncs once.

    Example:
        >>> to_host([torch.tensor(1.5), torch.tensor(2.0)])
        [1.5, 2.0]
    """
    if not values:
        return []
    return torch.stack([v.detach().reshape(()).double() for v in values]).tolist()


def sum_on_host(values: list[Tensor]) -> float:
    """``sum(float(v) for v in values)`` with one device-to-host transfer.

    Example:
        >>> sum_on_host([torch.tensor(1.5), torch.tensor(2.0)])
        3.5
    """
    return sum(to_host(values), 0.0)


def undefined(name: str, reason: str) -> float:
    """Warn with :class:`ProxyWarning` and return ``nan``.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True):
        ...     warnings.simplefilter("always")
        ...     undefined("snip", "every gradient is zero")
        nan
    """
    warnings.warn(f"{name} is undefined: {reason}; returning nan.", ProxyWarning, stacklevel=3)
    return math.nan


WeightedLayer = _ConvNd | nn.Linear
"""A layer the proxies score: a convolution or a linear layer."""


def weighted_layers(model: nn.Module) -> list[WeightedLayer]:
    """The convolution and linear layers of ``model`` that have a weight, in module order.

    These are the layers the published proxy implementations score ("prunable" layers).

    Example:
        >>> len(weighted_layers(nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))))
        2
    """
    return [
        m
        for m in model.modules()
        if isinstance(m, (_ConvNd, nn.Linear)) and isinstance(m.weight, Tensor)
    ]


@contextmanager
def untouched(model: nn.Module, train: bool = True) -> Iterator[nn.Module]:
    """Run a proxy on ``model`` and put everything back afterwards.

    Inside the block every module is in train mode (``train=True``) or eval mode, and every
    parameter requires grad. On exit the training flags, ``requires_grad`` flags, ``.grad``
    tensors, buffers (BatchNorm running statistics and counters) and the global RNG states
    (CPU, and CUDA when initialised) are restored. Proxies never write to parameters in place
    (synflow works on a copy), and take gradients with :func:`torch.autograd.grad`.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)).eval()
        >>> with untouched(net):
        ...     _ = net(torch.randn(4, 2))
        >>> net.training, float(net[1].running_mean.abs().sum())
        (False, 0.0)
    """
    modes = [(m, m.training) for m in model.modules()]
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    grads = [p.grad for p in params]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        model.train(train)
        for p in params:
            p.requires_grad_(True)
        yield model
    finally:
        for module, mode in modes:
            module.training = mode
        for p, flag, grad in zip(params, flags, grads, strict=True):
            p.requires_grad_(flag)
            p.grad = grad
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
