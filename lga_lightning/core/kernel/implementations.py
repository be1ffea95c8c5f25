"""The one table of kernel implementations, and the rule ``implementation="auto"`` follows.

Every implementation computes the same Jacobian ``J`` (hence the same kernel ``K = J J^T``);
they differ in speed, memory and rounding. Each is a function
``(model, x, rows, selected, output, output_fn, chunk_size) -> J`` of shape ``(r, k, P)``.
:func:`~lga_lightning.core.kernel.ntk_jacobian` dispatches through :data:`IMPLEMENTATIONS` and the
option checks (:func:`lga_lightning.core.meter.check_kernel_kwargs`) accept exactly
:data:`CHOICES`; nothing else lists them.

* ``"loop"`` — the reference: one forward over the whole probe in the contiguous layout, then one
  vector-Jacobian product (a backward pass through the whole batch) per row of ``J``. Always
  exact, O(n^2) work. Use it to check the others.
* ``"coupled"`` — the same algorithm tuned for a CPU: channels-last convolutions, preallocated
  rows, gradients only for the selected parameters; BatchNorm stays on contiguous tensors
  (float32 BatchNorm on channels-last CPU tensors sums its statistics less accurately). Use it
  on a CPU when BatchNorm uses batch statistics (the paper's setting): n backward passes is the
  cost floor of a batch-coupled kernel there.
* ``"batched"`` — the coupled kernel with ``chunk_size`` backward passes batched into one
  (``torch.autograd.grad(..., is_grads_batched=True)`` over one-hot cotangents). Same work as
  ``"coupled"`` but far fewer, larger kernel launches: use it on a GPU, where one backward of a
  small network cannot fill the device. Transient memory ~ ``chunk_size * k`` backward passes.
* ``"per_sample"`` — per-sample gradients batched with :func:`torch.func.vmap`, O(n) work. Exact
  only when the samples do not interact (no BatchNorm using batch statistics); refused
  otherwise. Use it whenever it is exact.
* ``"auto"`` — ``"per_sample"`` when the samples are independent; otherwise ``"batched"`` when
  the model is on a CUDA device and ``"coupled"`` elsewhere (:func:`resolve`).

Example:
    >>> sorted(IMPLEMENTATIONS)
    ['batched', 'coupled', 'loop', 'per_sample']
    >>> CHOICES[0]
    'auto'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lga_lightning.core.kernel._options import Output, OutputFn
from lga_lightning.core.kernel.parameters import SelectedParameters
from lga_lightning.core.kernel.per_sample import per_sample_jacobian
from lga_lightning.core.kernel.vjp import batched_jacobian, coupled_jacobian, loop_jacobian

JacobianFn = Callable[
    [nn.Module, Tensor, list[int], SelectedParameters, Output, "OutputFn | None", "int | None"],
    Tensor,
]


@dataclass(frozen=True)
class Implementation:
    """One way to compute ``J``: the function and whether it is exact for coupled samples."""

    function: JacobianFn
    exact_when_coupled: bool
    summary: str


IMPLEMENTATIONS: dict[str, Implementation] = {
    "loop": Implementation(loop_jacobian, True, "reference: one backward per row"),
    "coupled": Implementation(coupled_jacobian, True, "one backward per row, CPU-tuned layout"),
    "batched": Implementation(batched_jacobian, True, "chunk_size backward passes batched"),
    "per_sample": Implementation(per_sample_jacobian, False, "vmap per-sample gradients"),
}
"""Implementation name -> :class:`Implementation` (see the module docstring for when to use)."""

CHOICES: tuple[str, ...] = ("auto", *IMPLEMENTATIONS)
"""Every value ``implementation=`` accepts."""


def resolve(name: str, coupled: bool, device: torch.device) -> Implementation:
    """The implementation ``name`` stands for, refusing an inexact choice with the fix.

    Args:
        name: one of :data:`CHOICES`.
        coupled: whether the forward couples the samples
            (:func:`~lga_lightning.core.kernel.samples_are_coupled`).
        device: the model's device; ``"auto"`` batches the coupled backward passes on CUDA.

    Example:
        >>> resolve("auto", True, torch.device("cpu")).function.__name__
        'coupled_jacobian'
        >>> resolve("auto", True, torch.device("cuda")).function.__name__
        'batched_jacobian'
        >>> resolve("auto", False, torch.device("cuda")).function.__name__
        'per_sample_jacobian'
    """
    if name == "auto" and not coupled:
        name = "per_sample"
    elif name == "auto":
        name = "batched" if device.type == "cuda" else "coupled"
    implementation = IMPLEMENTATIONS[name]
    if coupled and not implementation.exact_when_coupled:
        exact = [n for n, impl in IMPLEMENTATIONS.items() if impl.exact_when_coupled]
        raise ValueError(
            f"implementation={name!r} treats samples independently, but this model has "
            "BatchNorm layers using batch statistics, which couple the samples; use "
            f"implementation='coupled' (exact; also {', '.join(map(repr, exact))}) "
            "or bn_mode='eval'."
        )
    return implementation
