"""The linearisation of a network around its parameters at one point of training.

The non-linear advantage (Ortiz-Jimenez et al., NeurIPS 2021) compares a trained network with its
first-order Taylor expansion in the parameters, trained with the same recipe::

    f_lin(x; theta) = f(x; theta_0) + J(x; theta_0) (theta - theta_0),   J = df/dtheta.

:func:`linearize` returns a :class:`LinearizedModel`, an ordinary :class:`torch.nn.Module` whose
trainable parameters are ``theta`` (same names and shapes as the original model's), so the same
LightningModule, optimizer and data train it. Each forward computes ``f(x; theta_0)`` and the
Jacobian-vector product in one :func:`torch.func.jvp` over :func:`torch.func.functional_call`,
which returns the primal and the tangent together.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn
from torch.func import functional_call, jvp
from torch.utils._pytree import tree_map

from lga_lightning._compat import renamed_keywords

__all__ = ["LinearizedModel", "linearize"]

_MODES = ("eval", "train")
_THETA0 = "_theta0"

ParamSelection = Iterable[str] | Callable[[str, nn.Parameter], bool] | None


class LinearizedModel(nn.Module):
    """First-order Taylor expansion of a network in its parameters around ``theta_0``.

    Build it with :func:`linearize`. The module holds a deep copy of the original network:

    * the linearised parameters are trainable :class:`~torch.nn.Parameter` objects with the same
      names and shapes as in the original (``theta``, initialised to ``theta_0``);
    * ``theta_0`` is a frozen copy stored as buffers under ``_theta0.<name>`` (in the state dict,
      moved by ``.to()``, never returned by ``.parameters()``);
    * parameters that are not linearised stay in place with ``requires_grad=False`` and enter the
      network with their values at linearisation time;
    * the network's buffers (BatchNorm running statistics) keep their names.

    The forward returns ``f(x; theta_0) + J(x; theta_0) (theta - theta_0)`` for the model's output
    (every tensor of a tuple/dict output, or the tensor chosen by ``output_fn``). Gradients with
    respect to ``theta`` are ``J(x; theta_0)^T`` times the incoming gradient.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from lga_lightning.core.linearization import linearize
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 2))
        >>> lin = linearize(model)
        >>> [name for name, _ in lin.named_parameters()]
        ['0.weight', '0.bias', '2.weight', '2.bias']
        >>> x = torch.randn(4, 3)
        >>> torch.allclose(lin(x), model(x))
        True
    """

    # The unregistered deep copy that supplies the forward (set with object.__setattr__).
    _lin_base: nn.Module

    @renamed_keywords("params")
    def __init__(
        self,
        model: nn.Module,
        *,
        param_selection: ParamSelection = None,
        output_fn: Callable[[Any], Any] | None = None,
        mode: Literal["eval", "train"] = "eval",
    ) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}.")
        if mode not in _MODES:
            raise ValueError(f"`mode` can be 'eval' or 'train', got {mode!r}.")
        if output_fn is not None and not callable(output_fn):
            raise TypeError(
                f"`output_fn` must be callable or None, got {type(output_fn).__name__}."
            )

        base = copy.deepcopy(model)
        names = _select(base, param_selection)

        # The copy's children and root tensors become this module's own, so that names in
        # `named_parameters()` and in the state dict are exactly the original model's. The copy
        # itself is kept unregistered: it supplies the forward, `functional_call` supplies tensors.
        for child_name, child in base.named_children():
            if child_name == _THETA0:
                raise ValueError(f"The model has a submodule named {_THETA0!r}; rename it.")
            self.add_module(child_name, child)
        for name, param in base._parameters.items():
            self.register_parameter(name, param)
        for name, buf in base._buffers.items():
            self.register_buffer(name, buf, persistent=name not in base._non_persistent_buffers_set)
        object.__setattr__(self, "_lin_base", base)

        selected = set(names)
        for name, param in self.named_parameters():
            param.requires_grad_(name in selected)

        theta0 = nn.Module()
        for name in names:
            _register_nested_buffer(theta0, name, self.get_parameter(name).detach().clone())
        self.add_module(_THETA0, theta0)

        self._lin_names: tuple[str, ...] = tuple(names)
        self._lin_mode: str = mode
        self._lin_output_fn = output_fn

    @property
    def mode(self) -> str:
        """How BatchNorm and dropout behave: ``"eval"`` or ``"train"`` (see :func:`linearize`)."""
        return self._lin_mode

    @property
    def linearized_names(self) -> tuple[str, ...]:
        """Names of the parameters in which the network is linearised."""
        return self._lin_names

    def reference_parameters(self) -> dict[str, Tensor]:
        """Return ``theta_0``, the frozen parameters at linearisation time, by parameter name."""
        theta0 = self.get_submodule(_THETA0)
        return {name: theta0.get_buffer(name) for name in self._lin_names}

    def extra_repr(self) -> str:
        """Summarise the linearisation in ``repr``."""
        return f"mode={self._lin_mode!r}, linearized={len(self._lin_names)} tensors"

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Evaluate ``f(x; theta_0) + J(x; theta_0) (theta - theta_0)``.

        Args:
            *args: Positional inputs of the original model.
            **kwargs: Keyword inputs of the original model.

        Returns:
            The linearised output, with the structure of the model's output (or of ``output_fn``'s).
        """
        params = dict(self.named_parameters())
        theta0 = self.reference_parameters()
        primals = {name: theta0[name] for name in self._lin_names}
        tangents = {name: params[name] - theta0[name] for name in self._lin_names}
        constants: dict[str, Tensor] = {
            name: p for name, p in params.items() if name not in primals
        }
        buffers = {
            name: b for name, b in self.named_buffers() if not name.startswith(_THETA0 + ".")
        }

        # Buffers updated in place by the forward (BatchNorm running statistics in "train" mode
        # while training) must be inputs of the transform; they get zero tangents. Integer buffers
        # travel as float copies that are written back afterwards.
        update_stats = self._lin_mode == "train" and self.training
        mutable: dict[str, Tensor] = {}
        if update_stats:
            mutable, buffers = buffers, {}
        constants.update(buffers)

        base = self._lin_base
        output_fn = self._lin_output_fn

        def f(p: dict[str, Tensor], b: dict[str, Tensor]) -> Any:
            out = functional_call(base, {**constants, **b, **p}, args, kwargs)
            return out if output_fn is None else output_fn(out)

        with self._base_mode(), _no_inference_mode_if(update_stats):
            written_back: dict[str, Tensor] = {}
            for name, buf in list(mutable.items()):
                if not (buf.is_floating_point() or buf.is_complex()):
                    mutable[name] = buf.to(torch.float64)
                    written_back[name] = buf
            zeros = {name: torch.zeros_like(buf) for name, buf in mutable.items()}
            # Without has_aux, jvp returns exactly (primal output, tangent output).
            out, tangent = cast("tuple[Any, Any]", jvp(f, (primals, mutable), (tangents, zeros)))
            for name, buf in written_back.items():
                buf.copy_(mutable[name])
        return tree_map(torch.add, out, tangent)

    @contextmanager
    def _base_mode(self) -> Iterator[None]:
        """Set the training flags the linearisation is taken with; restore them afterwards."""
        base = self._lin_base
        modules = list(base.modules())
        saved = [m.training for m in modules]
        if self._lin_mode == "eval":
            for m in modules:
                m.training = False
        else:
            base.training = self.training
        try:
            yield
        finally:
            for m, flag in zip(modules, saved, strict=True):
                m.training = flag


