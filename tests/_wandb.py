"""A W&B logger test double: it records what the code gives W&B, and starts no W&B run.

W&B's offline files are an internal format; the tests check what the code hands the logger
through W&B's public logger interface instead (``log_metrics``, ``log_table``, ``log_image`` and
``experiment.define_metric``). The double is a ``WandbLogger``, so code that treats W&B specially
treats it the same way.
"""

from __future__ import annotations

from typing import Any

from lightning.pytorch.loggers import WandbLogger


class _Experiment:
    """The part of a W&B run the code uses: ``define_metric``."""

    def __init__(self, axes: dict[str, str | None]) -> None:
        self.axes = axes

    def define_metric(self, name: str, step_metric: str | None = None, **kwargs: Any) -> None:
        self.axes[name] = step_metric


class RecordingWandbLogger(WandbLogger):
    """Keeps every ``log_metrics`` / ``log_table`` / ``log_image`` call and every metric axis."""

    def __init__(self, project: str = "lga-test", save_dir: str | None = None) -> None:
        super().__init__(offline=True, project=project, save_dir=save_dir)
        self.metrics: list[tuple[dict[str, float], int | None]] = []
        self.tables: list[dict[str, Any]] = []
        self.images: list[dict[str, Any]] = []
        self.axes: dict[str, str | None] = {}

    @property
    def experiment(self) -> _Experiment:  # Lightning touches it at setup: no W&B run starts
        return _Experiment(self.axes)

    @property
    def version(self) -> str:
        return "recorded-run"

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.append((dict(metrics), step))

    def log_table(self, key: str, columns: Any = None, data: Any = None, **kwargs: Any) -> None:
        self.tables.append(
            {
                "key": key,
                "columns": list(columns),
                "data": [list(r) for r in data],
                "step": kwargs.get("step"),
            }
        )

    def log_image(self, key: str, images: list[Any], step: int | None = None, **kw: Any) -> None:
        self.images.append({"key": key, "images": list(images), "step": step})

    def finalize(self, status: str) -> None:
        pass
