"""BatchNorm on contiguous tensors inside a channels-last network, for an exact kernel.

On the CPU, BatchNorm on channels-last float32 tensors sums its batch statistics and gradients
less accurately than on contiguous ones (the kernel of a train-mode NAS-Bench-201 network was
about 1000x further from a float64 reference); convolutions are faster channels-last.
:func:`contiguous_batchnorm` gives each module its better layout for one kernel computation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


class _ToLayout(torch.autograd.Function):
    """Copy a tensor to ``layout``; the gradient goes back in the input's own layout.

    A plain ``.contiguous(memory_format=...)`` hands the incoming gradient on unchanged, so a
    BatchNorm fed a contiguous input would still receive (and a convolution return) gradients in
    the other layout, taking slow mixed-layout kernels on every backward pass.
    """

    @staticmethod
    def forward(ctx: Any, tensor: Tensor, layout: torch.memory_format) -> Tensor:
        ctx.source = (
            torch.channels_last
            if tensor.is_contiguous(memory_format=torch.channels_last)
            else torch.contiguous_format
        )
        out = tensor.contiguous(memory_format=layout)
        return out.clone(memory_format=layout) if out is tensor else out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad.contiguous(memory_format=ctx.source), None


def _to_layout(tensor: Tensor, layout: torch.memory_format) -> Tensor:
    """``tensor`` in ``layout`` through :class:`_ToLayout` (gradients back in its own layout)."""
    out: Tensor = _ToLayout.apply(tensor, layout)  # type: ignore[no-untyped-call]  # torch: untyped
    return out


@contextlib.contextmanager
def contiguous_batchnorm(model: nn.Module) -> Iterator[None]:
    """Run every BatchNorm module of ``model`` on contiguous tensors, handing channels-last on.

    Forward hooks, removed on exit, copy a channels-last 4-d input of a BatchNorm to the
    contiguous layout and its output back to channels-last (gradients likewise, backwards), so
    the convolutions around it keep their faster layout. Only modules called through
    ``__call__`` are seen; ``F.batch_norm`` in a ``forward`` is not.
    """
    handles = []
    converted: list[bool] = []  # one entry per BatchNorm call in flight

    def to_contiguous(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        x = args[0] if args else None
        convert = (
            isinstance(x, Tensor)
            and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last)
            and not x.is_contiguous()
        )
        converted.append(convert)
        if convert and isinstance(x, Tensor):
            return (_to_layout(x, torch.contiguous_format), *args[1:])
        return None

    def to_channels_last(module: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
        if converted.pop() and isinstance(out, Tensor) and out.dim() == 4:
            return _to_layout(out, torch.channels_last)
        return None

    try:
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                handles.append(module.register_forward_pre_hook(to_contiguous))
                handles.append(module.register_forward_hook(to_channels_last))
        yield
    finally:
        for handle in handles:
            handle.remove()
