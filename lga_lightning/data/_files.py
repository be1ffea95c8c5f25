"""Reading dataset files with errors that say which file was expected where."""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def find_folder(root: Path, folder: str, marker: str) -> Path:
    """``root/folder`` if it exists, else ``root`` itself when it already holds ``marker``."""
    if (root / folder).is_dir():
        return root / folder
    if (root / marker).is_file():
        return root
    return root / folder


def require_files(folder: Path, names: Sequence[str], what: str, how_to_get: str) -> None:
    """Raise ``FileNotFoundError`` listing every missing file of a dataset folder."""
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{what}: missing {', '.join(missing)} in {folder}. Expected the folder to hold "
            f"{', '.join(names)}. {how_to_get}"
        )


def load_pickle(path: Path, what: str, how_to_get: str) -> dict[str, Any]:
    """Unpickle one dataset batch file (Python-2 pickles read with ``latin1``)."""
    try:
        with path.open("rb") as f:
            data = pickle.load(f, encoding="latin1")
    except Exception as err:  # a damaged pickle fails in many ways; all mean the same here
        raise ValueError(
            f"{what}: cannot read {path} ({type(err).__name__}: {err}); the file is damaged or "
            f"not a dataset batch. Replace it. {how_to_get}"
        ) from err
    if not isinstance(data, dict):
        raise ValueError(f"{what}: {path} holds a {type(data).__name__}, expected a dict.")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def image_batch(
    data: dict[str, Any],
    path: Path,
    label_key: str,
    channels: int,
    size: int,
    what: str,
    how_to_get: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Check a batch dict (``data`` rows of ``C*H*W`` uint8, labels) and return NCHW + labels."""
    if "data" not in data or label_key not in data:
        raise ValueError(
            f"{what}: {path} has keys {sorted(data)}, expected 'data' and {label_key!r}. "
            f"{how_to_get}"
        )
    x = np.asarray(data["data"])
    y = np.asarray(data[label_key]).reshape(-1)
    flat = channels * size * size
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != flat:
        raise ValueError(
            f"{what}: {path} 'data' is {x.dtype} with shape {x.shape}, expected uint8 rows of "
            f"{channels}*{size}*{size}={flat} values."
        )
    if len(y) != len(x):
        raise ValueError(f"{what}: {path} holds {len(x)} images but {len(y)} labels.")
    if len(y) and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{what}: {path} labels are {y.dtype}, expected integers.")
    return x.reshape(-1, channels, size, size), y.astype(np.int64)
