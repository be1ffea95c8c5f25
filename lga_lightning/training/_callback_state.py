"""The checkpoint state of :class:`~lga_lightning.NTKMetrics`: what a resumed run continues from."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from lga_lightning.core.meter import NTKMeter

STATE_VERSION = 2
"""The version of the state this package writes and reads."""


class StateMixin:
    """The checkpoint state of :class:`~lga_lightning.NTKMetrics` and its reset for a new run.

    Comes before Lightning's ``Callback`` in the class's bases, so its ``state_key``,
    ``state_dict`` and ``load_state_dict`` are the ones Lightning calls; ``state_key`` derives
    from the prefix with ``Callback._generate_state_key``.
    """

    meter: NTKMeter
    prefix: str
    history: list[dict[str, Any]]
    spectra: dict[int, Tensor]
    plot_path: str | None
    _state_key: str | None
    _loaded_state: bool
    _warned: set[str]

    @property
    def state_key(self) -> str:
        """Key of this callback's state in a checkpoint."""
        if self._state_key is not None:
            return self._state_key
        return self._generate_state_key(prefix=self.prefix)

    def state_dict(self) -> dict[str, Any]:
        """Plain tensors, numbers, strings, lists and dicts: loadable with ``weights_only``.

        ``meter`` holds the probe batches and the kernels kept for evolution
        (:meth:`NTKMeter.state_dict <lga_lightning.core.meter.NTKMeter.state_dict>`), ``history``
        every measurement and ``spectra`` the eigenvalues per epoch.

        Example:
            >>> from lga_lightning import NTKMetrics
            >>> sorted(NTKMetrics().state_dict())
            ['history', 'meter', 'spectra', 'version']
        """
        return {
            "version": STATE_VERSION,
            "meter": self.meter.state_dict(),
            "history": [dict(row) for row in self.history],
            "spectra": dict(self.spectra),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the probe batches, the kept kernels, the history and the spectra."""
        version = state_dict.get("version")
        if version != STATE_VERSION:
            raise ValueError(
                f"this NTKMetrics state has version {version!r}; this version of lga-lightning "
                f"reads version {STATE_VERSION}. Start a new run (or drop the callback's state "
                "from the checkpoint) to measure from scratch."
            )
        self.meter.load_state_dict(state_dict["meter"])
        self.history = [dict(row) for row in state_dict.get("history", [])]
        self.spectra = {int(k): v for k, v in state_dict.get("spectra", {}).items()}
        self._loaded_state = True

    def _reset(self) -> None:
        """Forget every measurement and the probe: a new run starts."""
        self.history = []
        self.spectra = {}
        self.meter.set_probes([])
        self.plot_path = None
        self._warned = set()
