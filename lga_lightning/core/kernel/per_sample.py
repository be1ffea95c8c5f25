"""Decoupled implementation: per-sample gradients batched with :func:`torch.func.vmap`.

Exact only when the samples do not interact in the forward (no BatchNorm using batch
statistics); then each row of ``J`` is the gradient of one sample's output alone, and ``vmap``
computes ``chunk_size`` of them in one batched pass, O(n) work in all.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, vmap

from lga_lightning.core.kernel._options import Output, OutputFn
from lga_lightning.core.kernel._state import functional_state, index_tensor, pick_logits
from lga_lightning.core.kernel.parameters import SelectedParameters


def per_sample_jacobian(
    model: nn.Module,
    x: Tensor,
    rows: list[int],
    selected: SelectedParameters,
    output: Output,
    output_fn: OutputFn | None,
    chunk_size: int | None = None,
) -> Tensor:
    """Per-sample gradients of independent samples, ``chunk_size`` samples per ``vmap`` call.

    Example:
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        >>> from lga_lightning.core.kernel.parameters import select_parameters
        >>> per_sample_jacobian(net, torch.randn(5, 3), [0, 1, 2], select_parameters(net),
        ...                     "trace", None, chunk_size=2).shape
        torch.Size([3, 2, 12])
    """
    # torch.func differentiates on its own; autograd-tracked leaves would only add a graph.
    params, buffers = functional_state(model, selected, channels_last=False, autograd=False)
    diff = {name: params.pop(name) for name in selected.names}
    frozen = {**params, **buffers}
    # Check the output of the whole batch once (cheap next to the gradients) before vmapping.
    with torch.no_grad():
        probe_out = pick_logits(functional_call(model, {**diff, **frozen}, (x,)), output_fn, len(x))

    def logits_of_one(weights: dict[str, Tensor], sample: Tensor) -> Tensor:
        out = functional_call(model, {**weights, **frozen}, (sample.unsqueeze(0),))
        return pick_logits(out, output_fn, 1)[0]

    if output == "sum":
        per_sample = grad(lambda w, s: logits_of_one(w, s).sum())
        k = 1
    else:
        per_sample = jacrev(logits_of_one)
        k = probe_out.shape[1]
    batched = vmap(per_sample, in_dims=(None, 0), randomness="different")
    # every entry is written below (the names' slices tile the columns): no zero fill needed
    jac = x.new_empty((len(rows), k, selected.total), dtype=probe_out.dtype)
    step = chunk_size or len(rows) or 1
    for start in range(0, len(rows), step):
        part = rows[start : start + step]
        grads = batched(diff, x[index_tensor(part, x.device)])
        offset = 0
        for name, numel in zip(selected.names, selected.numels, strict=True):
            jac[start : start + len(part), :, offset : offset + numel] = grads[name].reshape(
                len(part), k, numel
            )
            offset += numel
    return jac
