"""Reading dataset files with errors that say which file was expected where.

The official CIFAR-10/100 and ImageNet16 batches are pickles; :func:`load_pickle` reads them
with :class:`DataUnpickler`, which builds only what those files hold (numpy arrays, dtypes and
scalars, lists, dicts, bytes, str, numbers), so a crafted batch file cannot run code.
"""

from __future__ import annotations

import _codecs
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


class RefusedPickleError(pickle.UnpicklingError):
    """A pickle names something a dataset batch never holds (and it was not run)."""


def _latin1_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of ``bytes`` use it (latin-1 only)."""
    if encoding.replace("_", "-").lower() not in ("latin1", "latin-1") or errors != "strict":
        raise RefusedPickleError(
            f"the file calls _codecs.encode with encoding {encoding!r}, which a dataset batch "
            "never holds"
        )
    return _codecs.encode(text, "latin1")


def _numpy_globals() -> dict[tuple[str, str], Callable[..., Any]]:
    """The callables numpy's pickles name, under numpy 1 (``numpy.core``) and 2 (``_core``)."""
    try:
        from numpy._core import multiarray, numeric  # numpy 2
    except ImportError:  # numpy 1
        from numpy.core import multiarray, numeric

    table: dict[tuple[str, str], Callable[..., Any]] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for package in ("numpy.core", "numpy._core"):
        table[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        table[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        table[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return table


class DataUnpickler(pickle.Unpickler):
    """An unpickler that admits only the data of the official dataset batches.

    Any global other than numpy's array, dtype and scalar reconstructors (and the latin-1
    ``_codecs.encode`` of protocol-2 ``bytes``) is refused with ``pickle.UnpicklingError``
    before it is looked up, so nothing in the file runs.

    Example:
        >>> import io
        >>> data = pickle.dumps({b"data": np.zeros((1, 3), np.uint8), b"labels": [1]}, 2)
        >>> DataUnpickler(io.BytesIO(data), encoding="latin1").load()[b"labels"]
        [1]
        >>> try:
        ...     DataUnpickler(io.BytesIO(pickle.dumps(print))).load()
        ... except RefusedPickleError as err:
        ...     print(err)
        the file names builtins.print, which a dataset batch never holds
    """

    _allowed: dict[tuple[str, str], Callable[..., Any]] | None = None

    def find_class(self, module: str, name: str) -> Any:
        if DataUnpickler._allowed is None:
            DataUnpickler._allowed = {**_numpy_globals(), ("_codecs", "encode"): _latin1_encode}
        found = DataUnpickler._allowed.get((module, name))
        if found is None:
            raise RefusedPickleError(
                f"the file names {module}.{name}, which a dataset batch never holds"
            )
        return found


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
    """Unpickle one dataset batch file (Python-2 pickles read with ``latin1``).

    Only data is built (:class:`DataUnpickler`): a file that names anything else is refused.
    """
    try:
        with path.open("rb") as f:
            data = DataUnpickler(f, encoding="latin1").load()
    except RefusedPickleError as err:
        raise ValueError(
            f"{what}: refused {path}: {err}; it is not an official batch file and nothing in it "
            f"was run. Replace it. {how_to_get}"
        ) from err
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
