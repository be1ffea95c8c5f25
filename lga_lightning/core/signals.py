"""The one registry of every quantity the instrument records: its function, needs and direction.

Each row of :data:`SIGNALS` is a :class:`Signal`: the key records hold it under, the function
that computes it, what that function needs (a kernel, the probe labels, the initial or previous
kernel, the model and its batch, or a training run), which way is better, its kind and one line
of description. Every other surface reads from here: the kernel metrics
(:func:`lga_lightning.core.functional.ntk_metrics`, ``SCALAR_METRICS``, ``EVOLUTION_METRICS``),
the zero-cost proxies (:data:`lga_lightning.core.proxies.PROXIES`), the
:class:`~lga_lightning.core.meter.NTKMeter` and its checks, the search's ``rank_by`` and the
correlation study's ``signed_tau``, so a quantity means the same thing everywhere. A new proxy or
metric is one function and one :func:`register` call (``docs/extending.md``).

``better`` is ``"max"`` when a larger value is expected to mean a more accurate network (LGA, the
NTK mean of KNAS, parameter count, validation accuracy, the zero-cost proxies in their papers'
sign conventions), ``"min"`` when smaller is better (condition number as in TE-NAS, training
loss) and ``None`` when there is no convention (kernel evolution: read the raw sign).

Example:
    >>> SIGNALS["condition_number"].better, expected_sign("condition_number")
    ('min', -1)
    >>> direction("kernel_distance") is None, expected_sign("kernel_distance")
    (True, 0)
    >>> signal_names("model"), signal("lga").needs
    (('params', 'flops'), ('kernel', 'labels'))
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, get_args

from torch import Tensor, nn

from lga_lightning.core import kernel_metrics as km
from lga_lightning.core.proxies.activation import jacob_cov, naswot
from lga_lightning.core.proxies.gradient import fisher, grad_norm, grasp, snip
from lga_lightning.core.proxies.size import flops, params
from lga_lightning.core.proxies.synflow import synflow
from lga_lightning.core.proxies.zico import zico

Better = Literal["max", "min"]
Kind = Literal["kernel", "evolution", "training", "model", "proxy"]
Need = Literal[
    "kernel", "labels", "initial_kernel", "previous_kernel", "model", "batch", "training"
]

_CALLING = {
    "kernel": "function(kernel) or, when it needs labels, function(kernel, labels)",
    "evolution": "function(reference_kernel, kernel), the reference the initial or previous one",
    "model": "function(model, x, y): x and y the probe batch (unused ones still accepted)",
    "proxy": "function(model, x, y): x and y the probe batch (unused ones still accepted)",
    "training": "no function: the training run records it",
}
"""How a row's function is called, by kind."""


@dataclass(frozen=True)
class Signal:
    """One recorded quantity.

    Attributes:
        name: the key under which records hold it.
        better: ``"max"``, ``"min"`` or ``None`` (no convention).
        kind: ``kernel`` (a metric of one kernel), ``evolution`` (against an earlier kernel),
            ``training`` (from the training run), ``model`` (of the network alone: the same at
            every epoch) or ``proxy`` (a zero-cost proxy of network and probe batch).
        description: one line for tables and help texts.
        function: computes it, called as :data:`_CALLING` says for its kind (``None`` for
            ``training``); see :meth:`compute`.
        needs: what ``function`` needs, from ``kernel``, ``labels``, ``initial_kernel``,
            ``previous_kernel``, ``model``, ``batch`` and ``training``.
        note: conventions or options beyond the description (e.g. fisher's two totals).
    """

    name: str
    better: Better | None
    kind: Kind
    description: str
    function: Callable[..., float] | None = None
    needs: tuple[Need, ...] = ()
    note: str = ""

    @property
    def expected_sign(self) -> int:
        """``+1`` / ``-1``: the sign of its correlation with accuracy when it predicts well."""
        return {"max": 1, "min": -1, None: 0}[self.better]

    @property
    def needs_labels(self) -> bool:
        """Whether computing it takes the probe batch's labels."""
        return "labels" in self.needs

    def compute(
        self,
        *,
        kernel: Tensor | None = None,
        labels: Tensor | None = None,
        initial_kernel: Tensor | None = None,
        previous_kernel: Tensor | None = None,
        model: nn.Module | None = None,
        batch: Tensor | None = None,
        **options: Any,
    ) -> float:
        """Call :attr:`function` with what it needs; ``options`` go to it as keywords.

        Raises:
            ValueError: when something in :attr:`needs` is not given, or for a ``training``
                quantity (the training run records it; there is nothing to compute).

        Example:
            >>> import torch
            >>> signal("trace").compute(kernel=torch.eye(3))
            3.0
            >>> signal("params").compute(model=torch.nn.Linear(3, 2))
            8.0
        """
        given = {
            "kernel": kernel,
            "labels": labels,
            "initial_kernel": initial_kernel,
            "previous_kernel": previous_kernel,
            "model": model,
            "batch": batch,
        }
        if self.function is None:
            raise ValueError(
                f"{self.name!r} is recorded by the training run; there is nothing to compute."
            )
        missing = [need for need in self.needs if given.get(need) is None]
        if missing:
            raise ValueError(f"{self.name!r} needs {missing}; pass them to compute().")
        if self.kind == "kernel":
            args: tuple[Any, ...] = (kernel, labels) if self.needs_labels else (kernel,)
        elif self.kind == "evolution":
            reference = initial_kernel if "initial_kernel" in self.needs else previous_kernel
            args = (reference, kernel)
        else:
            args = (model, batch, labels)
        return self.function(*args, **options)


