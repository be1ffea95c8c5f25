"""Empirical neural tangent kernel of a probe batch (torch only; no Lightning import).

The kernel of a probe batch ``x`` (n samples) is ``K = J J^T`` where row ``i`` of ``J`` is the
gradient of sample ``i``'s output with respect to the selected parameters. The defaults follow the
paper's official code: the output is the *sum of the logits* of each sample, the forward runs once
over the whole batch with the model in train mode (BatchNorm uses batch statistics), and the
parameters are every trainable parameter whose name contains ``weight``, except the classifier.

The implementations (``"loop"``, ``"coupled"``, ``"batched"``, ``"per_sample"``, and the rule of
``"auto"``) are one table, :data:`~lga_lightning.core.kernel.implementations.IMPLEMENTATIONS`, whose
module says when to use each. The definitions (kernel, parameter selection, metrics, the paper's
protocol) are written out in ``docs/definitions.md``.

Modules: :mod:`~lga_lightning.core.kernel.engine` (the entry points),
:mod:`~lga_lightning.core.kernel.implementations` (the table), :mod:`~lga_lightning.core.kernel.vjp`
(coupled: loop, coupled, batched), :mod:`~lga_lightning.core.kernel.per_sample` (decoupled),
:mod:`~lga_lightning.core.kernel.parameters` (parameter selection, coupling),
:mod:`~lga_lightning.core.kernel.assemble` (kernel from Jacobian rows), and the private option
types and model-state helpers.

Memory: ``J`` holds ``n * k * P`` numbers (``k`` = 1 for ``output="sum"``, C otherwise; P = the
number of selected parameters), e.g. 256 x 1 M float32 = 1 GB. ``chunk_size`` bounds the
transient memory of the batched computations on top of that; the coupled paths keep the graph
of one forward over the whole probe batch as well.

Example:
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> K = empirical_ntk(model, torch.randn(5, 4))
    >>> K.shape, bool(torch.allclose(K, K.T))
    (torch.Size([5, 5]), True)
"""

from lga_lightning.core.kernel._options import (
    BN_MODES,
    DEFAULT_CHUNK_SIZE,
    OUTPUTS,
    PRESETS,
    BNMode,
    Output,
    OutputFn,
    ParamPreset,
    ParamSelection,
    Rows,
)
from lga_lightning.core.kernel._state import model_device
from lga_lightning.core.kernel.assemble import kernel_from_jacobian
from lga_lightning.core.kernel.engine import empirical_ntk, ntk_jacobian
from lga_lightning.core.kernel.implementations import CHOICES, IMPLEMENTATIONS
from lga_lightning.core.kernel.parameters import (
    SelectedParameters,
    samples_are_coupled,
    select_parameters,
)

# The names the option checks read (kept under their earlier private spellings as well).
_OUTPUTS = OUTPUTS
_BN_MODES = BN_MODES
_PRESETS = PRESETS
_IMPLEMENTATIONS = CHOICES
_model_device = model_device

__all__ = [
    "BN_MODES",
    "CHOICES",
    "DEFAULT_CHUNK_SIZE",
    "IMPLEMENTATIONS",
    "OUTPUTS",
    "PRESETS",
    "BNMode",
    "Output",
    "OutputFn",
    "ParamPreset",
    "ParamSelection",
    "Rows",
    "SelectedParameters",
    "empirical_ntk",
    "kernel_from_jacobian",
    "model_device",
    "ntk_jacobian",
    "samples_are_coupled",
    "select_parameters",
]
