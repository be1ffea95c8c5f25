"""NTK metrics and Label-Gradient Alignment for PyTorch Lightning.

Public names are imported lazily so that ``import lga_lightning`` stays cheap and the pure
kernel/metric layers never pull in Lightning: classes (:class:`NTKMetrics`, :class:`LGASearch`,
:class:`NTKMeter`) and the main functions at the top level, pure functions of a kernel in
:mod:`lga_lightning.functional`, the kernel engine in :mod:`lga_lightning.kernel`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "empirical_ntk": "lga_lightning.kernel",
    "ntk_jacobian": "lga_lightning.kernel",
    "kernel_from_jacobian": "lga_lightning.kernel",
    "ntk_metrics": "lga_lightning.functional",
    "NTKMetrics": "lga_lightning.callback",
    "LGASearch": "lga_lightning.search",
    "linearize": "lga_lightning.linearization",
    "LinearizedModel": "lga_lightning.linearization",
    "NTKMeter": "lga_lightning.meter",
    "draw_probe": "lga_lightning.probe",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lga_lightning' has no attribute {name!r}")
