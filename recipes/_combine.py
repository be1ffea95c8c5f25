"""Combined rankings in the study: several signals merged by rank, as a row of their own.

A combination is written ``"lga@1+params"``: signals joined by ``+``, each optionally at an
epoch (``@e``; default: the study's last measured epoch). Every signal is ranked so that the
best architecture gets the highest rank (its direction from :mod:`lga_lightning.core.signals`), then
the ranks are summed (``ranks``) or their logarithms summed (``log_ranks``, as AZ-NAS combines
its proxies); :mod:`lga_lightning.core.rank_combination` does the arithmetic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lga_lightning.core.rank_combination import sum_of_log_ranks, sum_of_ranks
from lga_lightning.core.signals import expected_sign

Term = tuple[str, int]
Columns = Mapping[tuple[str, str, int], Sequence[float]]


def parse_combination(text: str, epochs: Sequence[int]) -> tuple[str, list[Term]]:
    """``"lga@1+params"`` -> ``("lga@1+params", [("lga", 1), ("params", last epoch)])``.

    Raises:
        ValueError: for fewer than two signals, an epoch not measured, or a signal without a
            known direction.

    Example:
        >>> parse_combination("lga@1 + params", [0, 1])
        ('lga@1+params', [('lga', 1), ('params', 1)])
    """
    parts = [p.strip() for p in str(text).split("+") if p.strip()]
    if len(parts) < 2:
        raise ValueError(
            f"`combine` entry {text!r} names fewer than two signals; write e.g. 'lga@1+params'."
        )
    terms: list[Term] = []
    for part in parts:
        name, _, at = part.partition("@")
        epoch = int(at) if at else max(epochs)
        if epoch not in epochs:
            raise ValueError(
                f"`combine` entry {text!r}: epoch {epoch} is not in `measure_at` {list(epochs)}."
            )
        if expected_sign(name) == 0:
            raise ValueError(
                f"`combine` entry {text!r}: {name!r} has no known direction (better = higher or "
                "lower), so it cannot be ranked; combine signals such as lga, condition_number, "
                "params, flops, train_loss, val_acc or a zero-cost proxy."
            )
        terms.append((name.strip(), epoch))
    label = "+".join(
        f"{name}@{epoch}" if "@" in part else name
        for (name, epoch), part in zip(terms, parts, strict=True)
    )
    return label, terms


def combined_column(columns: Columns, terms: Sequence[Term], how: str = "log_ranks") -> list[float]:
    """The combined score of each architecture (higher is better).

    Kernel metrics are read from the first setting that has them.

    Raises:
        ValueError: a signal the study did not measure.

    Example:
        >>> cols = {("lga", "n8-train", 1): [0.1, 0.3, 0.2], ("params", "-", 1): [3, 1, 2]}
        >>> combined_column(cols, [("lga", 1), ("params", 1)], how="ranks")
        [4.0, 4.0, 4.0]
    """
    values = []
    for name, epoch in terms:
        found = [v for (q, _, e), v in columns.items() if q == name and e == epoch]
        if not found:
            raise ValueError(
                f"cannot combine {name!r} at epoch {epoch}: the study did not measure it; add it "
                "to `metrics` or `proxies`, or pick another epoch."
            )
        values.append(list(found[0]))
    directions = [expected_sign(name) for name, _ in terms]
    combine = sum_of_log_ranks if how == "log_ranks" else sum_of_ranks
    return [float(v) for v in combine(values, directions)]
