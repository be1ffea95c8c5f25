"""Weight initialisations a study can name: the magnitude metrics depend on them.

PyTorch's default initialisation and Kaiming-normal (fan-in) give NTKs of different scale, enough
to flip the sign of the Frobenius norm's, the mean's and the trace's rank correlation with
accuracy; LGA and the condition number are scale-free. A study says which one it used.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

Init = Literal["pytorch", "kaiming_normal"]
INITS: tuple[str, ...] = ("pytorch", "kaiming_normal")


def initialize(model: nn.Module, scheme: Init = "pytorch") -> nn.Module:
    """Re-initialise ``model``'s convolutions and linear layers in place; returns ``model``.

    Args:
        model: the freshly built network.
        scheme: ``"pytorch"`` keeps the layers' default initialisation; ``"kaiming_normal"``
            draws every conv and linear weight from N(0, 2 / fan_in) (``kaiming_normal_``,
            ``mode="fan_in"``, ReLU gain) and sets their biases to zero. BatchNorm is untouched.
            Draws use the global torch RNG, so seed it first.

    Raises:
        ValueError: for an unknown scheme.

    Example:
        >>> import torch
        >>> _ = torch.manual_seed(0)
        >>> layer = initialize(nn.Linear(400, 10), "kaiming_normal")
        >>> round(float(layer.weight.std()), 2), float(layer.bias.abs().sum())
        (0.07, 0.0)
    """
    if scheme not in INITS:
        raise ValueError(f"`init` can be {', '.join(map(repr, INITS))}; got {scheme!r}.")
    if scheme == "pytorch":
        return model
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model
