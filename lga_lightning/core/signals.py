"""The one table of every quantity the instrument records, and which direction is better.

Every surface (the :class:`~lga_lightning.NTKMetrics` callback, the search's ``rank_by`` and the
correlation study's ``signed_tau``) reads directions from :data:`SIGNALS`, so a quantity means the
same thing everywhere.

``better`` is ``"max"`` when a larger value is expected to mean a more accurate network (LGA, the
NTK mean of KNAS, parameter count, validation accuracy, the zero-cost proxies in their papers'
sign conventions), ``"min"`` when smaller is better (condition number as in TE-NAS, training
loss) and ``None`` when there is no convention (kernel evolution: read the raw sign).

Example:
    >>> SIGNALS["condition_number"].better, expected_sign("condition_number")
    ('min', -1)
    >>> direction("kernel_distance") is None, expected_sign("kernel_distance")
    (True, 0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Better = Literal["max", "min"]
Kind = Literal["kernel", "evolution", "training", "model", "proxy"]


@dataclass(frozen=True)
class Signal:
    """One recorded quantity.

    Attributes:
        name: the key under which records hold it.
        better: ``"max"``, ``"min"`` or ``None`` (no convention).
        kind: ``kernel`` (a metric of one kernel), ``evolution`` (against an earlier kernel),
            ``training`` (from the training run), ``model`` (of the network alone) or ``proxy``
            (a zero-cost proxy of network and probe batch).
        description: one line for tables and help texts.
    """

    name: str
    better: Better | None
    kind: Kind
    description: str

    @property
    def expected_sign(self) -> int:
        """``+1`` / ``-1``: the sign of its correlation with accuracy when it predicts well."""
        return {"max": 1, "min": -1, None: 0}[self.better]


_TABLE = (
    Signal("lga", "max", "kernel", "Label-Gradient Alignment (Mok et al., 2022)"),
    Signal("condition_number", "min", "kernel", "lambda_max / lambda_min (TE-NAS)"),
    Signal("frobenius_norm", "max", "kernel", "Frobenius norm of the kernel"),
    Signal("mean", "max", "kernel", "mean kernel entry (KNAS)"),
    Signal("trace", "max", "kernel", "trace of the kernel"),
    Signal("kernel_distance", None, "evolution", "1 - cosine of K_0 and K_t"),
    Signal("kernel_correlation", None, "evolution", "Pearson correlation of K_0 and K_t"),
    Signal("relative_kernel_difference", None, "evolution", "|| |K_0 - K_t| / (|K_0| + eps) ||"),
    Signal("kernel_velocity", None, "evolution", "kernel distance to the previous measurement"),
    Signal("train_loss", "min", "training", "mean training loss of the epoch"),
    Signal("val_acc", "max", "training", "validation accuracy"),
    Signal("params", "max", "model", "number of parameters"),
    Signal("flops", "max", "model", "multiply-accumulates of one forward"),
    Signal("grad_norm", "max", "proxy", "norm of the loss gradient (Abdelfattah et al., 2021)"),
    Signal("snip", "max", "proxy", "sum |g * theta| (Lee et al., 2019)"),
    Signal("grasp", "max", "proxy", "-theta * (H g) (Wang et al., 2020)"),
    Signal("fisher", "max", "proxy", "channel Fisher information (Turner et al., 2020)"),
    Signal("synflow", "max", "proxy", "synaptic flow (Tanaka et al., 2020)"),
    Signal("jacob_cov", "max", "proxy", "input-Jacobian correlation (Mellor et al., 2021)"),
    Signal("naswot", "max", "proxy", "log-det of the activation-code kernel (Mellor et al.)"),
    Signal("zico", "max", "proxy", "gradient mean / std (Li et al., 2023)"),
)

SIGNALS: dict[str, Signal] = {signal.name: signal for signal in _TABLE}
"""Every quantity a record can hold, by name."""


def direction(name: str) -> Better | None:
    """``"max"``, ``"min"`` or ``None`` for a quantity (``None`` also for unknown names).

    Example:
        >>> direction("lga"), direction("train_loss"), direction("my_metric")
        ('max', 'min', None)
    """
    signal = SIGNALS.get(name)
    return None if signal is None else signal.better


def expected_sign(name: str) -> int:
    """Sign of the correlation with accuracy under which ``name`` predicts well (0: unknown).

    Example:
        >>> expected_sign("lga"), expected_sign("train_loss"), expected_sign("my_metric")
        (1, -1, 0)
    """
    return SIGNALS[name].expected_sign if name in SIGNALS else 0
