"""The model state a kernel computation works on, and the promise to leave the model as it was.

Shared by every implementation: detached parameters and cloned buffers for
:func:`torch.func.functional_call`, the training flags and RNG state restored afterwards, the
logits picked out of the model output, and the probe rows to differentiate.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from lga_lightning.core.kernel._options import BNMode, OutputFn, Rows
from lga_lightning.core.kernel.parameters import SelectedParameters


def functional_state(
    model: nn.Module, selected: SelectedParameters, channels_last: bool, autograd: bool = True
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Detached parameters (selected ones marked for autograd) and cloned buffers."""
    wanted = set(selected.names)
    params: dict[str, Tensor] = {}
    # One entry per tensor: functional_call ties the other names of a shared weight to it.
    for name, p in model.named_parameters():
        t = p.detach()
        if channels_last and t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        params[name] = t.requires_grad_(True) if autograd and name in wanted else t
    # Cloned so that train-mode BatchNorm updates its copy, never the model's statistics.
    buffers = {name: b.clone() for name, b in model.named_buffers()}
    return params, buffers


def write_row(row: Tensor, grads: Sequence[Tensor | None], numels: Sequence[int]) -> None:
    """Copy flattened gradients into one preallocated Jacobian row (unused parameters stay 0)."""
    offset = 0
    for g, numel in zip(grads, numels, strict=True):
        if g is not None:
            row[..., offset : offset + numel] = g.reshape(*row.shape[:-1], numel)
        offset += numel


def pick_logits(out: Any, output_fn: OutputFn | None, n: int) -> Tensor:
    """Pick the ``(n, C)`` logits out of a model output and check their shape."""
    if output_fn is not None:
        out = output_fn(out)
    elif isinstance(out, dict):
        if "logits" not in out:
            raise ValueError(
                f"the model returned a dict with keys {sorted(out)} and no 'logits' entry; pass "
                "`output_fn=lambda out: out['<key>']` to pick the logits."
            )
        out = out["logits"]
    elif isinstance(out, (tuple, list)):
        shapes = [tuple(o.shape) if isinstance(o, Tensor) else type(o).__name__ for o in out]
        raise ValueError(
            f"the model returned a {type(out).__name__} of {len(out)} items {shapes}; pass "
            "`output_fn=lambda out: out[<index of the logits>]` to pick the logits."
        )
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != n:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"the NTK needs logits of shape (n, C) = ({n}, C), but the model output is {shape}; "
            "pass `output_fn` to pick or reshape the logits "
            "(e.g. `lambda out: out.reshape(len(out), -1)`)."
        )
    return out


def require_graph(logits: Tensor, selected: SelectedParameters) -> None:
    """Refuse an output that no selected parameter influences."""
    if not logits.requires_grad:
        raise ValueError(
            f"the model output does not depend on any selected parameter {list(selected.names)[:4]}"
            "; choose parameters the output depends on with `param_selection=`."
        )


def row_index(rows: Rows, n: int) -> list[int]:
    """The probe rows to differentiate, checked against ``n``.

    Example:
        >>> row_index(slice(1, None), 3)
        [1, 2]
    """
    if rows is None:
        return list(range(n))
    if isinstance(rows, slice):
        return list(range(n))[rows]
    index = [int(i) for i in rows]
    bad = [i for i in index if not 0 <= i < n]
    if bad:
        raise ValueError(f"`rows` must index the {n} probe samples, got out-of-range {bad[:5]}.")
    return index


def index_tensor(rows: list[int], device: torch.device) -> Tensor | slice:
    """``rows`` as a slice when contiguous, else as one index tensor made on ``device`` once."""
    if rows and rows == list(range(rows[0], rows[-1] + 1)):
        return slice(rows[0], rows[-1] + 1)
    return torch.tensor(rows, dtype=torch.long, device=device)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def preserved_state(model: nn.Module, bn_mode: BNMode) -> Iterator[None]:
    """Put the model in the kernel's mode; restore every flag and the RNG state afterwards.

    The CPU generator is always restored; the CUDA generators of every device are restored
    whenever CUDA is initialised (always the case when the model or the probe is on a GPU), so
    dropout inside the kernel's forward never advances the training's random stream.
    """
    flags = {module: module.training for module in model.modules()}
    cpu_rng = torch.get_rng_state()
    on_cuda = model_device(model).type == "cuda"
    cuda_rng = torch.cuda.get_rng_state_all() if on_cuda or torch.cuda.is_initialized() else None
    try:
        model.train()
        if bn_mode == "eval":
            for module in model.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        yield
    finally:
        for module, training in flags.items():
            module.training = training
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
