"""SynFlow: synaptic flow of the network with absolute weights on an all-ones input."""

from __future__ import annotations

import copy
import math

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from lga_lightning.core.proxies._common import (
    sum_on_host,
    undefined,
    untouched,
    weighted_layers,
)


def _without_batchnorm(model: nn.Module) -> None:
    for name, child in list(model.named_children()):
        if isinstance(child, _BatchNorm):
            setattr(model, name, nn.Identity())
        else:
            _without_batchnorm(child)


def synflow(
    model: nn.Module, x: Tensor, y: Tensor | None = None, *, batchnorm: str = "remove"
) -> float:
    """Sum over conv/linear weights of ``|W ⊙ dR/dW|``, ``R`` the output sum of the ``|W|`` net.

    Following Tanaka et al. (2020) as implemented by Abdelfattah et al. (2021): on a deep copy of
    the model, in float64, every parameter and buffer is replaced by its absolute value, a single
    all-ones input shaped like one sample of ``x`` is propagated, ``R`` is the sum of the
    resulting logits, and the score sums ``|W ⊙ dR/dW|`` over convolution and linear weights.
    BatchNorm layers are removed (``batchnorm="remove"``, Abdelfattah et al.) or kept in eval
    mode with their absolute running statistics (``"eval"``, Tanaka et al.'s pruning code). The
    labels are not used. Higher is better. ``nan`` with a :class:`ProxyWarning` when the score
    is zero or not finite. The model itself is not modified.

    Args:
        model: maps ``x`` to logits.
        x: the batch; only its sample shape, device and (for the copy) nothing else is used.
        y: ignored (kept for the common proxy signature).
        batchnorm: ``"remove"`` or ``"eval"``.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2, bias=False), nn.ReLU(), nn.Linear(2, 1, bias=False))
        >>> _ = net[0].weight.data.copy_(torch.tensor([[1.0, -1.0], [2.0, 0.0]]))
        >>> _ = net[2].weight.data.copy_(torch.tensor([[-3.0, 1.0]]))
        >>> # hidden (2, 2), R = 3*2 + 1*2 = 8; each bias-free layer contributes R
        >>> synflow(net, torch.zeros(5, 2))
        16.0
    """
    if batchnorm not in ("remove", "eval"):
        raise ValueError(f"`batchnorm` can be 'remove' or 'eval', got {batchnorm!r}.")
    with untouched(model, train=False):
        twin = copy.deepcopy(model).double().eval()
    if batchnorm == "remove":
        _without_batchnorm(twin)
    with torch.no_grad():
        for tensor in [*twin.parameters(), *twin.buffers()]:
            if tensor.is_floating_point():
                tensor.abs_()
    for p in twin.parameters():
        p.grad = None
        p.requires_grad_(True)
    weights = [m.weight for m in weighted_layers(twin)]
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    total = twin(ones).sum()
    grads = torch.autograd.grad(total, weights, allow_unused=True)
    score = sum_on_host(
        [(w.detach() * g).abs().sum() for w, g in zip(weights, grads, strict=True) if g is not None]
    )
    if score == 0.0 or not math.isfinite(score):
        return undefined("synflow", f"the synaptic flow is {score}")
    return score
