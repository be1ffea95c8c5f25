"""Coupled implementations: one forward over the whole probe, then vector-Jacobian products.

When BatchNorm uses batch statistics every sample's output depends on every sample, so each row
of ``J`` needs a backward pass through the whole batch. :func:`loop_jacobian` runs those passes
one after another (``"loop"``, the reference, and ``"coupled"``, its tuned variant);
:func:`batched_jacobian` runs ``chunk_size`` of them at once as one batched backward
(``torch.autograd.grad(..., is_grads_batched=True)``), which keeps a GPU busy where single
passes of a small network are bound by kernel launches.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn
from torch.func import functional_call

from lga_lightning.core.kernel._layout import contiguous_batchnorm
from lga_lightning.core.kernel._options import Output, OutputFn
from lga_lightning.core.kernel._state import functional_state, pick_logits, require_graph, write_row
from lga_lightning.core.kernel.parameters import SelectedParameters


def _forward(
    model: nn.Module,
    x: Tensor,
    selected: SelectedParameters,
    output_fn: OutputFn | None,
    channels_last: bool,
) -> tuple[Tensor, list[Tensor]]:
    """One forward over the whole probe: the logits and the selected leaves to differentiate."""
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()
    params, buffers = functional_state(model, selected, channels_last=channels_last)
    layout = contiguous_batchnorm(model) if channels_last else contextlib.nullcontext()
    with layout:
        out = functional_call(model, {**params, **buffers}, (x,))
    logits = pick_logits(out, output_fn, x.shape[0])
    require_graph(logits, selected)
    return logits, [params[name] for name in selected.names]


def loop_jacobian(
    model: nn.Module,
    x: Tensor,
    rows: list[int],
    selected: SelectedParameters,
    output: Output,
    output_fn: OutputFn | None,
    chunk_size: int | None = None,
    *,
    fast: bool = False,
) -> Tensor:
    """One batched forward, then one vector-Jacobian product per Jacobian row.

    The reference (``fast=False``) runs in the contiguous layout. The fast path runs convolutions
    on channels-last tensors but BatchNorm on contiguous ones
    (:func:`lga_lightning.core.kernel._layout.contiguous_batchnorm`): float32 BatchNorm on
    channels-last CPU tensors is far less accurate. ``chunk_size`` is not used (one row at a time).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
        >>> from lga_lightning.core.kernel.parameters import select_parameters
        >>> loop_jacobian(net, torch.randn(5, 3), [0, 1], select_parameters(net), "sum",
        ...               None).shape
        torch.Size([2, 1, 16])
    """
    channels_last = fast and x.dim() == 4
    logits, wrt = _forward(model, x, selected, output_fn, channels_last)
    k = 1 if output == "sum" else logits.shape[1]
    jac = logits.new_zeros((len(rows), k, selected.total))
    cotangent = torch.zeros_like(logits)
    for r, i in enumerate(rows):
        for c in range(k):
            if output == "sum":
                cotangent[i] = 1.0
            else:
                cotangent[i, c] = 1.0
            grads = torch.autograd.grad(
                logits, wrt, grad_outputs=cotangent, retain_graph=True, allow_unused=True
            )
            cotangent[i] = 0.0
            if fast:
                write_row(jac[r, c], grads, selected.numels)
            else:
                jac[r, c] = torch.cat(
                    [
                        torch.zeros(p.numel(), dtype=jac.dtype, device=jac.device)
                        if g is None
                        else g.reshape(-1)
                        for g, p in zip(grads, wrt, strict=True)
                    ]
                )
    return jac


def coupled_jacobian(
    model: nn.Module,
    x: Tensor,
    rows: list[int],
    selected: SelectedParameters,
    output: Output,
    output_fn: OutputFn | None,
    chunk_size: int | None = None,
) -> Tensor:
    """:func:`loop_jacobian` with channels-last convolutions and preallocated rows."""
    return loop_jacobian(model, x, rows, selected, output, output_fn, chunk_size, fast=True)


def batched_jacobian(
    model: nn.Module,
    x: Tensor,
    rows: list[int],
    selected: SelectedParameters,
    output: Output,
    output_fn: OutputFn | None,
    chunk_size: int | None = None,
) -> Tensor:
    """One batched forward, then the vector-Jacobian products of ``chunk_size`` rows at once.

    Every chunk is one ``torch.autograd.grad(..., is_grads_batched=True)`` call over a stack of
    one-hot cotangents (``chunk_size * k`` of them, ``k`` = 1 for ``"sum"`` and C otherwise),
    built on the logits' device without a host round trip. The rows equal those of
    :func:`loop_jacobian` (same forward, same graph); the transient memory of a chunk is about
    ``chunk_size * k`` times that of one backward pass, on top of the forward's graph and ``J``.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).double()
        >>> from lga_lightning.core.kernel.parameters import select_parameters
        >>> sel, x = select_parameters(net), torch.randn(5, 3, dtype=torch.float64)
        >>> J = batched_jacobian(net, x, [0, 1, 2, 3, 4], sel, "trace", None, chunk_size=2)
        >>> bool(torch.allclose(J, loop_jacobian(net, x, list(range(5)), sel, "trace", None)))
        True
    """
    logits, wrt = _forward(model, x, selected, output_fn, channels_last=False)
    n, classes = logits.shape
    k = 1 if output == "sum" else classes
    jac = logits.new_zeros((len(rows), k, selected.total))
    device = logits.device
    index = torch.tensor(rows, dtype=torch.long, device=device)
    step = chunk_size or len(rows) or 1
    for start in range(0, len(rows), step):
        chunk = index[start : start + step]
        b = len(chunk)
        cotangents = logits.new_zeros((b, k, n, classes))
        within = torch.arange(b, device=device)
        if output == "sum":
            cotangents[within, 0, chunk, :] = 1.0
        else:
            cls = torch.arange(classes, device=device)
            cotangents[within[:, None], cls[None, :], chunk[:, None], cls[None, :]] = 1.0
        grads = torch.autograd.grad(
            logits,
            wrt,
            grad_outputs=cotangents.reshape(b * k, n, classes),
            retain_graph=True,
            allow_unused=True,
            is_grads_batched=True,
        )
        write_row(jac[start : start + b], grads, selected.numels)
    return jac
