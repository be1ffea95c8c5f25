"""An explicit probe file (``lga-correlate --probe_file``), read and checked against the data."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

HOW = "save the probe with numpy.savez(path, x=images, y=labels)"


def read_probe_file(
    path: str | Path, input_shape: Sequence[int], num_classes: int
) -> tuple[Tensor, Tensor]:
    """The images and labels of a probe ``.npz``, checked against the datamodule's images.

    ``x`` must be real numbers of shape ``(n, *input_shape)``, ``y`` ``n`` integer labels in
    ``0..num_classes-1``. Nothing in the file is unpickled (``allow_pickle=False``).

    Args:
        path: the ``.npz`` file.
        input_shape: ``(C, H, W)`` of the datamodule's images.
        num_classes: the datamodule's number of classes.

    Returns:
        ``x`` as float32 and ``y`` as int64 tensors.

    Raises:
        ValueError: one line naming the file, what is wrong and the fix.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "probe.npz")
        >>> np.savez(path, x=np.zeros((2, 1, 4, 4)), y=np.array([0, 1]))
        >>> [tuple(t.shape) for t in read_probe_file(path, (1, 4, 4), 2)]
        [(2, 1, 4, 4), (2,)]
    """
    shape = tuple(int(s) for s in input_shape)
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if not isinstance(arrays, np.lib.npyio.NpzFile):
                raise ValueError(f"`probe_file` {path} is a single array, not an .npz; {HOW}.")
            missing = [k for k in ("x", "y") if k not in arrays]
            if missing:
                raise ValueError(f"`probe_file` {path} lacks the arrays {missing}; {HOW}.")
            x, y = arrays["x"], arrays["y"]
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"`probe_file` {path} is not a readable .npz ({err}); {HOW}.") from None
    except ValueError as err:
        if "probe_file" in str(err):
            raise
        raise ValueError(f"`probe_file` {path} cannot be read ({err}); {HOW}.") from None
    if x.dtype.kind not in "iuf" or x.shape[1:] != shape:
        raise ValueError(
            f"`probe_file` {path}: x is {x.dtype} of shape {x.shape}, the datamodule's images "
            f"are real numbers of shape (n, {', '.join(map(str, shape))}); save images as the "
            "model takes them (after the datamodule's transforms)."
        )
    if y.dtype.kind not in "iu" or y.ndim != 1 or len(y) != len(x):
        raise ValueError(
            f"`probe_file` {path}: y is {y.dtype} of shape {y.shape} for {len(x)} images; "
            "expected one integer label per image."
        )
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= num_classes):
        raise ValueError(
            f"`probe_file` {path}: labels lie in [{int(y.min())}, {int(y.max())}], the "
            f"datamodule has {num_classes} classes (labels 0..{num_classes - 1}); fix the labels "
            "or the datamodule."
        )
    if not np.isfinite(x).all():
        raise ValueError(f"`probe_file` {path}: x holds nan or inf values; save finite images.")
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
