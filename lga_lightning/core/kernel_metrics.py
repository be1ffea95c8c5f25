"""Metrics of an empirical NTK: pure functions of a kernel, no Lightning.

The functions themselves; their names, directions and needs are rows of
:data:`lga_lightning.core.signals.SIGNALS`, and :func:`lga_lightning.core.functional.ntk_metrics`
computes several of them by name. Import them from :mod:`lga_lightning.core.functional`.

Every scalar metric returns a Python ``float``. Where a metric is undefined (a probe batch with
one class, a constant or non-finite kernel) it returns ``nan`` — or ``inf`` for the condition
number of a singular kernel — and warns with :class:`NTKMetricWarning`, naming the cause and the
fix. It never returns a silently wrong number.

Example:
    >>> import torch
    >>> y = torch.tensor([0, 0, 1, 1])
    >>> L = label_kernel(y)
    >>> round(lga(L, y), 6), round(condition_number(torch.eye(3)), 6)
    (1.0, 1.0)
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import Tensor


class NTKMetricWarning(UserWarning):
    """A metric is undefined for this kernel or these labels; the value is nan or inf."""


def label_kernel(labels: Tensor) -> Tensor:
    """The label kernel ``L_ij = +1 if y_i == y_j else -1`` (diagonal ``+1``).

    Example:
        >>> label_kernel(torch.tensor([0, 1, 0]))
        tensor([[ 1., -1.,  1.],
                [-1.,  1., -1.],
                [ 1., -1.,  1.]], dtype=torch.float64)
    """
    y = torch.as_tensor(labels).reshape(-1)
    return (y[:, None] == y[None, :]).to(torch.float64) * 2.0 - 1.0


def lga(kernel: Tensor, labels: Tensor, *, off_diagonal: bool = False) -> float:
    r"""Label-Gradient Alignment: the Pearson correlation of the entries of ``K`` and ``L``.

    .. math::
        \mathrm{LGA} = \frac{\sum_{ij} (K_{ij} - \bar K)(L_{ij} - \bar L)}
                            {\lVert K - \bar K \rVert_F \, \lVert L - \bar L \rVert_F}

    with ``L`` from :func:`label_kernel` and a single scalar mean subtracted (no ``HKH``
    centring). Because the diagonal is included, LGA is positive even for random labels;
    ``off_diagonal=True`` uses only the entries ``i != j``.

    Args:
        kernel: ``(n, n)`` NTK.
        labels: ``n`` integer labels.
        off_diagonal: drop the diagonal entries of both kernels.

    Returns:
        LGA in ``[-1, 1]``; ``nan`` (with a warning) when the labels hold one class, when
        ``off_diagonal`` and no two samples share a class, or when the kernel is constant or
        non-finite.

    Example:
        >>> K = torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
        >>> round(lga(K, torch.tensor([0, 0, 1])), 4)
        0.9087
    """
    K = _square(kernel, "kernel")
    y = torch.as_tensor(labels).reshape(-1)
    if y.numel() != K.shape[0]:
        raise ValueError(
            f"lga needs one label per kernel row: kernel is {tuple(K.shape)}, got {y.numel()} "
            "labels; pass the labels of the probe batch the kernel was computed on."
        )
    L = label_kernel(y).to(K.device)
    if y.unique().numel() < 2:
        return _undefined(
            "LGA is undefined for a probe batch with a single class; use a class-balanced probe "
            "batch with at least two classes."
        )
    if off_diagonal:
        mask = ~torch.eye(K.shape[0], dtype=torch.bool, device=K.device)
        if y.unique().numel() == y.numel():
            return _undefined(
                "off-diagonal LGA is undefined when no two probe samples share a class (every "
                "off-diagonal label entry is -1); use a probe batch with several samples per "
                "class, or off_diagonal=False."
            )
        return _pearson(K[mask], L[mask], "LGA")
    return _pearson(K.reshape(-1), L.reshape(-1), "LGA")


def condition_number(kernel: Tensor) -> float:
    r"""``lambda_max / lambda_min`` of the symmetric kernel (``eigvalsh`` in float64).

    Returns:
        The condition number; ``inf`` (with a warning) when the smallest eigenvalue is not
        positive (a singular kernel), ``nan`` (with a warning) for a non-finite kernel.

    Example:
        >>> condition_number(torch.diag(torch.tensor([1.0, 4.0])))
        4.0
    """
    eig = eigenvalues(kernel)
    if not torch.isfinite(eig).all():
        return _undefined("the kernel holds nan or inf; its condition number is nan.")
    lo, hi = float(eig[0]), float(eig[-1])
    if lo <= 0.0:
        warnings.warn(
            f"the kernel is singular (smallest eigenvalue {lo:.3g}); its condition number is inf. "
            "A larger probe batch than the number of parameters, or duplicate samples, cause this.",
            NTKMetricWarning,
            stacklevel=2,
        )
        return math.inf
    return hi / lo


def eigenvalues(kernel: Tensor) -> Tensor:
    """Eigenvalues of the symmetrised kernel in ascending order, float64.

    A non-finite kernel gives a vector of ``nan`` (with a warning) instead of an error.

    Example:
        >>> eigenvalues(torch.tensor([[2.0, 0.0], [0.0, 3.0]]))
        tensor([2., 3.], dtype=torch.float64)
    """
    K = _square(kernel, "kernel").to(torch.float64)
    if not torch.isfinite(K).all():
        warnings.warn(
            "the kernel holds nan or inf (the network's outputs or gradients diverged); "
            "its spectrum is nan.",
            NTKMetricWarning,
            stacklevel=2,
        )
        return torch.full((K.shape[0],), math.nan, dtype=torch.float64)
    spectrum: Tensor = torch.linalg.eigvalsh((K + K.T) / 2)
    return spectrum


def frobenius_norm(kernel: Tensor) -> float:
    r"""``||K||_F = sqrt(sum_ij K_ij^2)``.

    Example:
        >>> frobenius_norm(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))
        5.0
    """
    return float(torch.linalg.matrix_norm(_square(kernel, "kernel").to(torch.float64)))


def mean(kernel: Tensor) -> float:
    """Mean of all ``n^2`` entries (the KNAS score).

    Example:
        >>> mean(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        2.5
    """
    return float(_square(kernel, "kernel").to(torch.float64).mean())


def trace(kernel: Tensor) -> float:
    """``tr K``, the sum of the squared gradient norms of the samples.

    Example:
        >>> trace(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        5.0
    """
    return float(_square(kernel, "kernel").to(torch.float64).trace())


def kernel_distance(kernel_0: Tensor, kernel_t: Tensor) -> float:
    r"""``1 - <K_0, K_t>_F / (||K_0||_F ||K_t||_F)``: 0 for kernels equal up to scale.

    Computed as ``||u - v||^2 / 2`` with ``u, v`` the unit-norm kernels, equal to the above but
    free of its cancellation: a kernel compared with itself gives exactly 0 on every CPU, and a
    small distance keeps its digits.

    Example:
        >>> K = torch.tensor([[2.0, 1.0], [1.0, 2.0]])
        >>> kernel_distance(K, 3 * K)
        0.0
    """
    a, b = _pair(kernel_0, kernel_t)
    norm_a, norm_b = torch.linalg.vector_norm(a), torch.linalg.vector_norm(b)
    denom = norm_a * norm_b
    if not torch.isfinite(denom) or denom == 0:
        return _undefined("kernel distance is undefined for a zero or non-finite kernel.")
    return float(0.5 * (a / norm_a - b / norm_b).square().sum())


def kernel_correlation(kernel_0: Tensor, kernel_t: Tensor) -> float:
    """Pearson correlation of the entries of two kernels.

    Example:
        >>> K = torch.tensor([[2.0, 1.0], [1.0, 3.0]])
        >>> round(kernel_correlation(K, 2 * K + 1), 6)
        1.0
    """
    a, b = _pair(kernel_0, kernel_t)
    return _pearson(a, b, "kernel correlation")


def relative_kernel_difference(kernel_0: Tensor, kernel_t: Tensor, eps: float = 1e-4) -> float:
    r"""``|| |K_0 - K_t| / (|K_0| + eps) ||_F``, the entrywise relative change.

    ``eps`` defaults to 1e-4, the value of the paper's official code
    (``kernel_track/nasbench2_ntk_track.py`` in github.com/naver-ai/demystifying-ntk), so values
    compare with the paper's. It is absolute, not relative to the kernel's scale: entries of
    ``K_0`` near or below 1e-4 dominate the sum. See ``docs/definitions.md``.

    ``nan`` (with a warning) when either kernel holds nan or inf.

    Args:
        kernel_0: the reference kernel (e.g. at initialisation).
        kernel_t: the kernel to compare, same shape.
        eps: added to ``|K_0|`` in the denominator.

    Returns:
        The Frobenius norm of the entrywise relative change.

    Example:
        >>> K0 = torch.tensor([[1.0, 2.0], [2.0, 4.0]])
        >>> round(relative_kernel_difference(K0, 1.5 * K0, eps=0.0), 6)
        1.0
        >>> # |0.5| / (1 + 1e-4), |1| / (2 + 1e-4) twice, |2| / (4 + 1e-4): each ~0.5
        >>> round(relative_kernel_difference(K0, 1.5 * K0), 6)
        0.999944
    """
    a, b = _pair(kernel_0, kernel_t)
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return _undefined(
            "relative kernel difference is undefined for a kernel holding nan or inf."
        )
    return float(torch.linalg.vector_norm((a - b).abs() / (a.abs() + eps)))


def _square(kernel: Tensor, name: str) -> Tensor:
    K = torch.as_tensor(kernel)
    if K.dim() != 2 or K.shape[0] != K.shape[1] or K.shape[0] == 0:
        raise ValueError(
            f"`{name}` must be a non-empty square (n, n) matrix, got {tuple(K.shape)}."
        )
    return K.detach()


def _pair(kernel_0: Tensor, kernel_t: Tensor) -> tuple[Tensor, Tensor]:
    a = _square(kernel_0, "kernel_0").to(torch.float64)
    b = _square(kernel_t, "kernel_t").to(torch.float64).to(a.device)
    if a.shape != b.shape:
        raise ValueError(
            f"kernels of different probe batches cannot be compared: {tuple(a.shape)} vs "
            f"{tuple(b.shape)}; compute both on the same probe batch."
        )
    return a.reshape(-1), b.reshape(-1)


def _pearson(a: Tensor, b: Tensor, what: str) -> float:
    a = a.to(torch.float64)
    b = b.to(torch.float64).to(a.device)
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        return _undefined(f"{what} is undefined for a kernel holding nan or inf.")
    da, db = a - a.mean(), b - b.mean()
    denom = torch.linalg.vector_norm(da) * torch.linalg.vector_norm(db)
    # A constant kernel has no spread; tiny float noise around a constant counts as constant too.
    scale = torch.linalg.vector_norm(a) * torch.linalg.vector_norm(b)
    if denom == 0 or denom <= 1e-12 * scale:
        return _undefined(
            f"{what} is undefined for a constant kernel (all entries equal); the network's "
            "gradients do not distinguish the samples — check the model and the probe batch."
        )
    return float(torch.clamp((da * db).sum() / denom, -1.0, 1.0))


def _undefined(message: str) -> float:
    warnings.warn(message, NTKMetricWarning, stacklevel=3)
    return math.nan
