"""Zero-cost proxies: one-batch scores of an untrained network that rank architectures.

Every proxy is a plain function ``name(model, x, y, **options) -> float`` (no Lightning) that
leaves the model exactly as it found it: parameters, buffers (BatchNorm running statistics),
``.grad``, training and ``requires_grad`` flags, and the global RNG state. An undefined score
(dead network, constant Jacobian, singular kernel) is ``nan`` with a :class:`ProxyWarning`.

``PROXIES`` maps each name to its function, in the order of the one registry of signals,
:data:`lga_lightning.core.signals.SIGNALS`, which also holds each proxy's needs and the sign of
"better" in its own paper (higher is better, for all of them): the registry's ``proxy`` and
``model`` rows, read at every access, so a proxy added with
:func:`lga_lightning.core.signals.register` is in it.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from lga_lightning.core.proxies import PROXIES
    >>> _ = torch.manual_seed(0)
    >>> net = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 3))
    >>> x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    >>> scores = {name: proxy(net, x, y) for name, proxy in PROXIES.items()}
    >>> sorted(scores)[:3], scores["params"]
    (['fisher', 'fisher_channel', 'flops'], 515.0)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from lga_lightning.core.proxies._common import ProxyWarning
from lga_lightning.core.proxies.activation import jacob_cov, naswot
from lga_lightning.core.proxies.gradient import fisher, grad_norm, grasp, snip
from lga_lightning.core.proxies.size import flops, params
from lga_lightning.core.proxies.synflow import synflow
from lga_lightning.core.proxies.zico import zico


class _Proxies(Mapping[str, Callable[..., float]]):
    """A read-only, live view of the registry's ``proxy`` and ``model`` rows: name -> function."""

    def _functions(self) -> dict[str, Callable[..., float]]:
        # the registry imports the proxy modules, so it is imported here and not at the top
        from lga_lightning.core.signals import SIGNALS, signal_names

        return {n: SIGNALS[n].function for n in signal_names("proxy", "model")}  # type: ignore[misc]

    def __getitem__(self, name: str) -> Callable[..., float]:
        return self._functions()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._functions())

    def __len__(self) -> int:
        return len(self._functions())

    def __repr__(self) -> str:
        return f"PROXIES({list(self)})"


PROXIES: Mapping[str, Callable[..., float]] = _Proxies()
"""Every proxy by name; call as ``PROXIES[name](model, x, y)``; add one with ``register``."""


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