_KERNEL: tuple[Need, ...] = ("kernel",)
_FROM_K0: tuple[Need, ...] = ("kernel", "initial_kernel")
_BATCH: tuple[Need, ...] = ("model", "batch")
_LABELLED: tuple[Need, ...] = ("model", "batch", "labels")
_FISHER_NOTE = (
    "two totals of the channel scores F_k: convention='weight' (the default and the recorded "
    "'fisher': F_k once per weight of the channel, as zero-cost-nas) and convention='channel' "
    "(sum_k F_k, each channel once); see lga_lightning.core.proxies.fisher."
)

_TABLE = (
    Signal("lga", "max", "kernel", "Label-Gradient Alignment (Mok et al., 2022)", km.lga,
           ("kernel", "labels")),
    Signal("condition_number", "min", "kernel", "lambda_max / lambda_min (TE-NAS)",
           km.condition_number, _KERNEL),
    Signal("frobenius_norm", "max", "kernel", "Frobenius norm of the kernel", km.frobenius_norm,
           _KERNEL),
    Signal("mean", "max", "kernel", "mean kernel entry (KNAS)", km.mean, _KERNEL),
    Signal("trace", "max", "kernel", "trace of the kernel", km.trace, _KERNEL),
    Signal("kernel_distance", None, "evolution", "1 - cosine of K_0 and K_t",
           km.kernel_distance, _FROM_K0),
    Signal("kernel_correlation", None, "evolution", "Pearson correlation of K_0 and K_t",
           km.kernel_correlation, _FROM_K0),
    Signal("relative_kernel_difference", None, "evolution", "|| |K_0 - K_t| / (|K_0| + eps) ||",
           km.relative_kernel_difference, _FROM_K0),
    Signal("kernel_velocity", None, "evolution", "kernel distance to the previous measurement",
           km.kernel_distance, ("kernel", "previous_kernel")),
    Signal("train_loss", "min", "training", "mean training loss of the epoch", None,
           ("training",)),
    Signal("val_acc", "max", "training", "validation accuracy", None, ("training",)),
    Signal("grad_norm", "max", "proxy", "norm of the loss gradient (Abdelfattah et al., 2021)",
           grad_norm, _LABELLED),
    Signal("snip", "max", "proxy", "sum |g * theta| (Lee et al., 2019)", snip, _LABELLED),
    Signal("grasp", "max", "proxy", "-theta * (H g) (Wang et al., 2020)", grasp, _LABELLED),
    Signal("fisher", "max", "proxy", "Fisher pruning score of the channels (Turner et al., 2020)",
           fisher, _LABELLED, _FISHER_NOTE),
    Signal("fisher_channel", "max", "proxy", "fisher with each channel's F_k counted once",
           partial(fisher, convention="channel"), _LABELLED, _FISHER_NOTE),
    Signal("synflow", "max", "proxy", "synaptic flow (Tanaka et al., 2020)", synflow, _BATCH),
    Signal("jacob_cov", "max", "proxy", "input-Jacobian correlation (Mellor et al., 2021)",
           jacob_cov, _BATCH),
    Signal("naswot", "max", "proxy", "log-det of the activation-code kernel (Mellor et al.)",
           naswot, _BATCH),
    Signal("zico", "max", "proxy", "gradient mean / std (Li et al., 2023)", zico, _LABELLED),
    Signal("params", "max", "model", "number of parameters", params, ("model",)),
    Signal("flops", "max", "model", "multiply-accumulates of one forward", flops, _BATCH),
)  # fmt: skip

