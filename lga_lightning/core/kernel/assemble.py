"""Assemble the kernel, or one block of it, from rows of the Jacobian.

A kernel entry is a dot product over every parameter (and, for ``output="trace"``, every output):
hundreds of thousands of float32 products. Summed in one float32 matrix product their rounding
error grows with that length (3.5e-6 relative on an NB201 C=16 N=5 network's traced kernel,
where the Jacobian itself is accurate to 2e-7), so long products are split into column chunks of
:data:`CHUNK` whose float32 products are summed in float64: 4e-8 there (as accurate as
PyTorch's NTK-tutorial recipe), for 1.2x the time of the one product, itself a small part of
computing the Jacobian (0.39 s against 0.33 s at n = 32, one thread, beside about 5 s for the
Jacobian).
"""

from __future__ import annotations

import torch
from torch import Tensor

from lga_lightning.core.kernel._options import OUTPUTS, Output, check_choice

CHUNK = 4096
"""Columns per float32 product when a long one is summed in float64."""


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
    check_choice("output", output, OUTPUTS)
    cols = jac_rows if jac_cols is None else jac_cols
    if jac_rows.dim() != 3 or cols.dim() != 3 or jac_rows.shape[1:] != cols.shape[1:]:
        raise ValueError(
            "Jacobian blocks must have shape (rows, k, P) with equal k and P, got "
            f"{tuple(jac_rows.shape)} and {tuple(cols.shape)}."
        )
    if output == "full":
        return gram(jac_rows.flatten(0, 1), cols.flatten(0, 1))
    if output == "sum" and jac_rows.shape[1] != 1:
        raise ValueError(
            f"rows computed with output='trace' or 'full' (k={jac_rows.shape[1]}) cannot make an "
            "output='sum' kernel; pass the same `output` as to ntk_jacobian."
        )
    return gram(jac_rows.reshape(jac_rows.shape[0], -1), cols.reshape(cols.shape[0], -1))


def gram(rows: Tensor, cols: Tensor) -> Tensor:
    """``rows @ cols.T``; in low precision over long rows, chunk products summed in float64.

    Args:
        rows: ``(r, L)``.
        cols: ``(s, L)``.

    Returns:
        ``(r, s)`` in the dtype of ``rows``.

    Example:
        >>> a = torch.randn(3, 200_000)
        >>> exact = a.double() @ a.double().T
        >>> bool((gram(a, a).double() - exact).abs().max() <= (a @ a.T - exact).abs().max())
        True
    """
    if rows.dtype == torch.float64 or rows.shape[1] <= CHUNK:
        return rows @ cols.T
    # MPS has no float64: there the chunks are summed in float32, still shorter sums
    wide = torch.float32 if rows.device.type == "mps" else torch.float64
    out = torch.zeros(rows.shape[0], cols.shape[0], dtype=wide, device=rows.device)
    for start in range(0, rows.shape[1], CHUNK):
        end = start + CHUNK
        out += (rows[:, start:end] @ cols[:, start:end].T).to(wide)
    return out.to(rows.dtype)
