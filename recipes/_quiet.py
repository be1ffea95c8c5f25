"""Quiet recipe output: third-party advertising and deprecation noise filtered at the entry.

Only the recipes call :func:`quiet_third_party`; the library leaves every warning and log record
to the program that uses it. What is filtered, by its exact text:

- Lightning's "💡 Tip: ..." log lines (litlogger, litmodels): one per Trainer, so one per cell in
  a study;
- the ``FutureWarning`` that Lightning's own use of ``torch.utils._pytree.LeafSpec`` raises
  (Lightning's to fix, nothing the user can do);
- jsonargparse's deprecation of ``skip_none``, raised by Lightning's own ``SaveConfigCallback``.

Warnings that stay are shown once each per process (``once``), appended after the filters set by
``-W`` or ``PYTHONWARNINGS``, which keep precedence.
"""

from __future__ import annotations

import logging
import warnings

TIP_PREFIX = "💡 Tip:"
"""How Lightning's advertising lines start."""

THIRD_PARTY_WARNINGS: tuple[tuple[str, type[Warning]], ...] = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning),
    (r"skip_none parameter was deprecated", DeprecationWarning),
)
"""(message regex, category) of the third-party warnings the recipes hide."""

LIGHTNING_LOGGERS = (
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.utilities.rank_zero",
)
"""The loggers Lightning's ``rank_zero_info`` writes to (where its tips come from)."""


class DropTips(logging.Filter):
    """A logging filter that drops Lightning's advertising tips.

    Example:
        >>> tip = logging.LogRecord("x", logging.INFO, "", 0, "💡 Tip: try X", None, None)
        >>> DropTips().filter(tip), DropTips().filter(logging.LogRecord(
        ...     "x", logging.INFO, "", 0, "GPU available: False", None, None))
        (False, True)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to keep ``record``."""
        return not str(record.msg).lstrip().startswith(TIP_PREFIX)


_DROP_TIPS = DropTips()


def quiet_third_party() -> None:
    """Hide Lightning's tips and the third-party deprecations above; show warnings once each.

    Safe to call several times (nothing is added twice).

    Example:
        >>> quiet_third_party()
        >>> any(isinstance(f, DropTips) for f in logging.getLogger(LIGHTNING_LOGGERS[0]).filters)
        True
    """
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if _DROP_TIPS not in logger.filters:
            logger.addFilter(_DROP_TIPS)
    for message, category in THIRD_PARTY_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    warnings.filterwarnings("once", category=UserWarning, append=True)
