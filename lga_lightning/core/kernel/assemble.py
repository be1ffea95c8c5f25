"""Assemble the kernel, or one block of it, from rows of the Jacobian."""

from __future__ import annotations

import torch
from torch import Tensor

from lga_lightning.core.kernel._options import OUTPUTS, Output, check_choice


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
        return jac_rows.flatten(0, 1) @ cols.flatten(0, 1).T
    if output == "sum" and jac_rows.shape[1] != 1:
        raise ValueError(
            f"rows computed with output='trace' or 'full' (k={jac_rows.shape[1]}) cannot make an "
            "output='sum' kernel; pass the same `output` as to ntk_jacobian."
        )
    return torch.einsum("ikp,jkp->ij", jac_rows, cols)
