"""ZiCo: inverse coefficient of variation of the gradients across mini-batches (Li et al. 2023)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from lga_lightning.core.proxies._common import (
    to_host,
    undefined,
    untouched,
    weighted_layers,
)


def zico(
    model: nn.Module, x: Tensor, y: Tensor, *, num_batches: int = 2, train: bool = True
) -> float:
    """``sum_l log(sum_{w in l} mean|g_w| / std(g_w))`` over conv/linear layers (ZiCo, ICLR 2023).

    The batch is cut into ``num_batches`` contiguous mini-batches of (nearly) equal size with
    :func:`torch.tensor_split`; each gets its own forward and backward pass of its mean
    cross-entropy loss (in train mode, so BatchNorm uses each mini-batch's statistics, as the
    published code does). For every weight ``w`` of a convolution or linear layer, ``mean|g_w|``
    and the population standard deviation ``std(g_w)`` are taken over the mini-batches' gradients;
    weights with zero standard deviation are skipped, and so is a layer whose sum is zero.
    Computed in float64 from the model-dtype gradients. Higher is better. ``nan`` with a
    :class:`ProxyWarning` when every layer is skipped.

    Args:
        model: maps ``x`` to logits.
        x: the batch, at least ``num_batches`` samples.
        y: integer labels.
        num_batches: mini-batches (at least 2; the paper uses two batches).
        train: train mode, as published.

    Example:
        >>> net = nn.Linear(1, 1, bias=False)  # one logit: the loss, hence g, is always zero
        >>> import warnings
        >>> with warnings.catch_warnings(record=True):
        ...     warnings.simplefilter("always")
        ...     zico(net, torch.ones(2, 1), torch.zeros(2, dtype=torch.long))
        nan
    """
    if num_batches < 2 or len(x) < num_batches:
        raise ValueError(
            f"zico needs num_batches >= 2 and at least that many samples, got "
            f"num_batches={num_batches} for {len(x)} samples."
        )
    with untouched(model, train):
        weights = [m.weight for m in weighted_layers(model)]
        per_batch: list[list[Tensor]] = []
        for xb, yb in zip(
            torch.tensor_split(x, num_batches), torch.tensor_split(y, num_batches), strict=True
        ):
            loss = F.cross_entropy(model(xb), yb)
            grads = torch.autograd.grad(loss, weights, allow_unused=True)
            per_batch.append(
                [
                    torch.zeros_like(w) if g is None else g.detach()
                    for w, g in zip(weights, grads, strict=True)
                ]
            )
    totals = []
    for layer in zip(*per_batch, strict=True):
        stacked = torch.stack(layer).double().flatten(1)
        std = stacked.std(0, correction=0)
        keep = std > 0
        # where() instead of boolean indexing: indexing by a mask syncs with the host.
        ratio = torch.where(keep, stacked.abs().mean(0) / torch.where(keep, std, 1.0), 0.0)
        totals.append(ratio.sum())
    score, used = 0.0, 0
    for total in to_host(totals):
        if total != 0.0:
            score += math.log(total)
            used += 1
    if used == 0:
        return undefined("zico", "no weight gradient varies across the mini-batches")
    return score