SIGNALS: dict[str, Signal] = {signal.name: signal for signal in _TABLE}
"""Every quantity a record can hold, by name, in table order; :func:`register` adds to it."""


class UnknownSignalError(KeyError, ValueError):
    """A name that is not in :data:`SIGNALS`; the message lists the closest names."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def signal(name: str) -> Signal:
    """The row of ``name``.

    Raises:
        UnknownSignalError: (a ``KeyError`` and a ``ValueError``) for an unknown name, naming
            the closest known ones.

    Example:
        >>> signal("snip").kind
        'proxy'
        >>> signal("condition_nuber")
        Traceback (most recent call last):
        ...
        lga_lightning.core.signals.UnknownSignalError: unknown signal 'condition_nuber'; did you mean 'condition_number'? Known: lga, condition_number, ...
    """  # noqa: E501
    if name in SIGNALS:
        return SIGNALS[name]
    close = difflib.get_close_matches(str(name), list(SIGNALS), n=3)
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    known = ", ".join(SIGNALS)
    raise UnknownSignalError(
        f"unknown signal {name!r}; {hint}Known: {known} (a new one: signals.register)."
    )


def signal_names(*kinds: Kind, needs: Need | None = None) -> tuple[str, ...]:
    """Names of the rows of these kinds (all without), in table order; ``needs``: only those.

    Example:
        >>> signal_names("kernel")
        ('lga', 'condition_number', 'frobenius_norm', 'mean', 'trace')
        >>> signal_names("evolution", needs="initial_kernel")
        ('kernel_distance', 'kernel_correlation', 'relative_kernel_difference')
    """
    unknown = [k for k in kinds if k not in get_args(Kind)]
    if unknown:
        raise ValueError(f"unknown signal kinds {unknown}; choose from {list(get_args(Kind))}.")
    return tuple(
        s.name
        for s in SIGNALS.values()
        if (not kinds or s.kind in kinds) and (needs is None or needs in s.needs)
    )


def register(row: Signal, *, replace: bool = False) -> Signal:
    """Add ``row`` to :data:`SIGNALS`: the meter, the search and the study then know it.

    Args:
        row: the new signal; a ``proxy`` or ``model`` function takes ``(model, x, y)``, a
            ``kernel`` one ``(kernel)`` or ``(kernel, labels)`` (with ``"labels"`` in
            ``needs``), an ``evolution`` one ``(reference_kernel, kernel)``.
        replace: allow replacing a row of the same name.

    Returns:
        ``row``.

    Raises:
        ValueError: for a taken name (without ``replace``), an unknown ``kind``, ``better`` or
            need, or a missing ``function``.

    Example:
        >>> toy = register(Signal("depth", "max", "model", "number of modules",
        ...                       lambda model, x=None, y=None: float(len(list(model.modules()))),
        ...                       ("model",)))
        >>> signal("depth").compute(model=nn.Sequential(nn.Linear(2, 2)))
        2.0
        >>> unregister("depth")
    """
    problems = []
    if not isinstance(row, Signal):
        raise ValueError(f"register() takes a Signal row, got {type(row).__name__}.")
    if row.name in SIGNALS and not replace:
        problems.append(f"{row.name!r} is taken (pass replace=True to replace it)")
    if row.kind not in get_args(Kind):
        problems.append(f"kind {row.kind!r} is not one of {list(get_args(Kind))}")
    if row.better not in (*get_args(Better), None):
        problems.append(f"better {row.better!r} is not 'max', 'min' or None")
    bad = [n for n in row.needs if n not in get_args(Need)]
    if bad:
        problems.append(f"needs {bad} are not among {list(get_args(Need))}")
    if row.kind != "training" and not callable(row.function):
        problems.append(f"a {row.kind} signal needs a function, called as {_CALLING[row.kind]}")
    if problems:
        raise ValueError(f"cannot register signal {row.name!r}: {'; '.join(problems)}.")
    SIGNALS[row.name] = row
    return row


def unregister(name: str) -> None:
    """Remove a row added by :func:`register`; a replaced built-in row comes back.

    Example:
        >>> unregister("lga")
        Traceback (most recent call last):
        ...
        ValueError: 'lga' is a built-in signal; only registered ones can be removed.
    """
    signal(name)
    if name not in _BUILT_IN:
        del SIGNALS[name]
    elif SIGNALS[name] is not _BUILT_IN[name]:
        SIGNALS[name] = _BUILT_IN[name]
    else:
        raise ValueError(f"{name!r} is a built-in signal; only registered ones can be removed.")


_BUILT_IN = dict(SIGNALS)


def kernel_metric_names() -> tuple[str, ...]:
    """The metrics a meter computes from kernels: the ``kernel`` rows and those against ``K_0``.

    Example:
        >>> kernel_metric_names()[-2:]
        ('kernel_correlation', 'relative_kernel_difference')
    """
    return (*signal_names("kernel"), *signal_names("evolution", needs="initial_kernel"))


def check_proxies(proxies: Sequence[str]) -> tuple[str, ...]:
    """Validate zero-cost proxy names, naming the choices.

    Example:
        >>> check_proxies(["snip", "naswot"])
        ('snip', 'naswot')
    """
    if isinstance(proxies, str):
        proxies = (proxies,)
    known = signal_names("proxy", "model")
    unknown = [p for p in proxies if p not in known]
    if unknown:
        raise ValueError(
            f"unknown `proxies` {unknown}; choose from {list(known)}{_hint(unknown, known)}."
        )
    return tuple(dict.fromkeys(proxies))


def check_metrics(
    metrics: Sequence[str], output: str = "sum", *, evolution: bool = True
) -> tuple[str, ...]:
    """Validate metric names against the registry, naming the choices (every surface's check).

    ``evolution=False``: ``kernel`` rows only (the search's candidates). Example:
        >>> check_metrics(["lga", "lga", "trace"])
        ('lga', 'trace')
    """
    if isinstance(metrics, str):
        metrics = (metrics,)
    known = kernel_metric_names() if evolution else signal_names("kernel")
    names = tuple(metrics)
    unknown = [m for m in names if m not in known]
    if unknown:
        note = ""
        if any(m in kernel_metric_names() for m in unknown):
            note = (
                "; evolution metrics compare a run's kernels with its initial one, and here "
                "each model is measured on its own"
            )
        raise ValueError(
            f"unknown `metrics` {unknown}; choose from {list(known)}{_hint(unknown, known)}{note}."
        )
    if not names:
        raise ValueError(f"`metrics` is empty; choose from {list(known)}.")
    labelled = [m for m in names if SIGNALS[m].needs_labels]
    if output == "full" and labelled:
        raise ValueError(
            f"{labelled[0]!r} needs an (n, n) kernel, but kernel_kwargs['output']='full' makes it "
            f"(n*C, n*C); use output 'sum' or 'trace', or drop {labelled[0]!r} from `metrics`."
        )
    return tuple(dict.fromkeys(names))


def _hint(unknown: Sequence[str], known: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known names, or nothing."""
    close = [c for u in unknown for c in difflib.get_close_matches(str(u), list(known), n=2)]
    return f" (did you mean {' or '.join(map(repr, dict.fromkeys(close)))}?)" if close else ""


def direction(name: str) -> Better | None:
    """``"max"``, ``"min"`` or ``None`` for a quantity (``None`` also for unknown names).

    Example:
        >>> direction("lga"), direction("train_loss"), direction("my_metric")
        ('max', 'min', None)
    """
    row = SIGNALS.get(name)
    return None if row is None else row.better


def expected_sign(name: str) -> int:
    """Sign of the correlation with accuracy under which ``name`` predicts well (0: unknown).

    Example:
        >>> expected_sign("lga"), expected_sign("train_loss"), expected_sign("my_metric")
        (1, -1, 0)
    """
    return SIGNALS[name].expected_sign if name in SIGNALS else 0
