"""Which parameters the kernel differentiates, and whether the forward couples the samples."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from lga_lightning._compat import renamed_keywords
from lga_lightning.core.kernel._options import PRESETS, BNMode, ParamSelection, check_choice


@dataclass(frozen=True)
class SelectedParameters:
    """The parameters the kernel differentiates, in the order of ``model.named_parameters()``."""

    names: tuple[str, ...]
    numels: tuple[int, ...]

    @property
    def total(self) -> int:
        """Number of scalar parameters, the width P of the Jacobian."""
        return sum(self.numels)


@renamed_keywords("params")
def select_parameters(
    model: nn.Module, param_selection: ParamSelection = "paper", classifier: str | None = "auto"
) -> SelectedParameters:
    """Resolve a parameter selection to parameter names.

    Args:
        model: the network.
        param_selection: ``"paper"``, ``"weights"``, ``"all"`` or a callable
            ``(name, parameter) -> bool``. Presets keep only parameters with ``requires_grad=True``.
        classifier: module excluded by ``"paper"``; ``"auto"`` = the last ``nn.Linear``.

    Returns:
        The selected parameter names and sizes.

    Raises:
        ValueError: when nothing is selected, naming the candidates and the fix, or when the model
            holds lazy parameters not yet initialised (``nn.LazyLinear`` before its first call).

    Example:
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2, 3))
        >>> select_parameters(net).names
        ('0.weight',)
        >>> select_parameters(net, "all").names
        ('0.weight', '0.bias', '2.weight', '2.bias')
    """
    named = list(model.named_parameters())
    lazy = [name for name, p in named if isinstance(p, nn.parameter.UninitializedParameter)]
    if lazy:
        raise ValueError(
            f"{type(model).__name__} has lazy parameters that are not initialised yet "
            f"({lazy[:4]}{'...' if len(lazy) > 4 else ''}), so it has no kernel: call the model on "
            "one batch first (under Lightning: in the LightningModule's `setup`), or give the "
            "layers their input sizes."
        )
    if callable(param_selection):
        chosen = [(name, p) for name, p in named if param_selection(name, p)]
    else:
        check_choice("param_selection", param_selection, PRESETS)
        trainable = [(name, p) for name, p in named if p.requires_grad]
        if param_selection == "all":
            chosen = trainable
        else:
            chosen = [(name, p) for name, p in trainable if "weight" in name]
            if param_selection == "paper":
                prefix = classifier_name(model, classifier)
                if prefix is not None:
                    chosen = [(n, p) for n, p in chosen if not n.startswith(prefix + ".")]
    if not chosen:
        names = [name for name, _ in named][:8]
        raise ValueError(
            f"the parameter selection {param_selection!r} matched no trainable parameter of "
            f"{type(model).__name__} (parameters: {names}{'...' if len(named) > 8 else ''}); "
            "unfreeze some parameters, or pass param_selection='all' or a callable "
            "(name, param) -> bool."
        )
    return SelectedParameters(tuple(n for n, _ in chosen), tuple(p.numel() for _, p in chosen))


def classifier_name(model: nn.Module, classifier: str | None) -> str | None:
    """The module name ``param_selection="paper"`` excludes (``"auto"`` = the last ``nn.Linear``).

    Example:
        >>> classifier_name(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)), "auto")
        '2'
    """
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


def samples_are_coupled(model: nn.Module, bn_mode: BNMode = "train") -> bool:
    """Whether the forward mixes samples of the batch through BatchNorm batch statistics.

    Other kinds of cross-sample interaction are not detected; such models need one of the
    coupled implementations (``"coupled"``, ``"batched"`` or ``"loop"``).

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
