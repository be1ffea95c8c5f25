"""Gradient-based zero-cost proxies: grad_norm, snip, grasp, fisher.

They follow "Zero-Cost Proxies for Lightweight NAS" (Abdelfattah et al., ICLR 2021) and the
conventions of its published measures: the whole batch in one pass, the mean cross-entropy
loss of the logits, every module in train mode (BatchNorm normalises with the batch statistics;
its running statistics are restored afterwards), the model's own dtype, and the weights of the
convolution and linear layers (biases and normalisation parameters are not scored).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F  # noqa: N812
from torch import Tensor, nn

from lga_lightning.core.proxies._common import (
    WeightedLayer,
    sum_on_host,
    to_host,
    undefined,
    untouched,
    weighted_layers,
)


def _weight_grads(model: nn.Module, x: Tensor, y: Tensor) -> tuple[list[Tensor], list[Tensor]]:
    weights = [m.weight for m in weighted_layers(model)]
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return weights, [
        torch.zeros_like(w) if g is None else g for w, g in zip(weights, grads, strict=True)
    ]


def _all_zero(tensors: list[Tensor]) -> bool:
    # One device-to-host transfer for all tensors, not one per tensor.
    return not bool(torch.stack([t.any() for t in tensors]).any())


def grad_norm(model: nn.Module, x: Tensor, y: Tensor, *, train: bool = True) -> float:
    """Sum over conv/linear weight tensors of the L2 norm of the loss gradient.

    ``sum_l ||dL/dW_l||_2`` with ``L`` the mean cross-entropy of the batch (Abdelfattah et al.).
    Higher is better. ``nan`` with a :class:`ProxyWarning` when every gradient is zero.

    Args:
        model: maps ``x`` to logits ``(n, classes)``.
        x: the batch.
        y: integer labels ``(n,)``.
        train: train mode (batch statistics in BatchNorm), as published; ``False`` for eval.

    Example:
        >>> net = nn.Linear(1, 2, bias=False)
        >>> _ = net.weight.data.copy_(torch.tensor([[1.0], [-1.0]]))
        >>> # logits (1, -1), p = (s, 1 - s) with s = sigmoid(2); dL/dW = (s - 1, 1 - s)
        >>> round(grad_norm(net, torch.ones(1, 1), torch.tensor([0])), 6)
        0.168578
    """
    with untouched(model, train):
        _, grads = _weight_grads(model, x, y)
        if _all_zero(grads):
            return undefined("grad_norm", "every weight gradient is zero")
        return float(sum(g.norm() for g in grads))


def snip(model: nn.Module, x: Tensor, y: Tensor, *, train: bool = True) -> float:
    """Connection sensitivity ``sum |dL/dW ⊙ W|`` over conv/linear weights (Lee et al. 2019).

    The saliency of SNIP, summed over every weight as Abdelfattah et al. do; ``L`` is the mean
    cross-entropy of the batch. Higher is better. ``nan`` with a :class:`ProxyWarning` when it
    is zero (no weight affects the loss).

    Args:
        model: maps ``x`` to logits.
        x: the batch.
        y: integer labels.
        train: train mode, as published.

    Example:
        >>> net = nn.Linear(1, 2, bias=False)
        >>> _ = net.weight.data.copy_(torch.tensor([[2.0], [-1.0]]))
        >>> # logits (2, -1), 1 - sigmoid(3) = 0.0474259; |g*w| summed = 3 * 0.0474259
        >>> round(snip(net, torch.ones(1, 1), torch.tensor([0])), 6)
        0.142278
    """
    with untouched(model, train):
        weights, grads = _weight_grads(model, x, y)
        score = sum_on_host(
            [(g * w.detach()).abs().sum() for w, g in zip(weights, grads, strict=True)]
        )
        if score == 0.0:
            return undefined("snip", "every weight has zero saliency")
        return score


def grasp(model: nn.Module, x: Tensor, y: Tensor, *, train: bool = True) -> float:
    """GraSP score ``sum -W ⊙ (H g)`` over conv/linear weights (Wang et al. 2020).

    ``g = dL/dW`` and ``H`` the Hessian of ``L`` (mean cross-entropy) in the conv/linear weights,
    the Hessian-vector product taken by double back-propagation with ``g`` held constant, as in
    Abdelfattah et al.'s implementation. The sign is theirs: the sum of ``-W ⊙ Hg`` (GraSP's
    per-weight score ``S(-W)``), higher is better in their ranking. ``nan`` with a
    :class:`ProxyWarning` when every gradient is zero.

    Args:
        model: maps ``x`` to logits; must be twice differentiable.
        x: the batch.
        y: integer labels.
        train: train mode, as published.

    Example:
        >>> net = nn.Linear(1, 2, bias=False)
        >>> _ = net.weight.data.copy_(torch.tensor([[1.0], [-1.0]]))
        >>> # g = (s-1, 1-s), H = s(1-s) [[1, -1], [-1, 1]], Hg = 2 s (1-s) (s-1, 1-s),
        >>> # -W.Hg = 4 s (1-s)^2 with s = sigmoid(2)
        >>> round(grasp(net, torch.ones(1, 1), torch.tensor([0])), 6)
        0.050062
    """
    with untouched(model, train):
        weights, grads = _weight_grads(model, x, y)
        if _all_zero(grads):
            return undefined("grasp", "every weight gradient is zero")
        loss = F.cross_entropy(model(x), y)
        graph = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
        terms = [(g.detach() * f).sum() for g, f in zip(grads, graph, strict=True) if f is not None]
        # Some weight has a non-zero gradient (checked above), so `terms` is not empty.
        dot = sum(terms[1:], terms[0])
        hg = torch.autograd.grad(dot, weights, allow_unused=True)
        return float(
            sum(-(w.detach() * h).sum() for w, h in zip(weights, hg, strict=True) if h is not None)
        )


def fisher(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    train: bool = True,
    convention: Literal["weight", "channel"] = "weight",
) -> float:
    """Fisher pruning score of the output channels of every conv/linear layer.

    For each output ``a`` of a convolution or linear layer (before any normalisation or
    activation that follows it) and its gradient ``d = dL/da``, channel ``k`` scores
    ``F_k = 0.5 * mean_n (sum_spatial a[n, k] * d[n, k])^2`` (Theis et al. 2018, Turner et al.
    2020), with ``L`` the mean cross-entropy of the batch. A layer called several times adds
    every call's ``F_k``. Two totals are in use:

    * ``convention="weight"`` (default): every weight of channel ``k`` gets ``F_k`` and the
      proxy sums over weights, ``sum_k F_k * (weights per output channel)`` -- what the
      zero-cost-nas code of Abdelfattah et al. (2021, ``measures/fisher.py``: the channel value
      broadcast over ``weight.shape[1:]``, then summed) computes, so its published numbers
      compare with this one;
    * ``convention="channel"``: each channel counted once, ``sum_k F_k`` (this project's
      default before; 28-170x smaller on NB201 C=16 N=5 cells, and it ranks cells differently).

    Higher is better. A network whose every product ``a * d`` is zero (a dead cell: no path
    from the input to the logits) scores ``nan`` with a :class:`ProxyWarning` in both
    conventions, where zero-cost-nas returns 0; the ``nan`` ranks it last.

    Args:
        model: maps ``x`` to logits.
        x: the batch.
        y: integer labels.
        train: train mode, as published.
        convention: ``"weight"`` (zero-cost-nas) or ``"channel"`` (the per-channel sum).

    Example:
        >>> net = nn.Linear(1, 2, bias=False)
        >>> _ = net.weight.data.copy_(torch.tensor([[1.0], [-1.0]]))
        >>> # a = (1, -1), d = (s - 1, 1 - s): 0.5 * 2 * (1 - s)^2 with s = sigmoid(2)
        >>> round(fisher(net, torch.ones(1, 1), torch.tensor([0])), 6)
        0.014209
        >>> wide = nn.Linear(3, 2, bias=False)  # three weights per output channel
        >>> _ = wide.weight.data.copy_(torch.tensor([[1.0, 0, 0], [-1.0, 0, 0]]))
        >>> x3 = torch.tensor([[1.0, 0, 0]])
        >>> per_weight = fisher(wide, x3, torch.tensor([0]))
        >>> round(per_weight / fisher(wide, x3, torch.tensor([0]), convention="channel"), 6)
        3.0
    """
    if convention not in ("weight", "channel"):
        raise ValueError(f"`convention` can be 'weight' or 'channel', got {convention!r}.")
    layers = weighted_layers(model)
    outputs: list[Tensor] = []
    per_channel: list[int] = []

    def keep(module: WeightedLayer, __: tuple[Tensor, ...], out: Tensor) -> None:
        outputs.append(out)
        per_channel.append(module.weight[0].numel() if convention == "weight" else 1)

    handles = [m.register_forward_hook(keep) for m in layers]
    try:
        with untouched(model, train):
            loss = F.cross_entropy(model(x), y)
            grads = torch.autograd.grad(loss, outputs, allow_unused=True)
            layer_scores, counts = [], []
            for act, grad, weights in zip(outputs, grads, per_channel, strict=True):
                if grad is None:
                    continue
                prod = (act.detach() * grad).flatten(2).sum(-1) if act.dim() > 2 else act * grad
                layer_scores.append(prod.detach().pow(2).mean(0).sum() * 0.5)
                counts.append(weights)
            score = 0.0
            for value, weights in zip(to_host(layer_scores), counts, strict=True):
                score += value * weights
    finally:
        for handle in handles:
            handle.remove()
    if score == 0.0:
        return undefined("fisher", "every activation gradient product is zero")
    return score
