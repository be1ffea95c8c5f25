"""Proxies from the activations of an untrained network: jacob_cov and naswot (Mellor et al.)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from lga_lightning.core.proxies._common import undefined, untouched

JACOB_COV_K = 1e-5
"""The regulariser ``k`` added to the eigenvalues in :func:`jacob_cov`."""


def jacob_cov(model: nn.Module, x: Tensor, y: Tensor | None = None, *, train: bool = True) -> float:
    """Score of the correlations between input Jacobians (Mellor et al. 2021, NASWOT v1).

    Each sample's Jacobian is the gradient of the sum of the batch's logits with respect to that
    sample's input (one backward pass of ``sum(model(x))``, in train mode: BatchNorm uses the
    batch statistics, as Abdelfattah et al.'s implementation does). With ``v`` the eigenvalues
    of the ``n x n`` correlation matrix of the flattened Jacobians and ``k = 1e-5``, the score is
    ``-sum(log(v + k) + 1 / (v + k))``; computed in float64. Higher is better. The labels are not
    used. ``nan`` with a :class:`ProxyWarning` when a Jacobian is constant (correlation
    undefined) or the score is not finite.

    Args:
        model: maps ``x`` to logits.
        x: the batch, at least two samples.
        y: ignored.
        train: train mode, as published.

    Example:
        >>> net = nn.Sequential(nn.ReLU(), nn.Linear(3, 1, bias=False))
        >>> _ = net[1].weight.data.copy_(torch.tensor([[1.0, 2.0, 3.0]]))
        >>> x = torch.tensor([[1.0, 1.0, -1.0], [1.0, -1.0, 1.0]])
        >>> # Jacobians (1, 2, 0), (1, 0, 3): correlation r = -3 / sqrt(28 / 3); v = 1 + r, 1 - r
        >>> round(jacob_cov(net, x), 3)
        -52.638
    """
    with untouched(model, train):
        inputs = x.detach().clone().requires_grad_(True)
        (jac,) = torch.autograd.grad(model(inputs).sum(), inputs, allow_unused=True)
    if jac is None:
        return undefined("jacob_cov", "the logits do not depend on the input")
    jac = jac.reshape(len(x), -1).double()
    centred = jac - jac.mean(1, keepdim=True)
    norms = centred.norm(dim=1)
    if not bool((norms > 0).all()):
        return undefined("jacob_cov", "a Jacobian is constant, its correlation is undefined")
    unit = centred / norms[:, None]
    eig = torch.linalg.eigvalsh(unit @ unit.T)
    score = float(-(torch.log(eig + JACOB_COV_K) + 1.0 / (eig + JACOB_COV_K)).sum())
    if not math.isfinite(score):
        return undefined("jacob_cov", f"the score is {score}")
    return score


def naswot(model: nn.Module, x: Tensor, y: Tensor | None = None, *, train: bool = True) -> float:
    """Log-determinant of the binary activation-code kernel (Mellor et al., ICML 2021).

    Every :class:`torch.nn.ReLU` module output gives each sample a binary code (unit active,
    ``> 0``, or not); over all ``N_A`` units, ``K[i, j] = N_A - Hamming(c_i, c_j)``, the number
    of units on which samples ``i`` and ``j`` agree. The score is ``log|det K|`` from
    :func:`torch.linalg.slogdet` in float64. Forward pass only, without gradients, in train mode
    (BatchNorm uses the batch statistics), as the published code runs it. Functional ReLUs
    (``F.relu``) are not seen. Higher is better. The labels are not used. ``nan`` with a
    :class:`ProxyWarning` when there is no ReLU module or ``K`` is singular.

    Args:
        model: maps ``x`` to logits.
        x: the batch.
        y: ignored.
        train: train mode, as published.

    Example:
        >>> net = nn.Sequential(nn.ReLU(), nn.Linear(3, 1))
        >>> x = torch.tensor([[1.0, 1.0, -1.0], [1.0, -1.0, 1.0], [-1.0, -1.0, -1.0]])
        >>> # codes 110, 101, 000: agreements K = [[3, 1, 1], [1, 3, 1], [1, 1, 3]], det 20
        >>> round(naswot(net, x), 6) == round(math.log(20), 6)
        True
    """
    kernel = torch.zeros(len(x), len(x), dtype=torch.float64, device=x.device)
    seen = 0

    def count(_: nn.Module, __: tuple[Tensor, ...], out: Tensor) -> None:
        nonlocal kernel, seen
        code = out.detach().reshape(len(out), -1) > 0
        # agreements = units - ones_i - ones_j + 2 * shared ones; the float32 products of 0/1
        # codes are exact integers below 2**24 units per layer
        exact = torch.float32 if code.shape[1] < 2**24 else torch.float64
        code = code.to(exact)
        ones = code.sum(1).double()
        shared = (code @ code.T).double()
        kernel = kernel + (code.shape[1] - ones[:, None] - ones[None, :] + 2.0 * shared)
        seen += 1

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with untouched(model, train), torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    if seen == 0:
        return undefined("naswot", "the model has no nn.ReLU module")
    sign, logdet = torch.linalg.slogdet(kernel)
    if float(sign) <= 0 or not math.isfinite(float(logdet)):
        return undefined("naswot", "the activation-code kernel is singular")
    return float(logdet)
