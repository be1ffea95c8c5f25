"""The study's arguments: refuse, before anything runs, settings that cannot give an honest table.

Each refusal is one :class:`ValueError` naming the argument, its value and the fix; the recipe
prints it as one line (:func:`recipes._cli.run_user_errors`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lga_lightning.core.meter import check_proxies
from lga_lightning.core.signals import kernel_metric_names
from lga_lightning.search.spaces import NB201Space
from recipes._combine import parse_combination


def check_study_arguments(
    *,
    space: Any,
    archs: Sequence[str] | None,
    sample: int | None,
    first: int | None,
    measure_at: Sequence[int],
    metrics: Sequence[str],
    probe_sizes: Sequence[int],
    probe_split: str | Sequence[str],
    model_seeds: Sequence[int],
    benchmark: str | None,
    table: str | None,
    own_epochs: int | None,
    proxies: Sequence[str],
    proxy_batch: int,
    combine: Sequence[str],
    probe_indices: Sequence[int] | None,
    probe_file: str | None,
    truth_column: str | None,
    **others: Any,
) -> None:
    """Check the arguments of :class:`recipes.correlate.CorrelationStudy` (first problem wins).

    Called with all of them by name (``others``: those not checked here).

    Raises:
        ValueError: naming the first wrong argument and the fix.

    Example:
        >>> args = dict(space=NB201Space(C=4, N=1), archs=None, sample=None, first=2,
        ...             measure_at=[0, 1], metrics=["lga"], probe_sizes=[8], probe_split="train",
        ...             model_seeds=[42], benchmark=None, table=None, own_epochs=None,
        ...             proxies=[], proxy_batch=64, combine=[], probe_indices=None,
        ...             probe_file=None, truth_column=None)
        >>> check_study_arguments(**args)
        >>> check_study_arguments(**{**args, "measure_at": [0, -1]})
        Traceback (most recent call last):
        ...
        ValueError: `measure_at` must be non-negative integers, got [0, -1].
    """
    given = (("archs", archs), ("sample", sample), ("first", first))
    chosen = [name for name, v in given if v is not None]
    if len(chosen) != 1:
        raise ValueError(
            "choose the architectures with exactly one of `archs` (a list), `sample` (a "
            "seeded sample size) or `first` (the first k of the space); "
            f"got {chosen or 'none'}."
        )
    for name, count in (("sample", sample), ("first", first)):
        if count is not None and count < 1:
            raise ValueError(f"`{name}` must be a positive number of archs, got {count}.")
    if archs is not None and not archs:
        raise ValueError("`archs` is an empty list; give at least one arch string.")
    if not measure_at or any(e < 0 for e in measure_at):
        raise ValueError(f"`measure_at` must be non-negative integers, got {measure_at}.")
    known = kernel_metric_names()  # the registry's, registered ones included
    unknown = [m for m in metrics if m not in known]
    if unknown or not metrics:
        raise ValueError(f"unknown `metrics` {unknown}; choose from {list(known)}.")
    if not probe_sizes or any(s < 2 for s in probe_sizes):
        raise ValueError(f"`probe_sizes` must be integers >= 2, got {probe_sizes}.")
    sources = [n for n, v in (("benchmark", benchmark), ("table", table)) if v]
    if len(sources) > 1 or (sources and own_epochs):
        raise ValueError(
            "choose the ground truth with at most one of `benchmark` (NAS-Bench-201 file), "
            "`table` (CSV/JSON) or `own_epochs` (the run's own longer training); without "
            "any, the NAS-Bench-201 table shipped with the package is used."
        )
    if not (sources or own_epochs) and not isinstance(space, NB201Space):
        raise ValueError(
            f"the {type(space).__name__} space has no embedded ground truth; give `table`, "
            "`benchmark` or `own_epochs`."
        )
    check_proxies(proxies)
    if proxy_batch < 2:
        raise ValueError(f"`proxy_batch` must be an integer >= 2, got {proxy_batch}.")
    for text in combine:
        parse_combination(text, measure_at)
    if probe_indices is not None and probe_file is not None:
        raise ValueError("give the probe as `probe_indices` or `probe_file`, not both.")
    if truth_column is not None and (benchmark or own_epochs):
        raise ValueError(
            "`truth_column` names a column of `table` (or of the embedded table); it does "
            "not apply to `benchmark` or `own_epochs`."
        )
    if not model_seeds or len(set(model_seeds)) != len(model_seeds):
        raise ValueError(
            f"`model_seeds` must be a non-empty list of distinct integers, got {model_seeds}."
        )
    if own_epochs is not None and own_epochs < 1:
        raise ValueError(f"`own_epochs` must be >= 1, got {own_epochs}.")
    if own_epochs is not None and own_epochs in measure_at:
        raise ValueError(
            f"`own_epochs={own_epochs}` is also in `measure_at`: the validation-accuracy baseline "
            "at that epoch would be the ground truth itself; choose `own_epochs` larger than "
            "every measured epoch."
        )
    splits = [probe_split] if isinstance(probe_split, str) else list(probe_split)
    if not splits or any(s not in ("train", "test") for s in splits):
        raise ValueError(
            f"`probe_split` must be `train`, `test` or a list of them, got {probe_split}."
        )
    if len(set(splits)) > 1 and (probe_indices is not None or probe_file is not None):
        raise ValueError(
            "an explicit probe (`probe_indices`/`probe_file`) is one probe; give one "
            "`probe_split` with it, not a list."
        )
