"""The two entry points, :func:`empirical_ntk` and :func:`ntk_jacobian`.

Both check the options, pick the implementation from
:data:`lga_lightning.core.kernel.implementations.IMPLEMENTATIONS` and leave the model as it was.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lga_lightning._compat import renamed_keywords
from lga_lightning.core.kernel._options import (
    BN_MODES,
    DEFAULT_CHUNK_SIZE,
    OUTPUTS,
    BNMode,
    Output,
    OutputFn,
    ParamSelection,
    Rows,
    check_choice,
    check_chunk_size,
)
from lga_lightning.core.kernel._state import model_device, preserved_state, row_index
from lga_lightning.core.kernel.assemble import kernel_from_jacobian
from lga_lightning.core.kernel.implementations import CHOICES, resolve
from lga_lightning.core.kernel.parameters import samples_are_coupled, select_parameters


@renamed_keywords("params")
def empirical_ntk(
    model: nn.Module,
    inputs: Tensor,
    *,
    output: Output = "sum",
    param_selection: ParamSelection = "paper",
    classifier: str | None = "auto",
    bn_mode: BNMode = "train",
    output_fn: OutputFn | None = None,
    implementation: str = "auto",
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
) -> Tensor:
    """Compute the empirical NTK of a probe batch.

    The model is left exactly as it was: training flags, BatchNorm running statistics, ``.grad``,
    ``requires_grad`` and the global RNG state.

    Args:
        model: any module mapping ``inputs`` to logits of shape ``(n, C)`` (or to a tuple/dict
            holding them, see ``output_fn``).
        inputs: the probe batch, first dimension ``n``.
        output: ``"sum"`` — gradient of the sum of the logits per sample (paper), kernel
            ``(n, n)``; ``"trace"`` — the traced NTK ``sum_c J_c J_c^T``, ``(n, n)``; ``"full"`` —
            every logit, ``(n*C, n*C)`` ordered sample-major (row ``i*C + c``).
        param_selection: ``"paper"`` (trainable parameters whose name contains ``weight``,
            classifier excluded), ``"weights"`` (same, classifier included), ``"all"`` (every
            trainable parameter), or a callable ``(name, parameter) -> bool``.
        classifier: name of the final layer excluded by ``param_selection="paper"``; ``"auto"``
            takes the last registered :class:`~torch.nn.Linear`; ``None`` excludes nothing.
        bn_mode: ``"train"`` — BatchNorm uses the probe batch's statistics (paper, couples the
            samples); ``"eval"`` — BatchNorm uses its running statistics (samples independent).
        output_fn: picks the logits out of the model's output when it is a tuple or a dict.
        implementation: ``"auto"`` or a name of
            :data:`~lga_lightning.core.kernel.implementations.IMPLEMENTATIONS` (``"loop"``,
            ``"coupled"``, ``"batched"``, ``"per_sample"``); ``"auto"`` takes ``"per_sample"``
            for independent samples, else ``"batched"`` on CUDA and ``"coupled"`` elsewhere.
        chunk_size: samples per batched gradient computation (``"per_sample"``, ``"batched"``);
            ``None`` = all at once. The default (32) bounds their transient memory and was also
            the fastest ``"per_sample"`` setting measured on a CPU (``benchmarks/ntk_speed.py``).

    Returns:
        The kernel, a symmetric tensor of shape ``(n, n)`` (``(n*C, n*C)`` for ``"full"``) in the
        parameters' dtype, on the model's device.

    Raises:
        ValueError: on an unknown option, a parameter selection that matches nothing, or a model
            output that is not ``(n, C)``; the message names the fix.
        RuntimeError: when called under :func:`torch.inference_mode`.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
        ...                     nn.Flatten(), nn.Linear(4 * 4 * 4, 10))
        >>> x = torch.randn(8, 1, 6, 6)
        >>> K = empirical_ntk(net, x)                      # paper: train-mode BN, sum of logits
        >>> K_ref = empirical_ntk(net, x, implementation="loop")
        >>> bool(torch.allclose(K, K_ref, rtol=1e-4, atol=1e-5))
        True
        >>> empirical_ntk(net, x, output="full").shape
        torch.Size([80, 80])
    """
    jac = ntk_jacobian(
        model,
        inputs,
        output=output,
        param_selection=param_selection,
        classifier=classifier,
        bn_mode=bn_mode,
        output_fn=output_fn,
        implementation=implementation,
        chunk_size=chunk_size,
    )
    return kernel_from_jacobian(jac, output=output)


@renamed_keywords("params")
def ntk_jacobian(
    model: nn.Module,
    inputs: Tensor,
    *,
    rows: Rows = None,
    output: Output = "sum",
    param_selection: ParamSelection = "paper",
    classifier: str | None = "auto",
    bn_mode: BNMode = "train",
    output_fn: OutputFn | None = None,
    implementation: str = "auto",
    chunk_size: int | None = DEFAULT_CHUNK_SIZE,
) -> Tensor:
    """Rows of the Jacobian ``J`` whose Gram matrix is the empirical NTK.

    The forward always runs over the *whole* probe batch (so batch statistics are those of the
    full batch), but only the rows of the samples in ``rows`` are differentiated. This lets
    several processes each compute a shard of the rows; :func:`kernel_from_jacobian` assembles the
    kernel from the gathered shards.

    Args:
        model: see :func:`empirical_ntk`.
        inputs: see :func:`empirical_ntk`.
        rows: indices (or a slice) of the probe samples whose rows to compute; all by default.
        output: see :func:`empirical_ntk`.
        param_selection: see :func:`empirical_ntk`.
        classifier: see :func:`empirical_ntk`.
        bn_mode: see :func:`empirical_ntk`.
        output_fn: see :func:`empirical_ntk`.
        implementation: see :func:`empirical_ntk`.
        chunk_size: see :func:`empirical_ntk`.

    Returns:
        A tensor of shape ``(r, k, P)``: ``r`` selected samples, ``k`` = 1 for ``output="sum"``
        and C for ``"trace"``/``"full"``, ``P`` selected parameters.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> _ = torch.manual_seed(0)
        >>> net = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
        >>> x = torch.randn(6, 3)
        >>> shards = [ntk_jacobian(net, x, rows=r) for r in (range(0, 3), range(3, 6))]
        >>> K = kernel_from_jacobian(torch.cat(shards))
        >>> bool(torch.allclose(K, empirical_ntk(net, x)))
        True
    """
    check_choice("output", output, OUTPUTS)
    check_choice("bn_mode", bn_mode, BN_MODES)
    check_choice("implementation", implementation, CHOICES)
    check_chunk_size(chunk_size)
    if not isinstance(inputs, Tensor) or inputs.dim() == 0:
        raise ValueError(
            f"`inputs` must be a batched tensor (n, ...), got {type(inputs).__name__}"
            f"{'' if not isinstance(inputs, Tensor) else ' of shape ' + str(tuple(inputs.shape))}."
        )
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "the NTK needs gradients but was called under torch.inference_mode (for example from "
            "a validation or test hook); compute it in on_train_start / on_train_epoch_end or "
            "outside `torch.inference_mode()`."
        )
    index = row_index(rows, inputs.shape[0])
    selected = select_parameters(model, param_selection, classifier)
    device = model_device(model)
    chosen = resolve(implementation, samples_are_coupled(model, bn_mode), device)
    x = inputs.to(device)
    if x.is_inference():  # made under inference_mode (e.g. cached by a validation hook)
        x = x.clone()
    with preserved_state(model, bn_mode), torch.enable_grad():
        return chosen.function(model, x, index, selected, output, output_fn, chunk_size)
