"""Zero-cost proxies: one-batch scores of an untrained network that rank architectures.

Every proxy is a plain function ``name(model, x, y, **options) -> float`` (no Lightning) that
leaves the model exactly as it found it: parameters, buffers (BatchNorm running statistics),
``.grad``, training and ``requires_grad`` flags, and the global RNG state. An undefined score
(dead network, constant Jacobian, singular kernel) is ``nan`` with a :class:`ProxyWarning`.

:data:`PROXIES` maps each name to its function; the sign of "better" in each proxy's own paper
(higher is better, for all of them) is in the one table of signals,
:data:`lga_lightning.core.signals.SIGNALS`.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from lga_lightning.core.proxies import PROXIES
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 3))
    >>> x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    >>> scores = {name: proxy(net, x, y) for name, proxy in PROXIES.items()}
    >>> sorted(scores)[:3], scores["params"]
    (['fisher', 'flops', 'grad_norm'], 515.0)
"""

from __future__ import annotations

from collections.abc import Callable

from lga_lightning.core.proxies._common import ProxyWarning
from lga_lightning.core.proxies.activation import jacob_cov, naswot
from lga_lightning.core.proxies.gradient import fisher, grad_norm, grasp, snip
from lga_lightning.core.proxies.size import flops, params
from lga_lightning.core.proxies.synflow import synflow
from lga_lightning.core.proxies.zico import zico

PROXIES: dict[str, Callable[..., float]] = {
    "grad_norm": grad_norm,
    "snip": snip,
    "grasp": grasp,
    "fisher": fisher,
    "synflow": synflow,
    "jacob_cov": jacob_cov,
    "naswot": naswot,
    "zico": zico,
    "params": params,
    "flops": flops,
}
"""Every proxy by name; call as ``PROXIES[name](model, x, y)``."""


__all__ = [
    "PROXIES",
    "ProxyWarning",
    "fisher",
    "flops",
    "grad_norm",
    "grasp",
    "jacob_cov",
    "naswot",
    "params",
    "snip",
    "synflow",
    "zico",
]