@renamed_keywords("params")
def linearize(
    model: nn.Module,
    *,
    param_selection: ParamSelection = None,
    output_fn: Callable[[Any], Any] | None = None,
    mode: Literal["eval", "train"] = "eval",
) -> LinearizedModel:
    """Linearise ``model`` in its parameters around their current values ``theta_0``.

    The result computes ``f_lin(x; theta) = f(x; theta_0) + J(x; theta_0) (theta - theta_0)``
    with :func:`torch.func.jvp` over :func:`torch.func.functional_call`. Its trainable parameters
    ``theta`` start at ``theta_0`` and carry the original parameter names and shapes, so the same
    LightningModule, optimizer and data train it: replace ``self.model`` by ``linearize(...)``.
    ``model`` is deep-copied: training it afterwards does not change the linearisation.

    BatchNorm and dropout (``mode``):
        * ``"eval"`` (default): the expansion is taken around the network in eval mode, with the
          BatchNorm running statistics captured at linearisation time (frozen buffers) and dropout
          off, whatever ``train()``/``eval()`` says. ``f_lin`` is then a fixed function of
          ``theta`` and ``x``, linear in ``theta`` and per sample: training it is the linear model
          of the non-linear-advantage definition, and the function trained is the function
          evaluated. Pick it for the non-linear advantage.
        * ``"train"``: the copy follows ``train()``/``eval()`` like the original. While training,
          BatchNorm normalises with the batch statistics (their dependence on ``theta`` is part
          of the Jacobian; the samples of a batch are coupled) and updates its running statistics
          with those of the network at ``theta_0``; dropout is active (one mask per forward, shared
          by ``f`` and ``J``). In eval mode the expansion uses those running statistics, so, as
          for the original network, the trained and the evaluated functions differ.

    Cost: one forward-mode pass (about two to three forwards) and its backward, roughly twice a
    plain training step; see ``benchmarks/linearize_speed.py``.

    Args:
        model: The network; its output is a tensor or a tuple/dict (pytree) of tensors.
        param_selection: Parameters to linearise: ``None`` for every parameter with
            ``requires_grad``, an iterable of parameter names, or a callable ``(name, parameter)
            -> bool``. The others are frozen (``requires_grad=False``) at their values at
            linearisation time.
        output_fn: Picks the output to linearise from the model's output, e.g.
            ``lambda out: out["logits"]``. ``None`` linearises every tensor of the output.
        mode: ``"eval"`` or ``"train"``, as described above.

    Returns:
        The linearised model.

    Raises:
        TypeError: If ``model`` is not a module or ``output_fn`` is not callable.
        ValueError: If ``mode`` is unknown, ``param_selection`` names an unknown parameter or
            selects none.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from lga_lightning.core.linearization import linearize
        >>> _ = torch.manual_seed(0)
        >>> model = nn.Sequential(nn.Linear(4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
        >>> lin = linearize(model)  # BatchNorm frozen at its running statistics
        >>> opt = torch.optim.SGD(lin.parameters(), lr=0.1)
        >>> x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
        >>> loss = nn.functional.cross_entropy(lin(x), y)
        >>> loss.backward()
        >>> opt.step()
        >>> sorted(lin.reference_parameters()) == sorted(n for n, _ in model.named_parameters())
        True
    """
    return LinearizedModel(model, param_selection=param_selection, output_fn=output_fn, mode=mode)


