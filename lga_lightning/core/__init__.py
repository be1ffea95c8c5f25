"""The measuring core: kernels, signals, probes, the meter, proxies, evolution, linearisation.

This wing imports torch (and numpy/scipy) only, never Lightning, the search or the recipes, so
it can be used in any training loop. Its main entry points are :class:`NTKMeter`
(``lga_lightning.core.meter``), :func:`empirical_ntk` (``lga_lightning.core.kernel``) and the
pure functions of a kernel in ``lga_lightning.core.functional``.

Example:
    >>> import torch
    >>> from lga_lightning.core.functional import lga
    >>> labels = torch.tensor([0, 0, 1, 1])
    >>> kernel = (labels[:, None] == labels[None, :]).float()  # the labels' own kernel
    >>> float(lga(kernel, labels))
    1.0
"""
