"""NTK metrics and Label-Gradient Alignment for PyTorch Lightning.

The package has three wings, each importing only the ones before it:

- ``lga_lightning.core``: the measuring core (kernels, signals, probes, the meter, proxies,
  evolution, linearisation); torch only, never Lightning;
- ``lga_lightning.training``: the Lightning side (the ``NTKMetrics`` callback, the measurement
  session, the classification module);
- ``lga_lightning.search``: architecture search (spaces, ground truth, the search module, its
  strategies, Ray Tune).

``lga_lightning.data`` (data modules) and ``lga_lightning.utils`` (files, locks, threads) sit
beside them. Public names are imported lazily so that ``import lga_lightning`` stays cheap.
The module paths of 0.2 (``lga_lightning.spaces``, ``lga_lightning.functional``, ...) still
import, as aliases of their new homes (``lga_lightning._compat``).
"""

from __future__ import annotations

import importlib
from typing import Any

from lga_lightning import _compat

_compat.install()

__version__ = "0.1.0"

_EXPORTS = {
    "empirical_ntk": "lga_lightning.core.kernel",
    "ntk_jacobian": "lga_lightning.core.kernel",
    "kernel_from_jacobian": "lga_lightning.core.kernel",
    "ntk_metrics": "lga_lightning.core.functional",
    "NTKMetrics": "lga_lightning.training.callback",
    "LGASearch": "lga_lightning.search",
    "linearize": "lga_lightning.core.linearization",
    "LinearizedModel": "lga_lightning.core.linearization",
    "NTKMeter": "lga_lightning.core.meter",
    "draw_probe": "lga_lightning.core.probe",
    "MeasurementSession": "lga_lightning.training.session",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lga_lightning' has no attribute {name!r}")