def _select(model: nn.Module, param_selection: ParamSelection) -> list[str]:
    """Resolve ``param_selection`` to the list of parameter names to linearise, in module order."""
    named = dict(model.named_parameters())
    if param_selection is None:
        names = [name for name, p in named.items() if p.requires_grad]
    elif callable(param_selection):
        names = [name for name, p in named.items() if param_selection(name, p)]
    else:
        if isinstance(param_selection, str):
            raise TypeError(
                "`param_selection` must be an iterable of parameter names, not one string."
            )
        wanted = set(param_selection)
        unknown = sorted(wanted - set(named))
        if unknown:
            raise ValueError(
                f"`param_selection` names parameters the model does not have: {unknown}. "
                f"Available: {sorted(named)}."
            )
        names = [name for name in named if name in wanted]
    if not names:
        raise ValueError(
            "No parameter selected to linearise: `param_selection` selected none, or no "
            "parameter requires grad."
        )
    return names


@contextmanager
def _no_inference_mode_if(condition: bool) -> Iterator[None]:
    """Leave inference mode (keeping grad off) so that buffers can be updated in place."""
    if condition and torch.is_inference_mode_enabled():
        with torch.inference_mode(False), torch.no_grad():
            yield
    else:
        yield


def _register_nested_buffer(root: nn.Module, name: str, tensor: Tensor) -> None:
    """Register ``tensor`` as buffer ``name`` (dotted) under containers created on demand."""
    *path, leaf = name.split(".")
    module = root
    for part in path:
        child = module._modules.get(part)
        if child is None:
            child = nn.Module()
            module.add_module(part, child)
        module = child
    module.register_buffer(leaf, tensor)
