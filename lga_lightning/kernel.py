"""Empirical neural tangent kernel of a probe batch.

The kernel of a probe batch ``x`` (n samples) is ``K = J J^T`` where row ``i`` of ``J`` is the
gradient of sample ``i``'s output with respect to the selected parameters. The defaults follow the
paper's official code: the output is the *sum of the logits* of each sample, the forward runs once
over the whole batch with the model in train mode (BatchNorm uses batch statistics), and the
parameters are every trainable parameter whose name contains ``weight``, except the classifier.

Implementations (all compute the same kernel and differ in speed and rounding; pick with
``implementation=``):

* ``"loop"`` — the reference: one batched forward in the contiguous layout, then one
  vector-Jacobian product (a backward pass through the whole batch) per kernel row. Always
  correct, O(n^2) work.
* ``"coupled"`` — the same algorithm tuned for speed: channels-last convolutions, preallocated
  rows, gradients only for the selected parameters. BatchNorm modules still run on contiguous
  tensors (copied in and out, gradients too): float32 BatchNorm on channels-last CPU tensors
  sums its batch statistics and gradients less accurately. Measured against a float64 reference
  (relative Frobenius error of the float32 kernel, train-mode NB201 networks, CIFAR-10 probe),
  running every layer channels-last gave 1.8e-3 at C=16, N=5, n=64 where ``"loop"`` gave 6.4e-4
  and ``"coupled"`` gives 6.5e-4 (``python benchmarks/ntk_speed.py --threads 1 --sizes 64
  --implementations auto loop --channels-last-official``), and 2.5e-5 where ``"loop"`` gave
  3.6e-7 and ``"coupled"`` 3.8e-7 at C=8, N=1, n=32 (same command with ``--C 8 --N 1 --sizes 32
  --modes train``). Use it when samples
  interact in the forward (BatchNorm with batch statistics). Still n full-batch backward
  passes: this is the cost floor of a batch-coupled kernel.
* ``"per_sample"`` — per-sample gradients batched with :func:`torch.func.vmap`, O(n) work. Exact
  only when samples do not interact (no BatchNorm using batch statistics); refused otherwise.
* ``"auto"`` — ``"per_sample"`` when the samples are independent, else ``"coupled"``. The choice
  is measured, not guessed: ``benchmarks/ntk_speed.py`` prints the comparison on your machine.

The definitions (kernel, parameter selection, metrics, the paper's protocol) are written out in
``docs/definitions.md``.

Memory: ``J`` holds ``n * k * P`` numbers (``k`` = 1 for ``output="sum"``, C otherwise; P = the
number of selected parameters), e.g. 256 x 1 M float32 = 1 GB. ``chunk_size`` bounds the memory
of the batched per-sample computation on top of that; the coupled paths keep the graph of one
forward over the whole probe batch instead.

Example:
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> K = empirical_ntk(model, torch.randn(5, 4))
    >>> K.shape, bool(torch.allclose(K, K.T))
    (torch.Size([5, 5]), True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, jacrev, vmap
from torch.nn.modules.batchnorm import _BatchNorm

from lga_lightning._layout import contiguous_batchnorm

Output = Literal["sum", "trace", "full"]
BNMode = Literal["train", "eval"]
Implementation = Literal["auto", "loop", "coupled", "per_sample"]
ParamPreset = Literal["paper", "weights", "all"]
ParamSelection = ParamPreset | Callable[[str, nn.Parameter], bool]
OutputFn = Callable[[Any], Tensor]
Rows = Sequence[int] | slice | range | None

DEFAULT_CHUNK_SIZE = 32
"""Samples per batched per-sample gradient computation unless told otherwise."""

_OUTPUTS = ("sum", "trace", "full")
_BN_MODES = ("train", "eval")
_IMPLEMENTATIONS = ("auto", "loop", "coupled", "per_sample")
_PRESETS = ("paper", "weights", "all")


def empirical_ntk(
    model: nn.Module,
    inputs: Tensor,
    *,
    output: Output = "sum",
    params: ParamSelection = "paper",
    classifier: str | None = "auto",
    bn_mode: BNMode = "train",
    output_fn: OutputFn | None = None,
    implementation: Implementation = "auto",
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
        params: ``"paper"`` (trainable parameters whose name contains ``weight``, classifier
            excluded), ``"weights"`` (same, classifier included), ``"all"`` (every trainable
            parameter), or a callable ``(name, parameter) -> bool``.
        classifier: name of the final layer excluded by ``params="paper"``; ``"auto"`` takes the
            last registered :class:`~torch.nn.Linear`; ``None`` excludes nothing.
        bn_mode: ``"train"`` — BatchNorm uses the probe batch's statistics (paper, couples the
            samples); ``"eval"`` — BatchNorm uses its running statistics (samples independent).
        output_fn: picks the logits out of the model's output when it is a tuple or a dict.
        implementation: ``"auto"``, ``"loop"`` (reference), ``"coupled"`` or ``"per_sample"``;
            see the module docstring.
        chunk_size: samples per batched per-sample gradient computation; ``None`` = all at
            once. The default (32) bounds the memory of the ``"per_sample"`` path and was also the
            fastest setting measured on a CPU (``benchmarks/ntk_speed.py``).

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
        params=params,
        classifier=classifier,
        bn_mode=bn_mode,
        output_fn=output_fn,
        implementation=implementation,
        chunk_size=chunk_size,
    )
    return kernel_from_jacobian(jac, output=output)


def ntk_jacobian(
    model: nn.Module,
    inputs: Tensor,
    *,
    rows: Rows = None,
    output: Output = "sum",
    params: ParamSelection = "paper",
    classifier: str | None = "auto",
    bn_mode: BNMode = "train",
    output_fn: OutputFn | None = None,
    implementation: Implementation = "auto",
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
        params: see :func:`empirical_ntk`.
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
    _check_choice("output", output, _OUTPUTS)
    _check_choice("bn_mode", bn_mode, _BN_MODES)
    _check_choice("implementation", implementation, _IMPLEMENTATIONS)
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"`chunk_size` must be a positive integer or None, got {chunk_size!r}.")
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
    n = inputs.shape[0]
    row_index = _row_index(rows, n)
    selected = select_parameters(model, params, classifier)
    coupled = samples_are_coupled(model, bn_mode)
    if implementation == "auto":
        implementation = "coupled" if coupled else "per_sample"
    if implementation == "per_sample" and coupled:
        raise ValueError(
            "implementation='per_sample' treats samples independently, but this model has "
            "BatchNorm layers using batch statistics, which couple the samples; use "
            "implementation='coupled' (exact) or bn_mode='eval'."
        )
    device = _model_device(model)
    x = inputs.to(device)
    if x.is_inference():  # made under inference_mode (e.g. cached by a validation hook)
        x = x.clone()
    with _preserved_state(model, bn_mode), torch.enable_grad():
        if implementation == "per_sample":
            return _per_sample_jacobian(
                model, x, row_index, selected, output, output_fn, chunk_size
            )
        fast = implementation == "coupled"
        return _vjp_loop_jacobian(model, x, row_index, selected, output, output_fn, fast)


def kernel_from_jacobian(
    jac_rows: Tensor, jac_cols: Tensor | None = None, *, output: Output = "sum"
) -> Tensor:
    """Assemble the kernel (or one block of it) from Jacobian rows.

    Args:
        jac_rows: ``(r, k, P)`` rows from :func:`ntk_jacobian`.
        jac_cols: ``(s, k, P)`` rows for the columns; ``jac_rows`` when omitted.
        output: the ``output`` the rows were computed with.

    Returns:
        ``(r, s)`` for ``"sum"``/``"trace"``; ``(r*k, s*k)`` for ``"full"``.

    Example:
        >>> J = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])
        >>> kernel_from_jacobian(J)
        tensor([[1., 1.],
                [1., 2.]])
    """
    _check_choice("output", output, _OUTPUTS)
    cols = jac_rows if jac_cols is None else jac_cols
    if jac_rows.dim() != 3 or cols.dim() != 3 or jac_rows.shape[1:] != cols.shape[1:]:
        raise ValueError(
            "Jacobian blocks must have shape (rows, k, P) with equal k and P, got "
            f"{tuple(jac_rows.shape)} and {tuple(cols.shape)}."
        )
    if output == "full":
        return jac_rows.flatten(0, 1) @ cols.flatten(0, 1).T
    if output == "sum" and jac_rows.shape[1] != 1:
        raise ValueError(
            f"rows computed with output='trace' or 'full' (k={jac_rows.shape[1]}) cannot make an "
            "output='sum' kernel; pass the same `output` as to ntk_jacobian."
        )
    return torch.einsum("ikp,jkp->ij", jac_rows, cols)


@dataclass(frozen=True)
class SelectedParameters:
    """The parameters the kernel differentiates, in the order of ``model.named_parameters()``."""

    names: tuple[str, ...]
    numels: tuple[int, ...]

    @property
    def total(self) -> int:
        """Number of scalar parameters, the width P of the Jacobian."""
        return sum(self.numels)


def select_parameters(
    model: nn.Module, params: ParamSelection = "paper", classifier: str | None = "auto"
) -> SelectedParameters:
    """Resolve a parameter selection to parameter names.

    Args:
        model: the network.
        params: ``"paper"``, ``"weights"``, ``"all"`` or a callable ``(name, parameter) -> bool``.
            Presets keep only parameters with ``requires_grad=True``.
        classifier: module excluded by ``"paper"``; ``"auto"`` = the last ``nn.Linear``.

    Returns:
        The selected parameter names and sizes.

    Raises:
        ValueError: when nothing is selected, naming the candidates and the fix.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 3))
        >>> select_parameters(net).names
        ('0.weight',)
        >>> select_parameters(net, "all").names
        ('0.weight', '0.bias', '2.weight', '2.bias')
    """
    named = list(model.named_parameters())
    if callable(params):
        chosen = [(name, p) for name, p in named if params(name, p)]
    else:
        _check_choice("params", params, _PRESETS)
        trainable = [(name, p) for name, p in named if p.requires_grad]
        if params == "all":
            chosen = trainable
        else:
            chosen = [(name, p) for name, p in trainable if "weight" in name]
            if params == "paper":
                prefix = _classifier_name(model, classifier)
                if prefix is not None:
                    chosen = [(n, p) for n, p in chosen if not n.startswith(prefix + ".")]
    if not chosen:
        names = [name for name, _ in named][:8]
        raise ValueError(
            f"the parameter selection {params!r} matched no trainable parameter of "
            f"{type(model).__name__} (parameters: {names}{'...' if len(named) > 8 else ''}); "
            "unfreeze some parameters, or pass params='all' or a callable (name, param) -> bool."
        )
    return SelectedParameters(tuple(n for n, _ in chosen), tuple(p.numel() for _, p in chosen))


def samples_are_coupled(model: nn.Module, bn_mode: BNMode = "train") -> bool:
    """Whether the forward mixes samples of the batch through BatchNorm batch statistics.

    Other kinds of cross-sample interaction are not detected; such models need
    ``implementation="coupled"`` or ``"loop"``.

    Example:
        >>> samples_are_coupled(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))
        True
        >>> samples_are_coupled(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), "eval")
        False
    """
    for module in model.modules():
        if isinstance(module, _BatchNorm) and (bn_mode == "train" or module.running_mean is None):
            return True
    return False


# --------------------------------------------------------------------------------------------
# implementations


def _vjp_loop_jacobian(
    model: nn.Module,
    x: Tensor,
    row_index: list[int],
    selected: SelectedParameters,
    output: Output,
    output_fn: OutputFn | None,
    fast: bool,
) -> Tensor:
    """One batched forward, then one vector-Jacobian product per Jacobian row.

    The reference (``fast=False``) runs in the contiguous layout. The fast path runs convolutions
    on channels-last tensors but BatchNorm on contiguous ones
    (:func:`lga_lightning._layout.contiguous_batchnorm`): float32 BatchNorm on channels-last CPU
    tensors is far less accurate (see the module docstring).
    """
    channels_last = fast and x.dim() == 4
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()
    params, buffers = _functional_state(model, selected, channels_last=channels_last)
    layout = contiguous_batchnorm(model) if channels_last else contextlib.nullcontext()
    with layout:
        out = functional_call(model, {**params, **buffers}, (x,))
    logits = _logits(out, output_fn, x.shape[0])
    _require_graph(logits, selected)
    k = 1 if output == "sum" else logits.shape[1]
    jac = logits.new_zeros((len(row_index), k, selected.total))
    wrt = [params[name] for name in selected.names]
    cotangent = torch.zeros_like(logits)
    for r, i in enumerate(row_index):
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
                _write_row(jac[r, c], grads, selected.numels)
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


def _per_sample_jacobian(
    model: nn.Module,
    x: Tensor,
    row_index: list[int],
    selected: SelectedParameters,
    output: Output,
    output_fn: OutputFn | None,
    chunk_size: int | None,
) -> Tensor:
    """Per-sample gradients of independent samples, batched with ``torch.func.vmap``."""
    # torch.func differentiates on its own; autograd-tracked leaves would only add a graph.
    params, buffers = _functional_state(model, selected, channels_last=False, autograd=False)
    diff = {name: params.pop(name) for name in selected.names}
    frozen = {**params, **buffers}
    # Check the output of the whole batch once (cheap next to the gradients) before vmapping.
    with torch.no_grad():
        probe_out = _logits(functional_call(model, {**diff, **frozen}, (x,)), output_fn, len(x))

    def logits_of_one(weights: dict[str, Tensor], sample: Tensor) -> Tensor:
        out = functional_call(model, {**weights, **frozen}, (sample.unsqueeze(0),))
        return _logits(out, output_fn, 1)[0]

    if output == "sum":
        per_sample = grad(lambda w, s: logits_of_one(w, s).sum())
        k = 1
    else:
        per_sample = jacrev(logits_of_one)
        k = probe_out.shape[1]
    batched = vmap(per_sample, in_dims=(None, 0), randomness="different")
    jac = x.new_zeros((len(row_index), k, selected.total), dtype=probe_out.dtype)
    step = chunk_size or len(row_index) or 1
    for start in range(0, len(row_index), step):
        idx = row_index[start : start + step]
        grads = batched(diff, x[idx])
        offset = 0
        for name, numel in zip(selected.names, selected.numels, strict=True):
            jac[start : start + len(idx), :, offset : offset + numel] = grads[name].reshape(
                len(idx), k, numel
            )
            offset += numel
    return jac


# --------------------------------------------------------------------------------------------
# helpers


def _functional_state(
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


def _write_row(row: Tensor, grads: Sequence[Tensor | None], numels: Sequence[int]) -> None:
    """Copy flattened gradients into one preallocated Jacobian row (unused parameters stay 0)."""
    offset = 0
    for g, numel in zip(grads, numels, strict=True):
        if g is not None:
            row[offset : offset + numel] = g.reshape(-1)
        offset += numel


def _logits(out: Any, output_fn: OutputFn | None, n: int) -> Tensor:
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


def _require_graph(logits: Tensor, selected: SelectedParameters) -> None:
    if not logits.requires_grad:
        raise ValueError(
            f"the model output does not depend on any selected parameter {list(selected.names)[:4]}"
            "; choose parameters the output depends on with `params=`."
        )


def _classifier_name(model: nn.Module, classifier: str | None) -> str | None:
    if classifier is None:
        return None
    if classifier != "auto":
        if classifier not in dict(model.named_modules()):
            raise ValueError(
                f"`classifier={classifier!r}` is not a submodule of {type(model).__name__}; "
                "pass the name of the final layer as in model.named_modules(), or None."
            )
        return classifier
    linear = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    return linear[-1] if linear else None


def _row_index(rows: Rows, n: int) -> list[int]:
    if rows is None:
        return list(range(n))
    if isinstance(rows, slice):
        return list(range(n))[rows]
    index = [int(i) for i in rows]
    bad = [i for i in index if not 0 <= i < n]
    if bad:
        raise ValueError(f"`rows` must index the {n} probe samples, got out-of-range {bad[:5]}.")
    return index


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"`{name}` can be {', '.join(map(repr, choices))}; got {value!r}.")


@contextlib.contextmanager
def _preserved_state(model: nn.Module, bn_mode: BNMode) -> Iterator[None]:
    """Put the model in the kernel's mode; restore every flag and the RNG state afterwards."""
    flags = {module: module.training for module in model.modules()}
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
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
